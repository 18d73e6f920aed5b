package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/bench/internal/benchproc"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/secrets"
)

// bench is the platform under measurement and what the bench knows of it.
type bench struct {
	dir      string
	secret   string
	operator string
	dsn      string // the control plane's database
	redis    *proc
	rdb      *redis.Client
	keys     proxycfg.Keys
	db       *pgxpool.Pool // the bench's own connections (application_name scale-bench)
	control  *proc
	ctlURL   string
	workers  []*worker
	backend  *fasthttp.Server
	upstream string // the backend's URL, every tenant's target
	http     *http.Client
	digest   []byte
	tenants  []*tenant // seeded, in order

	pollClient *http.Client // for the workers' /readyz
	changeN    atomic.Int64 // makes every PATCH a change
	idleCmds   float64      // Redis commands per second at rest
	sampleKey  *sampleKey   // one of the bulk keys, to check one works
}

// sampleKey is a key written in bulk, kept in the clear.
type sampleKey struct{ slug, key string }

// worker is one `tollgate proxy` process.
type worker struct {
	proc
	traffic, admin string
}

// tenant is a seeded tenant.
type tenant struct {
	id, slug, token string
	upstream        string
	apis            []string // ids, api i at base path /api<i>
	plan, consumer  string
	key             string // a key made through /v1, for traffic
}

func newBench(ctx context.Context, dir string) (*bench, error) {
	b := &bench{dir: dir, secret: randHex(32), operator: "op-" + randHex(16),
		http:       &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		pollClient: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	var err error
	// Postgres: a fresh database.
	maint, err := url.Parse(*postgresURL)
	if err != nil {
		return nil, fmt.Errorf("-postgres: %w", err)
	}
	if err := dropDatabase(ctx, *maint); err != nil {
		return nil, err
	}
	d := *maint
	d.Path = "/" + dbName
	b.dsn = d.String()
	// Redis.
	rp, raddr, err := startRedis(*redisBin, dir)
	if err != nil {
		return nil, err
	}
	b.redis = rp
	b.rdb = redis.NewClient(&redis.Options{Addr: raddr, PoolSize: 32})
	redisURL := "redis://" + b.rdb.Options().Addr + "/0"
	// The backend every target points at.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b.backend = &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		c.SetContentType("application/json")
		c.SetBodyString(`{"ok":true}`)
	}}
	go func() { _ = b.backend.Serve(ln) }()
	b.upstream = "http://" + ln.Addr().String()

	// Migrations, then the control plane.
	ctlAddr, err := benchproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	ctlAdmin, err := benchproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	b.ctlURL = "http://" + ctlAddr
	env := benchproc.Env(
		"TOLLGATE_DATABASE_URL="+b.dsn,
		"TOLLGATE_REDIS_URL="+redisURL,
		"TOLLGATE_SECRET="+b.secret,
		"TOLLGATE_OPERATOR_TOKEN="+b.operator,
		"TOLLGATE_CONTROL_ADDR="+ctlAddr,
		"TOLLGATE_CONTROL_ADMIN_ADDR="+ctlAdmin,
		"TOLLGATE_PUBLIC_URL="+b.ctlURL,
		"TOLLGATE_UPSTREAM_ALLOW_PRIVATE=true",
		"TOLLGATE_LOG_LEVEL=info",
	)
	mig := &proc{name: "migrate", argv: []string{*binary, "migrate"}, env: env, log: filepath.Join(dir, "logs", "migrate.log")}
	if err := mig.run(); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(b.dsn)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "scale-bench"
	cfg.MaxConns = 8
	if b.db, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, err
	}
	if b.digest, err = secrets.ControlDigestKey(ctx, b.db, []byte(b.secret), ""); err != nil {
		return nil, fmt.Errorf("digest key: %w", err)
	}
	// Ports are picked free but may be taken before the process binds
	// them (other programs run on the machine): a process that exits at
	// start is started again on other ports.
	for attempt := 1; ; attempt++ {
		b.control = &proc{name: "control", argv: []string{*binary, "control"}, env: env, log: filepath.Join(dir, "logs", "control.log")}
		if err := b.control.start(); err != nil {
			return nil, err
		}
		if waitUntil(30*time.Second, func() bool { return b.status("GET", "/healthz") == 200 || !b.control.alive() }) && b.control.alive() {
			break
		}
		b.control.stop()
		if attempt == 3 {
			return nil, fmt.Errorf("control plane not healthy within 30s (log: %s)", b.control.log)
		}
		if ctlAddr, err = benchproc.FreeAddr(); err != nil {
			return nil, err
		}
		if ctlAdmin, err = benchproc.FreeAddr(); err != nil {
			return nil, err
		}
		b.ctlURL = "http://" + ctlAddr
		env = append(env, "TOLLGATE_CONTROL_ADDR="+ctlAddr, "TOLLGATE_CONTROL_ADMIN_ADDR="+ctlAdmin, "TOLLGATE_PUBLIC_URL="+b.ctlURL)
	}
	for i := range *workers {
		w, err := b.startWorker(strconv.Itoa(i+1), redisURL)
		if err != nil {
			return nil, err
		}
		b.workers = append(b.workers, w)
	}
	log.Printf("control plane %s (pid %d), %d workers, redis %s, database %s", b.ctlURL, b.control.pid(), len(b.workers),
		b.rdb.Options().Addr, dbName)
	return b, nil
}

