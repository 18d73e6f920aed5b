package worker

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// startWith runs a worker whose Options tweak adjusts.
func (e *env) startWith(t testing.TB, tweak func(*Options)) *running {
	t.Helper()
	opts := Options{
		Redis: e.rdb, Keys: e.keys, Secret: secret, AllowPrivateUpstreams: true,
		Logger: slog.New(slog.DiscardHandler), PollInterval: 100 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
	}
	if tweak != nil {
		tweak(&opts)
	}
	w, err := New(opts)
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

// doReq sends one request through the worker.
func (r *running) doReq(t testing.TB, method, host, path string, hdr map[string]string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+r.traffic+path, body)
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
	b, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, body: b}
	if resp.StatusCode == 200 {
		_ = json.Unmarshal(b, &out.echo)
	}
	return out
}

// doHead writes the head of a request declaring a body of length bytes and
// only the first bodyReadAhead bytes of it, and reads the answer: the worker
// must refuse without waiting for more (the engine reads at most that much
// of a body ahead of the handler, which then streams the rest).
const bodyReadAhead = 8 << 10

func (r *running) doHead(t testing.TB, method, host, path string, length int) response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", r.traffic, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s", method, path, host, length,
		strings.Repeat("x", min(length, bodyReadAhead))); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s%s (head only): %v", method, host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func oneTenant(gen int64, ups []proxycfg.Upstream, apis []proxycfg.API, plans []proxycfg.Plan) *proxycfg.Snapshot {
	return &proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: gen, CompiledAt: time.Now(), Tenants: []proxycfg.Tenant{{
		ID: "t-acme", Slug: "acme", Upstreams: ups, APIs: apis, Plans: plans,
	}}}
}

