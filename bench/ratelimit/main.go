// Command ratelimit measures Tollgate's distributed rate limiter against a
// naive one-Redis-call-per-request limiter and local-only limiting, and the
// proxy's throughput with metering on and off.
//
//	go run ./bench/ratelimit [-limit 2000] [-window 1s] [-duration 3s] [-workers 1,2,4,8] [-proxy]
//
// Limiter part: N limiter instances (stand-ins for N workers, in this
// process) share one Redis and one subject; closed-loop goroutines drive
// them with skewed load (worker 0 gets 60% of the goroutines, the others
// share the rest). For each limiter it prints the most requests admitted in
// any sliding window (by admission time) divided by the limit (above 1.00 is
// overshoot), the mean admitted per window over the run divided by the limit
// (below 1.00 is under-admission), Redis commands per decision (counted by
// a go-redis hook) and decisions per second.
//
// Proxy part (-proxy): a real worker (key auth, rate limit, balancing on)
// in front of an in-process backend, loaded by wrk (if on PATH, else an
// in-process client) with metering on and off, and with the per-request
// limiter instead of leases.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/configsync/seed"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/ratelimit"
	"github.com/tollgate/tollgate/proxy/worker"
)

func main() {
	var (
		addr         = flag.String("redis", "127.0.0.1:6379", "Redis address")
		limit        = flag.Int64("limit", 2000, "requests allowed per window")
		window       = flag.Duration("window", time.Second, "window (whole seconds)")
		duration     = flag.Duration("duration", 3*time.Second, "run time of each limiter scenario")
		workersF     = flag.String("workers", "1,2,4,8", "limiter instance counts")
		conc         = flag.Int("goroutines", 20, "closed-loop goroutines in total")
		proxy        = flag.Bool("proxy", true, "also measure proxy RPS with metering on and off")
		proxyDur     = flag.Duration("proxy-duration", 5*time.Second, "wrk duration per proxy run")
		kindsF       = flag.String("limiters", "leased,naive,local", "limiters to measure")
		limiterBench = flag.Bool("limiter", true, "measure the limiters")
		offered      = flag.Float64("offered", 1.5, "open-loop offered load as a multiple of the limit")
	)
	flag.DurationVar(&leaseTarget, "lease-target", 0, "lease target of the leased limiter (0: default)")
	flag.DurationVar(&leaseTTL, "lease-ttl", 0, "lease TTL of the leased limiter (0: default)")
	flag.Parse()
	if *window%time.Second != 0 || *window <= 0 {
		log.Fatal("-window must be whole seconds")
	}
	var counter atomic.Int64
	rdb := redis.NewClient(&redis.Options{Addr: *addr, PoolSize: 64})
	rdb.AddHook(countHook{&counter})
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		log.Fatalf("redis: %v", err)
	}
	var ns []int
	for _, s := range strings.Split(*workersF, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			log.Fatalf("bad -workers %q", *workersF)
		}
		ns = append(ns, n)
	}
	rl := proxycfg.RateLimit{Requests: *limit, PerSeconds: int64(*window / time.Second)}
	if !*limiterBench {
		ns = nil
	}
	for _, mode := range []struct {
		title   string
		offered float64
	}{
		{fmt.Sprintf("open loop: %.1f x the limit offered, worker 0 gets 60%% of it, the others share 40%%", *offered), *offered},
		{fmt.Sprintf("closed loop: %d goroutines as fast as they can, worker 0 runs 60%% of them", *conc), 0},
	} {
		if len(ns) == 0 {
			break
		}
		fmt.Printf("limit %d per %v, %v per scenario; %s\n", rl.Requests, *window, *duration, mode.title)
		fmt.Printf("%-8s %-3s %14s %14s %14s %12s\n", "limiter", "N", "max/limit", "mean/limit", "redis cmd/req", "decisions/s")
		for _, n := range ns {
			for _, kind := range strings.Split(*kindsF, ",") {
				res := runLimiter(rdb, &counter, kind, n, rl, *window, *duration, *conc, mode.offered)
				fmt.Printf("%-8s %-3d %14.3f %14.3f %14.4f %12.0f\n", kind, n, res.maxRatio, res.meanRatio, res.cmdsPerReq, res.perSec)
			}
		}
		fmt.Println()
	}
	if *proxy {
		fmt.Println()
		runProxy(rdb, *proxyDur)
	}
}

// Settings of the leased limiter (flags).
var leaseTarget, leaseTTL time.Duration

// countHook counts every command sent to Redis (a pipeline counts each).
type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// naiveScript is the exact per-request limiter: one sliding-log script
// call for every request.
var naiveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - tonumber(ARGV[2])))
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000) + 1000)
  return 1
