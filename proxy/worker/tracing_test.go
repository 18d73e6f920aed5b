package worker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/tracing"
	"github.com/tollgate/tollgate/proxy/tracing/tracingtest"
)

// traceExport is where a test worker's spans go: the real OTLP/HTTP
// exporter, batching to a receiver in the test process.
type traceExport struct {
	tp   *sdktrace.TracerProvider
	recv *tracingtest.Receiver
	// exported counts the spans handed to the exporter.
	exported atomic.Int64
}

// newTraceExport makes a worker's tracer sampling with s, exporting to a
// receiver (a discarding one for benchmarks) of its own.
func newTraceExport(tb testing.TB, s tracing.Sampler, recv *tracingtest.Receiver) (*tracing.Tracer, *traceExport) {
	tb.Helper()
	otlp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(recv.Endpoint))
	if err != nil {
		tb.Fatal(err)
	}
	x := &traceExport{recv: recv}
	x.tp = tracing.NewProvider(countingExporter{otlp, &x.exported},
		resource.NewSchemaless(semconv.ServiceName("tollgate-proxy")), s)
	tb.Cleanup(func() { _ = x.tp.Shutdown(context.Background()) })
	return tracing.NewTracer(x.tp, s), x
}

// countingExporter counts the spans it passes on.
type countingExporter struct {
	sdktrace.SpanExporter
	n *atomic.Int64
}

func (c countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	c.n.Add(int64(len(spans)))
	return c.SpanExporter.ExportSpans(ctx, spans)
}

// spans exports what is queued and returns every span received. The
// worker ends a request's spans before its answer is written, so those of
// every answered request are there.
func (x *traceExport) spans(tb testing.TB) []tracingtest.Span {
	tb.Helper()
	if err := x.tp.ForceFlush(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return x.recv.Spans()
}

// traceBackend is an echo backend that also keeps the traceparent of
// every request it gets, in order.
type traceBackend struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newTraceBackend(t *testing.T) *traceBackend { return newTraceServer(t, echoHandler("b1")) }

// newTraceServer is a backend serving h that keeps the traceparent of
// every request it gets.
func newTraceServer(t *testing.T, h http.Handler) *traceBackend {
	t.Helper()
	b := &traceBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.seen = append(b.seen, r.Header.Get("Traceparent"))
		b.mu.Unlock()
		h.ServeHTTP(rw, r)
	}))
	t.Cleanup(b.Close)
	return b
}

// all is the traceparents of every request the backend got.
func (b *traceBackend) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.seen)
}

// last is the traceparent of the last request the backend got ("" for
// none or no request).
func (b *traceBackend) last() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) == 0 {
		return ""
	}
	return b.seen[len(b.seen)-1]
}

func (b *traceBackend) requests() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.seen)
}

const (
	traceKey = "orders-key"
	// A client's trace context: its trace, its span (the gateway's
	// parent), sampled or not.
	clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan  = "00f067aa0ba902b7"
	sampledTP   = "00-" + clientTrace + "-" + clientSpan + "-01"
	unsampledTP = "00-" + clientTrace + "-" + clientSpan + "-00"
)

// startTraced runs a worker with tracer tr (nil: tracing off) in front of
// b, for tenant acme: API orders under /orders (key auth, rate limited)
// and API dead under /dead, whose only target refuses connections.
func startTraced(t *testing.T, tr *tracing.Tracer, b *traceBackend) *running {
	t.Helper()
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{
			{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: b.URL, Weight: 1}}},
			{ID: "dead", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: "http://" + closedAddr(t), Weight: 1}}},
		},
		[]proxycfg.API{
			{ID: "a-orders", Slug: "orders", BasePath: "/orders", UpstreamID: "u", Auth: proxycfg.AuthKey, StripBasePath: true},
			{ID: "a-dead", Slug: "dead", BasePath: "/dead", UpstreamID: "dead", Auth: proxycfg.AuthNone},
		},
		[]proxycfg.Plan{{ID: "p", RateLimit: proxycfg.RateLimit{Requests: 100000, PerSeconds: 60}, APIIDs: []string{"a-orders"}}}))
	testredis.PutKey(t, e.rdb, e.keys, secret, traceKey, proxycfg.KeyRecord{ID: "k", TenantID: "t-acme", ConsumerID: "c", PlanID: "p", Status: proxycfg.KeyActive})
	r := e.startWith(t, func(o *Options) { o.Tracer = tr })
	r.waitReady(t, 1)
	return r
}

