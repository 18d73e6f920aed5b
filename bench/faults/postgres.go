package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/bench/internal/benchproc"
)

// The Postgres scenario: a real control plane whose database connections
// go through the bench's cutProxy, a worker following the control plane's
// config in Redis, load on the worker and a /v1 reader; the proxy is cut
// for -down. Workers never touch Postgres, so the data plane should lose
// nothing; /v1 answers 503 meanwhile and recovers without a restart.

const faultsDB = "tollgate_faults"

func (b *bench) postgresCut(ctx context.Context) error {
	if *postgresURL == "off" {
		fmt.Println("== Postgres cut: skipped (-postgres off)")
		fmt.Println()
		return nil
	}
	server, err := url.Parse(*postgresURL)
	if err != nil {
		return fmt.Errorf("-postgres: %w", err)
	}
	if err := dropDatabase(ctx, *server); err != nil {
		return err
	}
	defer dropDatabase(context.Background(), *server)
	pg, err := startCutProxy(server.Host)
	if err != nil {
		return err
	}
	defer pg.close()
	dsn := *server
	dsn.Host, dsn.Path = pg.addr(), "/"+faultsDB
	q := dsn.Query()
	q.Set("connect_timeout", "2")
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
	}
	dsn.RawQuery = q.Encode()

	port, err := benchproc.FreePort()
	if err != nil {
		return err
	}
	ctl := &control{url: "http://127.0.0.1:" + strconv.Itoa(port), operator: "op-" + randHex(16)}
	env := benchproc.Env(
		"TOLLGATE_DATABASE_URL="+dsn.String(),
		"TOLLGATE_REDIS_URL="+b.redis.url(),
		"TOLLGATE_REDIS_PREFIX="+controlPrefix,
		"TOLLGATE_SECRET="+b.secret,
		"TOLLGATE_OPERATOR_TOKEN="+ctl.operator,
		"TOLLGATE_CONTROL_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"TOLLGATE_PUBLIC_URL="+ctl.url,
		"TOLLGATE_UPSTREAM_ALLOW_PRIVATE=true",
		"TOLLGATE_LOG_LEVEL=info",
	)
	migrate := &proc{name: "migrate", argv: []string{*binary, "migrate"}, env: env, log: filepath.Join(b.dir, "logs", "migrate.log")}
	if err := migrate.start(); err != nil {
		return err
	}
	if err := migrate.wait(); err != nil {
		return fmt.Errorf("tollgate migrate: %s (log: %s)", exitStatus(err), migrate.log)
	}
	ctl.proc = proc{name: "control", argv: []string{*binary, "control"}, env: env, log: filepath.Join(b.dir, "logs", "control.log")}
	if err := ctl.start(); err != nil {
		return err
	}
	defer ctl.kill()
	if _, ok := waitFor(30*time.Second, func() bool { return ctl.get("/healthz", "") == 200 }); !ok {
		return fmt.Errorf("control plane not healthy within 30s (log: %s)", ctl.log)
	}
	token, key, err := ctl.setup(b)
	if err != nil {
		return err
	}
	w3 := newWorker(b, "3", *portBase+5, *portBase+6, controlPrefix)
	if err := w3.start(); err != nil {
		return err
	}
	defer w3.kill()
	p := newPool(w3)
	defer p.close()
	if _, ok := waitFor(30*time.Second, func() bool { return probe(w3, "faults.localhost", "/items/42", key) == 200 }); !ok {
		return fmt.Errorf("worker 3 does not serve the control plane's tenant within 30s (logs: %s, %s)", w3.log, ctl.log)
	}

	l := startLoad(loadSpec{pool: p, host: "faults.localhost", path: "/items/42", key: key})
	v1 := startV1Reader(ctl, token)
	time.Sleep(*loadFor / 3)
	logs0 := ctl.logLines()
	cut := time.Now()
	pg.cut()
	time.Sleep(*downFor)
	back := time.Now()
	pg.restore()
	normal, ok := waitFor(60*time.Second, func() bool { return v1.okSince(back) })
	// A change made after the outage reaches the data plane: a new key.
	var newKey string
	var keyErr error
	keyServed := time.Duration(-1)
	if ok {
		t := time.Now()
		if newKey, keyErr = ctl.newKey(token); keyErr == nil {
			if at, served := waitFor(15*time.Second, func() bool { return probe(w3, "faults.localhost", "/items/42", newKey) == 200 }); served {
				keyServed = at.Sub(t)
			}
		}
	}
	time.Sleep(*loadFor / 3)
	res, vres := l.stop(), v1.stop()
	// The control plane's outage monitor pings every 5s: give it the time
	// to log the end of the outage.
	_, recoveryLogged := waitFor(10*time.Second, func() bool { return ctl.logHas(logs0, "reachable again") })
	logged := ctl.logSummary(logs0)
	if !ok {
		return fmt.Errorf("/v1 not answering 200 within 60s after Postgres came back (log: %s)", ctl.log)
	}
	if keyErr != nil {
		return fmt.Errorf("a key created after the outage: %w", keyErr)
	}
	fmt.Println("== Postgres cut off from the control plane under load")
	fmt.Printf("   tollgate control reaches Postgres through the bench's TCP proxy, cut for %s (open connections dropped, new ones hung up on)\n", *downFor)
	fmt.Printf("   worker 3 follows the control plane's config in Redis; load on it with a key created through /v1\n")
	fmt.Printf("   data plane: %s\n", res.summary())
	fmt.Printf("   /v1 (GET /v1/apis every 50ms): %s\n", vres.summary())
	if !vres.firstFail.IsZero() {
		fmt.Printf("   /v1 failing from %s after the cut; 200 again %s after Postgres came back\n", ms(vres.firstFail.Sub(cut)), ms(normal.Sub(back)))
	}
	if keyServed >= 0 {
		fmt.Printf("   a key created through /v1 after the outage served by worker 3 after %s\n", ms(keyServed))
	} else {
		fmt.Printf("   a key created through /v1 after the outage NOT served by worker 3 within 15s\n")
	}
	fmt.Printf("   control plane logged during the outage and recovery: %s", logged)
	if !recoveryLogged {
		fmt.Printf(" (no \"reachable again\" line within 10s after the load ended)")
	}
	fmt.Printf("\n\n")
	b.add(row{scenario: fmt.Sprintf("Postgres cut for %s: data plane (worker)", *downFor), res: res,
		recovery: recovery(res, back, back), from: "Postgres back → no failures"})
	b.add(row{scenario: fmt.Sprintf("Postgres cut for %s: /v1 (GET every 50 ms)", *downFor), res: vres,
		recovery: recovery(vres, back, normal), from: "Postgres back → /v1 answers 200"})
	return nil
}

