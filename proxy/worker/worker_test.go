package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

var secret = []byte("worker-test-secret")

// echo is what the test backends answer: who they are and what they got.
type echo struct {
	Backend string              `json:"backend"`
	Path    string              `json:"path"`
	Query   string              `json:"query"`
	Host    string              `json:"host"`
	Header  map[string][]string `json:"header"`
}

func backend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(echoHandler(name))
	t.Cleanup(srv.Close)
	return srv
}

func echoHandler(name string) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" || strings.HasSuffix(r.URL.Path, "/slow") {
			time.Sleep(700 * time.Millisecond)
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("Keep-Alive", "timeout=5")
		_ = json.NewEncoder(rw).Encode(echo{Backend: name, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Header: r.Header})
	})
}

// env is one worker (or several) on its own Redis prefix.
type env struct {
	rdb  redis.UniversalClient
	keys proxycfg.Keys
}

func newEnv(t *testing.T) *env {
	rdb, keys := testredis.New(t)
	return &env{rdb: rdb, keys: keys}
}

type running struct {
	w       *Worker
	traffic string
	admin   string
	cancel  context.CancelFunc
	done    chan error
}

func (e *env) start(t testing.TB, allowPrivate bool) *running {
	t.Helper()
	w, err := New(Options{
		Redis: e.rdb, Keys: e.keys, Secret: secret, AllowPrivateUpstreams: allowPrivate,
		Logger: slog.New(slog.DiscardHandler), PollInterval: 100 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		// Redis is healthy in these tests: a loaded CI machine (or -race) must
		// not push a slow call past the production 100ms into degraded,
		// local decisions. The degraded path has tests of its own.
		RateLimitTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, traffic: tl.Addr().String(), admin: al.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Serve(ctx, tl, al) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("worker did not stop")
		}
	})
	return r
}

func (r *running) waitReady(t testing.TB, gen int64) {
	t.Helper()
	eventually(t, func() bool { return r.w.Ready() && r.w.keys.Subscribed() && r.w.Generation() >= gen })
}

func eventually(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 15s (a generous bound for a loaded CI machine)")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

type response struct {
	status int
	header http.Header
	body   []byte
	echo   echo
}

func (r *running) do(t *testing.T, host, path string, hdr map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+r.traffic+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, body: body}
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &out.echo); err != nil {
			t.Fatalf("backend body %q: %v", body, err)
		}
	}
	return out
}

func key(k string) map[string]string { return map[string]string{"X-API-Key": k} }

func wantProblem(t *testing.T, r response, p *problem.Problem) {
	t.Helper()
	if r.status != p.Status {
		t.Fatalf("status %d (%s), want %d", r.status, r.body, p.Status)
	}
	if ct := r.header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("content type %q, want %q", ct, problem.ContentType)
	}
	var doc struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil || doc.Type != problem.TypeBase+p.Code || doc.Status != p.Status {
		t.Fatalf("problem body %s (%v), want type %s", r.body, err, problem.TypeBase+p.Code)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Fatal("problem without X-Request-Id")
	}
}

// fixture is the standard tenant setup over two backends.
type fixture struct {
	b1, b2 *httptest.Server
	snap   *proxycfg.Snapshot
}

