package main

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// The scenarios. Each prints what it did and saw, and adds its rows to the
// summary table.

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
	p := newPool(w)
	defer p.close()
	for _, c := range cases {
		ts := b.targets(0, 1, 2)
		for i := range ts {
			ts[i].Weight = c.weights[i]
		}
		alg := c.alg
		if c.hashOn != nil {
			alg = proxycfg.AlgorithmConsistentHash
		}
		if err := b.publishWait(ctx, proxycfg.Upstream{Algorithm: alg, Targets: ts, HashOn: c.hashOn}, w); err != nil {
			return err
		}
		res := startLoad(loadSpec{pool: p, host: "acme.localhost", path: "/items/42", key: apiKey, n: *sharePicks, header: c.header}).wait()
		total := float64(res.ok)
		fmt.Printf("%-16s %7.1f%% %7.1f%% %7.1f%% %8d\n", c.alg,
			100*float64(res.byBackend["b1"])/total, 100*float64(res.byBackend["b2"])/total,
			100*float64(res.byBackend["b3"])/total, res.failed)
	}
	fmt.Println()
	return nil
}

func (b *bench) configChange(ctx context.Context, w *worker) error {
	if err := b.publishWait(ctx, proxycfg.Upstream{Algorithm: proxycfg.AlgorithmRoundRobin, Targets: b.targets(0, 1)}, w); err != nil {
		return err
	}
	p := newPool(w)
	defer p.close()
	l := startLoad(loadSpec{pool: p, host: "acme.localhost", path: "/items/42", key: apiKey})
	var changes int
	tick := time.NewTicker(200 * time.Millisecond)
	end := time.After(*loadFor)
	var perr error
loop:
	for i := 0; ; i++ {
		select {
		case <-end:
			break loop
		case <-tick.C:
		}
		// Alternate {b2,b3} and {b1,b2}: a target leaves and another joins
		// with every change; the algorithm changes too.
		up := proxycfg.Upstream{Algorithm: proxycfg.AlgorithmWeighted, Targets: b.targets(1, 2)}
		if i%2 == 1 {
			up = proxycfg.Upstream{Algorithm: proxycfg.AlgorithmLeastConn, Targets: b.targets(0, 1)}
		}
		if _, perr = b.publish(ctx, up); perr != nil {
			break
		}
		changes++
	}
	tick.Stop()
	res := l.stop()
	if perr != nil {
		return perr
	}
	fmt.Println("== config change under load")
	fmt.Printf("   %d config generations published (every 200ms, each removes one target and adds another)\n", changes)
	fmt.Printf("   %s\n\n", res.summary())
	b.add(row{scenario: fmt.Sprintf("config: %d generations, one every 200 ms", changes), res: res})
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
	if err := b.publishWait(ctx, up, w); err != nil {
		return err
	}
	p := newPool(w)
	defer p.close()
	l := startLoad(loadSpec{pool: p, host: "acme.localhost", path: "/items/42", key: apiKey})
	time.Sleep(*loadFor / 3)
	killed := time.Now()
	bes[1].crash()
	time.Sleep(*loadFor * 2 / 3)
	res := l.stop()
	mode, name := "without retries", "target killed (1 of 3), no retries"
	if retries {
		mode, name = "with retries (2 attempts, 20% budget)", "target killed (1 of 3), retries on"
	}
	fmt.Printf("== target killed under load, %s\n", mode)
	fmt.Printf("   3 targets, round robin, outlier: 3 consecutive connect errors eject; k2 killed (listener and connections closed) at %s\n", *loadFor/3)
	fmt.Printf("   %s\n", res.summary())
	fmt.Printf("   served: k1 %d, k2 %d, k3 %d\n", res.byBackend["k1"], res.byBackend["k2"], res.byBackend["k3"])
	if !res.lastFail.IsZero() {
		fmt.Printf("   last failed request %s after the kill\n", ms(res.lastFail.Sub(killed)))
	}
	fmt.Println()
	b.add(row{scenario: name, res: res, recovery: recovery(res, killed, killed), from: "kill → last failed request"})
	return nil
}