// byKind returns the spans of trace tid of kind k.
func byKind(spans []tracingtest.Span, tid string, k tracepb.Span_SpanKind) []tracingtest.Span {
	var out []tracingtest.Span
	for _, s := range spans {
		if s.TraceID == tid && s.Kind == k {
			out = append(out, s)
		}
	}
	return out
}

// splitTraceparent returns the trace id, parent id and flags of a version
// 00 traceparent.
func splitTraceparent(t *testing.T, tp string) (tid, sid, flags string) {
	t.Helper()
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		t.Fatalf("traceparent %q is not a version 00 one", tp)
	}
	return parts[1], parts[2], parts[3]
}

// TestTraceSampledRequest: a request whose traceparent is sampled gets a
// server span in the client's trace, under the client's span, named by
// method and route, with the pipeline's attributes and the answer's
// status; the upstream exchange is a client span under it, and the
// traceparent the backend gets names that client span. A request refused
// by the pipeline has no client span; one whose upstream is down has a
// failed one. No span carries the key, the path or the query.
func TestTraceSampledRequest(t *testing.T) {
	t.Parallel()
	b := newTraceBackend(t)
	// Only what the client samples is traced: requests without a
	// traceparent in other tests of this worker would add nothing.
	tr, exp := newTraceExport(t, tracing.RatioSampler(0, true), tracingtest.New(t))
	r := startTraced(t, tr, b)
	authority := strings.TrimPrefix(b.URL, "http://")

	tests := []struct {
		name       string
		traceID    string // the client's trace
		path       string
		hdr        map[string]string
		status     int
		spanName   string
		attrs      map[string]any // expected attributes of the server span
		problem    string         // the server span's tollgate.problem; "" for none
		client     bool           // an upstream exchange
		clientAttr map[string]any
	}{
		{
			name: "forwarded", traceID: clientTrace, path: "/orders/items-zz?secret=q", hdr: key(traceKey),
			status: 200, spanName: "GET /orders/*",
			attrs: map[string]any{"http.request.method": "GET", "http.route": "/orders/*", "tollgate.tenant": "acme",
				"tollgate.api": "orders", "tollgate.auth": "key", "http.response.status_code": int64(200)},
			client:     true,
			clientAttr: map[string]any{"server.address": authority, "url.scheme": "http", "http.response.status_code": int64(200)},
		},
		{
			name: "refused by the pipeline", traceID: "0af7651916cd43dd8448eb211c80319c", path: "/orders/items-zz",
			status: 401, spanName: "GET /orders/*", problem: problem.Unauthorized.Code,
			attrs: map[string]any{"http.route": "/orders/*", "tollgate.tenant": "acme", "tollgate.api": "orders",
				"http.response.status_code": int64(401)},
		},
		{
			name: "upstream down", traceID: "5b8aa5a2d2c872e8321cf37308d69df2", path: "/dead/items-zz",
			status: 502, spanName: "GET /dead/*", problem: problem.BadGateway.Code,
			attrs: map[string]any{"http.route": "/dead/*", "tollgate.api": "dead", "tollgate.auth": "none",
				"http.response.status_code": int64(502)},
			client:     true,
			clientAttr: map[string]any{"url.scheme": "http", "error.type": "connect"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"Traceparent": "00-" + tc.traceID + "-" + clientSpan + "-01"}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			before := b.requests()
			got := r.doReq(t, http.MethodGet, "acme.localhost", tc.path, hdr, nil)
			if got.status != tc.status {
				t.Fatalf("status %d (%s), want %d", got.status, got.body, tc.status)
			}
			spans := exp.spans(t)
			servers := byKind(spans, tc.traceID, tracepb.Span_SPAN_KIND_SERVER)
			if len(servers) != 1 {
				t.Fatalf("%d server spans in trace %s, want 1; spans: %+v", len(servers), tc.traceID, spans)
			}
			srv := servers[0]
			if srv.ParentSpanID != clientSpan || srv.Name != tc.spanName || srv.Service != "tollgate-proxy" || srv.Scope != tracing.ScopeName {
				t.Errorf("server span %q (parent %s, service %s, scope %s), want %q under %s",
					srv.Name, srv.ParentSpanID, srv.Service, srv.Scope, tc.spanName, clientSpan)
			}
			for k, want := range tc.attrs {
				if srv.Attributes[k] != want {
					t.Errorf("server span %s = %v, want %v", k, srv.Attributes[k], want)
				}
			}
			if p, _ := srv.Attributes["tollgate.problem"].(string); p != tc.problem {
				t.Errorf("server span tollgate.problem %q, want %q", p, tc.problem)
			}
			if len(srv.Events) != 1 || srv.Events[0] != tracing.EventDecided {
				t.Errorf("server span events %v, want [%s]", srv.Events, tracing.EventDecided)
			}
			if wantErr := tc.status >= 500; (srv.Status == tracepb.Status_STATUS_CODE_ERROR) != wantErr {
				t.Errorf("server span status %v for a %d answer", srv.Status, tc.status)
			}
			for _, s := range spans {
				for k, v := range s.Attributes {
					if str, ok := v.(string); ok && (strings.Contains(str, "items-zz") || strings.Contains(str, "secret") || strings.Contains(str, traceKey)) {
						t.Errorf("span %q attribute %s = %q: the path, query or key", s.Name, k, str)
					}
				}
			}

			clients := byKind(spans, tc.traceID, tracepb.Span_SPAN_KIND_CLIENT)
			if !tc.client {
				if len(clients) != 0 || b.requests() != before {
					t.Fatalf("%d client spans and %d backend requests for a request the pipeline refused", len(clients), b.requests()-before)
				}
				return
			}
			if len(clients) != 1 {
				t.Fatalf("%d client spans in trace %s, want 1; spans: %+v", len(clients), tc.traceID, spans)
			}
			cl := clients[0]
			if cl.ParentSpanID != srv.SpanID || cl.Name != "GET" {
				t.Errorf("client span %q under %s, want GET under the server span %s", cl.Name, cl.ParentSpanID, srv.SpanID)
			}
			if cl.Start.Before(srv.Start) || cl.End.After(srv.End) {
				t.Errorf("client span [%v, %v] outside the server span [%v, %v]", cl.Start, cl.End, srv.Start, srv.End)
			}
			for k, want := range tc.clientAttr {
				if cl.Attributes[k] != want {
					t.Errorf("client span %s = %v, want %v", k, cl.Attributes[k], want)
				}
			}
			if _, ok := tc.clientAttr["error.type"]; ok != (cl.Status == tracepb.Status_STATUS_CODE_ERROR) {
				t.Errorf("client span status %v, error.type %v", cl.Status, cl.Attributes["error.type"])
			}
			if tc.status != 200 {
				return
			}
			tid, parent, flags := splitTraceparent(t, b.last())
			if tid != tc.traceID || parent != cl.SpanID || flags != "01" {
				t.Errorf("backend got traceparent %q, want trace %s, parent %s (the client span), sampled", b.last(), tc.traceID, cl.SpanID)
			}
		})
	}
}