func TestJWTAuth(t *testing.T) {
	t.Parallel()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	iss := m.Issuer()
	b := backend(t, "b1")
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: b.URL, Weight: 1}}}},
		[]proxycfg.API{{ID: "a-jwt", Slug: "orders", BasePath: "/orders", UpstreamID: "u", Auth: proxycfg.AuthJWT, StripBasePath: true,
			JWT: &proxycfg.JWT{
				Issuer: iss, Audiences: []string{"orders-api"}, PlanID: "p-default",
				Subjects:    []proxycfg.JWTSubject{{Value: "vip", ConsumerID: "c-vip", PlanID: "p-vip"}},
				Scopes:      []string{"orders:read"},
				RouteScopes: []proxycfg.RouteScopes{{PathPrefix: "/admin", Methods: []string{"POST"}, Scopes: []string{"orders:admin"}}},
			}}},
		[]proxycfg.Plan{
			{ID: "p-default", RateLimit: proxycfg.RateLimit{Requests: 3, PerSeconds: 60}, APIIDs: []string{"a-jwt"}},
			{ID: "p-vip", APIIDs: []string{"a-jwt"}},
		}))
	r := e.start(t, true)
	r.waitReady(t, 1)

	exp := time.Now().Add(10 * time.Minute)
	claims := func(iss, aud, sub, scope string, exp time.Time) jwt.MapClaims {
		return jwt.MapClaims{"iss": iss, "aud": aud, "sub": sub, "exp": exp.Unix(), "iat": time.Now().Unix(), "scope": scope}
	}
	sign := func(c jwt.Claims) string {
		s, err := m.Keypair.SignJWT(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	unknown := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(iss, "orders-api", "alice", "orders:read", exp))
	unknown.Header["kid"] = "rotated-away"
	unknownKid, _ := unknown.SignedString(other)
	der, _ := x509.MarshalPKIXPublicKey(m.Keypair.PublicKey)
	kid, _ := m.Keypair.KeyID()
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(iss, "orders-api", "alice", "orders:read", exp))
	hs.Header["kid"] = kid
	hsTok, _ := hs.SignedString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	noneTok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(iss, "orders-api", "alice", "orders:read", exp)).
		SignedString(jwt.UnsafeAllowNoneSignatureType)

	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	tests := []struct {
		name   string
		method string
		path   string
		token  string
		want   int
	}{
		{name: "valid", path: "/orders/1", token: sign(claims(iss, "orders-api", "alice", "orders:read", exp)), want: 200},
		{name: "alg none", path: "/orders/1", token: noneTok, want: 401},
		{name: "wrong issuer", path: "/orders/1", token: sign(claims("http://evil.example/oidc", "orders-api", "alice", "orders:read", exp)), want: 401},
		{name: "wrong audience", path: "/orders/1", token: sign(claims(iss, "billing-api", "alice", "orders:read", exp)), want: 401},
		{name: "expired", path: "/orders/1", token: sign(claims(iss, "orders-api", "alice", "orders:read", time.Now().Add(-time.Minute))), want: 401},
		{name: "unknown kid", path: "/orders/1", token: unknownKid, want: 401},
		{name: "HS256 signed with the public key", path: "/orders/1", token: hsTok, want: 401},
		{name: "no token", path: "/orders/1", want: 401},
		{name: "missing API scope", path: "/orders/1", token: sign(claims(iss, "orders-api", "alice", "profile", exp)), want: 403},
		{name: "missing route scope", method: "POST", path: "/orders/admin/x", token: sign(claims(iss, "orders-api", "alice", "orders:read", exp)), want: 403},
		{name: "route scope only for POST", path: "/orders/admin/x", token: sign(claims(iss, "orders-api", "bob", "orders:read", exp)), want: 200},
		{name: "route scope present", method: "POST", path: "/orders/admin/x", token: sign(claims(iss, "orders-api", "vip", "orders:read orders:admin", exp)), want: 200},
		// Route scopes compare whole segments, fail closed on case and
		// path parameters (regression: a raw, case-sensitive prefix).
		{name: "route scope ignores case", method: "POST", path: "/orders/ADMIN/x", token: sign(claims(iss, "orders-api", "alice", "orders:read", exp)), want: 403},
		{name: "route scope ignores path parameters", method: "POST", path: "/orders/admin;jsessionid=1/x", token: sign(claims(iss, "orders-api", "alice", "orders:read", exp)), want: 403},
		{name: "route scope on encoded path", method: "POST", path: "/orders/%61dmin/x", token: sign(claims(iss, "orders-api", "alice", "orders:read", exp)), want: 403},
		{name: "route scope per segment", method: "POST", path: "/orders/administrator", token: sign(claims(iss, "orders-api", "dave", "orders:read", exp)), want: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			hdr := map[string]string{}
			if tc.token != "" {
				hdr = bearer(tc.token)
			}
			got := r.doReq(t, method, "acme.localhost", tc.path, hdr, nil)
			if got.status != tc.want {
				t.Fatalf("status %d (%s), want %d", got.status, got.body, tc.want)
			}
			if tc.want == 200 && got.echo.Header["Authorization"] == nil {
				t.Fatal("the token was not passed on to the upstream")
			}
		})
	}

	// The default plan throttles per subject (3/min): carol gets 3, then 429;
	// the mapped subject "vip" has an unlimited plan.
	carol := sign(claims(iss, "orders-api", "carol", "orders:read", exp))
	for i := range 4 {
		got := r.doReq(t, http.MethodGet, "acme.localhost", "/orders/1", bearer(carol), nil)
		want := 200
		if i == 3 {
			want = 429
		}
		if got.status != want {
			t.Fatalf("carol request %d: status %d, want %d", i+1, got.status, want)
		}
	}
	vip := sign(claims(iss, "orders-api", "vip", "orders:read", exp))
	for i := range 5 {
		if got := r.doReq(t, http.MethodGet, "acme.localhost", "/orders/1", bearer(vip), nil); got.status != 200 {
			t.Fatalf("vip request %d: status %d", i+1, got.status)
		}
	}
}

