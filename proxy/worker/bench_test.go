package worker

import (
	"bytes"
	"context"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/tracing"
	"github.com/tollgate/tollgate/proxy/tracing/tracingtest"
)

// benchWorker runs a worker, tracing with tr (nil: off), in front of a
// real loopback fasthttp backend: tenant acme, API /v1 (key auth, rate
// limited with a high limit, keys bench-key and bench-sub-key) and API
// /open (auth none), both over two targets.
func benchWorker(b *testing.B, tr *tracing.Tracer) *running {
	rdb, keys := testredis.New(b)
	target := "http://" + benchBackend(b)
	testredis.Publish(b, rdb, keys, &proxycfg.Snapshot{Schema: 1, Generation: 1, Tenants: []proxycfg.Tenant{{
		ID: "t", Slug: "acme",
		Upstreams: []proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin,
			Targets: []proxycfg.Target{{URL: target, Weight: 1}, {URL: target + "/", Weight: 1}}}},
		APIs: []proxycfg.API{
			{ID: "a", BasePath: "/v1", UpstreamID: "u", Auth: proxycfg.AuthKey, StripBasePath: true},
			{ID: "open", BasePath: "/open", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true},
		},
		Plans: []proxycfg.Plan{{ID: "p", RateLimit: proxycfg.RateLimit{Requests: 1 << 40, PerSeconds: 1}, APIIDs: []string{"a"}}},
	}}})
	testredis.PutKey(b, rdb, keys, secret, "bench-key", proxycfg.KeyRecord{ID: "k", TenantID: "t", PlanID: "p", Status: proxycfg.KeyActive})
	// A developer-portal key: limits count per subscription, and the key
	// expires (a rotation's old key).
	testredis.PutKey(b, rdb, keys, secret, "bench-sub-key", proxycfg.KeyRecord{ID: "k2", TenantID: "t", PlanID: "p",
		Status: proxycfg.KeyActive, SubscriptionID: "s", ExpiresAt: time.Now().Add(24 * time.Hour).Unix()})
	e := &env{rdb: rdb, keys: keys}
	// As e.start: Redis is healthy here, a slow call must not turn the
	// limiters local.
	r := e.startWith(b, func(o *Options) { o.RateLimitTimeout, o.Tracer = 2*time.Second, tr })
	r.waitReady(b, 1)
	return r
}