// TestTraceNewRoot: a request without a traceparent, sampled by the
// gateway, starts a trace: a root server span, and the backend's
// traceparent is in that trace under the client span. A traceparent the
// client names in Connection is a hop-by-hop header, removed: the request
// has none, and the one the gateway writes is not removed with it.
func TestTraceNewRoot(t *testing.T) {
	t.Parallel()
	b := newTraceBackend(t)
	tr, exp := newTraceExport(t, tracing.RatioSampler(1, true), tracingtest.New(t))
	r := startTraced(t, tr, b)
	tests := []struct {
		name string
		hdr  map[string]string
	}{
		{name: "no traceparent", hdr: key(traceKey)},
		{name: "traceparent named in Connection", hdr: map[string]string{"X-API-Key": traceKey, "Traceparent": sampledTP, "Connection": "Traceparent"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.doReq(t, http.MethodPost, "acme.localhost", "/orders/new", tc.hdr, strings.NewReader("{}")); got.status != 200 {
				t.Fatalf("status %d: %s", got.status, got.body)
			}
			tid, parent, flags := splitTraceparent(t, b.last())
			if tid == clientTrace {
				t.Fatalf("backend got the client's trace %s", tid)
			}
			spans := exp.spans(t)
			servers := byKind(spans, tid, tracepb.Span_SPAN_KIND_SERVER)
			clients := byKind(spans, tid, tracepb.Span_SPAN_KIND_CLIENT)
			if len(servers) != 1 || len(clients) != 1 {
				t.Fatalf("%d server and %d client spans in the backend's trace %s, want 1 and 1; spans: %+v", len(servers), len(clients), tid, spans)
			}
			if servers[0].ParentSpanID != "" || servers[0].Name != "POST /orders/*" {
				t.Errorf("server span %q under %q, want a root span POST /orders/*", servers[0].Name, servers[0].ParentSpanID)
			}
			if parent != clients[0].SpanID || flags != "01" {
				t.Errorf("backend got traceparent %s, want the client span %s as parent, sampled", b.last(), clients[0].SpanID)
			}
		})
	}
}

