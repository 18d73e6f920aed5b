package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/worker"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/mail/mailtest"
	"github.com/tollgate/tollgate/services/secrets"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/storetest"
)

// platform is a control plane and two proxy workers on loopback, over a test
// database and a test Redis prefix.
type platform struct {
	t        *testing.T
	control  string   // base URL of the control plane
	workers  []string // host:port of each worker's traffic listener
	admins   []string // host:port of each worker's admin listener
	operator string
	client   *http.Client
	db       *pgxpool.Pool
	// smtp receives the control plane's mail.
	smtp *mailtest.Server
	// controlAdmin is the base URL of the control plane's operator port
	// (/metrics, /healthz, /readyz).
	controlAdmin string
	// stripe is the platform's Stripe (platformOpts.stripe), nil without.
	stripe *platformStripe
}

// platformOpts choose what startPlatformWith runs besides the control plane
// and two workers.
type platformOpts struct {
	// stripe turns billing on: TOLLGATE_STRIPE_* point at stripe-mock
	// (through a recording proxy) and the control plane builds billing and
	// metering from them as `tollgate control` does (billing_e2e_test.go).
	stripe bool
	// redisURL is the TOLLGATE_REDIS_URL of the control plane and the
	// workers (newRedis); "" is the test Redis on 127.0.0.1:6379.
	redisURL string
}

func startPlatform(t *testing.T) *platform {
	t.Helper()
	return startPlatformWith(t, platformOpts{})
}

func startPlatformWith(t *testing.T, o platformOpts) *platform {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dsn := storetest.NewDatabase(t)
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var rdb redis.UniversalClient = redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	if o.redisURL != "" {
		if rdb, err = newRedis(o.redisURL); err != nil {
			t.Fatal(err)
		}
	}
	prefix := "e2e:" + randHex(6) + ":"
	keys := proxycfg.Keys{Prefix: prefix}
	secret := []byte("e2e-secret-" + randHex(8))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p := &platform{t: t, operator: "op-" + randHex(8), client: &http.Client{Timeout: 10 * time.Second}, db: db}

	var wg sync.WaitGroup
	controlLn := listen(t)
	p.control = "http://" + controlLn.Addr().String()
	digestKey := testDigestKey(t, db, secret)
	deps := controlDeps{DB: db, Redis: rdb, Keys: keys, Secret: secret, OperatorToken: p.operator, Limits: testLimits(),
		DigestKey:    digestKey,
		AllowPrivate: true, Logger: log, PollInterval: 200 * time.Millisecond}
	// The developer portals, with mail through a real SMTP server and the
	// first worker as the gateway (try-it, SDK base URLs).
	traffic := []net.Listener{listen(t), listen(t)}
	p.smtp = mailtest.New(t)
	cfg := config{Secret: secret, DigestKey: digestKey, Limits: testLimits(), AllowPrivate: true, SMTPURL: p.smtp.URL(), ProxyDomain: "localhost",
		PortalDomain: "developers.localhost", ProxyPublicURL: "http://{slug}.localhost:" + portOf(traffic[0].Addr())}
	if o.stripe {
		bill := p.startStripe(db, secret, log)
		deps.Billing, deps.Metering, deps.PublicURL = bill.Service, bill.Metering, p.control
	}
	dp, devs, err := newDevPortal(cfg, db, rdb, keys, log, controlLn.Addr().String(), nil, deps.Billing)
	if err != nil {
		t.Fatal(err)
	}
	deps.DevPortal, deps.Developers, deps.ControlHost = dp, devs, "localhost"
	deps.AdminListener = listen(t)
	p.controlAdmin = "http://" + deps.AdminListener.Addr().String()
	wg.Add(1)
	go func() { defer wg.Done(); _ = serveControl(ctx, deps, controlLn) }()
	for i := 0; i < 2; i++ {
		w, err := worker.New(worker.Options{Redis: rdb, Keys: keys, Secret: secret, Domain: "localhost",
			AllowPrivateUpstreams: true, Logger: log, PollInterval: 200 * time.Millisecond,
			// Redis is healthy here; a loaded CI machine must not turn a slow
			// call into a degraded local decision (those have their own tests).
			RateLimitTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		traffic, admin := traffic[i], listen(t)
		p.workers = append(p.workers, traffic.Addr().String())
		p.admins = append(p.admins, admin.Addr().String())
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Serve(ctx, traffic, admin) }()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = clearPrefix(context.Background(), rdb, prefix)
		rdb.Close()
		db.Close()
	})
	return p
}

// api calls the management API and decodes the answer, failing the test on an
// unexpected status.
func (p *platform) api(method, path, token string, body any, want int, out any) {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, p.control+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		p.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			p.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
}

// answer is one response of the proxy.
type answer struct {
	status  int
	backend string
	header  http.Header
	body    string
}

