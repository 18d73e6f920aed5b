package worker

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// throttleFixture publishes a tenant whose plans exercise every throttle.
func throttleFixture(t *testing.T, e *env, backendURL string) {
	t.Helper()
	snap := &proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: 1, Tenants: []proxycfg.Tenant{{
		ID: "t-acme", Slug: "acme",
		Upstreams: []proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin,
			Targets: []proxycfg.Target{{URL: backendURL, Weight: 1}}}},
		APIs: []proxycfg.API{
			{ID: "a", BasePath: "/a", UpstreamID: "u", Auth: proxycfg.AuthKey, StripBasePath: true},
			{ID: "ceil", BasePath: "/ceil", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true,
				RateLimit: proxycfg.RateLimit{Requests: 3, PerSeconds: 3600}},
		},
		Plans: []proxycfg.Plan{
			{ID: "p-quota", Quota: proxycfg.Quota{Requests: 3, Period: "day"}, APIIDs: []string{"a"}},
			{ID: "p-rate-quota", RateLimit: proxycfg.RateLimit{Requests: 2, PerSeconds: 3600},
				Quota: proxycfg.Quota{Requests: 10, Period: "month"}, APIIDs: []string{"a"}},
			{ID: "p-conc", Concurrency: 1, APIIDs: []string{"a"}},
			{ID: "p-consumer", RateLimit: proxycfg.RateLimit{Requests: 2, PerSeconds: 3600, Scope: proxycfg.ScopeConsumer},
				APIIDs: []string{"a"}},
			{ID: "p-open", RateLimit: proxycfg.RateLimit{Requests: 1000, PerSeconds: 3600}, APIIDs: []string{"a"}},
		},
	}}}
	testredis.Publish(t, e.rdb, e.keys, snap)
	for _, k := range []struct{ key, id, consumer, plan string }{
		{"quota", "k-quota", "c1", "p-quota"},
		{"rate-quota", "k-rq", "c1", "p-rate-quota"},
		{"conc", "k-conc", "c1", "p-conc"},
		{"cons-1", "k-c1", "c-shared", "p-consumer"},
		{"cons-2", "k-c2", "c-shared", "p-consumer"},
		{"open-1", "k-o1", "c1", "p-open"},
		{"open-2", "k-o2", "c1", "p-open"},
	} {
		testredis.PutKey(t, e.rdb, e.keys, secret, k.key,
			proxycfg.KeyRecord{ID: k.id, TenantID: "t-acme", ConsumerID: k.consumer, PlanID: k.plan, Status: proxycfg.KeyActive})
	}
}

// blockingBackend answers /block only once release is closed; entered
// receives a value when such a request arrived.
func blockingBackend(t *testing.T) (url string, entered chan struct{}, release chan struct{}) {
	entered, release = make(chan struct{}, 16), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered <- struct{}{}
			<-release
		}
		rw.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(rw, `{"backend":"b"}`)
	}))
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
		srv.Close()
	})
	return srv.URL, entered, release
}

func statuses(t *testing.T, r *running, path, k string, n int) []response {
	t.Helper()
	out := make([]response, n)
	for i := range out {
		out[i] = r.do(t, "acme.localhost", path, key(k))
	}
	return out
}

func TestThrottleAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url, entered, release := blockingBackend(t)
	throttleFixture(t, e, url)
	r := e.start(t, true)
	r.waitReady(t, 1)
	ctx := context.Background()

	t.Run("quota exceeded", func(t *testing.T) {
		rs := statuses(t, r, "/a/x", "quota", 5)
		for i, res := range rs[:3] {
			if res.status != 200 {
				t.Fatalf("request %d: %d %s", i, res.status, res.body)
			}
			if want := `"quota";r=` + strconv.Itoa(2-i); !strings.Contains(res.header.Get("RateLimit"), want) {
				t.Fatalf("request %d: RateLimit %q lacks %q", i, res.header.Get("RateLimit"), want)
			}
		}
		for _, res := range rs[3:] {
			wantProblem(t, res, problem.QuotaExceeded)
			if ra, _ := strconv.Atoi(res.header.Get("Retry-After")); ra < 1 || ra > 86400 {
				t.Fatalf("Retry-After %q", res.header.Get("Retry-After"))
			}
			if pol := res.header.Get("RateLimit-Policy"); pol != `"quota";q=3;w=86400` {
				t.Fatalf("RateLimit-Policy %q", pol)
			}
		}
	})

	t.Run("rate limited requests take no quota", func(t *testing.T) {
		rs := statuses(t, r, "/a/x", "rate-quota", 5)
		if rs[0].status != 200 || rs[1].status != 200 {
			t.Fatalf("first two: %d %d", rs[0].status, rs[1].status)
		}
		for _, res := range rs[2:] {
			wantProblem(t, res, problem.RateLimited)
		}
		if pol := rs[0].header.Get("RateLimit-Policy"); !strings.HasPrefix(pol, `"default";q=2;w=3600, "quota";q=10;w=`) {
			t.Fatalf("RateLimit-Policy %q", pol)
		}
		period, _, _ := proxycfg.QuotaPeriod("month", time.Now())
		if used, err := e.rdb.Get(ctx, e.keys.Quota("k-rq", period)).Int64(); err != nil || used != 2 {
			t.Fatalf("quota used %d (%v), want 2", used, err)
		}
	})

	t.Run("consumer scope shares the limit across keys", func(t *testing.T) {
		if a, b := r.do(t, "acme.localhost", "/a/x", key("cons-1")), r.do(t, "acme.localhost", "/a/x", key("cons-2")); a.status != 200 || b.status != 200 {
			t.Fatalf("%d %d", a.status, b.status)
		}
		wantProblem(t, r.do(t, "acme.localhost", "/a/x", key("cons-1")), problem.RateLimited)
		wantProblem(t, r.do(t, "acme.localhost", "/a/x", key("cons-2")), problem.RateLimited)
	})

	t.Run("api ceiling", func(t *testing.T) {
		for i := range 3 {
			if res := r.do(t, "acme.localhost", "/ceil/x", nil); res.status != 200 {
				t.Fatalf("request %d: %d", i, res.status)
			}
		}
		wantProblem(t, r.do(t, "acme.localhost", "/ceil/x", nil), problem.APIRateLimited)
	})

	t.Run("concurrency", func(t *testing.T) {
		done := make(chan response, 1)
		go func() { done <- r.do(t, "acme.localhost", "/a/block", key("conc")) }()
		<-entered
		wantProblem(t, r.do(t, "acme.localhost", "/a/x", key("conc")), problem.ConcurrencyLimited)
		// Another key is not affected.
		if res := r.do(t, "acme.localhost", "/a/x", key("open-1")); res.status != 200 {
			t.Fatalf("other key: %d", res.status)
		}
		close(release)
		if res := <-done; res.status != 200 {
			t.Fatalf("blocked request: %d", res.status)
		}
		// The slot comes back once the release reached Redis.
		eventually(t, func() bool { return r.do(t, "acme.localhost", "/a/x", key("conc")).status == 200 })
	})
}

// redisForwarder relays TCP connections to the test Redis until Close, which
// cuts every connection: Redis "goes away" for whoever dialled through it.
type redisForwarder struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	gate  sync.RWMutex // held for writing while stalled: nothing is relayed
}

func newRedisForwarder(t *testing.T) *redisForwarder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &redisForwarder{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", testredis.Addr())
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, up)
			f.mu.Unlock()
			go func() { f.relay(up, c); up.Close() }()
			go func() { f.relay(c, up); c.Close() }()
		}
	}()
	t.Cleanup(f.Close)
	return f
}