// TestJWTSubjectsPerTenant is the regression test of JWT callers' limit
// subjects shared across tenants ("jwt:<sub>"): two tenants trust one
// issuer and give their default plans the same id, and the quota of one
// tenant's "alice" never counts the other's. It also checks that a reload
// that removes the JWT APIs drops their issuer.
func TestJWTSubjectsPerTenant(t *testing.T) {
	t.Parallel()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	iss := m.Issuer()
	b := backend(t, "b1")
	e := newEnv(t)
	tenant := func(id, slug string) proxycfg.Tenant {
		return proxycfg.Tenant{ID: id, Slug: slug,
			Upstreams: []proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: b.URL, Weight: 1}}}},
			APIs: []proxycfg.API{{ID: "a-jwt", Slug: "orders", BasePath: "/orders", UpstreamID: "u", Auth: proxycfg.AuthJWT,
				JWT: &proxycfg.JWT{Issuer: iss, Audiences: []string{"orders-api"}, PlanID: "p-default",
					Subjects: []proxycfg.JWTSubject{{Value: "svc", ConsumerID: "c-svc", PlanID: "p-svc"}}}}},
			Plans: []proxycfg.Plan{
				{ID: "p-default", Quota: proxycfg.Quota{Requests: 2, Period: "day"}, APIIDs: []string{"a-jwt"}},
				{ID: "p-svc", Quota: proxycfg.Quota{Requests: 2, Period: "day"},
					RateLimit: proxycfg.RateLimit{Requests: 100, PerSeconds: 60, Scope: proxycfg.ScopeConsumer}, APIIDs: []string{"a-jwt"}},
			},
		}
	}
	testredis.Publish(t, e.rdb, e.keys, &proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: 1, CompiledAt: time.Now(),
		Tenants: []proxycfg.Tenant{tenant("t-a", "tenant-a"), tenant("t-b", "tenant-b")}})
	r := e.start(t, true)
	r.waitReady(t, 1)

	exp := time.Now().Add(10 * time.Minute)
	bearer := func(sub string) map[string]string {
		tok, err := m.Keypair.SignJWT(jwt.MapClaims{"iss": iss, "aud": "orders-api", "sub": sub, "exp": exp.Unix(), "iat": time.Now().Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"Authorization": "Bearer " + tok}
	}
	for _, sub := range []string{"alice", "svc"} { // the default plan and a listed subject
		for i, want := range []int{200, 200, 429} {
			if got := r.doReq(t, http.MethodGet, "tenant-a.localhost", "/orders/1", bearer(sub), nil); got.status != want {
				t.Fatalf("tenant a, %s, request %d: %d, want %d", sub, i+1, got.status, want)
			}
		}
		// Tenant b's caller of the same name has its own quota.
		for i := range 2 {
			if got := r.doReq(t, http.MethodGet, "tenant-b.localhost", "/orders/1", bearer(sub), nil); got.status != 200 {
				t.Fatalf("tenant b, %s, request %d: %d (%s), want 200: the quota is shared across tenants", sub, i+1, got.status, got.body)
			}
		}
	}
	// The counters are namespaced by tenant and plan in Redis.
	period, _, _ := proxycfg.QuotaPeriod("day", time.Now())
	for _, tn := range []string{"t-a", "t-b"} {
		for _, subject := range []string{"jwt/" + tn + "/p-default/jwt:alice", "jwt/" + tn + "/p-svc/c/c-svc/p-svc"} {
			n, err := e.rdb.Get(context.Background(), e.keys.Quota(subject, period)).Int64()
			if err != nil || n < 2 {
				t.Fatalf("quota counter %s: %d, %v", subject, n, err)
			}
		}
	}

	if got := r.w.jwt.Issuers(); len(got) != 1 || got[0] != iss {
		t.Fatalf("issuers %v", got)
	}
	// A reload without JWT APIs drops the issuer.
	next := tenant("t-a", "tenant-a")
	next.APIs[0].Auth, next.APIs[0].JWT = proxycfg.AuthNone, nil
	testredis.Publish(t, e.rdb, e.keys, &proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: 2, CompiledAt: time.Now(),
		Tenants: []proxycfg.Tenant{next}})
	r.waitReady(t, 2)
	if got := r.w.jwt.Issuers(); len(got) != 0 {
		t.Fatalf("issuers after the reload that removed them: %v", got)
	}
}

