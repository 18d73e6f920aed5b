package tracing

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// DefaultRatio is the share of new traces sampled when OTEL_TRACES_SAMPLER
// is unset: 1%, so that tracing stays within the hot path's CPU budget.
const DefaultRatio = 0.01

// The sampler names of OTEL_TRACES_SAMPLER this package understands (the
// OpenTelemetry specification's, less the remote ones).
const (
	SamplerAlwaysOn                = "always_on"
	SamplerAlwaysOff               = "always_off"
	SamplerTraceIDRatio            = "traceidratio"
	SamplerParentBasedAlwaysOn     = "parentbased_always_on"
	SamplerParentBasedAlwaysOff    = "parentbased_always_off"
	SamplerParentBasedTraceIDRatio = "parentbased_traceidratio"
)

// Sampler decides which traces are recorded. It is one of the standard
// samplers of OTEL_TRACES_SAMPLER, implemented twice over the same rules:
// as an sdktrace.Sampler for the SDK (the control plane's spans, and the
// worker's once it has decided), and as a decision on raw ids that the
// worker makes before it touches the SDK, so that a request that is not
// sampled costs no allocation. The ratio test is the SDK's
// (TraceIDRatioBased): a trace is sampled where the low 63 bits of the
// second half of its id fall under the ratio, so every service that samples
// by the same ratio agrees on the same traces.
//
// The zero Sampler samples nothing; make one with NewSampler or
// SamplerFromEnv.
type Sampler struct {
	parentBased bool
	root        rootDecision
	bound       uint64 // rootRatio: sampled when id>>1 < bound
	desc        string
}

type rootDecision uint8

const (
	rootNever rootDecision = iota
	rootAlways
	rootRatio
)

// NewSampler makes the sampler named by an OTEL_TRACES_SAMPLER value with
// its OTEL_TRACES_SAMPLER_ARG (the ratio of the traceidratio samplers, 1.0
// when arg is empty, as the specification says). An unknown name or a
// ratio outside [0, 1] is an error.
func NewSampler(name, arg string) (Sampler, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	arg = strings.TrimSpace(arg)
	switch name {
	case SamplerAlwaysOn:
		return Sampler{root: rootAlways, desc: "AlwaysOnSampler"}, nil
	case SamplerAlwaysOff:
		return Sampler{root: rootNever, desc: "AlwaysOffSampler"}, nil
	case SamplerParentBasedAlwaysOn:
		return Sampler{parentBased: true, root: rootAlways, desc: "ParentBased{root:AlwaysOnSampler}"}, nil
	case SamplerParentBasedAlwaysOff:
		return Sampler{parentBased: true, root: rootNever, desc: "ParentBased{root:AlwaysOffSampler}"}, nil
	case SamplerTraceIDRatio, SamplerParentBasedTraceIDRatio:
		ratio := 1.0
		if arg != "" {
			var err error
			if ratio, err = strconv.ParseFloat(arg, 64); err != nil || ratio < 0 || ratio > 1 {
				return Sampler{}, fmt.Errorf("sampler %s: ratio %q is not a number from 0 to 1", name, arg)
			}
		}
		return RatioSampler(ratio, name == SamplerParentBasedTraceIDRatio), nil
	}
	return Sampler{}, fmt.Errorf("sampler %q is not supported (use one of %s, %s, %s, %s, %s, %s)", name,
		SamplerAlwaysOn, SamplerAlwaysOff, SamplerTraceIDRatio,
		SamplerParentBasedAlwaysOn, SamplerParentBasedAlwaysOff, SamplerParentBasedTraceIDRatio)
}

// RatioSampler samples ratio of new traces (0 none, 1 all); parentBased
// makes it follow a parent's decision where a request carries one.
func RatioSampler(ratio float64, parentBased bool) Sampler {
	s := Sampler{parentBased: parentBased}
	switch {
	case ratio >= 1:
		s.root, s.desc = rootAlways, "TraceIDRatioBased{1}"
	case ratio <= 0:
		s.root, s.desc = rootNever, "TraceIDRatioBased{0}"
	default:
		s.root, s.bound = rootRatio, uint64(ratio*(1<<63))
		s.desc = fmt.Sprintf("TraceIDRatioBased{%g}", ratio)
	}
	if parentBased {
		s.desc = "ParentBased{root:" + s.desc + "}"
	}
	return s
}

// SamplerFromEnv reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// through getenv. Unset, the sampler is parentbased_traceidratio at
// DefaultRatio, or at OTEL_TRACES_SAMPLER_ARG when only that is set.
func SamplerFromEnv(getenv func(string) string) (Sampler, error) {
	name, arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")), strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
	if name == "" {
		if arg == "" {
			return RatioSampler(DefaultRatio, true), nil
		}
		name = SamplerParentBasedTraceIDRatio
	}
	s, err := NewSampler(name, arg)
	if err != nil {
		return Sampler{}, fmt.Errorf("OTEL_TRACES_SAMPLER: %w", err)
	}
	return s, nil
}

// sample decides for a span of trace tid whose parent, if any (hasParent),
// was sampled or not (parentSampled).
func (s Sampler) sample(tid trace.TraceID, hasParent, parentSampled bool) bool {
	if s.parentBased && hasParent {
		return parentSampled
	}
	switch s.root {
	case rootAlways:
		return true
	case rootRatio:
		return binary.BigEndian.Uint64(tid[8:16])>>1 < s.bound
	}
	return false
}

// ShouldSample implements sdktrace.Sampler.
func (s Sampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	psc := trace.SpanContextFromContext(p.ParentContext)
	r := sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: psc.TraceState()}
	if s.sample(p.TraceID, psc.IsValid(), psc.IsSampled()) {
		r.Decision = sdktrace.RecordAndSample
	}
	return r
}

// Description implements sdktrace.Sampler.
func (s Sampler) Description() string {
	if s.desc == "" {
		return "AlwaysOffSampler"
	}
	return s.desc
}
