// Package tracing is the data plane's OpenTelemetry tracing: the span of
// each request a worker serves, continued from the client's W3C
// traceparent and propagated to the upstream, sampled before anything is
// allocated.
//
// A worker holds a *Tracer (nil when tracing is off: every method is then a
// nil check) and, per request, a Span value:
//
//	sp := tracer.Start(&req.Header, start) // after the pipeline decided
//	if tp, ok := sp.AppendTraceparent(buf[:0]); ok { set the header to tp }
//	if sp.Recording() { sp.Decided(tracing.Request{...}) }
//	sp.StartUpstream()                      // then the header again
//	... exchange with the upstream ...
//	sp.EndUpstream(tracing.Upstream{...})
//	sp.End(status, problemCode)
//
// The sampling decision is made on the raw header bytes by the Sampler
// (OTEL_TRACES_SAMPLER, parentbased_traceidratio at 1% by default): a
// request that is not sampled allocates nothing, and at most has its
// traceparent written (a new trace, or a decision that differs from the
// parent's). A sampled one gets a server span named "{method} {route}"
// with bounded attributes (method, route template, tenant and API slugs,
// auth mode, status, the gateway's problem code; never keys, paths or
// query strings), an event when the pipeline has decided (route, auth,
// throttle), and a client span for the upstream exchange whose id is the
// parent the upstream sees.
//
// Files, by concern: tracing.go, the request span; sampler.go, the
// samplers of OTEL_TRACES_SAMPLER; traceparent.go, the header on bytes;
// ids.go and provider.go, the SDK provider the Tracer needs (its sampler
// and id generator agree with Start's decision).
package tracing

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the worker's spans.
const ScopeName = "github.com/tollgate/tollgate/proxy/tracing"

// Attribute keys of Tollgate's own span attributes.
const (
	// AttrTenant is the tenant's slug.
	AttrTenant = attribute.Key("tollgate.tenant")
	// AttrAPI is the API's slug.
	AttrAPI = attribute.Key("tollgate.api")
	// AttrAuth is the API's authentication mode (key, jwt, none).
	AttrAuth = attribute.Key("tollgate.auth")
	// AttrProblem is the code of the problem the gateway answered with
	// (unauthorized, rate-limited, bad-gateway, ...).
	AttrProblem = attribute.Key("tollgate.problem")
)

// EventDecided is the event recorded when the pipeline has routed,
// authenticated and throttled the request.
const EventDecided = "tollgate.decided"

// Header reads a request header by its canonical name; fasthttp's
// *RequestHeader implements it.
type Header interface {
	Peek(key string) []byte
}

// Tracer starts the spans of a worker's requests. A nil *Tracer is tracing
// off: Start returns a zero Span, whose methods do nothing. It is safe for
// concurrent use.
type Tracer struct {
	tracer  trace.Tracer
	sampler Sampler
}

// NewTracer makes the worker's tracer over tp, sampling with s. tp should
// be NewProvider's with the same sampler: the provider's sampler then
// confirms the decisions Start makes, and its id generator gives a new
// trace the id the decision was made on. A nil tp gives a nil Tracer.
func NewTracer(tp trace.TracerProvider, s Sampler) *Tracer {
	if tp == nil {
		return nil
	}
	return &Tracer{tracer: tp.Tracer(ScopeName), sampler: s}
}

// Span is the trace of one request: its server span and the client span of
// its upstream exchange when sampled, and the traceparent the request
// carries on. The zero Span is a request that is not traced. A Span is
// used by one goroutine and must not be copied once started.
type Span struct {
	t      *Tracer
	server trace.Span
	client trace.Span
	method string
	// The traceparent to send upstream when send is set: a new trace's,
	// one that overrules the parent's sampled flag, or a span's of ours.
	tid   trace.TraceID
	sid   trace.SpanID
	flags trace.TraceFlags
	send  bool
}

// Start begins the trace of a request that arrived at start, from its
// Traceparent (and, when sampled, Tracestate) header: a valid traceparent
// is the parent, whose trace continues; without one a new trace begins.
// Call it once the pipeline has decided, before the worker fills in a
// missing traceparent of its own, and write the header AppendTraceparent
// gives.
func (t *Tracer) Start(h Header, start time.Time) Span {
	if t == nil {
		return Span{}
	}
	tid, psid, pflags, hasParent := parseTraceparent(h.Peek("Traceparent"))
	if !hasParent {
		tid = newTraceID()
	}
	if !t.sampler.sample(tid, hasParent, pflags.IsSampled()) {
		if hasParent && !pflags.IsSampled() {
			return Span{} // the client's header says it all
		}
		// A new trace, or a sampled parent this sampler overrules: the
		// upstream must learn that the trace is not sampled.
		return Span{tid: tid, sid: newSpanID(), send: true}
	}
	ctx := context.Background()
	if hasParent {
		ts, _ := trace.ParseTraceState(string(h.Peek("Tracestate")))
		ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: psid, TraceFlags: pflags, TraceState: ts, Remote: true}))
	} else {
		ctx = context.WithValue(ctx, presetTraceID{}, tid)
	}
	_, span := t.tracer.Start(ctx, "HTTP", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start))
	sc := span.SpanContext()
	sp := Span{tid: sc.TraceID(), sid: sc.SpanID(), flags: sc.TraceFlags() & trace.FlagsSampled, send: sc.IsValid()}
	if span.IsRecording() {
		sp.t, sp.server = t, span
	}
	return sp
}