// workerStop stops worker w1 of two under load, with SIGTERM (graceful) or
// SIGKILL, restarts it (at once after SIGTERM's exit, after -down after
// SIGKILL) and measures what the client lost and how long the restarted
// worker took to serve again.
func (b *bench) workerStop(ctx context.Context, w1, w2 *worker, kill bool) error {
	if err := b.publishWait(ctx, proxycfg.Upstream{Algorithm: proxycfg.AlgorithmRoundRobin, Targets: b.targets(0, 1)}, w1, w2); err != nil {
		return err
	}
	p := newPool(w1, w2)
	defer p.close()
	l := startLoad(loadSpec{pool: p, host: "acme.localhost", path: "/items/42", key: apiKey})
	time.Sleep(*loadFor / 3)
	sig, pause := syscall.SIGTERM, time.Duration(0)
	if kill {
		sig, pause = syscall.SIGKILL, *downFor
	}
	sent := time.Now()
	w1.signal(sig)
	exitErr := w1.wait()
	exited := time.Since(sent)
	time.Sleep(pause)
	back := time.Now()
	if err := w1.start(); err != nil {
		l.stop()
		return err
	}
	ready, readyOK := waitFor(15*time.Second, func() bool { return w1.readyGen() > 0 })
	normal, ok := waitFor(15*time.Second, func() bool { return p.servedSince(0, back) })
	time.Sleep(*loadFor / 3)
	res := l.stop()
	if !ok || !readyOK {
		return fmt.Errorf("restarted worker 1 did not serve again within 15s (log: %s)", w1.log)
	}
	if kill {
		fmt.Println("== SIGKILL to a worker under load")
		fmt.Printf("   worker 1 of 2 gets SIGKILL; the client balancer drops it on its first transport error; restarted %s later\n", *downFor)
	} else {
		fmt.Println("== SIGTERM to a worker under load")
		fmt.Println("   worker 1 of 2 gets SIGTERM; /readyz turns 503 at once, it keeps accepting for TOLLGATE_PROXY_DRAIN_DELAY=1s, then")
		fmt.Println("   closes its listener, finishes in-flight requests and exits; the balancer drops it on /readyz (100ms checks); restarted at once")
	}
	fmt.Printf("   worker 1 gone %s after the signal (%s); restarted: ready after %s, serving traffic after %s\n",
		ms(exited), exitStatus(exitErr), ms(ready.Sub(back)), ms(normal.Sub(back)))
	fmt.Printf("   %s\n", res.summary())
	fmt.Printf("   served: worker 1 %s, worker 2 %s\n", thousands(res.byWorker[0]), thousands(res.byWorker[1]))
	if !res.firstFail.IsZero() {
		fmt.Printf("   failed requests between %s and %s after the signal\n", ms(res.firstFail.Sub(sent)), ms(res.lastFail.Sub(sent)))
	}
	fmt.Println()
	name := "worker SIGTERM (1 of 2), restarted"
	if kill {
		name = fmt.Sprintf("worker SIGKILL (1 of 2), restarted after %s", *downFor)
	}
	b.add(row{scenario: name, res: res, recovery: recovery(res, back, normal), from: "restart → it serves again"})
	return nil
}

// redisKill SIGKILLs Redis under load for -down, restarts it and measures
// what the workers' clients lost and how long until every worker uses
// Redis again (tollgate_redis_down_seconds back to 0).
func (b *bench) redisKill(ctx context.Context, w1, w2 *worker) error {
	if err := b.publishWait(ctx, proxycfg.Upstream{Algorithm: proxycfg.AlgorithmRoundRobin, Targets: b.targets(0, 1)}, w1, w2); err != nil {
		return err
	}
	ws := []*worker{w1, w2}
	p := newPool(ws...)
	defer p.close()
	l := startLoad(loadSpec{pool: p, host: "acme.localhost", path: "/items/42", key: apiKey})
	time.Sleep(*loadFor / 3)
	before := []int{w1.logLines(), w2.logLines()}
	ok0, _ := l.count()
	killed := time.Now()
	b.redis.kill()
	peak := 0.0
	for end := killed.Add(*downFor); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		peak = max(peak, w1.redisDown())
	}
	ok1, _ := l.count()
	down := time.Since(killed)
	back := time.Now()
	if err := b.redis.start(); err != nil {
		l.stop()
		return err
	}
	answering := time.Since(back)
	normal, ok := waitFor(60*time.Second, func() bool { return w1.redisDown() == 0 && w2.redisDown() == 0 })
	time.Sleep(*loadFor / 3)
	res := l.stop()
	if !ok {
		return fmt.Errorf("workers still report Redis down 60s after its restart (logs: %s, %s)", w1.log, w2.log)
	}
	fmt.Println("== Redis SIGKILLed under load")
	fmt.Printf("   redis-server SIGKILLed for %s, then restarted (its AOF reloaded): answering PING %s after the restart\n", *downFor, ms(answering))
	fmt.Printf("   while down: %s served (%s; before: %s); worker 1's tollgate_redis_down_seconds peaked at %.1f\n",
		thousands(ok1-ok0), rate(ok1-ok0, down), rate(ok0, *loadFor/3), peak)
	fmt.Printf("   every worker's tollgate_redis_down_seconds back to 0 %s after the restart\n", ms(normal.Sub(back)))
	fmt.Printf("   worker 1 logged: %s\n", w1.logSummary(before[0]))
	fmt.Printf("   worker 2 logged: %s\n", w2.logSummary(before[1]))
	fmt.Printf("   %s\n", res.summary())
	if !res.firstFail.IsZero() {
		fmt.Printf("   failed requests between %s and %s after the kill (Redis restarted at %s, answering PING at %s)\n",
			ms(res.firstFail.Sub(killed)), ms(res.lastFail.Sub(killed)), ms(back.Sub(killed)), ms(back.Add(answering).Sub(killed)))
	}
	fmt.Println()
	b.add(row{scenario: fmt.Sprintf("Redis SIGKILL for %s, restarted (2 workers)", *downFor), res: res,
		recovery: recovery(res, back, normal), from: "Redis restarted → workers use it, no failures"})
	return nil
}