func newFixture(t *testing.T, e *env) *fixture {
	f := &fixture{b1: backend(t, "b1"), b2: backend(t, "b2")}
	dead := closedAddr(t)
	f.snap = &proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: 1, Tenants: []proxycfg.Tenant{
		{
			ID: "t-acme", Slug: "acme", Domains: []string{"api.acme.test"},
			Upstreams: []proxycfg.Upstream{
				{ID: "rr", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: f.b1.URL, Weight: 1}, {URL: f.b2.URL, Weight: 1}}},
				{ID: "wt", Algorithm: proxycfg.AlgorithmWeighted, Targets: []proxycfg.Target{{URL: f.b1.URL, Weight: 3}, {URL: f.b2.URL, Weight: 1}}},
				{ID: "one", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: f.b1.URL + "/prefix/", Weight: 1}}},
				{ID: "dead", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: "http://" + dead, Weight: 1}}},
				{ID: "dead-checked", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: "http://" + dead, Weight: 1}},
					HealthCheck: proxycfg.HealthCheck{Path: "/health", IntervalMS: 30, TimeoutMS: 200, UnhealthyThreshold: 1, HealthyThreshold: 1}},
			},
			APIs: []proxycfg.API{
				{ID: "a-v1", BasePath: "/v1", UpstreamID: "rr", Auth: proxycfg.AuthKey, StripBasePath: true},
				{ID: "a-w", BasePath: "/w", UpstreamID: "wt", Auth: proxycfg.AuthKey, StripBasePath: true},
				{ID: "a-keep", BasePath: "/keep", UpstreamID: "one", Auth: proxycfg.AuthKey},
				{ID: "a-open", BasePath: "/open", UpstreamID: "one", Auth: proxycfg.AuthNone, StripBasePath: true},
				{ID: "a-slow", BasePath: "/timeout", UpstreamID: "rr", Auth: proxycfg.AuthNone, TimeoutMS: 200},
				{ID: "a-dead", BasePath: "/dead", UpstreamID: "dead", Auth: proxycfg.AuthNone},
				{ID: "a-down", BasePath: "/down", UpstreamID: "dead-checked", Auth: proxycfg.AuthNone},
				{ID: "a-jwt", BasePath: "/jwt", UpstreamID: "rr", Auth: proxycfg.AuthJWT},
			},
			Plans: []proxycfg.Plan{
				{ID: "p-all", RateLimit: proxycfg.RateLimit{Requests: 100000, PerSeconds: 60}, APIIDs: []string{"a-v1", "a-w", "a-keep"}},
				{ID: "p-w-only", APIIDs: []string{"a-w"}},
				{ID: "p-tight", RateLimit: proxycfg.RateLimit{Requests: 5, PerSeconds: 60}, APIIDs: []string{"a-v1"}},
			},
		},
		{
			ID: "t-globex", Slug: "globex",
			Upstreams: []proxycfg.Upstream{{ID: "g", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: f.b2.URL, Weight: 1}}}},
			APIs:      []proxycfg.API{{ID: "g-v1", BasePath: "/v1", UpstreamID: "g", Auth: proxycfg.AuthKey}},
			Plans:     []proxycfg.Plan{{ID: "g-plan", APIIDs: []string{"g-v1"}}},
		},
	}}
	testredis.Publish(t, e.rdb, e.keys, f.snap)
	put := func(k, id, tenant, plan string) {
		testredis.PutKey(t, e.rdb, e.keys, secret, k, proxycfg.KeyRecord{ID: id, TenantID: tenant, ConsumerID: "c", PlanID: plan, Status: proxycfg.KeyActive})
	}
	put("acme-all", "k-all", "t-acme", "p-all")
	put("acme-w", "k-w", "t-acme", "p-w-only")
	put("acme-tight", "k-tight", "t-acme", "p-tight")
	put("globex", "k-globex", "t-globex", "g-plan")
	testredis.PutKey(t, e.rdb, e.keys, secret, "acme-revoked", proxycfg.KeyRecord{ID: "k-rev", TenantID: "t-acme", PlanID: "p-all", Status: proxycfg.KeyRevoked})
	return f
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestAuthAndRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	newFixture(t, e)
	r := e.start(t, true)
	r.waitReady(t, 1)
	tests := []struct {
		name    string
		host    string
		path    string
		hdr     map[string]string
		problem *problem.Problem
	}{
		{name: "no key", host: "acme.localhost", path: "/v1/x", problem: problem.Unauthorized},
		{name: "wrong key", host: "acme.localhost", path: "/v1/x", hdr: key("nope"), problem: problem.Unauthorized},
		{name: "revoked key", host: "acme.localhost", path: "/v1/x", hdr: key("acme-revoked"), problem: problem.Unauthorized},
		{name: "other tenant's key", host: "acme.localhost", path: "/v1/x", hdr: key("globex"), problem: problem.Unauthorized},
		{name: "plan without the api", host: "acme.localhost", path: "/v1/x", hdr: key("acme-w"), problem: problem.Forbidden},
		{name: "unknown host", host: "nobody.localhost", path: "/v1/x", hdr: key("acme-all"), problem: problem.NotFound},
		{name: "unknown api", host: "acme.localhost:8000", path: "/v2/x", hdr: key("acme-all"), problem: problem.NotFound},
		{name: "jwt not yet supported", host: "acme.localhost", path: "/jwt", problem: problem.Unauthorized},
		{name: "good key x-api-key", host: "acme.localhost", path: "/v1/x", hdr: key("acme-all")},
		{name: "good key bearer", host: "ACME.localhost:8000", path: "/v1/x", hdr: map[string]string{"Authorization": "Bearer acme-all"}},
		{name: "custom domain", host: "api.acme.test", path: "/v1/x", hdr: key("acme-all")},
		{name: "plan with the api", host: "acme.localhost", path: "/w/x", hdr: key("acme-w")},
		{name: "globex key at globex", host: "globex.localhost", path: "/v1/x", hdr: key("globex")},
		{name: "auth none", host: "acme.localhost", path: "/open/x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := r.do(t, tc.host, tc.path, tc.hdr)
			if tc.problem != nil {
				wantProblem(t, got, tc.problem)
				if tc.problem.Status == 401 && got.header.Get("WWW-Authenticate") == "" {
					t.Fatal("401 without WWW-Authenticate")
				}
				return
			}
			if got.status != 200 {
				t.Fatalf("status %d: %s", got.status, got.body)
			}
		})
	}
}