// dropDatabase drops the bench's database on the server of u (connecting
// straight to it, not through the proxy).
func dropDatabase(ctx context.Context, u url.URL) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return fmt.Errorf("connect to postgres %s: %w", u.Redacted(), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+faultsDB+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", faultsDB, err)
	}
	return nil
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// get returns the status of GET path on the control plane (0 on a
// transport error).
func (c *control) get(path, token string) int {
	req, _ := http.NewRequest("GET", c.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// call sends a /v1 request and decodes the answer into out.
func (c *control) call(method, path, token string, body any, want int, out any) error {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, c.url+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// setup creates, through /v1, tenant "faults" with an upstream of the
// bench's first two backends, a key-auth API at "/", a plan whose rate limit
// never triggers, a consumer and a key; it returns the admin token and the
// key.
func (c *control) setup(b *bench) (token, key string, err error) {
	var created struct {
		AdminToken string `json:"admin_token"`
	}
	if err := c.call("POST", "/v1/tenants", c.operator, map[string]any{"name": "Faults", "slug": "faults"}, 201, &created); err != nil {
		return "", "", err
	}
	token = created.AdminToken
	var up, api, plan, consumer struct{ ID string }
	if err := c.call("POST", "/v1/upstreams", token, map[string]any{"name": "backends", "algorithm": "round_robin",
		"targets": []map[string]any{{"url": b.backends[0].url, "weight": 1}, {"url": b.backends[1].url, "weight": 1}}}, 201, &up); err != nil {
		return "", "", err
	}
	if err := c.call("POST", "/v1/apis", token, map[string]any{"name": "API", "slug": "api", "base_path": "/",
		"upstream_id": up.ID, "auth": "key"}, 201, &api); err != nil {
		return "", "", err
	}
	if err := c.call("POST", "/v1/plans", token, map[string]any{"name": "Bench",
		"rate_limit": map[string]any{"requests": 1000000000, "per_seconds": 1}, "api_ids": []string{api.ID}}, 201, &plan); err != nil {
		return "", "", err
	}
	if err := c.call("POST", "/v1/consumers", token, map[string]any{"name": "Bench", "email": "bench@faults.example"}, 201, &consumer); err != nil {
		return "", "", err
	}
	c.consumer, c.plan = consumer.ID, plan.ID
	key, err = c.newKey(token)
	return token, key, err
}

// newKey creates a key of the setup's consumer and plan.
func (c *control) newKey(token string) (string, error) {
	var k struct{ Key string }
	if err := c.call("POST", "/v1/keys", token, map[string]any{"consumer_id": c.consumer, "plan_id": c.plan}, 201, &k); err != nil {
		return "", err
	}
	return k.Key, nil
}

// probe sends one GET to worker w and returns the status (0 on a
// transport error).
func probe(w *worker, host, path, key string) int {
	req, _ := http.NewRequest("GET", "http://"+w.traffic+path, nil)
	req.Host = host
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// v1Reader reads /v1/apis every 50ms and counts the answers.
type v1Reader struct {
	quit   chan struct{}
	done   chan struct{}
	lastOK atomic.Int64 // unix nanoseconds
	mu     sync.Mutex
	res    result
}

func startV1Reader(c *control, token string) *v1Reader {
	r := &v1Reader{quit: make(chan struct{}), done: make(chan struct{}), res: result{byStatus: map[string]int64{}}}
	go func() {
		defer close(r.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-r.quit:
				return
			case <-t.C:
			}
			status := c.get("/v1/apis", token)
			now := time.Now()
			r.mu.Lock()
			if status == 200 {
				r.res.ok++
				r.res.byStatus["200"]++
				r.lastOK.Store(now.UnixNano())
			} else {
				kind := strconv.Itoa(status)
				if status == 0 {
					kind = "error"
				}
				r.res.failed++
				r.res.byStatus[kind]++
				if r.res.firstFail.IsZero() {
					r.res.firstFail = now
				}
				r.res.lastFail = now
			}
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *v1Reader) okSince(t time.Time) bool { return r.lastOK.Load() > t.UnixNano() }

func (r *v1Reader) stop() result {
	close(r.quit)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.res
}