// restartWithoutRedis restarts a worker while Redis is down: it must serve
// from the snapshot in its state directory. Keys are not in the snapshot
// (they live in Redis), so a key-auth API answers 503 until Redis is back;
// an API without auth serves at once.
func (b *bench) restartWithoutRedis(ctx context.Context, w *worker) error {
	if err := b.publishWait(ctx, proxycfg.Upstream{Algorithm: proxycfg.AlgorithmRoundRobin, Targets: b.targets(0, 1)}, w); err != nil {
		return err
	}
	gen := b.gen
	files := w.snapshotFiles()
	b.redis.kill()
	w.kill()
	started := time.Now()
	if err := w.start(); err != nil {
		return err
	}
	ready, readyOK := waitFor(15*time.Second, func() bool { return w.readyGen() >= gen })
	if !readyOK {
		return fmt.Errorf("worker restarted while Redis is down is not ready within 15s (log: %s)", w.log)
	}
	open, keyed := newPool(w), newPool(w)
	defer open.close()
	defer keyed.close()
	lo := startLoad(loadSpec{pool: open, host: "acme.localhost", path: "/open/items/1", conns: max(*conns/2, 1)})
	lk := startLoad(loadSpec{pool: keyed, host: "acme.localhost", path: "/items/42", key: apiKey, conns: max(*conns/2, 1)})
	firstOpen, _ := waitFor(15*time.Second, func() bool { return open.servedSince(0, started) })
	time.Sleep(*loadFor / 3)
	keyOK, keyFailed := lk.count()
	back := time.Now()
	if err := b.redis.start(); err != nil {
		lo.stop()
		lk.stop()
		return err
	}
	normal, ok := waitFor(60*time.Second, func() bool { return keyed.servedSince(0, back) })
	time.Sleep(*loadFor / 3)
	ro, rk := lo.stop(), lk.stop()
	if !ok {
		return fmt.Errorf("key-auth API still failing 60s after Redis came back (log: %s)", w.log)
	}
	fmt.Println("== worker restarted while Redis is down")
	fmt.Printf("   worker 1 at generation %d with %s in its state directory; Redis SIGKILLed, then worker 1 SIGKILLed and restarted\n",
		gen, plural(len(files), "snapshot file", "snapshot files"))
	fmt.Printf("   restarted worker ready (generation %d, from disk) after %s; first 200 of the API without auth after %s\n",
		w.readyGen(), ms(ready.Sub(started)), ms(firstOpen.Sub(started)))
	fmt.Printf("   API without auth: %s\n", ro.summary())
	fmt.Printf("   key-auth API (keys live in Redis, not in the snapshot): %s\n", rk.summary())
	fmt.Printf("   key-auth API while Redis was down (%s): %s ok, %s failed\n", *loadFor/3, thousands(keyOK), thousands(keyFailed))
	fmt.Printf("   key-auth API served again %s after Redis was restarted\n\n", ms(normal.Sub(back)))
	b.add(row{scenario: "worker restarted, Redis down: API without auth", res: ro,
		recovery: recovery(ro, started, firstOpen), from: "worker restart → first 200 (disk snapshot)"})
	b.add(row{scenario: "worker restarted, Redis down: key-auth API", res: rk,
		recovery: recovery(rk, back, normal), from: "Redis restarted → first 200"})
	return nil
}
