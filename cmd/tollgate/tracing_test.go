package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/tracing/tracingtest"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/storetest"
)

func mapEnv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestTracingConfig(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		endpoint string // "" for tracing off
		err      string // a part of the error
	}{
		{name: "no endpoint: off", env: map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}},
		{name: "generic endpoint gets the signal path",
			env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, endpoint: "http://collector:4318/v1/traces"},
		{name: "generic endpoint with a path",
			env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp.example.com/otlp"}, endpoint: "https://otlp.example.com/otlp/v1/traces"},
		{name: "traces endpoint as is, before the generic one",
			env:      map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/custom", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318"},
			endpoint: "http://collector:4318/custom"},
		{name: "SDK disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}},
		{name: "exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}},
		{name: "exporter otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "otlp"},
			endpoint: "http://collector:4318/v1/traces"},
		{name: "another exporter", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "zipkin"},
			err: "OTEL_TRACES_EXPORTER"},
		{name: "not a URL", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, err: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			err: "http/protobuf"},
		{name: "http/protobuf for traces", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, endpoint: "http://collector:4318/v1/traces"},
		{name: "bad sampler", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_SAMPLER": "sometimes"},
			err: "OTEL_TRACES_SAMPLER"},
	}
	log := slog.New(slog.DiscardHandler)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := newTracing(context.Background(), mapEnv(tc.env), serviceProxy, log)
			defer tr.shutdown(log)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one about %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (tr != nil) != (tc.endpoint != "") {
				t.Fatalf("tracing on = %v, want %v", tr != nil, tc.endpoint != "")
			}
			if tc.endpoint == "" {
				if tr.provider() != nil || tr.worker() != nil {
					t.Error("tracing off hands out a provider or tracer")
				}
				return
			}
			if got, _ := tracesEndpoint(mapEnv(tc.env)); got != tc.endpoint {
				t.Errorf("endpoint %q, want %q", got, tc.endpoint)
			}
		})
	}
}

// otelGoroutines counts the goroutines running OpenTelemetry SDK code
// (the batch span processor's loop).
func otelGoroutines(t *testing.T) int {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 2); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(g, "go.opentelemetry.io/otel/sdk") {
			n++
		}
	}
	return n
}

// waitGoroutines reports whether the count of OpenTelemetry goroutines
// comes to satisfy ok within 5 seconds.
func waitGoroutines(t *testing.T, ok func(int) bool) bool {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ok(otelGoroutines(t)) {
			return true
		}
	}
	return false
}

