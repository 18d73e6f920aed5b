// Command faults measures how the Tollgate proxy worker behaves under load
// when things change or break, against real `tollgate proxy` processes:
//
//   - the share of requests each target gets under every balancing algorithm;
//   - failed requests while the config changes under load (targets added
//     and removed every 200ms);
//   - failed requests when a worker gets SIGTERM under load, with a client
//     that moves to the other worker once /readyz says 503 (as a load
//     balancer does);
//   - failed requests when a target is killed under load, before passive
//     health ejects it (with and without retries).
//
// It publishes snapshots straight to Redis (the proxycfg contract), so it
// needs no control plane. Run it through bench/faults.sh.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

var (
	binary      = flag.String("tollgate", "./tollgate", "path of the tollgate binary")
	redisAddr   = flag.String("redis", "127.0.0.1:6379", "Redis address")
	redisDB     = flag.Int("redis-db", 14, "Redis database")
	portBase    = flag.Int("port-base", 19300, "first loopback port used")
	conns       = flag.Int("connections", 32, "client connections")
	loadFor     = flag.Duration("duration", 6*time.Second, "load duration of each fault scenario")
	sharePicks  = flag.Int("share-requests", 20000, "requests per algorithm for the share table")
	secret      = "faults-bench-secret-0123456789"
	apiKey      = "faults-bench-key"
	redisPrefix = "tollgate-faults:"
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("faults: ")
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

type bench struct {
	rdb      *redis.Client
	keys     proxycfg.Keys
	gen      int64
	backends []*backend
}

func run() error {
	ctx := context.Background()
	b := &bench{
		rdb:  redis.NewClient(&redis.Options{Addr: *redisAddr, DB: *redisDB}),
		keys: proxycfg.Keys{Prefix: redisPrefix},
	}
	defer b.rdb.Close()
	if err := b.cleanRedis(ctx); err != nil {
		return err
	}
	defer b.cleanRedis(ctx)
	rec, _ := json.Marshal(proxycfg.KeyRecord{ID: "k1", TenantID: "t1", ConsumerID: "c1", PlanID: "p1", Status: proxycfg.KeyActive})
	if err := b.rdb.Set(ctx, b.keys.Key(proxycfg.Digest([]byte(secret), apiKey)), rec, 0).Err(); err != nil {
		return fmt.Errorf("put key: %w", err)
	}
	for i := range 3 {
		be, err := startBackend(fmt.Sprintf("b%d", i+1), *portBase+10+i)
		if err != nil {
			return err
		}
		defer be.stop()
		b.backends = append(b.backends, be)
	}
	// The third backend is slower (least_conn should send it less).
	b.backends[2].delay.Store(int64(2 * time.Millisecond))

	w1, err := startWorker(*portBase+1, *portBase+2, "1")
	if err != nil {
		return err
	}
	defer w1.kill()
	w2, err := startWorker(*portBase+3, *portBase+4, "2")
	if err != nil {
		return err
	}
	defer w2.kill()

	fmt.Printf("Tollgate fault bench, %s, %d client connections, %s per scenario, all on loopback\n",
		time.Now().UTC().Format(time.RFC3339), *conns, *loadFor)
	fmt.Printf("proxy: key auth + rate limit (never triggered) on every request\n\n")
	if err := b.shares(ctx, w1); err != nil {
		return err
	}
	if err := b.configChange(ctx, w1); err != nil {
		return err
	}
	if err := b.targetKill(ctx, w1, false); err != nil {
		return err
	}
	if err := b.targetKill(ctx, w1, true); err != nil {
		return err
	}
	if err := b.sigterm(ctx, w1, w2); err != nil {
		return err
	}
	return nil
}

func (b *bench) cleanRedis(ctx context.Context) error {
	iter := b.rdb.Scan(ctx, 0, redisPrefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		b.rdb.Del(ctx, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("clean redis: %w", err)
	}
	return nil
}

// publish stores a snapshot with one tenant "acme", one upstream and one
// key-auth API at "/", and announces it.
func (b *bench) publish(ctx context.Context, up proxycfg.Upstream) (int64, error) {
	b.gen++
	up.ID = "u1"
	snap := proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: b.gen, CompiledAt: time.Now().UTC(),
		Tenants: []proxycfg.Tenant{{ID: "t1", Slug: "acme", Upstreams: []proxycfg.Upstream{up},
			APIs: []proxycfg.API{{ID: "a1", Slug: "api", Name: "API", BasePath: "/", UpstreamID: "u1", Auth: proxycfg.AuthKey}},
			Plans: []proxycfg.Plan{{ID: "p1", Name: "bench", RateLimit: proxycfg.RateLimit{Requests: 1 << 40, PerSeconds: 1},
				APIIDs: []string{"a1"}}}}}}
	if err := snap.Validate(); err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	raw, _ := json.Marshal(snap)
	if err := b.rdb.Set(ctx, b.keys.Snapshot(b.gen), raw, time.Hour).Err(); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	if err := b.rdb.Set(ctx, b.keys.Current(), b.gen, 0).Err(); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	if err := b.rdb.Publish(ctx, b.keys.ConfigChannel(), b.gen).Err(); err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	return b.gen, nil
}

func (b *bench) targets(idx ...int) []proxycfg.Target {
	var out []proxycfg.Target
	for _, i := range idx {
		out = append(out, proxycfg.Target{URL: b.backends[i].url, Weight: 1})
	}
	return out
}

// --- backends ----------------------------------------------------------------

type backend struct {
	name  string
	url   string
	ln    net.Listener
	srv   *fasthttp.Server
	delay atomic.Int64
	hits  atomic.Int64
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

type trackingListener struct {
	net.Listener
	b *backend
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.b.mu.Lock()
		l.b.conns[c] = struct{}{}
		l.b.mu.Unlock()
	}
	return c, err
}

func startBackend(name string, port int) (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", name, err)
	}
	b := &backend{name: name, url: "http://" + ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	body := []byte(`{"backend":"` + name + `"}`)
	b.srv = &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		b.hits.Add(1)
		if d := b.delay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		ctx.Response.Header.Set("X-Backend", name)
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}}
	go func() { _ = b.srv.Serve(trackingListener{ln, b}) }()
	return b, nil
}

