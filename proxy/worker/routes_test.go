package worker

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// doMethod sends one request with any method; the body of a 200 is the
// backend's echo.
func (r *running) doMethod(t *testing.T, method, host, path string, hdr map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+r.traffic+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, body: body}
	if resp.StatusCode == 200 && method != http.MethodHead {
		if err := json.Unmarshal(body, &out.echo); err != nil {
			t.Fatalf("backend body %q: %v", body, err)
		}
	}
	return out
}

func routesSnapshot(backendURL string, gen int64, routes []proxycfg.Route) *proxycfg.Snapshot {
	return &proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: gen, Tenants: []proxycfg.Tenant{{
		ID: "t-acme", Slug: "acme",
		Upstreams: []proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin,
			Targets: []proxycfg.Target{{URL: backendURL, Weight: 1}}}},
		APIs: []proxycfg.API{
			{ID: "a-shop", BasePath: "/shop", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true, Routes: routes},
			{ID: "a-keyed", BasePath: "/keyed", UpstreamID: "u", Auth: proxycfg.AuthKey, StripBasePath: true, Routes: routes},
			{ID: "a-all", BasePath: "/all", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true},
		},
		Plans: []proxycfg.Plan{{ID: "p", APIIDs: []string{"a-keyed"}}},
	}}}
}

func TestDeclaredRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := backend(t, "b1")
	testredis.Publish(t, e.rdb, e.keys, routesSnapshot(b.URL, 1, []proxycfg.Route{
		{Method: "GET", Path: "/items"},
		{Method: "POST", Path: "/items"},
		{Method: "GET", Path: "/items/{id}"},
		{Method: "DELETE", Path: "/items/{id}"},
		{Method: "GET", Path: "/"},
	}))
	testredis.PutKey(t, e.rdb, e.keys, secret, "good", proxycfg.KeyRecord{ID: "k", TenantID: "t-acme", ConsumerID: "c", PlanID: "p", Status: proxycfg.KeyActive})
	r := e.start(t, true)
	r.waitReady(t, 1)

	tests := []struct {
		name     string
		method   string
		path     string
		hdr      map[string]string
		status   int
		problem  *problem.Problem
		allow    string
		upstream string // path the backend saw, for 200s
	}{
		{name: "declared route", method: "GET", path: "/shop/items", status: 200, upstream: "/items"},
		{name: "declared route other method", method: "POST", path: "/shop/items", status: 200, upstream: "/items"},
		{name: "declared template", method: "DELETE", path: "/shop/items/42?x=1", status: 200, upstream: "/items/42"},
		{name: "head where get", method: "HEAD", path: "/shop/items/42", status: 200},
		{name: "base path itself is /", method: "GET", path: "/shop", status: 200, upstream: "/"},
		{name: "undeclared path", method: "GET", path: "/shop/orders", problem: problem.NoRoute},
		{name: "too deep for the template", method: "GET", path: "/shop/items/42/x", problem: problem.NoRoute},
		{name: "wrong method", method: "PUT", path: "/shop/items", problem: problem.MethodNotAllowed, allow: "GET, HEAD, POST"},
		{name: "wrong method on template", method: "PATCH", path: "/shop/items/7", problem: problem.MethodNotAllowed, allow: "GET, HEAD, DELETE"},
		{name: "routing before auth 404", method: "GET", path: "/keyed/orders", problem: problem.NoRoute},
		{name: "routing before auth 405", method: "PUT", path: "/keyed/items", problem: problem.MethodNotAllowed, allow: "GET, HEAD, POST"},
		{name: "declared route still needs a key", method: "GET", path: "/keyed/items", problem: problem.Unauthorized},
		{name: "declared route with a key", method: "GET", path: "/keyed/items/1", hdr: key("good"), status: 200, upstream: "/items/1"},
		{name: "api without routes takes any method", method: "PATCH", path: "/all/anything/at/all", status: 200, upstream: "/anything/at/all"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := r.doMethod(t, tc.method, "acme.localhost", tc.path, tc.hdr)
			if tc.problem != nil {
				wantProblem(t, got, tc.problem)
				if string(got.body) != string(tc.problem.Body) {
					t.Fatalf("body %s, want %s", got.body, tc.problem.Body)
				}
				if a := got.header.Get("Allow"); a != tc.allow {
					t.Fatalf("Allow %q, want %q", a, tc.allow)
				}
				return
			}
			if got.status != tc.status {
				t.Fatalf("status %d: %s", got.status, got.body)
			}
			if tc.upstream != "" && got.echo.Path != tc.upstream {
				t.Fatalf("backend saw %q, want %q", got.echo.Path, tc.upstream)
			}
		})
	}
}