// TestTracingOffStartsNothing: with no endpoint nothing is built (the
// control plane's handler is not even wrapped) and no goroutine starts;
// with one, the batch processor runs until shutdown. Not parallel: it
// counts the process's goroutines.
func TestTracingOffStartsNothing(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	before := otelGoroutines(t)
	tr, err := newTracing(context.Background(), mapEnv(nil), serviceControl, log)
	if err != nil || tr != nil {
		t.Fatalf("newTracing without an endpoint = %v, %v; want nil, nil", tr, err)
	}
	mux := http.NewServeMux()
	if h := traceHTTP(mux, tr.provider(), controlSurface(false)); h != http.Handler(mux) {
		t.Error("tracing off wraps the control plane's handler")
	}
	if tr.worker() != nil {
		t.Error("tracing off gives workers a tracer")
	}
	if n := otelGoroutines(t); n != before {
		t.Fatalf("%d OpenTelemetry goroutines with tracing off, %d before", n, before)
	}

	// The check sees the goroutine tracing starts, and shutdown ends it.
	recv := tracingtest.New(t)
	tr, err = newTracing(context.Background(), mapEnv(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": recv.BaseURL}), serviceControl, log)
	if err != nil || tr == nil {
		t.Fatalf("newTracing with an endpoint = %v, %v", tr, err)
	}
	// A goroutine that has not run yet shows only sync.WaitGroup.Go's
	// frame: wait for it to run.
	if !waitGoroutines(t, func(n int) bool { return n > before }) {
		t.Errorf("no OpenTelemetry goroutine with tracing on")
	}
	tr.shutdown(log)
	if !waitGoroutines(t, func(n int) bool { return n == before }) {
		t.Errorf("%d OpenTelemetry goroutines after shutdown, %d before", otelGoroutines(t), before)
	}
	if recv.Requests() != 0 {
		t.Errorf("%d exports without a span", recv.Requests())
	}
}

// TestControlPlaneTraces drives /v1 and a developer portal through the
// control plane's handler with tracing to an OTLP receiver in the test:
// each request is a server span named by its route pattern, continuing
// the caller's traceparent.
func TestControlPlaneTraces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	recv := tracingtest.New(t)
	log := slog.New(slog.DiscardHandler)
	tr, err := newTracing(ctx, mapEnv(map[string]string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": recv.Endpoint,
		"OTEL_TRACES_SAMPLER":                "parentbased_always_on",
	}), serviceControl, log)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.shutdown(log)

	db, err := store.Open(ctx, storetest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	prefix := "tracing:" + randHex(6) + ":"
	defer func() { _ = clearPrefix(context.Background(), rdb, prefix) }()
	secret := []byte("tracing-secret-" + randHex(8))
	keys := proxycfg.Keys{Prefix: prefix}
	digestKey := testDigestKey(t, db, secret)
	operator := "op-" + randHex(8)
	deps := controlDeps{DB: db, Redis: rdb, Keys: keys, Secret: secret, OperatorToken: operator, Limits: testLimits(),
		DigestKey: digestKey, AllowPrivate: true, Logger: log, ControlHost: "localhost", Tracing: tr.provider()}
	cfg := config{Secret: secret, DigestKey: digestKey, Limits: testLimits(), AllowPrivate: true, ProxyDomain: "localhost",
		PortalDomain: "developers.localhost", ProxyPublicURL: "http://{slug}.localhost:8000"}
	if deps.DevPortal, deps.Developers, err = newDevPortal(cfg, db, rdb, keys, log, "localhost:8080", nil, nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(controlHandler(deps))
	defer srv.Close()

	call := func(method, host, path, token, traceparent string, body any, want int) []byte {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, srv.URL+path, rd)
		if host != "" {
			req.Host = host
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if traceparent != "" {
			req.Header.Set("Traceparent", traceparent)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, data)
		}
		return data
	}
	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	var created struct {
		AdminToken string `json:"admin_token"`
	}
	data := call("POST", "", "/v1/tenants", operator, "00-"+traceID+"-"+parentID+"-01",
		map[string]any{"name": "Acme", "slug": "acme"}, 201)
	if err := json.Unmarshal(data, &created); err != nil {
		t.Fatal(err)
	}
	call("GET", "", "/v1/apis/00000000-0000-0000-0000-000000000000", created.AdminToken, "", nil, 404)
	call("PUT", "", "/v1/portal", created.AdminToken, "", map[string]any{"enabled": true, "signup": "open"}, 200)
	call("GET", "acme.developers.localhost", "/api/apis?secret=1", "", "", nil, 200)

	tenants := recv.Wait(t, 10*time.Second, "POST /v1/tenants", func(s tracingtest.Span) bool { return s.TraceID == traceID })
	if tenants.Name != "POST /v1/tenants" || tenants.ParentSpanID != parentID || tenants.Kind != tracepb.Span_SPAN_KIND_SERVER ||
		tenants.Service != serviceControl {
		t.Errorf("span %q (parent %s, kind %v, service %q), want POST /v1/tenants under the caller's span %s",
			tenants.Name, tenants.ParentSpanID, tenants.Kind, tenants.Service, parentID)
	}
	if tenants.Attributes["http.route"] != "/v1/tenants" || tenants.Attributes["tollgate.surface"] != "v1" ||
		tenants.Attributes["http.response.status_code"] != int64(201) {
		t.Errorf("span attributes %v", tenants.Attributes)
	}
	byID := recv.Wait(t, 10*time.Second, "GET /v1/apis/{id}", func(s tracingtest.Span) bool { return s.Name == "GET /v1/apis/{id}" })
	if byID.ParentSpanID != "" || byID.TraceID == traceID || byID.Attributes["http.route"] != "/v1/apis/{id}" {
		t.Errorf("GET /v1/apis/{id}: trace %s parent %q attributes %v", byID.TraceID, byID.ParentSpanID, byID.Attributes)
	}
	portal := recv.Wait(t, 10*time.Second, "the developer portal's", func(s tracingtest.Span) bool {
		return s.Attributes["tollgate.surface"] == "devportal"
	})
	if portal.Name != "GET /api/apis" || portal.Attributes["http.route"] != "/api/apis" {
		t.Errorf("developer portal span %q %v", portal.Name, portal.Attributes)
	}
	for _, s := range recv.Spans() {
		for k, v := range s.Attributes {
			if str, ok := v.(string); ok && (strings.Contains(str, "secret=") || strings.Contains(str, created.AdminToken) ||
				strings.Contains(str, operator)) {
				t.Errorf("span %q: %s = %q holds a query string or a token", s.Name, k, str)
			}
		}
	}
}