// TestTraceRetries: the exchange with the upstream is one client span,
// retries on another target included: every target tried sees it as the
// parent, and the span has the last target's address and answer.
func TestTraceRetries(t *testing.T) {
	t.Parallel()
	bad := newTraceServer(t, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		http.Error(rw, "overloaded", http.StatusServiceUnavailable)
	}))
	good := newTraceBackend(t)
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin,
			Targets: []proxycfg.Target{{URL: bad.URL, Weight: 1}, {URL: good.URL, Weight: 1}},
			Retry:   proxycfg.Retry{Attempts: 2, BudgetPercent: 100}}},
		[]proxycfg.API{{ID: "a", Slug: "flaky", BasePath: "/flaky", UpstreamID: "u", Auth: proxycfg.AuthNone}}, nil))
	tr, exp := newTraceExport(t, tracing.RatioSampler(1, true), tracingtest.New(t))
	r := e.startWith(t, func(o *Options) { o.Tracer = tr })
	r.waitReady(t, 1)

	// Round robin over two targets: one of two requests tries the bad one
	// first.
	for range 2 {
		if got := r.do(t, "acme.localhost", "/flaky/x", nil); got.status != 200 {
			t.Fatalf("status %d: %s", got.status, got.body)
		}
	}
	if len(bad.all()) == 0 {
		t.Fatal("no request was retried")
	}
	spans := exp.spans(t)
	for _, tp := range good.all() {
		tid, parent, _ := splitTraceparent(t, tp)
		clients := byKind(spans, tid, tracepb.Span_SPAN_KIND_CLIENT)
		if len(clients) != 1 {
			t.Fatalf("%d client spans in trace %s, want 1; spans: %+v", len(clients), tid, spans)
		}
		cl := clients[0]
		if cl.SpanID != parent || cl.Attributes["server.address"] != strings.TrimPrefix(good.URL, "http://") ||
			cl.Attributes["http.response.status_code"] != int64(200) || cl.Status == tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("client span %s %v (status %v), want %s with the good target's address and 200", cl.SpanID, cl.Attributes, cl.Status, parent)
		}
		for _, btp := range bad.all() {
			if btid, bparent, _ := splitTraceparent(t, btp); btid == tid && bparent != parent {
				t.Errorf("the retried target saw parent %s, the last one %s: want one client span", bparent, parent)
			}
		}
	}
}