// Recording reports whether the request is sampled: only then are its
// attributes worth computing.
func (s *Span) Recording() bool { return s.server != nil }

// AppendTraceparent appends to b the traceparent the request must carry
// from here on, and reports whether there is one; false means the
// request's own header stays as it is.
func (s *Span) AppendTraceparent(b []byte) ([]byte, bool) {
	if !s.send {
		return b, false
	}
	return appendTraceparent(b, s.tid, s.sid, s.flags), true
}

// Request is what the pipeline made of a request, for its span. Every
// field is a bounded value of the configuration, never the client's.
type Request struct {
	// Method is the request method; methods outside RFC 9110's are
	// recorded as "_OTHER".
	Method []byte
	// Tenant and API are the slugs of the routed tenant and API ("" when
	// the request was not routed).
	Tenant, API string
	// Route is the route template the request matched, such as
	// "/billing/*" for an API served under /billing.
	Route string
	// Auth is the API's authentication mode.
	Auth string
	// Problem is the code of the problem the pipeline refused the request
	// with; "" when it is forwarded.
	Problem string
}

// Decided names the span and records what the pipeline decided, with an
// event at the time of the call (right after the decision).
func (s *Span) Decided(r Request) {
	if s.server == nil {
		return
	}
	s.method = methodName(r.Method)
	name := s.method
	if name == "_OTHER" {
		name = "HTTP"
	}
	if r.Route != "" {
		name += " " + r.Route
	}
	s.server.SetName(name)
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, semconv.HTTPRequestMethodKey.String(s.method))
	if r.Route != "" {
		attrs = append(attrs, semconv.HTTPRoute(r.Route))
	}
	if r.Tenant != "" {
		attrs = append(attrs, AttrTenant.String(r.Tenant))
	}
	if r.API != "" {
		attrs = append(attrs, AttrAPI.String(r.API), AttrAuth.String(r.Auth))
	}
	s.server.SetAttributes(attrs...)
	if r.Problem != "" {
		s.server.AddEvent(EventDecided, trace.WithAttributes(AttrProblem.String(r.Problem)))
	} else {
		s.server.AddEvent(EventDecided)
	}
}

// StartUpstream begins the client span of the exchange with the upstream;
// the traceparent (AppendTraceparent) is then this span's, the parent the
// upstream sees.
func (s *Span) StartUpstream() {
	if s.server == nil {
		return
	}
	name := s.method
	if name == "" || name == "_OTHER" {
		name = "HTTP"
	}
	_, s.client = s.t.tracer.Start(trace.ContextWithSpan(context.Background(), s.server), name,
		trace.WithSpanKind(trace.SpanKindClient))
	sc := s.client.SpanContext()
	s.sid, s.flags, s.send = sc.SpanID(), sc.TraceFlags()&trace.FlagsSampled, true
}

// Upstream is how the exchange with the upstream went.
type Upstream struct {
	// Address is the last target's host[:port] as configured, and Scheme
	// its scheme.
	Address, Scheme string
	// Status is the target's status code; 0 when it did not answer.
	Status int
	// Failure says why there was no answer ("connect", "timeout",
	// "other"); "" when it answered.
	Failure string
}

// EndUpstream ends the upstream exchange's span.
func (s *Span) EndUpstream(u Upstream) {
	if s.client == nil {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 4)
	if u.Address != "" {
		attrs = append(attrs, semconv.ServerAddress(u.Address))
	}
	if u.Scheme != "" {
		attrs = append(attrs, semconv.URLScheme(u.Scheme))
	}
	if u.Status > 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(u.Status))
	}
	if u.Failure != "" {
		attrs = append(attrs, semconv.ErrorTypeKey.String(u.Failure))
		s.client.SetStatus(codes.Error, u.Failure)
	} else if u.Status >= 400 {
		s.client.SetStatus(codes.Error, "")
	}
	s.client.SetAttributes(attrs...)
	s.client.End()
	s.client = nil
}

// End ends the request's span with the status answered to the client and
// the code of the gateway's problem, if it answered one ("" otherwise).
// 5xx answers mark the span as an error.
func (s *Span) End(status int, problem string) {
	if s.server == nil {
		return
	}
	s.EndUpstream(Upstream{})
	attrs := make([]attribute.KeyValue, 0, 2)
	attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
	if problem != "" {
		attrs = append(attrs, AttrProblem.String(problem))
	}
	s.server.SetAttributes(attrs...)
	if status >= 500 {
		s.server.SetStatus(codes.Error, "")
	}
	s.server.End()
	s.server = nil
}

// methodName is the http.request.method of m: a method of RFC 9110 (and
// PATCH), or "_OTHER".
func methodName(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "CONNECT":
		return "CONNECT"
	case "OPTIONS":
		return "OPTIONS"
	case "TRACE":
		return "TRACE"
	case "PATCH":
		return "PATCH"
	}
	return "_OTHER"
}
