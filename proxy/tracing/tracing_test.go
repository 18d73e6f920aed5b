package tracing_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tollgate/tollgate/proxy/tracing"
	"github.com/tollgate/tollgate/proxy/tracing/tracingtest"
)

// header is a request's headers, as the worker's fasthttp header reads them.
type header struct{ traceparent, tracestate []byte }

func (h *header) Peek(key string) []byte {
	switch key {
	case "Traceparent":
		return h.traceparent
	case "Tracestate":
		return h.tracestate
	}
	return nil
}

// newTracer is a worker's tracer exporting to a receiver in the test
// process with the real OTLP/HTTP exporter.
func newTracer(t *testing.T, s tracing.Sampler) (*tracing.Tracer, *sdktrace.TracerProvider, *tracingtest.Receiver) {
	t.Helper()
	recv := tracingtest.New(t)
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(recv.Endpoint))
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(semconv.ServiceName("tollgate-proxy"))
	tp := tracing.NewProvider(exp, res, s)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tracing.NewTracer(tp, s), tp, recv
}

// flush exports what the provider has queued; the receiver has it when
// flush returns.
func flush(t *testing.T, tp *sdktrace.TracerProvider) {
	t.Helper()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func traceparent(t *testing.T, sp *tracing.Span) string {
	t.Helper()
	tp, ok := sp.AppendTraceparent(nil)
	if !ok {
		return ""
	}
	return string(tp)
}

// TestContinuesTraceparent: a request with a sampled traceparent gets a
// server span in the client's trace, under the client's span, with the
// pipeline's attributes; the upstream exchange is a client span under it,
// and the traceparent sent upstream names that client span.
func TestContinuesTraceparent(t *testing.T) {
	tr, tp, recv := newTracer(t, tracing.RatioSampler(0, true)) // only what the parent samples
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	h := &header{traceparent: []byte("00-" + traceID + "-" + parentID + "-01"), tracestate: []byte("congo=t61rcWkgMzE")}
	start := time.Now().Add(-time.Millisecond)
	sp := tr.Start(h, start)
	if !sp.Recording() {
		t.Fatal("a sampled parent's request is not recorded")
	}
	first := traceparent(t, &sp)
	if !strings.HasPrefix(first, "00-"+traceID+"-") || strings.Contains(first, parentID) || !strings.HasSuffix(first, "-01") {
		t.Fatalf("traceparent after Start = %q, want trace %s, a span of ours, sampled", first, traceID)
	}
	sp.Decided(tracing.Request{Method: []byte("GET"), Tenant: "acme", API: "billing", Route: "/billing/*", Auth: "key"})
	sp.StartUpstream()
	upstream := traceparent(t, &sp)
	if !strings.HasPrefix(upstream, "00-"+traceID+"-") || upstream == first {
		t.Fatalf("traceparent sent upstream = %q (server span's %q)", upstream, first)
	}
	sp.EndUpstream(tracing.Upstream{Address: "backend.internal:8080", Scheme: "http", Status: 200})
	sp.End(200, "")
	if sp.Recording() {
		t.Error("the span still records after End")
	}
	flush(t, tp)

	spans := recv.Spans()
	if len(spans) != 2 {
		t.Fatalf("received %d spans, want 2: %+v", len(spans), spans)
	}
	var server, client tracingtest.Span
	for _, s := range spans {
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = s
		case tracepb.Span_SPAN_KIND_CLIENT:
			client = s
		}
	}
	if server.TraceID != traceID || server.ParentSpanID != parentID || server.SpanID != first[36:52] {
		t.Errorf("server span: trace %s parent %s span %s, want trace %s parent %s span %s",
			server.TraceID, server.ParentSpanID, server.SpanID, traceID, parentID, first[36:52])
	}
	if server.Name != "GET /billing/*" || server.Service != "tollgate-proxy" || server.Scope != tracing.ScopeName {
		t.Errorf("server span %q of %q (%s)", server.Name, server.Service, server.Scope)
	}
	if server.TraceState != "congo=t61rcWkgMzE" {
		t.Errorf("tracestate %q, want the client's", server.TraceState)
	}
	if !server.Start.Equal(start) {
		t.Errorf("server span starts at %v, want the request's arrival %v", server.Start, start)
	}
	want := map[string]any{"http.request.method": "GET", "http.route": "/billing/*", "tollgate.tenant": "acme",
		"tollgate.api": "billing", "tollgate.auth": "key", "http.response.status_code": int64(200)}
	for k, v := range want {
		if server.Attributes[k] != v {
			t.Errorf("server span %s = %v, want %v", k, server.Attributes[k], v)
		}
	}
	if len(server.Attributes) != len(want) {
		t.Errorf("server span attributes %v, want only %v", server.Attributes, want)
	}
	if len(server.Events) != 1 || server.Events[0] != tracing.EventDecided {
		t.Errorf("server span events %v", server.Events)
	}
	if client.TraceID != traceID || client.ParentSpanID != server.SpanID || client.SpanID != upstream[36:52] {
		t.Errorf("client span: trace %s parent %s span %s; server span %s, upstream traceparent %s",
			client.TraceID, client.ParentSpanID, client.SpanID, server.SpanID, upstream)
	}
	if client.Name != "GET" || client.Attributes["server.address"] != "backend.internal:8080" ||
		client.Attributes["http.response.status_code"] != int64(200) || client.Status == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("client span %q %v status %v", client.Name, client.Attributes, client.Status)
	}
}

