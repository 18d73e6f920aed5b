package worker

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// BenchmarkProxyHandler drives the whole traffic handler (route, key, rate
// limit with a high limit, balance, forward) against a real loopback
// fasthttp backend, without the client-side HTTP parsing.
func BenchmarkProxyHandler(b *testing.B) {
	rdb, keys := testredis.New(b)
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
	target := "http://" + ln.Addr().String()
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
	r := e.start(b, true)
	r.waitReady(b, 1)

	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 50000}
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
		b.Run(bc.name, func(b *testing.B) {
			var req fasthttp.Request
			var ctx fasthttp.RequestCtx
			var body bytes.Reader
			ctx.Init(&req, remote, nil)
			b.ReportAllocs()
			for b.Loop() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.SetRequestURI(bc.path)
				ctx.Request.Header.SetHost("acme.localhost")
				if bc.key != "" {
					ctx.Request.Header.Set("X-API-Key", bc.key)
				}
				if bc.body != nil {
					ctx.Request.Header.SetMethod(fasthttp.MethodPost)
					body.Reset(bc.body)
					ctx.Request.SetBodyStream(&body, len(bc.body))
				}
				r.w.HandleFastHTTP(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}