// call sends GET path to worker w with Host host and the given API key ("" for none).
func (p *platform) call(w int, host, path, key string) answer {
	p.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+p.workers[w]+path, nil)
	req.Host = host
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatalf("proxy call: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, backend: resp.Header.Get("X-Backend"), header: resp.Header, body: string(data)}
}

// eventually polls cond every 20ms until it holds or within passes; it
// returns how long it took.
func (p *platform) eventually(within time.Duration, what string, cond func() bool) time.Duration {
	p.t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > within {
			p.t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tenantSetup is what one tenant's setup through /v1 created.
type tenantSetup struct {
	token, upstream, api, consumer, plan, keyID, key string
}

func (p *platform) setupTenant(slug string, targets []string, rate int) tenantSetup {
	p.t.Helper()
	var s tenantSetup
	var created createdTenant
	p.api("POST", "/v1/tenants", p.operator, map[string]any{"name": slug + " corp", "slug": slug}, 201, &created)
	s.token = created.AdminToken
	var tg []map[string]any
	for _, u := range targets {
		tg = append(tg, map[string]any{"url": u, "weight": 1})
	}
	var obj idOf
	p.api("POST", "/v1/upstreams", s.token, map[string]any{"name": "backends", "algorithm": "round_robin", "targets": tg,
		"health_check": map[string]any{"path": "/healthz", "interval_ms": 100, "timeout_ms": 100, "healthy_threshold": 1, "unhealthy_threshold": 2}},
		201, &obj)
	s.upstream = obj.ID
	p.api("POST", "/v1/apis", s.token, map[string]any{"name": "Echo", "slug": "echo", "base_path": "/echo",
		"upstream_id": s.upstream, "auth": "key"}, 201, &obj)
	s.api = obj.ID
	p.api("POST", "/v1/plans", s.token, map[string]any{"name": "Basic",
		"rate_limit": map[string]any{"requests": rate, "per_seconds": 1},
		"quota":      map[string]any{"requests": 1000000, "period": "month"},
		"api_ids":    []string{s.api}}, 201, &obj)
	s.plan = obj.ID
	p.api("POST", "/v1/consumers", s.token, map[string]any{"name": "Consumer", "email": "c@" + slug + ".example"}, 201, &obj)
	s.consumer = obj.ID
	s.keyID, s.key = p.newKey(s.token, s.consumer, s.plan)
	return s
}

func (p *platform) newKey(token, consumer, plan string) (id, key string) {
	p.t.Helper()
	var k struct{ ID, Key, Prefix string }
	p.api("POST", "/v1/keys", token, map[string]any{"consumer_id": consumer, "plan_id": plan}, 201, &k)
	if k.Key == "" || k.ID == "" || !strings.HasPrefix(k.Key, k.Prefix) {
		p.t.Fatalf("key answer %+v: want id, key and a prefix of the key", k)
	}
	return k.ID, k.Key
}

// waitWindow sleeps past the current rate-limit window so the next phase
// starts with the plan's full allowance.
func waitWindow() { time.Sleep(1100 * time.Millisecond) }

// TestEndToEnd drives the backbone through /v1 only: two tenants, two proxy
// workers, two backends; auth, balancing, an exact shared rate limit,
// revocation, health checks and live upstream changes.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	backA := httptest.NewServer(demoBackend("a"))
	defer backA.Close()
	backB := httptest.NewServer(demoBackend("b"))
	defer backB.Close()

	acme := p.setupTenant("acme", []string{backA.URL, backB.URL}, 5)
	other := p.setupTenant("other", []string{backA.URL}, 5)
	const host = "acme.localhost"

	for w := range p.workers {
		took := p.eventually(5*time.Second, "worker serves the new config", func() bool {
			return p.call(w, host, "/echo/ready", acme.key).status == 200
		})
		t.Logf("worker %d served the key %v after setup", w, took)
	}

	t.Run("credentials", func(t *testing.T) {
		for w := range p.workers {
			for _, tc := range []struct {
				name string
				key  string
				want []int
			}{
				{"no key", "", []int{401}},
				{"wrong key", "tg_" + randHex(20), []int{401}},
				{"other tenant's key", other.key, []int{401, 403}},
			} {
				a := p.call(w, host, "/echo/x", tc.key)
				if !containsInt(tc.want, a.status) {
					t.Errorf("worker %d, %s: status %d, want %v (%s)", w, tc.name, a.status, tc.want, a.body)
				}
				if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
					t.Errorf("worker %d, %s: content type %q, want problem+json", w, tc.name, ct)
				}
			}
		}
	})

	t.Run("balancing", func(t *testing.T) {
		waitWindow()
		for w := range p.workers {
			seen := map[string]int{}
			for i := 0; i < 2; i++ {
				a := p.call(w, host, "/echo/hello?x=1", acme.key)
				if a.status != 200 {
					t.Fatalf("worker %d: status %d: %s", w, a.status, a.body)
				}
				if !strings.Contains(a.body, `"path":"/hello?x=1"`) {
					t.Errorf("worker %d: backend saw %s, want the base path stripped", w, a.body)
				}
				seen[a.backend]++
			}
			if seen["a"] != 1 || seen["b"] != 1 {
				t.Errorf("worker %d: backends %v, want a and b in turn", w, seen)
			}
		}
	})

	t.Run("rate limit across workers", func(t *testing.T) {
		waitWindow()
		var ok, limited atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for i := 0; i < 24; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				a := p.call(i%2, host, "/echo/burst", acme.key)
				switch a.status {
				case 200:
					ok.Add(1)
				case 429:
					limited.Add(1)
					if a.header.Get("Retry-After") == "" {
						t.Errorf("429 without Retry-After")
					}
					if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
						t.Errorf("429 content type %q", ct)
					}
				default:
					t.Errorf("status %d: %s", a.status, a.body)
				}
			}(i)
		}
		wg.Wait()
		elapsed := time.Since(start)
		t.Logf("24 requests in %v over 2 workers: %d allowed, %d limited (plan: 5/s)", elapsed, ok.Load(), limited.Load())
		if ok.Load() > 5 {
			t.Errorf("%d requests allowed, plan allows 5 per second", ok.Load())
		}
		if elapsed < time.Second && ok.Load() != 5 {
			t.Errorf("%d requests allowed within one second, want exactly 5", ok.Load())
		}
	})

	t.Run("revoke", func(t *testing.T) {
		waitWindow()
		for w := range p.workers {
			if a := p.call(w, host, "/echo/pre", acme.key); a.status != 200 {
				t.Fatalf("worker %d before revoke: %d", w, a.status)
			}
		}
		p.api("DELETE", "/v1/keys/"+acme.keyID, acme.token, nil, 204, nil)
		took := p.eventually(time.Second, "revoked key refused on both workers", func() bool {
			return p.call(0, host, "/echo/r", acme.key).status == 401 && p.call(1, host, "/echo/r", acme.key).status == 401
		})
		t.Logf("revocation reached both workers in %v", took)
	})

	// A second plan with room for the remaining phases.
	var bulk idOf
	p.api("POST", "/v1/plans", acme.token, map[string]any{"name": "Bulk",
		"rate_limit": map[string]any{"requests": 100000, "per_seconds": 1}, "api_ids": []string{acme.api}}, 201, &bulk)
	_, key := p.newKey(acme.token, acme.consumer, bulk.ID)
	p.eventually(5*time.Second, "new key works", func() bool { return p.call(0, host, "/echo/", key).status == 200 })

	t.Run("target down", func(t *testing.T) {
		backB.Close()
		took := p.eventually(5*time.Second, "health check takes b out", func() bool {
			for i := 0; i < 10; i++ {
				for w := range p.workers {
					if a := p.call(w, host, "/echo/down", key); a.status != 200 || a.backend != "a" {
						return false
					}
				}
			}
			return true
		})
		t.Logf("traffic served by a alone %v after b stopped", took)
		for i := 0; i < 20; i++ {
			if a := p.call(i%2, host, "/echo/after", key); a.status != 200 || a.backend != "a" {
				t.Fatalf("after ejection: status %d from %q: %s", a.status, a.backend, a.body)
			}
		}
	})

	t.Run("upstream change", func(t *testing.T) {
		backC := httptest.NewServer(demoBackend("c"))
		defer backC.Close()
		p.api("PATCH", "/v1/upstreams/"+acme.upstream, acme.token, map[string]any{
			"targets": []map[string]any{{"url": backC.URL, "weight": 1}}}, 200, nil)
		took := p.eventually(time.Second, "traffic follows the upstream change on both workers", func() bool {
			return p.call(0, host, "/echo/c", key).backend == "c" && p.call(1, host, "/echo/c", key).backend == "c"
		})
		t.Logf("upstream change reached both workers in %v", took)
		for i := 0; i < 10; i++ {
			if a := p.call(i%2, host, "/echo/c", key); a.status != 200 || a.backend != "c" {
				t.Fatalf("after change: status %d from %q", a.status, a.backend)
			}
		}
	})

	t.Run("readiness", func(t *testing.T) {
		for _, admin := range p.admins {
			for _, path := range []string{"/healthz", "/readyz"} {
				resp, err := p.client.Get("http://" + admin + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("%s%s: %d", admin, path, resp.StatusCode)
				}
			}
		}
	})
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// testLimits are the default per-tenant limits with health checks allowed
// every 100 ms, as the tests' upstreams probe (the default minimum is 1 s).
func testLimits() *limits.Limits {
	lim := limits.Defaults()
	lim.MinHealthIntervalMS = 100
	return &lim
}

// testDigestKey is the digest key of a test database's installation (a
// fresh one derives it from the secret), as the control plane resolves it.
func testDigestKey(t testing.TB, db *pgxpool.Pool, secret []byte) []byte {
	t.Helper()
	k, err := secrets.ControlDigestKey(context.Background(), db, secret, "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}
