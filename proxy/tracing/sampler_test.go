package tracing

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestNewSampler(t *testing.T) {
	tests := []struct {
		name, sampler, arg string
		want               string // Description; "" for an error
	}{
		{name: "always on", sampler: "always_on", want: "AlwaysOnSampler"},
		{name: "always off", sampler: "always_off", want: "AlwaysOffSampler"},
		{name: "ratio", sampler: "traceidratio", arg: "0.25", want: "TraceIDRatioBased{0.25}"},
		{name: "ratio without argument is 1", sampler: "traceidratio", want: "TraceIDRatioBased{1}"},
		{name: "ratio 0", sampler: "traceidratio", arg: "0", want: "TraceIDRatioBased{0}"},
		{name: "parent based ratio", sampler: "parentbased_traceidratio", arg: "0.01", want: "ParentBased{root:TraceIDRatioBased{0.01}}"},
		{name: "parent based on", sampler: "parentbased_always_on", want: "ParentBased{root:AlwaysOnSampler}"},
		{name: "parent based off", sampler: "parentbased_always_off", want: "ParentBased{root:AlwaysOffSampler}"},
		{name: "case and spaces", sampler: " Always_On ", want: "AlwaysOnSampler"},
		{name: "unknown", sampler: "jaeger_remote"},
		{name: "ratio above 1", sampler: "traceidratio", arg: "1.5"},
		{name: "negative ratio", sampler: "parentbased_traceidratio", arg: "-0.1"},
		{name: "ratio not a number", sampler: "traceidratio", arg: "half"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSampler(tc.sampler, tc.arg)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("NewSampler(%q, %q) = %s, want an error", tc.sampler, tc.arg, s.Description())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Description(); got != tc.want {
				t.Errorf("Description() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSamplerFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "unset: 1% of new traces, parents followed", want: "ParentBased{root:TraceIDRatioBased{0.01}}"},
		{name: "argument alone sets the default's ratio", env: map[string]string{"OTEL_TRACES_SAMPLER_ARG": "0.5"},
			want: "ParentBased{root:TraceIDRatioBased{0.5}}"},
		{name: "sampler named", env: map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}, want: "AlwaysOnSampler"},
		{name: "bad sampler", env: map[string]string{"OTEL_TRACES_SAMPLER": "xray"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := SamplerFromEnv(func(k string) string { return tc.env[k] })
			if tc.want == "" {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Description(); got != tc.want {
				t.Errorf("Description() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSamplerAgreesWithSDK checks the cheap decision against the SDK's own
// samplers, on the same trace ids and parents: the worker and every other
// service sampling by the same ratio keep the same traces.
func TestSamplerAgreesWithSDK(t *testing.T) {
	parents := []struct {
		name     string
		has, smp bool
	}{{"root", false, false}, {"sampled parent", true, true}, {"unsampled parent", true, false}}
	for _, ratio := range []float64{0, 0.01, 0.3, 1} {
		for _, parentBased := range []bool{false, true} {
			ours := RatioSampler(ratio, parentBased)
			var sdk sdktrace.Sampler = sdktrace.TraceIDRatioBased(ratio)
			if parentBased {
				sdk = sdktrace.ParentBased(sdk)
			}
			for _, p := range parents {
				sampled := 0
				for range 20000 {
					tid := newTraceID()
					ctx := context.Background()
					if p.has {
						var flags trace.TraceFlags
						if p.smp {
							flags = trace.FlagsSampled
						}
						ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
							TraceID: tid, SpanID: newSpanID(), TraceFlags: flags, Remote: true}))
					}
					params := sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid}
					want := sdk.ShouldSample(params).Decision == sdktrace.RecordAndSample
					got := ours.sample(tid, p.has, p.smp)
					if got != want {
						t.Fatalf("%s, %s, ratio %g: sample(%s) = %v, the SDK says %v", ours.Description(), p.name, ratio, tid, got, want)
					}
					if viaSDK := ours.ShouldSample(params).Decision == sdktrace.RecordAndSample; viaSDK != want {
						t.Fatalf("%s, %s: ShouldSample = %v, the SDK says %v", ours.Description(), p.name, viaSDK, want)
					}
					if got {
						sampled++
					}
				}
				if !p.has && ratio == 0.01 && (sampled < 100 || sampled > 320) {
					t.Errorf("%s sampled %d of 20000 new traces, want about 200", ours.Description(), sampled)
				}
			}
		}
	}
}