// TestTraceNotSampled: requests the sampler leaves out export nothing. A
// client's traceparent that says not sampled reaches the backend as it
// is; a request without one, or with a malformed one, gets a new trace
// flagged not sampled.
func TestTraceNotSampled(t *testing.T) {
	t.Parallel()
	b := newTraceBackend(t)
	tr, exp := newTraceExport(t, tracing.RatioSampler(0, true), tracingtest.New(t))
	r := startTraced(t, tr, b)

	if got := r.do(t, "acme.localhost", "/orders/x", map[string]string{"X-API-Key": traceKey, "Traceparent": unsampledTP}); got.status != 200 {
		t.Fatalf("status %d: %s", got.status, got.body)
	}
	if b.last() != unsampledTP {
		t.Errorf("backend got traceparent %q, want the client's %q", b.last(), unsampledTP)
	}
	for _, hdr := range []map[string]string{key(traceKey), {"X-API-Key": traceKey, "Traceparent": "00-bogus"}} {
		if got := r.do(t, "acme.localhost", "/orders/x", hdr); got.status != 200 {
			t.Fatalf("status %d: %s", got.status, got.body)
		}
		if tid, _, flags := splitTraceparent(t, b.last()); flags != "00" || tid == clientTrace {
			t.Errorf("backend got traceparent %q for a new trace not sampled, want a new trace with flags 00", b.last())
		}
	}
	if spans := exp.spans(t); len(spans) != 0 || exp.recv.Requests() != 0 {
		t.Fatalf("%d export requests and spans %+v for requests not sampled", exp.recv.Requests(), spans)
	}
}

// TestTraceOff: without a tracer the client's traceparent reaches the
// backend as it is, sampled or not.
func TestTraceOff(t *testing.T) {
	t.Parallel()
	b := newTraceBackend(t)
	r := startTraced(t, nil, b)
	for _, tp := range []string{sampledTP, unsampledTP} {
		if got := r.do(t, "acme.localhost", "/orders/x", map[string]string{"X-API-Key": traceKey, "Traceparent": tp}); got.status != 200 {
			t.Fatalf("status %d: %s", got.status, got.body)
		}
		if b.last() != tp {
			t.Errorf("backend got traceparent %q, want the client's %q", b.last(), tp)
		}
	}
}

// TestTraceWebSocket: a WebSocket upgrade's spans end with the handshake,
// before the spliced traffic (which goes on after the handler returns),
// and are exported while the connection is still open.
func TestTraceWebSocket(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 1)
	ws := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Traceparent")
		c, buf, err := rw.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
		_ = buf.Flush()
		_, _ = io.Copy(c, buf)
	}))
	t.Cleanup(ws.Close)
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: ws.URL, Weight: 1}}}},
		[]proxycfg.API{{ID: "a", Slug: "chat", BasePath: "/chat", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true}}, nil))
	tr, exp := newTraceExport(t, tracing.RatioSampler(0, true), tracingtest.New(t))
	r := e.startWith(t, func(o *Options) { o.Tracer = tr })
	r.waitReady(t, 1)

	c, err := net.DialTimeout("tcp", r.traffic, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET /chat/room HTTP/1.1\r\nHost: acme.localhost\r\nTraceparent: %s\r\n"+
		"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", sampledTP); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v, %v", resp, err)
	}
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	if got := make([]byte, 4); func() error { _, err := io.ReadFull(br, got); return err }() != nil || string(got) != "ping" {
		t.Fatalf("echo %q", got)
	}

	spans := exp.spans(t)
	servers := byKind(spans, clientTrace, tracepb.Span_SPAN_KIND_SERVER)
	clients := byKind(spans, clientTrace, tracepb.Span_SPAN_KIND_CLIENT)
	if len(servers) != 1 || len(clients) != 1 {
		t.Fatalf("%d server and %d client spans with the WebSocket open, want 1 and 1; spans: %+v", len(servers), len(clients), spans)
	}
	if s := servers[0].Attributes["http.response.status_code"]; s != int64(101) {
		t.Errorf("server span status %v, want 101", s)
	}
	if s := clients[0].Attributes["http.response.status_code"]; s != int64(101) {
		t.Errorf("client span status %v, want 101", s)
	}
	tid, parent, _ := splitTraceparent(t, <-seen)
	if tid != clientTrace || parent != clients[0].SpanID {
		t.Errorf("backend got trace %s under %s, want %s under the client span %s", tid, parent, clientTrace, clients[0].SpanID)
	}
}