func TestBalancing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	newFixture(t, e)
	r := e.start(t, true)
	r.waitReady(t, 1)
	tests := []struct {
		name string
		path string
		n    int
		want map[string]int
	}{
		{name: "round robin", path: "/v1/x", n: 6, want: map[string]int{"b1": 3, "b2": 3}},
		{name: "weighted", path: "/w/x", n: 8, want: map[string]int{"b1": 6, "b2": 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]int{}
			prev := ""
			for range tc.n {
				resp := r.do(t, "acme.localhost", tc.path, key("acme-all"))
				if resp.status != 200 {
					t.Fatalf("status %d: %s", resp.status, resp.body)
				}
				if tc.name == "round robin" && resp.echo.Backend == prev {
					t.Fatalf("round robin hit %s twice in a row", prev)
				}
				prev = resp.echo.Backend
				got[resp.echo.Backend]++
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("shares %v, want %v", got, tc.want)
			}
		})
	}
}

func TestForwarding(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newFixture(t, e)
	r := e.start(t, true)
	r.waitReady(t, 1)
	tests := []struct {
		name  string
		path  string
		hdr   map[string]string
		check func(t *testing.T, got response)
	}{
		{
			name: "strip base path and keep query", path: "/v1/items/42?a=1&b=two",
			hdr: key("acme-all"),
			check: func(t *testing.T, got response) {
				if got.echo.Path != "/items/42" || got.echo.Query != "a=1&b=two" {
					t.Fatalf("upstream saw %q ? %q", got.echo.Path, got.echo.Query)
				}
			},
		},
		{
			name: "base path alone becomes slash", path: "/v1", hdr: key("acme-all"),
			check: func(t *testing.T, got response) {
				if got.echo.Path != "/" {
					t.Fatalf("upstream saw %q, want /", got.echo.Path)
				}
			},
		},
		{
			name: "no strip and target path prefix", path: "/keep/a", hdr: key("acme-all"),
			check: func(t *testing.T, got response) {
				if got.echo.Path != "/prefix/keep/a" {
					t.Fatalf("upstream saw %q, want /prefix/keep/a", got.echo.Path)
				}
			},
		},
		{
			name: "forwarded headers and request id", path: "/v1/x",
			hdr: map[string]string{"X-API-Key": "acme-all", "X-Forwarded-For": "203.0.113.9", "X-Request-Id": "req-123"},
			check: func(t *testing.T, got response) {
				h := http.Header(got.echo.Header)
				// The client is not a trusted proxy: its claim is replaced.
				if v := h.Get("X-Forwarded-For"); v != "127.0.0.1" {
					t.Fatalf("X-Forwarded-For %q", v)
				}
				if v := h.Get("X-Forwarded-Proto"); v != "http" {
					t.Fatalf("X-Forwarded-Proto %q", v)
				}
				if v := h.Get("X-Forwarded-Host"); v != "acme.localhost" {
					t.Fatalf("X-Forwarded-Host %q", v)
				}
				if h.Get("X-Request-Id") != "req-123" || got.header.Get("X-Request-Id") != "req-123" {
					t.Fatalf("request id upstream %q, echoed %q", h.Get("X-Request-Id"), got.header.Get("X-Request-Id"))
				}
				if h.Get("X-Api-Key") != "" {
					t.Fatal("X-API-Key forwarded")
				}
				if got.echo.Host != strings.TrimPrefix(f.b1.URL, "http://") && got.echo.Host != strings.TrimPrefix(f.b2.URL, "http://") {
					t.Fatalf("upstream Host %q", got.echo.Host)
				}
			},
		},
		{
			name: "generated request id", path: "/v1/x", hdr: map[string]string{"X-API-Key": "acme-all", "X-Request-Id": "bad id\t"},
			check: func(t *testing.T, got response) {
				id := got.header.Get("X-Request-Id")
				if len(id) != 32 || http.Header(got.echo.Header).Get("X-Request-Id") != id {
					t.Fatalf("generated id %q, upstream saw %q", id, http.Header(got.echo.Header).Get("X-Request-Id"))
				}
			},
		},
		{
			name: "bearer key not forwarded", path: "/v1/x", hdr: map[string]string{"Authorization": "Bearer acme-all"},
			check: func(t *testing.T, got response) {
				if v := http.Header(got.echo.Header).Get("Authorization"); v != "" {
					t.Fatalf("Authorization forwarded: %q", v)
				}
			},
		},
		{
			name: "other authorization kept with x-api-key", path: "/v1/x",
			hdr: map[string]string{"X-API-Key": "acme-all", "Authorization": "Bearer user-token"},
			check: func(t *testing.T, got response) {
				if v := http.Header(got.echo.Header).Get("Authorization"); v != "Bearer user-token" {
					t.Fatalf("Authorization %q, want the user's", v)
				}
			},
		},
		{
			name: "hop-by-hop removed", path: "/v1/x",
			hdr: map[string]string{"X-API-Key": "acme-all", "Connection": "X-Hop", "X-Hop": "1", "Proxy-Authorization": "x", "TE": "trailers"},
			check: func(t *testing.T, got response) {
				h := http.Header(got.echo.Header)
				for _, n := range []string{"X-Hop", "Proxy-Authorization", "Te"} {
					if h.Get(n) != "" {
						t.Fatalf("%s forwarded", n)
					}
				}
				if got.header.Get("Keep-Alive") != "" {
					t.Fatal("upstream Keep-Alive passed to the client")
				}
			},
		},
		{
			name: "rate limit headers on success", path: "/v1/x", hdr: key("acme-all"),
			check: func(t *testing.T, got response) {
				if v := got.header.Get("RateLimit-Policy"); v != `"default";q=100000;w=60` {
					t.Fatalf("RateLimit-Policy %q", v)
				}
				if v := got.header.Get("RateLimit"); !strings.HasPrefix(v, `"default";r=`) || !strings.Contains(v, ";t=") {
					t.Fatalf("RateLimit %q", v)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := r.do(t, "acme.localhost", tc.path, tc.hdr)
			if got.status != 200 {
				t.Fatalf("status %d: %s", got.status, got.body)
			}
			tc.check(t, got)
		})
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	newFixture(t, e)
	r := e.start(t, true)
	r.waitReady(t, 1)
	if got := r.do(t, "acme.localhost", "/v1/x", key("acme-all")); got.status != 200 {
		t.Fatalf("status %d before revoke", got.status)
	}
	testredis.PutKey(t, e.rdb, e.keys, secret, "acme-all", proxycfg.KeyRecord{ID: "k-all", TenantID: "t-acme", PlanID: "p-all", Status: proxycfg.KeyRevoked})
	testredis.AnnounceKey(t, e.rdb, e.keys, secret, "acme-all")
	start := time.Now()
	for {
		got := r.do(t, "acme.localhost", "/v1/x", key("acme-all"))
		if got.status == 401 {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("revoked key still answered %d after 1s", got.status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRateLimitAcrossWorkers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	newFixture(t, e)
	workers := []*running{e.start(t, true), e.start(t, true)}
	for _, w := range workers {
		w.waitReady(t, 1)
	}
	const burst = 24 // limit is 5 per 60s
	var mu sync.Mutex
	statuses := map[int]int{}
	var limited response
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			got := workers[i%2].do(t, "acme.localhost", "/v1/x", key("acme-tight"))
			mu.Lock()
			defer mu.Unlock()
			statuses[got.status]++
			if got.status == 429 {
				limited = got
			}
		})
	}
	wg.Wait()
	if statuses[200] != 5 || statuses[429] != burst-5 {
		t.Fatalf("statuses %v, want exactly 5×200 and %d×429 (degraded decisions: %d, %d)",
			statuses, burst-5, workers[0].w.Degraded(), workers[1].w.Degraded())
	}
	wantProblem(t, limited, problem.RateLimited)
	if ra := limited.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}
	if v := limited.header.Get("RateLimit-Policy"); v != `"default";q=5;w=60` {
		t.Fatalf("RateLimit-Policy %q", v)
	}
	if v := limited.header.Get("RateLimit"); !strings.HasPrefix(v, `"default";r=0;t=`) {
		t.Fatalf("RateLimit %q", v)
	}
}

func TestHealthChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b1 := backend(t, "b1")
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr2 := l2.Addr().String()
	b2 := &http.Server{Handler: echoHandler("b2")}
	go func() { _ = b2.Serve(l2) }()
	hc := proxycfg.HealthCheck{Path: "/health", IntervalMS: 30, TimeoutMS: 300, UnhealthyThreshold: 2, HealthyThreshold: 2}
	testredis.Publish(t, e.rdb, e.keys, &proxycfg.Snapshot{Schema: 1, Generation: 1, Tenants: []proxycfg.Tenant{{
		ID: "t", Slug: "acme",
		Upstreams: []proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, HealthCheck: hc,
			Targets: []proxycfg.Target{{URL: b1.URL, Weight: 1}, {URL: "http://" + addr2, Weight: 1}}}},
		APIs: []proxycfg.API{{ID: "a", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}},
	}}})
	r := e.start(t, true)
	r.waitReady(t, 1)
	seen := func() map[string]int {
		got := map[string]int{}
		for range 6 {
			resp := r.do(t, "acme.localhost", "/x", nil)
			got[resp.echo.Backend]++
		}
		return got
	}
	eventually(t, func() bool { return seen()["b2"] > 0 })

	b2.Close() // stop the backend: it must be ejected
	eventually(t, func() bool { g := seen(); return g["b1"] == 6 })

	l2b, err := net.Listen("tcp", addr2)
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", addr2, err)
	}
	b2b := &http.Server{Handler: echoHandler("b2")}
	go func() { _ = b2b.Serve(l2b) }()
	t.Cleanup(func() { b2b.Close() })
	eventually(t, func() bool { return seen()["b2"] > 0 })
}