// newWorker makes (does not start) a worker with a state directory of its
// own: the product default keeps the last good config there.
func (b *bench) newWorker(name, redisURL string) (*worker, error) {
	traffic, err := benchproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := benchproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	state := filepath.Join(b.dir, "state-"+name)
	_ = os.RemoveAll(state)
	w := &worker{traffic: traffic, admin: admin}
	w.proc = proc{name: "worker " + name, argv: []string{*binary, "proxy"}, log: filepath.Join(b.dir, "logs", "worker-"+name+".log"),
		env: benchproc.Env(
			"TOLLGATE_REDIS_URL="+redisURL,
			"TOLLGATE_SECRET="+b.secret,
			"TOLLGATE_PROXY_ADDR="+traffic,
			"TOLLGATE_PROXY_ADMIN_ADDR="+admin,
			"TOLLGATE_UPSTREAM_ALLOW_PRIVATE=true",
			"TOLLGATE_LOG_LEVEL=info",
			"TOLLGATE_STATE_DIR="+state,
		)}
	if *profileDir != "" {
		w.env = append(w.env, "TOLLGATE_PROXY_PPROF=true")
	}
	return w, nil
}

// startWorker starts a worker and waits for its admin port to answer,
// on other ports if the first were taken meanwhile.
func (b *bench) startWorker(name, redisURL string) (*worker, error) {
	c := &http.Client{Timeout: time.Second}
	for attempt := 1; ; attempt++ {
		w, err := b.newWorker(name, redisURL)
		if err != nil {
			return nil, err
		}
		if err := w.start(); err != nil {
			return nil, err
		}
		up := waitUntilEvery(30*time.Second, 2*time.Millisecond, func() bool {
			if !w.alive() {
				return true
			}
			resp, err := c.Get("http://" + w.admin + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return true
		})
		if up && w.alive() {
			return w, nil
		}
		w.stop()
		if attempt == 3 {
			return nil, fmt.Errorf("%s did not start (log: %s)", w.name, w.log)
		}
	}
}

func (b *bench) close(keep bool) {
	for _, w := range b.workers {
		w.stop()
	}
	if b.control != nil {
		b.control.stop()
	}
	if b.db != nil {
		b.db.Close()
	}
	if b.redis != nil {
		b.redis.stop()
	}
	if b.backend != nil {
		_ = b.backend.Shutdown()
	}
	if keep {
		log.Printf("kept database %s and %s", dbName, b.dir)
		return
	}
	if u, err := url.Parse(*postgresURL); err == nil {
		_ = dropDatabase(context.Background(), *u)
	}
	_ = os.RemoveAll(b.dir)
}

func dropDatabase(ctx context.Context, u url.URL) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return fmt.Errorf("connect to postgres %s: %w", u.Redacted(), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", dbName, err)
	}
	return nil
}

func waitUntil(d time.Duration, f func() bool) bool {
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// status returns the status of a call to the control plane without a body
// (0 on a transport error).
func (b *bench) status(method, path string) int {
	req, _ := http.NewRequest(method, b.ctlURL+path, nil)
	resp, err := b.http.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// apiError is a /v1 answer other than the one expected.
type apiError struct {
	method, path string
	status       int
	body         string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, e.body)
}

// call sends a /v1 request (body: JSON of it, or raw bytes) and decodes the
// answer into out.
func (b *bench) call(ctx context.Context, method, path, token string, body any, want int, out any) error {
	var rd io.Reader
	ctype := "application/json"
	switch v := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(v)
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.ctlURL+path, rd)
	if err != nil {
		return err
	}
	if rd != nil {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := b.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		if len(raw) > 300 {
			raw = raw[:300]
		}
		return &apiError{method: method, path: path, status: resp.StatusCode, body: string(raw)}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// readyGen is the index sequence a worker's /readyz reports (0: not
// ready or not answering).
func (w *worker) readyGen(c *http.Client) int64 {
	resp, err := c.Get("http://" + w.admin + "/readyz")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		io.Copy(io.Discard, resp.Body)
		return 0
	}
	var gen int64
	_, _ = fmt.Fscanf(resp.Body, "ready generation=%d", &gen)
	io.Copy(io.Discard, resp.Body)
	return gen
}

// indexSeq is the config index's sequence in Redis.
func (b *bench) indexSeq(ctx context.Context) int64 {
	v, err := b.rdb.HGet(ctx, b.keys.ConfigIndex(), proxycfg.IndexSeqField).Int64()
	if err != nil {
		return 0
	}
	return v
}

// settle waits until the publisher has nothing pending (config changes and
// key outbox) and every worker serves the index's sequence.
func (b *bench) settle(ctx context.Context, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	c := &http.Client{Timeout: 2 * time.Second}
	var pending, keys int64
	var seq int64
	ok := waitUntil(limit, func() bool {
		if ctx.Err() != nil {
			return true
		}
		if err := b.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM config_changes WHERE generation > published_generation),
			(SELECT count(*) FROM key_outbox WHERE published_at IS NULL)`).Scan(&pending, &keys); err != nil {
			return false
		}
		if pending > 0 || keys > 0 {
			time.Sleep(200 * time.Millisecond)
			return false
		}
		seq = b.indexSeq(ctx)
		for _, w := range b.workers {
			if !w.alive() {
				return true
			}
			if w.readyGen(c) < seq {
				return false
			}
		}
		return true
	})
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	for _, w := range b.workers {
		if !w.alive() {
			return 0, fmt.Errorf("%s exited (log: %s)", w.name, w.log)
		}
	}
	if b.control != nil && !b.control.alive() {
		return 0, fmt.Errorf("the control plane exited (log: %s)", b.control.log)
	}
	if !ok {
		return 0, fmt.Errorf("not settled within %s: %d tenants and %d key records pending, index at %d", limit, pending, keys, seq)
	}
	return time.Since(start), nil
}