// flaky is a backend that answers 503 while broken is set.
func flaky(t *testing.T, name string, broken *atomic.Bool, hits *atomic.Int64) *httptest.Server {
	t.Helper()
	h := echoHandler(name)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if broken.Load() {
			rw.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRetriesAndOutlierEjection(t *testing.T) {
	t.Parallel()
	var broken, fine atomic.Bool
	broken.Store(true)
	var badHits, goodHits atomic.Int64
	bad := flaky(t, "bad", &broken, &badHits)
	good := flaky(t, "good", &fine, &goodHits)
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin,
			Targets: []proxycfg.Target{{URL: bad.URL, Weight: 1}, {URL: good.URL, Weight: 1}},
			Outlier: proxycfg.Outlier{Consecutive5xx: 3, BaseEjectionMS: 60000},
			Retry:   proxycfg.Retry{Attempts: 2, BudgetPercent: 100}}},
		[]proxycfg.API{{ID: "a", Slug: "api", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}},
		nil))
	r := e.start(t, true)
	r.waitReady(t, 1)
	for i := range 20 {
		got := r.doReq(t, http.MethodGet, "acme.localhost", "/x", nil, nil)
		if got.status != 200 || got.echo.Backend != "good" {
			t.Fatalf("GET %d: status %d backend %q; want 200 from good (retried)", i, got.status, got.echo.Backend)
		}
	}
	if n := badHits.Load(); n != 3 {
		t.Fatalf("bad target got %d requests, want 3 (ejected after 3 consecutive 5xx)", n)
	}
	// A config change keeps the ejection: the target's counters carry over.
	testredis.Publish(t, e.rdb, e.keys, oneTenant(2,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmLeastConn,
			Targets: []proxycfg.Target{{URL: bad.URL, Weight: 1}, {URL: good.URL, Weight: 1}},
			Outlier: proxycfg.Outlier{Consecutive5xx: 3, BaseEjectionMS: 60000},
			Retry:   proxycfg.Retry{Attempts: 2, BudgetPercent: 100}}},
		[]proxycfg.API{{ID: "a", Slug: "api", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}},
		nil))
	r.waitReady(t, 2)
	for range 10 {
		r.doReq(t, http.MethodGet, "acme.localhost", "/x", nil, nil)
	}
	if n := badHits.Load(); n != 3 {
		t.Fatalf("bad target got %d requests after a config change, want still 3 (ejection kept)", n)
	}
	// POST without Idempotency-Key is not retried; with one it is. The bad
	// target is ejected, so re-enable checks by a fresh upstream is not
	// needed: both go to good.
	for _, tc := range []struct {
		name string
		hdr  map[string]string
	}{{name: "post", hdr: nil}, {name: "post with idempotency key", hdr: map[string]string{"Idempotency-Key": "k1"}}} {
		if got := r.doReq(t, http.MethodPost, "acme.localhost", "/x", tc.hdr, strings.NewReader("{}")); got.status != 200 {
			t.Fatalf("%s: status %d", tc.name, got.status)
		}
	}

	resp, err := client.Get("http://" + r.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`tollgate_upstream_ejections_total{target="` + bad.URL + `",tenant="acme",upstream="u"} 1`,
		`tollgate_upstream_retries_total{outcome="sent",tenant="acme",upstream="u"} 3`,
		`tollgate_upstream_target_up{target="` + bad.URL + `",tenant="acme",upstream="u"} 0`,
		`tollgate_requests_total{api="api",class="2xx",tenant="acme"} 32`,
		`tollgate_config_generation 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestNonIdempotentNotRetried(t *testing.T) {
	t.Parallel()
	var broken atomic.Bool
	broken.Store(true)
	var hits atomic.Int64
	bad := flaky(t, "bad", &broken, &hits)
	good := backend(t, "good")
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin,
			Targets: []proxycfg.Target{{URL: bad.URL, Weight: 1}, {URL: good.URL, Weight: 1}},
			Retry:   proxycfg.Retry{Attempts: 2, BudgetPercent: 100}}},
		[]proxycfg.API{{ID: "a", Slug: "api", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}},
		nil))
	r := e.start(t, true)
	r.waitReady(t, 1)
	statuses := map[int]int{}
	for range 4 {
		statuses[r.doReq(t, http.MethodPost, "acme.localhost", "/x", nil, strings.NewReader("{}")).status]++
	}
	if statuses[503] != 2 || statuses[200] != 2 {
		t.Fatalf("POST statuses %v; want two 503 (not retried) and two 200", statuses)
	}
}

func TestHygiene(t *testing.T) {
	t.Parallel()
	b := backend(t, "b1")
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: b.URL, Weight: 1}}}},
		[]proxycfg.API{
			{ID: "a", Slug: "a", BasePath: "/a", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true, MaxBodyBytes: 10},
			{ID: "p", Slug: "p", BasePath: "/p", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true, Host: proxycfg.HostPreserve},
			{ID: "h", Slug: "h", BasePath: "/h", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true, Host: "internal.example"},
		}, nil))
	var logBuf syncBuffer
	r := e.startWith(t, func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		o.MaxHeaderBytes = 4096
		o.AccessLog = slog.New(slog.NewJSONHandler(&logBuf, nil))
	})
	r.waitReady(t, 1)

	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		body   string
		// declared sends only the head of a request whose Content-Length
		// is declared (and the engine's read-ahead of the body), and reads
		// the answer without sending the rest: the worker must refuse
		// before reading it. (Sending the body too makes the client race
		// the early 413 and the connection reset.)
		declared int
		want     int
		check    func(t *testing.T, got response)
	}{
		{name: "traceparent passed on", path: "/a/x", hdr: map[string]string{"Traceparent": tp}, want: 200,
			check: func(t *testing.T, got response) {
				if v := http.Header(got.echo.Header).Get("Traceparent"); v != tp {
					t.Fatalf("traceparent %q", v)
				}
			}},
		{name: "traceparent created", path: "/a/x", hdr: map[string]string{"Traceparent": "00-bogus"}, want: 200,
			check: func(t *testing.T, got response) {
				if v := http.Header(got.echo.Header).Get("Traceparent"); !validTraceparent([]byte(v)) || v == "00-bogus" {
					t.Fatalf("traceparent %q", v)
				}
			}},
		{name: "trusted proxy chain kept", path: "/a/x",
			hdr: map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"}, want: 200,
			check: func(t *testing.T, got response) {
				h := http.Header(got.echo.Header)
				if h.Get("X-Forwarded-For") != "203.0.113.9, 127.0.0.1" || h.Get("X-Forwarded-Proto") != "https" || h.Get("X-Forwarded-Host") != "api.example" {
					t.Fatalf("forwarded headers %v %v %v", h.Get("X-Forwarded-For"), h.Get("X-Forwarded-Proto"), h.Get("X-Forwarded-Host"))
				}
			}},
		{name: "body within limit", method: "POST", path: "/a/x", body: "0123456789", want: 200},
		{name: "body over the API limit", method: "POST", path: "/a/x", body: "0123456789X", want: 413},
		{name: "large body refused before it is read", method: "POST", path: "/a/x", declared: 1 << 20, want: 413,
			check: func(t *testing.T, got response) {
				if got.header.Get("Content-Type") != problem.ContentType {
					t.Fatalf("content type %q", got.header.Get("Content-Type"))
				}
			}},
		{name: "host preserved", path: "/p/x", want: 200, check: func(t *testing.T, got response) {
			if got.echo.Host != "acme.localhost" {
				t.Fatalf("upstream host %q", got.echo.Host)
			}
		}},
		{name: "host rewritten", path: "/h/x", want: 200, check: func(t *testing.T, got response) {
			if got.echo.Host != "internal.example" {
				t.Fatalf("upstream host %q", got.echo.Host)
			}
		}},
		{name: "host of the target by default", path: "/a/x", want: 200, check: func(t *testing.T, got response) {
			if got.echo.Host != strings.TrimPrefix(b.URL, "http://") {
				t.Fatalf("upstream host %q", got.echo.Host)
			}
		}},
		{name: "header block too large", path: "/a/x", hdr: map[string]string{"X-Big": strings.Repeat("x", 8000)}, want: 431,
			check: func(t *testing.T, got response) {
				if got.header.Get("Content-Type") != problem.ContentType {
					t.Fatalf("content type %q", got.header.Get("Content-Type"))
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			var got response
			if tc.declared > 0 {
				got = r.doHead(t, method, "acme.localhost", tc.path, tc.declared)
			} else {
				var body io.Reader
				if tc.body != "" {
					body = strings.NewReader(tc.body)
				}
				got = r.doReq(t, method, "acme.localhost", tc.path, tc.hdr, body)
			}
			if got.status != tc.want {
				t.Fatalf("status %d (%s), want %d", got.status, got.body, tc.want)
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}
	// The access log is JSON, written in the background.
	eventually(t, func() bool { return strings.Contains(logBuf.String(), `"msg":"access"`) })
	line, _, _ := strings.Cut(logBuf.String(), "\n")
	var entry map[string]any
	if err := json.Unmarshal([]byte(line), &entry); err != nil {
		t.Fatalf("access log line %q: %v", line, err)
	}
	for _, k := range []string{"status", "duration_ms", "request_id", "api_id", "target", "method", "path"} {
		if _, ok := entry[k]; !ok {
			t.Errorf("access log entry lacks %q: %s", k, line)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestConcurrencyCapSheds(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var inBackend atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		inBackend.Add(1)
		<-release
		rw.WriteHeader(200)
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: slow.URL, Weight: 1}}}},
		[]proxycfg.API{{ID: "a", Slug: "a", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}}, nil))
	r := e.startWith(t, func(o *Options) { o.MaxConcurrent = 2 })
	r.waitReady(t, 1)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { r.doReq(t, http.MethodGet, "acme.localhost", "/x", nil, nil) })
	}
	eventually(t, func() bool { return inBackend.Load() == 2 })
	got := r.doReq(t, http.MethodGet, "acme.localhost", "/x", nil, nil)
	if got.status != 503 || got.header.Get("Retry-After") == "" {
		t.Fatalf("third concurrent request: %d (Retry-After %q), want 503 shed", got.status, got.header.Get("Retry-After"))
	}
	close(release)
	wg.Wait()
}

func TestRestartWithRedisDownServesDiskSnapshot(t *testing.T) {
	t.Parallel()
	b := backend(t, "b1")
	e := newEnv(t)
	file := filepath.Join(t.TempDir(), "snapshot.json")
	testredis.Publish(t, e.rdb, e.keys, oneTenant(4,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: b.URL, Weight: 1}}}},
		[]proxycfg.API{{ID: "a", Slug: "a", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}}, nil))
	first := e.startWith(t, func(o *Options) { o.SnapshotFile = file })
	first.waitReady(t, 4)
	eventually(t, func() bool { _, err := filepathStat(file); return err == nil })
	first.cancel()
	<-first.done
	first.done <- nil

	// Redis is down now (the worker points at a port nothing listens on).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	down := redis.NewClient(&redis.Options{Addr: dead, DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { down.Close() })
	second := (&env{rdb: down, keys: e.keys}).startWith(t, func(o *Options) { o.SnapshotFile = file })
	eventually(t, func() bool { return second.w.Ready() && second.w.Generation() == 4 })
	if got := second.doReq(t, http.MethodGet, "acme.localhost", "/x", nil, nil); got.status != 200 || got.echo.Backend != "b1" {
		t.Fatalf("restarted worker with Redis down: %d %s", got.status, got.body)
	}
}

func filepathStat(name string) (any, error) { return os.Stat(name) }

func TestConfigChangesUnderLoad(t *testing.T) {
	t.Parallel()
	b1, b2, b3 := backend(t, "b1"), backend(t, "b2"), backend(t, "b3")
	e := newEnv(t)
	snap := func(gen int64, alg string, urls ...string) *proxycfg.Snapshot {
		var ts []proxycfg.Target
		for _, u := range urls {
			ts = append(ts, proxycfg.Target{URL: u, Weight: 1})
		}
		return oneTenant(gen, []proxycfg.Upstream{{ID: "u", Algorithm: alg, Targets: ts}},
			[]proxycfg.API{{ID: "a", Slug: "a", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}}, nil)
	}
	testredis.Publish(t, e.rdb, e.keys, snap(1, proxycfg.AlgorithmRoundRobin, b1.URL, b2.URL))
	r := e.start(t, true)
	r.waitReady(t, 1)

	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, "http://"+r.traffic+"/x", nil)
				req.Host = "acme.localhost"
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	// Every generation removes a target and adds another, and changes the
	// algorithm, while requests flow.
	for gen := int64(2); gen <= 21; gen++ {
		if gen%2 == 0 {
			testredis.Publish(t, e.rdb, e.keys, snap(gen, proxycfg.AlgorithmLeastConn, b2.URL, b3.URL))
		} else {
			testredis.Publish(t, e.rdb, e.keys, snap(gen, proxycfg.AlgorithmRandom, b1.URL, b3.URL))
		}
		r.waitReady(t, gen)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d ok, %d failed across 20 config changes under load; want 0 failed", ok.Load(), failed.Load())
	}
	t.Logf("%d requests ok, 0 failed across 20 config changes", ok.Load())
}

func BenchmarkAccessLogEntry(b *testing.B) {
	a := newAccessLog(slog.New(slog.NewJSONHandler(io.Discard, nil)), 1)
	defer a.close()
	var req fasthttp.Request
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5000}, nil)
	ctx.Request.SetRequestURI("/v1/items/42")
	ctx.Request.Header.SetHost("acme.localhost")
	ctx.Response.SetBodyString(`{"ok":true}`)
	d := &pipeline.Decision{}
	id := []byte("0123456789abcdef0123456789abcdef")
	b.ReportAllocs()
	for b.Loop() {
		a.log(&ctx, d, 200, time.Millisecond, id, 0)
	}
	b.StopTimer()
	b.ReportMetric(float64(a.dropped.Load())/float64(b.N), "dropped/op")
}

// BenchmarkAccessLogWriter is the background writer's cost per entry (JSON
// encoding with slog), which bounds the request rate logged without drops.
func BenchmarkAccessLogWriter(b *testing.B) {
	a := &accessLog{logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), queue: make(chan accessEntry, 1), done: make(chan struct{})}
	go a.run()
	e := accessEntry{time: time.Now(), method: "GET", host: "acme.localhost", path: "/v1/items/42", status: 200,
		duration: time.Millisecond, requestID: "0123456789abcdef0123456789abcdef", tenant: "t", api: "a", target: "http://10.0.0.1:80", remote: "192.0.2.1"}
	b.ReportAllocs()
	for b.Loop() {
		a.queue <- e
	}
	a.close()
}