// benchBackend starts the benchmarks' loopback fasthttp backend, which
// answers every request with a small JSON body, and returns its address.
func benchBackend(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	backendSrv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"ok":true}`)
	}}
	go func() { _ = backendSrv.Serve(ln) }()
	b.Cleanup(func() { _ = backendSrv.Shutdown() })
	return ln.Addr().String()
}

// benchRemote is the client address of the benchmarks' requests.
var benchRemote = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 50000}

// BenchmarkProxyHandler drives the whole traffic handler (route, key, rate
// limit with a high limit, balance, forward) against a real loopback
// fasthttp backend, without the client-side HTTP parsing.
func BenchmarkProxyHandler(b *testing.B) {
	r := benchWorker(b, nil)
	// body, when set, is POSTed as a body stream, like the traffic server
	// hands bodies to the handler (read whole below 64 KiB, body.go).
	cases := []struct {
		name string
		path string
		key  string
		body []byte
	}{
		{name: "key+ratelimit", path: "/v1/items/42?x=1", key: "bench-key"},
		{name: "subscription-key+ratelimit", path: "/v1/items/42?x=1", key: "bench-sub-key"},
		{name: "auth-none", path: "/open/items/42?x=1"},
		{name: "auth-none-post-1KiB", path: "/open/items/42?x=1", body: bytes.Repeat([]byte("x"), 1<<10)},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) { benchHandler(b, r.w.HandleFastHTTP, bc.path, bc.key, bc.body) })
	}
}

// BenchmarkForwarderFloor is BenchmarkProxyHandler's request through a bare
// fasthttp forwarder (bench/forwarder's handler: a HostClient.Do, no
// routing, auth, limits, header rewriting, metrics or metering) to the same
// backend, in the same harness: the engine's floor. BenchmarkProxyHandler
// less this is what the worker's own code costs per request. Both report
// cpu-ns/op, the whole process's CPU per request (the backend's included).
func BenchmarkForwarderFloor(b *testing.B) {
	addr := benchBackend(b)
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: 1024, MaxIdleConnDuration: time.Minute,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, NoDefaultUserAgentHeader: true,
		DisableHeaderNamesNormalizing: true, DisablePathNormalizing: true}
	handler := func(ctx *fasthttp.RequestCtx) {
		ctx.Request.Header.Del("Connection")
		if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Error("bad gateway: "+err.Error(), fasthttp.StatusBadGateway)
		}
	}
	benchHandler(b, handler, "/v1/items/42?x=1", "bench-key", nil)
}

// benchHandler drives handler with a GET of path (with key, when set; a
// POST of body as a body stream, like the traffic server hands bodies to
// the handler, when body is set) as BenchmarkProxyHandler does, and reports
// cpu-ns/op.
func benchHandler(b *testing.B, handler fasthttp.RequestHandler, path, key string, body []byte) {
	var req fasthttp.Request
	var ctx fasthttp.RequestCtx
	var br bytes.Reader
	ctx.Init(&req, benchRemote, nil)
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	for b.Loop() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.SetRequestURI(path)
		ctx.Request.Header.SetHost("acme.localhost")
		if key != "" {
			ctx.Request.Header.Set("X-API-Key", key)
		}
		if body != nil {
			ctx.Request.Header.SetMethod(fasthttp.MethodPost)
			br.Reset(body)
			ctx.Request.SetBodyStream(&br, len(body))
		}
		handler(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	if cpu1, ok := processCPU(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkProxyHandlerTracing is BenchmarkProxyHandler's key+ratelimit
// request (no traceparent from the client) with tracing off, on with
// nothing sampled, on at the default 1% and on for every request. Spans go
// through the real batching exporter, over OTLP/HTTP, to a receiver in the
// process that reads and discards them.
//
// Besides the handler's wall time it reports cpu-ns/op, the CPU time of the
// whole process (every thread: the batch processor, the exporter, the
// receiver, the backend) per request, the queued spans flushed at the end
// included, and spans/op, the spans exported per request (2 for a sampled
// one: a dropped span would show as less), and mallocs/op, the process's
// allocations per request, flush included, with decimals.
func BenchmarkProxyHandlerTracing(b *testing.B) {
	cases := []struct {
		name    string
		sampler *tracing.Sampler // nil: tracing off
	}{
		{name: "off"},
		{name: "on-nothing-sampled", sampler: new(tracing.RatioSampler(0, true))},
		{name: "on-1%", sampler: new(tracing.RatioSampler(tracing.DefaultRatio, true))},
		{name: "on-100%", sampler: new(tracing.RatioSampler(1, true))},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			var tr *tracing.Tracer
			var exp *traceExport
			if bc.sampler != nil {
				tr, exp = newTraceExport(b, *bc.sampler, tracingtest.NewDiscard(b))
			}
			r := benchWorker(b, tr)
			var req fasthttp.Request
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, benchRemote, nil)
			b.ReportAllocs()
			var mem0, mem1 runtime.MemStats
			runtime.ReadMemStats(&mem0)
			cpu0, cpuOK := processCPU()
			for b.Loop() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.SetRequestURI("/v1/items/42?x=1")
				ctx.Request.Header.SetHost("acme.localhost")
				ctx.Request.Header.Set("X-API-Key", "bench-key")
				r.w.HandleFastHTTP(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
			if exp != nil {
				if err := exp.tp.ForceFlush(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(exp.exported.Load())/float64(b.N), "spans/op")
			}
			if cpu1, ok := processCPU(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
			// allocs/op with the flush and in fractions (the framework's is
			// an integer: 1% of a sampled request's allocations is not 0).
			runtime.ReadMemStats(&mem1)
			b.ReportMetric(float64(mem1.Mallocs-mem0.Mallocs)/float64(b.N), "mallocs/op")
		})
	}
}

// processCPU is the CPU time the process has used, user and system, in
// nanoseconds, from /proc/self/stat (Linux; false elsewhere). Its
// resolution is a clock tick (10 ms at the usual 100 Hz): a benchmark of
// a second or more on two cores reads it to within 1%.
func processCPU() (int64, bool) {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14 and stime 15.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return (utime + stime) * int64(10*time.Millisecond), true
}