func TestUpstreamProblems(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	newFixture(t, e)
	r := e.start(t, true)
	r.waitReady(t, 1)
	tests := []struct {
		name    string
		path    string
		problem *problem.Problem
	}{
		{name: "connect refused 502", path: "/dead/x", problem: problem.BadGateway},
		{name: "timeout 504", path: "/timeout/slow", problem: problem.GatewayTimeout},
		{name: "no healthy target 503", path: "/down/x", problem: problem.NoHealthyTarget},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got response
			// The health check needs a probe or two to mark the target down.
			eventually(t, func() bool {
				got = r.do(t, "acme.localhost", tc.path, nil)
				return got.status == tc.problem.Status
			})
			wantProblem(t, got, tc.problem)
		})
	}
}

func TestSSRFGuard(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	newFixture(t, e)
	r := e.start(t, false)
	r.waitReady(t, 1)
	got := r.do(t, "acme.localhost", "/open/x", nil)
	wantProblem(t, got, problem.BadGateway)
	if !strings.Contains(string(got.body), "private") {
		t.Fatalf("detail does not explain the refusal: %s", got.body)
	}
}

func TestReadinessAndGracefulShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(t, true)
	readyz := func() int {
		resp, err := client.Get("http://" + r.admin + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := readyz(); s != 503 {
		t.Fatalf("readyz %d before any snapshot, want 503", s)
	}
	if got := r.do(t, "acme.localhost", "/timeout/slow", nil); got.status != 503 {
		t.Fatalf("traffic before any snapshot: %d", got.status)
	}
	newFixture(t, e)
	r.waitReady(t, 1)
	if s := readyz(); s != 200 {
		t.Fatalf("readyz %d after the snapshot, want 200", s)
	}

	// A slow request is in flight when the shutdown starts; it must finish.
	slow := make(chan response, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+r.traffic+"/open/slow", nil)
		req.Host = "acme.localhost"
		resp, err := client.Do(req)
		if err != nil {
			slow <- response{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- response{status: resp.StatusCode, body: b}
	}()
	time.Sleep(200 * time.Millisecond)
	r.cancel()
	eventually(t, func() bool { return !r.w.Ready() })
	got := <-slow
	if got.status != 200 {
		t.Fatalf("in-flight request: %d %s", got.status, got.body)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		r.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if c, err := net.DialTimeout("tcp", r.traffic, time.Second); err == nil {
		c.Close()
		t.Fatal("traffic listener still accepts after shutdown")
	}
}
