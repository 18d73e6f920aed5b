package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// measurement is what one size measured.
type measurement struct {
	tenants int

	seedCalls    int
	seedRate     float64 // /v1 calls/s while seeding this step
	bulkKeys     int
	bulkKeysTook time.Duration
	settleTook   time.Duration // after seeding: until the publisher and the workers caught up
	quietWait    time.Duration // then until the control plane and Postgres were idle

	// One change of one tenant.
	patch, published, everyWorker []time.Duration // per change: the PATCH call; PATCH sent → announced; → every worker serves it
	ctlCPU, pgCPU, redisCPU       float64         // seconds per change
	redisCmds                     float64         // per change
	workerCPU                     []float64       // seconds per change, per worker
	changeCPUWall                 time.Duration   // the CPU run's length

	// Idle, as CPU seconds per second.
	idleWorker   []float64
	idleCtl      float64
	idlePG       float64
	idleRedis    float64
	idleCmdsRate float64

	// Memory.
	ctlRSS, ctlHWM       float64
	workerRSS, workerHWM []float64
	redisUsed            float64 // MiB
	redisKeys            int64
	dbMB                 float64

	// Config in Redis.
	shardBytes     int64 // all current shards
	shardCount     int
	tenantShardMax int

	// Worker cold start.
	coldServe, coldReady time.Duration
	coldRSS              float64

	// /v1 write test.
	writeRate     float64
	writeLatency  []time.Duration
	writeSettle   time.Duration
	writeFailures int

	// Proxy load.
	rps        []float64 // per round
	p99        []time.Duration
	usPerReq   []float64
	loadErrors int64

	// Route lookup in the bench.
	hostAPINs, matchNs float64
	buildTook          time.Duration
	bulkKeyServed      bool
}