// crash closes the listener and every connection, like a killed process.
func (b *backend) crash() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
}

func (b *backend) stop() { _ = b.srv.Shutdown() }

// --- workers ---------------------------------------------------------------

type worker struct {
	cmd     *exec.Cmd
	traffic string
	admin   string
	exited  chan error
}

func startWorker(trafficPort, adminPort int, name string) (*worker, error) {
	w := &worker{traffic: "127.0.0.1:" + strconv.Itoa(trafficPort), admin: "127.0.0.1:" + strconv.Itoa(adminPort), exited: make(chan error, 1)}
	// A fresh disk cache per run: a cache of an earlier run would be served
	// until Redis answers.
	cache := filepath.Join(os.TempDir(), "tollgate-faults-"+name+".json")
	_ = os.Remove(cache)
	w.cmd = exec.Command(*binary, "proxy")
	w.cmd.Env = append(os.Environ(),
		"TOLLGATE_REDIS_URL=redis://"+*redisAddr+"/"+strconv.Itoa(*redisDB),
		"TOLLGATE_REDIS_PREFIX="+redisPrefix,
		"TOLLGATE_SECRET="+secret,
		"TOLLGATE_PROXY_ADDR="+w.traffic,
		"TOLLGATE_PROXY_ADMIN_ADDR="+w.admin,
		"TOLLGATE_UPSTREAM_ALLOW_PRIVATE=true",
		"TOLLGATE_LOG_LEVEL=warn",
		"TOLLGATE_PROXY_DRAIN_DELAY=1s",
		"TOLLGATE_PROXY_SNAPSHOT_FILE="+cache,
	)
	w.cmd.Stderr = os.Stderr
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	go func() { w.exited <- w.cmd.Wait() }()
	return w, nil
}