// TestDeclaredRoutesFollowSnapshots checks that a new snapshot's routes take
// over: routes added, then removed (every path allowed again).
func TestDeclaredRoutesFollowSnapshots(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := backend(t, "b1")
	testredis.Publish(t, e.rdb, e.keys, routesSnapshot(b.URL, 1, nil))
	r := e.start(t, true)
	r.waitReady(t, 1)
	if got := r.doMethod(t, "GET", "acme.localhost", "/shop/orders", nil); got.status != 200 {
		t.Fatalf("without routes: status %d: %s", got.status, got.body)
	}
	testredis.Publish(t, e.rdb, e.keys, routesSnapshot(b.URL, 2, []proxycfg.Route{{Method: "GET", Path: "/items"}}))
	r.waitReady(t, 2)
	wantProblem(t, r.doMethod(t, "GET", "acme.localhost", "/shop/orders", nil), problem.NoRoute)
	if got := r.doMethod(t, "GET", "acme.localhost", "/shop/items", nil); got.status != 200 {
		t.Fatalf("declared route: status %d: %s", got.status, got.body)
	}
	testredis.Publish(t, e.rdb, e.keys, routesSnapshot(b.URL, 3, nil))
	r.waitReady(t, 3)
	if got := r.doMethod(t, "GET", "acme.localhost", "/shop/orders", nil); got.status != 200 {
		t.Fatalf("routes removed: status %d: %s", got.status, got.body)
	}
}

// BenchmarkProxyHandlerRoutes is BenchmarkProxyHandler's auth-none case for
// an API with 30 declared routes next to one without, so that the cost of
// route matching on the whole handler shows.
func BenchmarkProxyHandlerRoutes(b *testing.B) {
	rdb, keys := testredis.New(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	backendSrv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(`{"ok":true}`) }}
	go func() { _ = backendSrv.Serve(ln) }()
	b.Cleanup(func() { _ = backendSrv.Shutdown() })
	var routes []proxycfg.Route
	for _, res := range []string{"users", "orders", "items", "invoices", "products", "carts"} {
		routes = append(routes,
			proxycfg.Route{Method: "GET", Path: "/" + res}, proxycfg.Route{Method: "POST", Path: "/" + res},
			proxycfg.Route{Method: "GET", Path: "/" + res + "/{id}"}, proxycfg.Route{Method: "DELETE", Path: "/" + res + "/{id}"},
			proxycfg.Route{Method: "GET", Path: "/" + res + "/{id}/history"})
	}
	snap := routesSnapshot("http://"+ln.Addr().String(), 1, routes)
	testredis.Publish(b, rdb, keys, snap)
	e := &env{rdb: rdb, keys: keys}
	r := e.start(b, true)
	r.waitReady(b, 1)
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 50000}
	for _, bc := range []struct{ name, path string }{
		{name: "no-routes", path: "/all/items/42?x=1"},
		{name: "routes", path: "/shop/items/42?x=1"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var req fasthttp.Request
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, remote, nil)
			b.ReportAllocs()
			for b.Loop() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.SetRequestURI(bc.path)
				ctx.Request.Header.SetHost("acme.localhost")
				r.w.HandleFastHTTP(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}