// measure runs every measurement at the current size.
func (b *bench) measure(ctx context.Context, m *measurement) error {
	events, stop := b.subscribe(ctx)
	defer stop()
	steps := []struct {
		name string
		f    func() error
	}{
		{"quiet", func() error { return b.quiet(ctx, m) }},
		{"memory", func() error { b.memory(ctx, m); return nil }},
		{"idle", func() error { return b.idle(ctx, m) }},
		{"cpu per change", func() error { return b.changeCPU(ctx, m, events) }},
		{"change latency", func() error { return b.changeLatency(ctx, m, events) }},
		{"v1 writes", func() error { return b.writes(ctx, m) }},
		{"proxy load", func() error { return b.load(ctx, m) }},
		{"cold start", func() error { return b.coldStart(ctx, m) }},
		{"route lookup", func() error { return b.routeLookup(ctx, m) }},
	}
	for _, s := range steps {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		start := time.Now()
		if err := s.f(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		log.Printf("  %s: %s", s.name, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// --- config announcements -------------------------------------------------------

type announcement struct {
	seq     int64
	tenants []string
	at      time.Time
}

// subscribe follows the config channel, as the workers do.
func (b *bench) subscribe(ctx context.Context) (<-chan announcement, func()) {
	ps := b.rdb.Subscribe(ctx, b.keys.ConfigChannel())
	_, _ = ps.Receive(ctx) // the subscription's confirmation
	out := make(chan announcement, 4096)
	go func() {
		for msg := range ps.Channel(redis.WithChannelSize(4096)) {
			seq, tenants, err := proxycfg.ParseChannelMessage(msg.Payload)
			if err != nil {
				continue
			}
			select {
			case out <- announcement{seq: seq, tenants: tenants, at: time.Now()}:
			default:
			}
		}
	}()
	return out, func() { _ = ps.Close() }
}

// --- CPU ------------------------------------------------------------------------

// cpuSample is the CPU seconds every measured process has used.
type cpuSample struct {
	at        time.Time
	ctl       float64
	workers   []float64
	pg        map[int]float64 // the control plane's Postgres backends
	redis     float64
	redisCmds float64
}

func (b *bench) sample(ctx context.Context) cpuSample {
	s := cpuSample{at: time.Now(), ctl: cpuSeconds(b.control.pid()), pg: map[int]float64{}}
	for _, w := range b.workers {
		s.workers = append(s.workers, cpuSeconds(w.pid()))
	}
	rows, err := b.db.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name <> 'scale-bench'`, dbName)
	if err == nil {
		for rows.Next() {
			var pid int
			if rows.Scan(&pid) == nil {
				s.pg[pid] = cpuSeconds(pid)
			}
		}
		rows.Close()
	}
	ci := redisInfo(ctx, b.rdb, "cpu")
	s.redis = ci["used_cpu_sys"] + ci["used_cpu_user"]
	s.redisCmds = redisInfo(ctx, b.rdb, "stats")["total_commands_processed"]
	return s
}

// cpuDelta is what each process used from a to z.
type cpuDelta struct {
	wall                 float64
	ctl, pg, redis, cmds float64
	workers              []float64
}

func delta(a, z cpuSample) cpuDelta {
	d := cpuDelta{wall: z.at.Sub(a.at).Seconds(), ctl: z.ctl - a.ctl, redis: z.redis - a.redis, cmds: z.redisCmds - a.redisCmds}
	for i := range z.workers {
		d.workers = append(d.workers, z.workers[i]-a.workers[i])
	}
	for pid, c := range z.pg {
		if c < 0 {
			continue
		}
		if c0, ok := a.pg[pid]; ok && c0 >= 0 {
			d.pg += c - c0
		} else {
			d.pg += c // a backend started since a
		}
	}
	return d
}

// quiet waits (up to 5 minutes) until the control plane and its Postgres
// backends use less than 5% of a core over 2 s, so that work left over from
// growing (after a million bulk keys, a minute of it) is not taken for
// idle or for the cost of the changes.
func (b *bench) quiet(ctx context.Context, m *measurement) error {
	start := time.Now()
	for time.Since(start) < 5*time.Minute {
		a := b.sample(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
		d := delta(a, b.sample(ctx))
		if (d.ctl+d.pg)/d.wall < 0.05 {
			m.quietWait = time.Since(start)
			return nil
		}
	}
	m.quietWait = time.Since(start)
	log.Printf("  the control plane did not quiet down within 5 minutes; measuring anyway")
	return nil
}

// idle measures what the platform spends doing nothing.
func (b *bench) idle(ctx context.Context, m *measurement) error {
	a := b.sample(ctx)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(*idleFor):
	}
	d := delta(a, b.sample(ctx))
	m.idleCtl, m.idlePG, m.idleRedis = d.ctl/d.wall, d.pg/d.wall, d.redis/d.wall
	m.idleWorker = nil
	for _, w := range d.workers {
		m.idleWorker = append(m.idleWorker, w/d.wall)
	}
	m.idleCmdsRate = d.cmds / d.wall
	b.idleCmds = m.idleCmdsRate
	return nil
}

// change PATCHes an API of t and waits for the publisher's announcement
// naming t; with poll, also for every worker to serve it (their /readyz
// generation reaching the announced sequence, polled every millisecond).
func (b *bench) change(ctx context.Context, t *tenant, events <-chan announcement, poll bool) (patch, published, every time.Duration, err error) {
	for len(events) > 0 {
		<-events
	}
	api := t.apis[rand.IntN(len(t.apis))]
	timeout := 1000 + int(b.changeN.Add(1)%100000)
	t0 := time.Now()
	if err := b.call(ctx, "PATCH", "/v1/apis/"+api, t.token, map[string]any{"timeout_ms": timeout}, 200, nil); err != nil {
		return 0, 0, 0, err
	}
	patch = time.Since(t0)
	var seq int64
	deadline := time.After(30 * time.Second)
wait:
	for {
		select {
		case a := <-events:
			if slices.Contains(a.tenants, t.id) {
				seq, published = a.seq, a.at.Sub(t0)
				break wait
			}
		case <-deadline:
			return 0, 0, 0, fmt.Errorf("change of tenant %s not announced within 30s", t.slug)
		case <-ctx.Done():
			return 0, 0, 0, ctx.Err()
		}
	}
	if !poll {
		return patch, published, 0, nil
	}
	var wg sync.WaitGroup
	var last atomic.Int64
	var late atomic.Bool
	for _, w := range b.workers {
		wg.Go(func() {
			c := b.pollClient
			stop := time.Now().Add(30 * time.Second)
			for w.readyGen(c) < seq {
				if time.Now().After(stop) {
					late.Store(true)
					return
				}
				time.Sleep(time.Millisecond)
			}
			d := int64(time.Since(t0))
			for {
				cur := last.Load()
				if d <= cur || last.CompareAndSwap(cur, d) {
					break
				}
			}
		})
	}
	wg.Wait()
	if late.Load() {
		return 0, 0, 0, fmt.Errorf("a worker did not reach sequence %d within 30s", seq)
	}
	return patch, published, time.Duration(last.Load()), nil
}

// changeCPU measures the CPU one change of one tenant costs every process:
// changes of random tenants, 150ms apart, nothing polling the workers; the
// same processes' idle rate over the same time is taken off.
func (b *bench) changeCPU(ctx context.Context, m *measurement, events <-chan announcement) error {
	profiled := make(chan struct{})
	if *profileDir != "" {
		secs := int(float64(*cpuChanges)*0.17) + 1
		go func() {
			defer close(profiled)
			if err := saveProfile(b.workers[0], secs, filepath.Join(*profileDir, fmt.Sprintf("worker-%d.pprof", m.tenants))); err != nil {
				log.Printf("  profile: %v", err)
			}
		}()
	} else {
		close(profiled)
	}
	defer func() { <-profiled }()
	a := b.sample(ctx)
	for range *cpuChanges {
		t := b.tenants[rand.IntN(len(b.tenants))]
		if _, _, _, err := b.change(ctx, t, events, false); err != nil {
			return err
		}
		time.Sleep(150 * time.Millisecond)
	}
	z := b.sample(ctx)
	d := delta(a, z)
	// Idle again after the changes: each process's idle rate is the
	// lower of the two (something the platform did once, such as a
	// collection, inflates one of them).
	after := &measurement{}
	if err := b.idle(ctx, after); err != nil {
		return err
	}
	m.idleCtl, m.idlePG, m.idleRedis = min(m.idleCtl, after.idleCtl), min(m.idlePG, after.idlePG), min(m.idleRedis, after.idleRedis)
	for i := range m.idleWorker {
		m.idleWorker[i] = min(m.idleWorker[i], after.idleWorker[i])
	}
	b.idleCmds = min(b.idleCmds, after.idleCmdsRate)
	n := float64(*cpuChanges)
	m.changeCPUWall = z.at.Sub(a.at)
	m.ctlCPU = (d.ctl - m.idleCtl*d.wall) / n
	m.pgCPU = (d.pg - m.idlePG*d.wall) / n
	m.redisCPU = (d.redis - m.idleRedis*d.wall) / n
	m.redisCmds = (d.cmds - b.idleCmds*d.wall) / n
	m.workerCPU = nil
	for i, w := range d.workers {
		m.workerCPU = append(m.workerCPU, (w-m.idleWorker[i]*d.wall)/n)
	}
	// Every worker got there (nothing polled them meanwhile).
	seq := b.indexSeq(ctx)
	for _, w := range b.workers {
		if !waitUntil(10*time.Second, func() bool { return w.readyGen(b.pollClient) >= seq }) {
			return fmt.Errorf("%s not at sequence %d after the changes", w.name, seq)
		}
	}
	return nil
}

// saveProfile saves the CPU profile of w over secs seconds.
func saveProfile(w *worker, secs int, path string) error {
	return saveURL(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", w.admin, secs), path, time.Duration(secs+30)*time.Second)
}

// saveURL saves the answer of GET u in path.
func saveURL(u, path string, timeout time.Duration) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d", u, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// changeLatency measures how long one change of one tenant takes to be
// announced and to be served by every worker.
func (b *bench) changeLatency(ctx context.Context, m *measurement, events <-chan announcement) error {
	m.patch, m.published, m.everyWorker = nil, nil, nil
	for range *changes {
		t := b.tenants[rand.IntN(len(b.tenants))]
		p, pub, every, err := b.change(ctx, t, events, true)
		if err != nil {
			return err
		}
		m.patch, m.published, m.everyWorker = append(m.patch, p), append(m.published, pub), append(m.everyWorker, every)
		time.Sleep(time.Duration(50+rand.IntN(50)) * time.Millisecond)
	}
	return nil
}

// --- memory --------------------------------------------------------------------------

func (b *bench) memory(ctx context.Context, m *measurement) {
	if *profileDir != "" {
		if err := saveURL("http://"+b.workers[0].admin+"/debug/pprof/heap", filepath.Join(*profileDir, fmt.Sprintf("heap-%d.pprof", m.tenants)), time.Minute); err != nil {
			log.Printf("  heap profile: %v", err)
		}
	}
	m.ctlRSS, m.ctlHWM = memMB(b.control.pid())
	m.workerRSS, m.workerHWM = nil, nil
	for _, w := range b.workers {
		r, h := memMB(w.pid())
		m.workerRSS, m.workerHWM = append(m.workerRSS, r), append(m.workerHWM, h)
	}
	m.redisUsed = redisInfo(ctx, b.rdb, "memory")["used_memory"] / (1 << 20)
	m.redisKeys, _ = b.rdb.DBSize(ctx).Result()
	var size int64
	if b.db.QueryRow(ctx, `SELECT pg_database_size($1)`, dbName).Scan(&size) == nil {
		m.dbMB = float64(size) / (1 << 20)
	}
}

// --- /v1 writes ------------------------------------------------------------------------

// writes sends -writes PATCHes of random tenants' APIs, -concurrency in
// flight, and waits for the platform to settle after them.
// writeTenants is how many tenants the write test spreads its writes over
// (the first ones seeded), the same at every size from 100 tenants up, so
// that only the platform's size changes between sizes. (Below it, the
// writes in flight fall on the same tenants, whose changes the publisher
// compiles once per batch: cheaper writes, not a faster platform.)
const writeTenants = 100

func (b *bench) writes(ctx context.Context, m *measurement) error {
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var failures int
	start := time.Now()
	var wg sync.WaitGroup
	for range *inFlight {
		wg.Go(func() {
			for next.Add(1) <= int64(*writeCalls) && ctx.Err() == nil {
				t := b.tenants[rand.IntN(min(len(b.tenants), writeTenants))]
				api := t.apis[rand.IntN(len(t.apis))]
				t0 := time.Now()
				err := b.call(ctx, "PATCH", "/v1/apis/"+api, t.token, map[string]any{"timeout_ms": 1000 + int(b.changeN.Add(1)%100000)}, 200, nil)
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					failures++
					if failures == 1 {
						log.Printf("  write failed: %v", err)
					}
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	m.writeRate = float64(len(lat)) / took.Seconds()
	m.writeLatency, m.writeFailures = lat, failures
	settled, err := b.settle(ctx, 10*time.Minute)
	m.writeSettle = settled
	return err
}

// --- proxy load ------------------------------------------------------------------------

// load measures one tenant's key-auth API through worker 1: -load-rounds
// rounds of -load with -connections, after a second of warm-up.
func (b *bench) load(ctx context.Context, m *measurement) error {
	t := b.tenants[0]
	w := b.workers[0]
	hc := &fasthttp.HostClient{Addr: w.traffic, MaxConns: *loadConns * 2, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	host := t.slug + ".localhost"
	if code, body := probe(hc, host, "/api0/r0/42", t.key); code != 200 {
		return fmt.Errorf("GET %s/api0/r0/42 through %s with the tenant's key: %d %s", host, w.name, code, body)
	}
	if b.sampleKey != nil {
		code, _ := probe(hc, b.sampleKey.slug+".localhost", "/api1/r1/7", b.sampleKey.key)
		m.bulkKeyServed = code == 200
		if code != 200 {
			log.Printf("  a bulk key of tenant %s answered %d", b.sampleKey.slug, code)
		}
	}
	round := func(d time.Duration) (n int64, errs int64, lat []time.Duration) {
		var mu sync.Mutex
		stop := time.Now().Add(d)
		var wg sync.WaitGroup
		for range *loadConns {
			wg.Go(func() {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI("http://" + host + "/api0/r0/42")
				req.Header.Set("X-API-Key", t.key)
				var mine []time.Duration
				var e int64
				for time.Now().Before(stop) {
					t0 := time.Now()
					err := hc.Do(req, resp)
					if err != nil || resp.StatusCode() != 200 {
						e++
						continue
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				errs += e
				mu.Unlock()
			})
		}
		wg.Wait()
		return int64(len(lat)), errs, lat
	}
	round(time.Second)
	m.rps, m.p99, m.usPerReq = nil, nil, nil
	for range *loadRounds {
		c0 := cpuSeconds(w.pid())
		t0 := time.Now()
		n, errs, lat := round(*loadFor)
		el := time.Since(t0).Seconds()
		c1 := cpuSeconds(w.pid())
		m.loadErrors += errs
		m.rps = append(m.rps, float64(n)/el)
		m.p99 = append(m.p99, pct(lat, 0.99))
		m.usPerReq = append(m.usPerReq, (c1-c0)/float64(max(n, 1))*1e6)
	}
	return nil
}

func probe(hc *fasthttp.HostClient, host, path, key string) (int, string) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + host + path)
	req.Header.Set("X-API-Key", key)
	if err := hc.DoTimeout(req, resp, 5*time.Second); err != nil {
		return 0, err.Error()
	}
	body := string(resp.Body())
	if len(body) > 200 {
		body = body[:200]
	}
	return resp.StatusCode(), body
}

// --- cold start ------------------------------------------------------------------------

// coldStart starts one more worker with an empty state directory and
// times it from exec to its first 200 for tenant 0's key.
func (b *bench) coldStart(ctx context.Context, m *measurement) error {
	w, err := b.startWorker("cold", "redis://"+b.rdb.Options().Addr+"/0")
	if err != nil {
		return err
	}
	defer w.stop()
	t := b.tenants[0]
	hc := &fasthttp.HostClient{Addr: w.traffic, MaxConns: 4}
	c := &http.Client{Timeout: time.Second}
	var ready time.Duration
	ok := waitUntilEvery(60*time.Second, 2*time.Millisecond, func() bool {
		if ready == 0 && w.readyGen(c) > 0 {
			ready = time.Since(w.started)
		}
		code, _ := probe(hc, t.slug+".localhost", "/api0/r0/42", t.key)
		return code == 200
	})
	if !ok {
		return errors.New("the cold worker did not serve within 60s (log: " + w.log + ")")
	}
	m.coldServe = time.Since(w.started)
	if ready == 0 {
		// Ready and serving between two polls.
		ready = m.coldServe
	}
	m.coldReady = ready
	m.coldRSS, _ = memMB(w.pid())
	return nil
}

func waitUntilEvery(d, every time.Duration, f func() bool) bool {
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}

// pct is the q-quantile of ds (sorted in place).
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds))+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}