func (w *worker) kill() {
	if w.cmd.ProcessState == nil {
		_ = w.cmd.Process.Kill()
	}
}

// readyGen returns the generation /readyz reports, 0 when not ready.
func (w *worker) readyGen() int64 {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + w.admin + "/readyz")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0
	}
	var gen int64
	_, _ = fmt.Fscanf(resp.Body, "ready generation=%d", &gen)
	return gen
}

func (w *worker) waitGen(gen int64) error {
	deadline := time.Now().Add(15 * time.Second)
	for w.readyGen() < gen {
		if time.Now().After(deadline) {
			return fmt.Errorf("worker %s not ready at generation %d", w.traffic, gen)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// --- load ------------------------------------------------------------------

type result struct {
	ok, failed, non2xx, connErr int64
	byBackend                   map[string]int64
	errSamples                  []string
}

// load sends GET requests over conns connections until stop is closed (or n
// requests were sent when n > 0). pick chooses the worker address per
// request; header sets extra headers.
func load(n int, stop <-chan struct{}, pick func() string, header func(i int, req *fasthttp.Request)) result {
	clients := map[string]*fasthttp.HostClient{}
	var mu sync.Mutex
	client := func(addr string) *fasthttp.HostClient {
		mu.Lock()
		defer mu.Unlock()
		c := clients[addr]
		if c == nil {
			c = &fasthttp.HostClient{Addr: addr, MaxConns: *conns * 2, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
			clients[addr] = c
		}
		return c
	}
	var seq atomic.Int64
	var res result
	res.byBackend = map[string]int64{}
	var wg sync.WaitGroup
	for range *conns {
		wg.Go(func() {
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			local := map[string]int64{}
			var ok, failed, non2xx, connErr int64
			var samples []string
			for {
				i := int(seq.Add(1))
				if n > 0 && i > n {
					break
				}
				if stop != nil {
					select {
					case <-stop:
						goto done
					default:
					}
				}
				addr := pick()
				req.Reset()
				resp.Reset()
				req.SetRequestURI("http://acme.localhost/items/42")
				req.Header.Set("X-API-Key", apiKey)
				if header != nil {
					header(i, req)
				}
				err := client(addr).Do(req, resp)
				switch {
				case err != nil:
					failed++
					connErr++
					if len(samples) < 3 {
						samples = append(samples, err.Error())
					}
				case resp.StatusCode() != 200:
					failed++
					non2xx++
					if len(samples) < 3 {
						samples = append(samples, fmt.Sprintf("status %d: %s", resp.StatusCode(), resp.Body()))
					}
				default:
					ok++
					local[string(resp.Header.Peek("X-Backend"))]++
				}
			}
		done:
			mu.Lock()
			res.ok += ok
			res.failed += failed
			res.non2xx += non2xx
			res.connErr += connErr
			res.errSamples = append(res.errSamples, samples...)
			for k, v := range local {
				res.byBackend[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return res
}

func (r result) summary() string {
	s := fmt.Sprintf("%d requests, %d ok, %d failed (%d non-200, %d transport errors)",
		r.ok+r.failed, r.ok, r.failed, r.non2xx, r.connErr)
	if len(r.errSamples) > 0 {
		s += fmt.Sprintf("; e.g. %q", r.errSamples[0])
	}
	return s
}

// --- scenarios -------------------------------------------------------------

func (b *bench) shares(ctx context.Context, w *worker) error {
	fmt.Println("== share of requests per target, by algorithm")
	fmt.Printf("   b1, b2, b3 on loopback; b3 answers 2ms slower; weighted is 5:3:2; consistent_hash keys on X-User (1000 users)\n")
	fmt.Printf("%-16s %8s %8s %8s %8s\n", "algorithm", "b1", "b2", "b3", "failed")
	cases := []struct {
		alg     string
		weights []int
		hashOn  *proxycfg.HashOn
		header  func(i int, req *fasthttp.Request)
	}{
		{alg: proxycfg.AlgorithmRoundRobin, weights: []int{1, 1, 1}},
		{alg: proxycfg.AlgorithmWeighted, weights: []int{5, 3, 2}},
		{alg: proxycfg.AlgorithmRandom, weights: []int{1, 1, 1}},
		{alg: proxycfg.AlgorithmLeastConn, weights: []int{1, 1, 1}},
		{alg: proxycfg.AlgorithmConsistentHash, weights: []int{1, 1, 1},
			hashOn: &proxycfg.HashOn{Source: proxycfg.HashOnHeader, Name: "X-User"},
			header: func(i int, req *fasthttp.Request) { req.Header.Set("X-User", "user-"+strconv.Itoa(i%1000)) }},
		{alg: "hash, 1 hot key", weights: []int{1, 1, 1},
			hashOn: &proxycfg.HashOn{Source: proxycfg.HashOnHeader, Name: "X-User", BoundedLoad: 1.25},
			header: func(i int, req *fasthttp.Request) { req.Header.Set("X-User", "hot-user") }},
	}
	for _, c := range cases {
		ts := b.targets(0, 1, 2)
		for i := range ts {
			ts[i].Weight = c.weights[i]
		}
		alg := c.alg
		if c.hashOn != nil {
			alg = proxycfg.AlgorithmConsistentHash
		}
		gen, err := b.publish(ctx, proxycfg.Upstream{Algorithm: alg, Targets: ts, HashOn: c.hashOn})
		if err != nil {
			return err
		}
		if err := w.waitGen(gen); err != nil {
			return err
		}
		res := load(*sharePicks, nil, func() string { return w.traffic }, c.header)
		total := float64(res.ok)
		fmt.Printf("%-16s %7.1f%% %7.1f%% %7.1f%% %8d\n", c.alg,
			100*float64(res.byBackend["b1"])/total, 100*float64(res.byBackend["b2"])/total,
			100*float64(res.byBackend["b3"])/total, res.failed)
	}
	fmt.Println()
	return nil
}

func (b *bench) configChange(ctx context.Context, w *worker) error {
	gen, err := b.publish(ctx, proxycfg.Upstream{Algorithm: proxycfg.AlgorithmRoundRobin, Targets: b.targets(0, 1)})
	if err != nil {
		return err
	}
	if err := w.waitGen(gen); err != nil {
		return err
	}
	stop := make(chan struct{})
	var changes int
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		end := time.After(*loadFor)
		for i := 0; ; i++ {
			select {
			case <-end:
				close(stop)
				done <- nil
				return
			case <-tick.C:
			}
			// Alternate {b1,b2} and {b2,b3}: a target leaves and another
			// joins with every change; the algorithm changes too.
			up := proxycfg.Upstream{Algorithm: proxycfg.AlgorithmWeighted, Targets: b.targets(1, 2)}
			if i%2 == 1 {
				up = proxycfg.Upstream{Algorithm: proxycfg.AlgorithmLeastConn, Targets: b.targets(0, 1)}
			}
			if _, err := b.publish(ctx, up); err != nil {
				close(stop)
				done <- err
				return
			}
			changes++
		}
	}()
	res := load(0, stop, func() string { return w.traffic }, nil)
	if err := <-done; err != nil {
		return err
	}
	fmt.Println("== config change under load")
	fmt.Printf("   %d config generations published (every 200ms, each removes one target and adds another)\n", changes)
	fmt.Printf("   %s\n\n", res.summary())
	return nil
}

func (b *bench) targetKill(ctx context.Context, w *worker, retries bool) error {
	// Fresh backends so that a killed one does not affect later scenarios.
	var bes []*backend
	for i := range 3 {
		be, err := startBackend(fmt.Sprintf("k%d", i+1), 0)
		if err != nil {
			return err
		}
		defer be.stop()
		bes = append(bes, be)
	}
	up := proxycfg.Upstream{Algorithm: proxycfg.AlgorithmRoundRobin,
		Targets: []proxycfg.Target{{URL: bes[0].url, Weight: 1}, {URL: bes[1].url, Weight: 1}, {URL: bes[2].url, Weight: 1}},
		Outlier: proxycfg.Outlier{Consecutive5xx: 5, ConsecutiveErrors: 3, BaseEjectionMS: 30000}}
	if retries {
		up.Retry = proxycfg.Retry{Attempts: 2, BudgetPercent: 20}
	}
	gen, err := b.publish(ctx, up)
	if err != nil {
		return err
	}
	if err := w.waitGen(gen); err != nil {
		return err
	}
	stop := make(chan struct{})
	go func() {
		time.Sleep(*loadFor / 3)
		bes[1].crash()
		time.Sleep(*loadFor * 2 / 3)
		close(stop)
	}()
	res := load(0, stop, func() string { return w.traffic }, nil)
	mode := "without retries"
	if retries {
		mode = "with retries (2 attempts, 20% budget)"
	}
	fmt.Printf("== target killed under load, %s\n", mode)
	fmt.Printf("   3 targets, round robin, outlier: 3 consecutive connect errors eject; k2 killed (listener and connections closed) at %s\n", *loadFor/3)
	fmt.Printf("   %s\n", res.summary())
	fmt.Printf("   served: k1 %d, k2 %d, k3 %d\n\n", res.byBackend["k1"], res.byBackend["k2"], res.byBackend["k3"])
	return nil
}

func (b *bench) sigterm(ctx context.Context, w1, w2 *worker) error {
	gen, err := b.publish(ctx, proxycfg.Upstream{Algorithm: proxycfg.AlgorithmRoundRobin, Targets: b.targets(0, 1)})
	if err != nil {
		return err
	}
	if err := w1.waitGen(gen); err != nil {
		return err
	}
	if err := w2.waitGen(gen); err != nil {
		return err
	}
	// The client plays a load balancer: it sends to worker 1 while its
	// /readyz says ready (checked every 100ms), then to worker 2.
	var useW2 atomic.Bool
	stop := make(chan struct{})
	var sentAt time.Time
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if !useW2.Load() && w1.readyGen() == 0 {
					useW2.Store(true)
				}
			}
		}
	}()
	var exitErr error
	var exitedAfter time.Duration
	go func() {
		time.Sleep(*loadFor / 3)
		sentAt = time.Now()
		_ = w1.cmd.Process.Signal(syscall.SIGTERM)
		exitErr = <-w1.exited
		exitedAfter = time.Since(sentAt)
		time.Sleep(*loadFor / 3)
		close(stop)
	}()
	res := load(0, stop, func() string {
		if useW2.Load() {
			return w2.traffic
		}
		return w1.traffic
	}, nil)
	fmt.Println("== SIGTERM to a worker under load")
	fmt.Println("   worker 1 gets SIGTERM; /readyz turns 503 at once, it keeps accepting for TOLLGATE_PROXY_DRAIN_DELAY=1s, then")
	fmt.Println("   closes its listener, finishes in-flight requests and exits; the client moves to worker 2 on /readyz (100ms checks)")
	status := "0"
	if exitErr != nil {
		var ee *exec.ExitError
		if errors.As(exitErr, &ee) {
			status = strconv.Itoa(ee.ExitCode())
		} else {
			status = exitErr.Error()
		}
	}
	fmt.Printf("   worker 1 exited %s after SIGTERM (exit status %s)\n", exitedAfter.Round(time.Millisecond), status)
	fmt.Printf("   %s\n\n", res.summary())
	return nil
}