// TestNewTrace: without a traceparent a sampled request starts a trace,
// whose id the traceparent sent upstream carries; gateway errors are
// recorded with their problem code.
func TestNewTrace(t *testing.T) {
	tr, tp, recv := newTracer(t, tracing.RatioSampler(1, true))
	sp := tr.Start(&header{traceparent: []byte("not a traceparent")}, time.Now())
	tpHeader := traceparent(t, &sp)
	if len(tpHeader) != tracing.TraceparentLen || !strings.HasSuffix(tpHeader, "-01") {
		t.Fatalf("traceparent %q", tpHeader)
	}
	sp.Decided(tracing.Request{Method: []byte("BREW"), Tenant: "acme", API: "billing", Route: "/billing/*", Auth: "key",
		Problem: "rate-limited"})
	sp.End(429, "rate-limited")
	flush(t, tp)
	spans := recv.Spans()
	if len(spans) != 1 {
		t.Fatalf("received %d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.TraceID != tpHeader[3:35] || s.SpanID != tpHeader[36:52] || s.ParentSpanID != "" {
		t.Errorf("span trace %s span %s parent %q; traceparent sent %s", s.TraceID, s.SpanID, s.ParentSpanID, tpHeader)
	}
	if s.Name != "HTTP /billing/*" || s.Attributes["http.request.method"] != "_OTHER" ||
		s.Attributes["tollgate.problem"] != "rate-limited" || s.Attributes["http.response.status_code"] != int64(429) {
		t.Errorf("span %q %v", s.Name, s.Attributes)
	}
	if len(s.EventAttributes) != 1 || s.EventAttributes[0]["tollgate.problem"] != "rate-limited" {
		t.Errorf("decided event attributes %v", s.EventAttributes)
	}
	if s.Status == tracepb.Status_STATUS_CODE_ERROR {
		t.Error("a 429 is not a server error")
	}
}

// TestNotSampled: requests that are not sampled export nothing, allocate
// nothing, and carry the traceparent that tells the upstream so.
func TestNotSampled(t *testing.T) {
	const client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-"
	tests := []struct {
		name    string
		sampler tracing.Sampler
		nilT    bool
		header  string
		// want is the traceparent written: "" none (the client's stays),
		// "new" a new unsampled trace, else a prefix.
		want string
	}{
		{name: "tracing off", nilT: true, header: client + "01"},
		{name: "parent not sampled", sampler: tracing.RatioSampler(1, true), header: client + "00"},
		{name: "new trace not drawn", sampler: tracing.RatioSampler(0, true), want: "new"},
		{name: "sampled parent overruled", sampler: tracing.RatioSampler(0, false), header: client + "01",
			want: "00-4bf92f3577b34da6a3ce929d0e0e4736-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, tp, recv := newTracer(t, tc.sampler)
			if tc.nilT {
				tr = nil
			}
			h := &header{traceparent: []byte(tc.header)}
			sp := tr.Start(h, time.Now())
			if sp.Recording() {
				t.Fatal("recording")
			}
			got := traceparent(t, &sp)
			switch tc.want {
			case "":
				if got != "" {
					t.Errorf("traceparent written: %q, want the client's kept", got)
				}
			case "new":
				if len(got) != tracing.TraceparentLen || !strings.HasSuffix(got, "-00") {
					t.Errorf("traceparent %q, want a new one, not sampled", got)
				}
			default:
				if !strings.HasPrefix(got, tc.want) || !strings.HasSuffix(got, "-00") || got[36:52] == "00f067aa0ba902b7" {
					t.Errorf("traceparent %q, want %s<new span>-00", got, tc.want)
				}
			}
			var buf [tracing.TraceparentLen]byte
			allocs := testing.AllocsPerRun(200, func() {
				sp := tr.Start(h, time.Time{})
				if sp.Recording() {
					sp.Decided(tracing.Request{})
				}
				_, _ = sp.AppendTraceparent(buf[:0])
				sp.StartUpstream()
				sp.EndUpstream(tracing.Upstream{})
				sp.End(200, "")
			})
			if allocs != 0 {
				t.Errorf("%v allocations per request, want 0", allocs)
			}
			flush(t, tp)
			if n := len(recv.Spans()); n != 0 {
				t.Errorf("%d spans exported", n)
			}
		})
	}
}