// relay copies src to dst, holding each chunk while the forwarder stalls.
func (f *redisForwarder) relay(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.gate.RLock()
			_, werr := dst.Write(buf[:n])
			f.gate.RUnlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Stall stops relaying until the returned function is called: Redis is
// there but does not answer.
func (f *redisForwarder) Stall() (resume func()) {
	f.gate.Lock()
	return f.gate.Unlock
}

func (f *redisForwarder) Close() {
	f.ln.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

func TestRedisGoesAway(t *testing.T) {
	t.Parallel()
	direct := newEnv(t)
	fwd := newRedisForwarder(t)
	rdb := redis.NewClient(&redis.Options{Addr: fwd.ln.Addr().String(), MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	e := &env{rdb: rdb, keys: direct.keys}
	url, _, _ := blockingBackend(t)
	throttleFixture(t, direct, url)
	r := e.startWith(t, nil) // the production Redis timeout: this test is about Redis failing
	r.waitReady(t, 1)

	// open-1 is looked up (and cached) while Redis is there.
	if res := r.do(t, "acme.localhost", "/a/x", key("open-1")); res.status != 200 {
		t.Fatalf("before: %d", res.status)
	}
	if r.w.Degraded() != 0 {
		t.Fatalf("degraded %d before the outage", r.w.Degraded())
	}
	fwd.Close()

	// The cached key keeps working, limited locally; each decision counts.
	for i := range 5 {
		if res := r.do(t, "acme.localhost", "/a/x", key("open-1")); res.status != 200 {
			t.Fatalf("cached key during outage, request %d: %d %s", i, res.status, res.body)
		}
	}
	if got := r.w.Degraded(); got < 5 {
		t.Fatalf("degraded counter %d, want at least 5", got)
	}
	// A key never seen cannot be checked: 503, not 401.
	wantProblem(t, r.do(t, "acme.localhost", "/a/x", key("open-2")), problem.Unavailable)

	// The counter is exposed as a metric.
	resp, err := http.Get("http://" + r.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "tollgate_ratelimit_degraded_total") {
		t.Fatal("metrics lack tollgate_ratelimit_degraded_total")
	}
	// Usage cannot be shipped now; it stays queued (see proxy/meter).
	if err := r.w.FlushUsage(context.Background()); err == nil {
		t.Fatal("usage flush succeeded without Redis")
	}
}

// BenchmarkMetering drives the whole traffic handler (key auth, leased rate
// limit, balancing, forwarding to a loopback backend) with usage metering
// off and on: the difference is the hot-path cost of metering.
func BenchmarkMetering(b *testing.B) {
	rdb, keys := testredis.New(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	backendSrv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(`{"ok":true}`) }}
	go func() { _ = backendSrv.Serve(ln) }()
	b.Cleanup(func() { _ = backendSrv.Shutdown() })
	testredis.Publish(b, rdb, keys, &proxycfg.Snapshot{Schema: 1, Generation: 1, Tenants: []proxycfg.Tenant{{
		ID: "t", Slug: "acme",
		Upstreams: []proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin,
			Targets: []proxycfg.Target{{URL: "http://" + ln.Addr().String(), Weight: 1}}}},
		APIs: []proxycfg.API{{ID: "a", BasePath: "/v1", UpstreamID: "u", Auth: proxycfg.AuthKey, StripBasePath: true}},
		Plans: []proxycfg.Plan{{ID: "p", RateLimit: proxycfg.RateLimit{Requests: 1 << 40, PerSeconds: 1},
			Quota: proxycfg.Quota{Requests: 1 << 40, Period: "month"}, APIIDs: []string{"a"}}},
	}}})
	testredis.PutKey(b, rdb, keys, secret, "bench-key", proxycfg.KeyRecord{ID: "k", TenantID: "t", PlanID: "p", Status: proxycfg.KeyActive})
	for _, metering := range []bool{false, true} {
		w, err := New(Options{Redis: rdb, Keys: keys, Secret: secret, AllowPrivateUpstreams: true,
			Logger: slog.New(slog.DiscardHandler), DisableMetering: !metering, ShutdownTimeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		tl, _ := net.Listen("tcp", "127.0.0.1:0")
		al, _ := net.Listen("tcp", "127.0.0.1:0")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = w.Serve(ctx, tl, al) }()
		eventually(b, func() bool { return w.Ready() && w.keys.Subscribed() })
		b.Run("metering="+strconv.FormatBool(metering), func(b *testing.B) {
			remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 50000}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var req fasthttp.Request
				var rc fasthttp.RequestCtx
				rc.Init(&req, remote, nil)
				for pb.Next() {
					rc.Request.Reset()
					rc.Response.Reset()
					rc.Request.SetRequestURI("/v1/items/42")
					rc.Request.Header.SetHost("acme.localhost")
					rc.Request.Header.Set("X-API-Key", "bench-key")
					w.HandleFastHTTP(&rc)
					if rc.Response.StatusCode() != 200 {
						b.Fatalf("status %d: %s", rc.Response.StatusCode(), rc.Response.Body())
					}
				}
			})
		})
		cancel()
		<-done
	}
}

func TestRedisStalls(t *testing.T) {
	t.Parallel()
	direct := newEnv(t)
	fwd := newRedisForwarder(t)
	rdb := redis.NewClient(&redis.Options{Addr: fwd.ln.Addr().String(), MaxRetries: -1,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	t.Cleanup(func() { rdb.Close() })
	e := &env{rdb: rdb, keys: direct.keys}
	url, _, _ := blockingBackend(t)
	throttleFixture(t, direct, url)
	r := e.startWith(t, nil) // the production Redis timeout: this test is about Redis stalling
	r.waitReady(t, 1)
	if res := r.do(t, "acme.localhost", "/a/x", key("open-1")); res.status != 200 {
		t.Fatalf("before: %d", res.status)
	}
	resume := fwd.Stall()
	defer resume()
	// The limiter gives Redis 100 ms, then decides locally for a second:
	// requests of a cached key keep flowing.
	start := time.Now()
	for i := range 5 {
		if res := r.do(t, "acme.localhost", "/a/x", key("open-1")); res.status != 200 {
			t.Fatalf("request %d while Redis stalls: %d %s", i, res.status, res.body)
		}
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Fatalf("5 requests took %v while Redis stalled", took)
	}
	if r.w.Degraded() == 0 {
		t.Fatal("no degraded decision counted")
	}
}