end
return 0
`)

type naive struct {
	rdb  redis.UniversalClient
	key  string
	seq  atomic.Int64
	name string
}

func (n *naive) Allow(ctx context.Context, _ string, rl proxycfg.RateLimit, _ time.Time) (ratelimit.Decision, error) {
	ok, err := naiveScript.Run(ctx, n.rdb, []string{n.key}, rl.Requests, rl.PerSeconds*1_000_000,
		n.name+"-"+strconv.FormatInt(n.seq.Add(1), 36)).Int()
	return ratelimit.Decision{Allowed: ok == 1}, err
}

// localShare enforces limit/N in-process.
type localShare struct {
	l *ratelimit.Local
	n int64
}

func (s localShare) Allow(ctx context.Context, sub string, rl proxycfg.RateLimit, now time.Time) (ratelimit.Decision, error) {
	rl.Requests = max(rl.Requests/s.n, 1)
	return s.l.Allow(ctx, sub, rl, now)
}

type result struct {
	maxRatio, meanRatio, cmdsPerReq, perSec float64
}

func runLimiter(rdb *redis.Client, counter *atomic.Int64, kind string, n int, rl proxycfg.RateLimit,
	window, duration time.Duration, goroutines int, offered float64) result {
	prefix := "bench-rl:" + randHex(4) + ":"
	keys := proxycfg.Keys{Prefix: prefix}
	defer clear(rdb, prefix)
	limiters := make([]ratelimit.Limiter, n)
	for i := range limiters {
		switch kind {
		case "leased":
			limiters[i] = ratelimit.New(ratelimit.Options{Redis: rdb, Keys: keys, Timeout: time.Second,
				LeaseTarget: leaseTarget, LeaseTTL: leaseTTL})
		case "naive":
			limiters[i] = &naive{rdb: rdb, key: keys.RateLimit("hot"), name: "w" + strconv.Itoa(i)}
		case "local":
			limiters[i] = localShare{l: ratelimit.NewLocal(), n: int64(n)}
		}
	}
	// Skew: worker 0 gets 60% of the goroutines, the others share 40%.
	share := make([]int, n)
	if n == 1 {
		share[0] = goroutines
	} else {
		share[0] = goroutines * 6 / 10
		rest := goroutines - share[0]
		for i := 1; i < n; i++ {
			share[i] = max(rest/(n-1), 1)
		}
	}
	var mu sync.Mutex
	var admitted []int64 // admission times, ns since start
	var decisions atomic.Int64
	start := time.Now()
	c0 := counter.Load()
	ctx := context.Background()
	var wg sync.WaitGroup
	decide := func(l ratelimit.Limiter, mine *[]int64) {
		d, err := l.Allow(ctx, "hot", rl, time.Now())
		if err != nil {
			log.Fatalf("%s: %v", kind, err)
		}
		decisions.Add(1)
		if d.Allowed {
			*mine = append(*mine, int64(time.Since(start)))
		}
	}
	if offered > 0 {
		// Open loop: worker i is offered rate[i] requests per second, sent
		// by 4 pacers (so that a Redis round trip does not stall it).
		total := offered * float64(rl.Requests) / window.Seconds()
		for i, l := range limiters {
			rate := total
			if n > 1 {
				rate = total * 0.4 / float64(n-1)
				if i == 0 {
					rate = total * 0.6
				}
			}
			for range 4 {
				wg.Go(func() {
					var mine []int64
					sent := 0
					for el := time.Since(start); el < duration; el = time.Since(start) {
						for due := int(rate / 4 * el.Seconds()); sent < due; sent++ {
							decide(l, &mine)
						}
						time.Sleep(500 * time.Microsecond)
					}
					mu.Lock()
					admitted = append(admitted, mine...)
					mu.Unlock()
				})
			}
		}
	}
	for i, l := range limiters {
		if offered > 0 {
			break
		}
		for range share[i] {
			wg.Go(func() {
				var mine []int64
				for time.Since(start) < duration {
					decide(l, &mine)
				}
				mu.Lock()
				admitted = append(admitted, mine...)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	cmds := counter.Load() - c0
	slices.Sort(admitted)
	// The most admissions in any window [t, t+window).
	best, j := 0, 0
	for i := range admitted {
		for admitted[i]-admitted[j] >= int64(window) {
			j++
		}
		best = max(best, i-j+1)
	}
	windows := float64(elapsed) / float64(window)
	return result{
		maxRatio:   float64(best) / float64(rl.Requests),
		meanRatio:  float64(len(admitted)) / windows / float64(rl.Requests),
		cmdsPerReq: float64(cmds) / float64(decisions.Load()),
		perSec:     float64(decisions.Load()) / elapsed.Seconds(),
	}
}

func runProxy(rdb *redis.Client, d time.Duration) {
	backendLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		_ = fasthttp.Serve(backendLn, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") })
	}()
	defer backendLn.Close()
	_, wrkErr := exec.LookPath("wrk")
	tool := "wrk -t2 -c64"
	if wrkErr != nil {
		tool = "in-process client, 64 connections"
	}
	fmt.Printf("proxy: key auth + rate limit (1e8/s plan) + balancing, backend in-process, load by %s, %v each\n", tool, d)
	fmt.Printf("%-34s %12s %16s\n", "worker", "requests/s", "redis cmd/req")
	for _, sc := range []struct {
		name  string
		meter bool
		lease time.Duration
	}{
		{"leased limiter, metering off", false, 0},
		{"leased limiter, metering on", true, 0},
		{"per-request limiter, metering on", true, -1},
		{"leased limiter, metering on", true, 0},
		{"leased limiter, metering off", false, 0},
	} {
		// A-B-C-B-A order, so that drift of a shared machine shows.
		rps, cmds := proxyRun(rdb, backendLn.Addr().String(), sc.meter, sc.lease, d, wrkErr == nil)
		fmt.Printf("%-34s %12.0f %16.4f\n", sc.name, rps, cmds)
	}
}

func proxyRun(rdb *redis.Client, backend string, metering bool, lease, d time.Duration, useWrk bool) (rps, cmdsPerReq float64) {
	prefix := "bench-proxy:" + randHex(4) + ":"
	keys := proxycfg.Keys{Prefix: prefix}
	defer clear(rdb, prefix)
	secret := []byte("bench-secret")
	snap := proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: 1, CompiledAt: time.Now(), Tenants: []proxycfg.Tenant{{
		ID: "00000000-0000-4000-8000-000000000001", Slug: "bench",
		Upstreams: []proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin,
			Targets: []proxycfg.Target{{URL: "http://" + backend, Weight: 1}}}},
		APIs: []proxycfg.API{{ID: "a", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthKey, StripBasePath: true}},
		Plans: []proxycfg.Plan{{ID: "p", RateLimit: proxycfg.RateLimit{Requests: 100_000_000, PerSeconds: 1},
			APIIDs: []string{"a"}}},
	}}}
	rec, _ := json.Marshal(proxycfg.KeyRecord{ID: "k", TenantID: snap.Tenants[0].ID, ConsumerID: "c", PlanID: "p", Status: proxycfg.KeyActive})
	ctx := context.Background()
	if _, err := seed.Snapshot(ctx, rdb, keys, &snap); err != nil {
		log.Fatal(err)
	}
	rdb.Set(ctx, keys.Key(proxycfg.Digest(secret, "bench-key")), rec, 0)

	var counter atomic.Int64
	wrdb := redis.NewClient(&redis.Options{Addr: rdb.Options().Addr, PoolSize: 64})
	wrdb.AddHook(countHook{&counter})
	defer wrdb.Close()
	w, err := worker.New(worker.Options{Redis: wrdb, Keys: keys, Secret: secret, Domain: "localhost",
		AllowPrivateUpstreams: true, Logger: slog.New(slog.DiscardHandler), DisableMetering: !metering,
		RateLimitLeaseTarget: lease, ShutdownTimeout: time.Second})
	if err != nil {
		log.Fatal(err)
	}
	traffic, _ := net.Listen("tcp", "127.0.0.1:0")
	admin, _ := net.Listen("tcp", "127.0.0.1:0")
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Serve(wctx, traffic, admin) }()
	defer func() { cancel(); <-done }()
	for !w.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	url := "http://" + traffic.Addr().String() + "/x"
	// Warm up (fills the key cache and the lease rate estimate).
	_, _ = load(url, time.Second, useWrk)
	c0 := counter.Load()
	n, secs := load(url, d, useWrk)
	cmds := counter.Load() - c0
	return float64(n) / secs, float64(cmds) / float64(max(n, 1))
}

var wrkReqs = regexp.MustCompile(`(\d+) requests in ([\d.]+)(m?s)`)

// load drives url for d and returns the requests completed and the seconds.
func load(url string, d time.Duration, useWrk bool) (int64, float64) {
	if useWrk {
		out, err := exec.Command("wrk", "-t2", "-c64", "-d"+strconv.Itoa(int(d.Seconds()))+"s",
			"-H", "Host: bench.localhost", "-H", "X-API-Key: bench-key", url).CombinedOutput()
		if err != nil {
			log.Fatalf("wrk: %v: %s", err, out)
		}
		if strings.Contains(string(out), "Non-2xx") {
			log.Fatalf("wrk saw errors: %s", out)
		}
		m := wrkReqs.FindStringSubmatch(string(out))
		if m == nil {
			log.Fatalf("wrk output: %s", out)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		secs, _ := strconv.ParseFloat(m[2], 64)
		if m[3] == "ms" {
			secs /= 1000
		}
		return n, secs
	}
	c := &fasthttp.Client{MaxConnsPerHost: 64}
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for time.Since(start) < d {
				req.SetRequestURI(url)
				req.Header.SetHost("bench.localhost")
				req.Header.Set("X-API-Key", "bench-key")
				if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					log.Fatalf("proxy answered %d: %v", resp.StatusCode(), err)
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return n.Load(), time.Since(start).Seconds()
}

func clear(rdb *redis.Client, prefix string) {
	ctx := context.Background()
	var del []string
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		del = append(del, iter.Val())
	}
	if len(del) > 0 {
		rdb.Del(ctx, del...)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