// TestImports: proxy/tracing is the standard library and OpenTelemetry
// only, so that the worker's tracing brings in nothing else.
func TestImports(t *testing.T) {
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		goTool = p
	}
	out, err := exec.Command(goTool, "list", "-f", `{{join .Imports "\n"}}`, "github.com/tollgate/tollgate/proxy/tracing").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(imp, "/")
		if strings.Contains(first, ".") && !strings.HasPrefix(imp, "go.opentelemetry.io/") {
			t.Errorf("proxy/tracing imports %s", imp)
		}
	}
}

// BenchmarkStart is a request's tracing on its own: off, not sampled (no
// traceparent, 1%: 99 of 100 requests), and sampled (exported to a
// receiver in the process).
func BenchmarkStart(b *testing.B) {
	cases := []struct {
		name string
		s    tracing.Sampler
		off  bool
	}{
		{name: "off", off: true},
		{name: "not-sampled", s: tracing.RatioSampler(0, true)},
		{name: "ratio-1pct", s: tracing.RatioSampler(0.01, true)},
		{name: "sampled", s: tracing.RatioSampler(1, true)},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			recv := tracingtest.NewDiscard(b)
			exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(recv.Endpoint))
			if err != nil {
				b.Fatal(err)
			}
			tp := tracing.NewProvider(exp, resource.Empty(), bc.s)
			defer tp.Shutdown(context.Background())
			tr := tracing.NewTracer(tp, bc.s)
			if bc.off {
				tr = nil
			}
			h := &header{}
			var buf [tracing.TraceparentLen]byte
			b.ReportAllocs()
			for b.Loop() {
				sp := tr.Start(h, time.Now())
				_, _ = sp.AppendTraceparent(buf[:0])
				if sp.Recording() {
					sp.Decided(tracing.Request{Method: []byte("GET"), Tenant: "acme", API: "billing", Route: "/billing/*", Auth: "key"})
					sp.StartUpstream()
					_, _ = sp.AppendTraceparent(buf[:0])
					sp.EndUpstream(tracing.Upstream{Address: "backend:80", Scheme: "http", Status: 200})
				}
				sp.End(200, "")
			}
		})
	}
}
