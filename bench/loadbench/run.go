package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/bench/internal/benchproc"
)

//go:embed nginx.conf.tmpl
var nginxTemplate string

//go:embed haproxy.cfg.tmpl
var haproxyTemplate string

const benchHost = "demo.localhost"

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// bench is one run: the control plane seeded once, then each mode's
// processes started, measured round after round and stopped.
type bench struct {
	s        *settings
	ps       *procs
	rdb      *redis.Client
	redisPID int

	backendPorts [2]int
	controlPort  int
	dev          *proc
	secret       string
	keys         map[string]string // by plan: "key", "rl", "all"
	tlsDir       string
	certFile     string
	keyFile      string
}

// target is one thing measured: a URL behind one of the mode's processes.
type target struct {
	Name      string
	Label     string
	Group     string // the process whose CPU is counted
	Proto     string // h1, h2 (TLS) or h2c
	URL       string
	Port      int
	Key       string
	Balanced  bool   // answers come from both backend listeners
	KeyAuth   bool   // 401 without a key
	Reference string // the target its ratios are taken against
}

// mode is one way of running the proxies: per core (pinned) or all cores.
type mode struct {
	Name       string
	ProxyCPUs  string // taskset list for the proxies; "" unpinned
	ClientCPUs string // for the load generator and the backend; "" unpinned
	GoMaxProcs string // GOMAXPROCS of the Go proxies; "" the default
	Threads    int    // wrk threads
	groups     map[string]*proc
	targets    []target
}

func cmdRun(ctx context.Context, args []string) error {
	s, err := loadSettings(args)
	if err != nil {
		return err
	}
	b := &bench{s: s, keys: map[string]string{}}
	b.ps = &procs{logDir: filepath.Join(s.Work, "logs"), pgidLog: filepath.Join(s.Work, "pgids")}
	for _, d := range []string{b.ps.logDir, filepath.Join(s.Out, "raw")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	defer b.cleanup()
	if err := b.setup(ctx); err != nil {
		return err
	}
	rep := newReport(s)
	rep.collectEnv(ctx, b)
	for _, name := range s.Modes {
		if len(s.targetsOf(name)) == 0 {
			continue
		}
		if err := b.runMode(ctx, name, rep); err != nil {
			return err
		}
	}
	rep.LoadAfter = loadAvg()
	text := rep.render()
	fmt.Print(text)
	if err := rep.write(text); err != nil {
		return err
	}
	logf("wrote %s (summary.md, summary.json, raw/)", s.Out)
	if n := rep.failedRuns(); n > 0 {
		if s.AllowErrors {
			logf("WARNING: %d runs had errors (BENCH_ALLOW_ERRORS=1)", n)
		} else {
			return fmt.Errorf("%d runs had errors (see the table and %s/raw); BENCH_ALLOW_ERRORS=1 to accept", n, s.Out)
		}
	}
	return nil
}

func (b *bench) setup(ctx context.Context) error {
	o, err := redis.ParseURL(b.s.RedisURL)
	if err != nil {
		return err
	}
	b.rdb = redis.NewClient(o)
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w (deploy/local/services.sh starts it)", o.Addr, err)
	}
	if info, err := b.rdb.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
				if pid, err := strconv.Atoi(v); err == nil {
					if _, ok := statTicks(pid); ok {
						b.redisPID = pid
					}
				}
			}
		}
	}
	for i := range b.backendPorts {
		if b.backendPorts[i], err = benchproc.FreePort(); err != nil {
			return err
		}
	}
	if b.controlPort, err = benchproc.FreePort(); err != nil {
		return err
	}
	b.secret = "tollgate-bench-secret-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	b.tlsDir = filepath.Join(b.s.Work, "tls")
	return b.writeCert()
}

func (b *bench) cleanup() {
	b.ps.stop()
	if b.rdb != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := b.rdb.Scan(ctx, 0, b.s.RedisPrefix+"*", 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			if batch = append(batch, iter.Val()); len(batch) == 500 {
				b.rdb.Unlink(ctx, batch...)
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			b.rdb.Unlink(ctx, batch...)
		}
		b.rdb.Close()
		if conn, err := pgx.Connect(ctx, strings.Replace(b.s.DatabaseURL, "/tollgate_bench?", "/postgres?", 1)); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS tollgate_bench WITH (FORCE)")
			conn.Close(ctx)
		}
	}
}

// writeCert makes a self-signed ECDSA certificate for localhost and
// *.localhost, served by both the worker's TLS front and nginx.
func (b *bench) writeCert() error {
	if err := os.MkdirAll(b.tlsDir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: benchHost},
		DNSNames:     []string{benchHost, "*.localhost", "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	b.certFile, b.keyFile = filepath.Join(b.tlsDir, "bench.crt"), filepath.Join(b.tlsDir, "bench.key")
	if err := os.WriteFile(b.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(b.keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}

// --- the control plane and the seed ----------------------------------------

// startDev runs `tollgate dev` (control plane and demo tenant, not measured;
// pinned with the load generator) and seeds the bench's APIs, plans and keys
// through the management API.
func (b *bench) startDev(ctx context.Context, cpus string) error {
	proxyPort, err := benchproc.FreePort()
	if err != nil {
		return err
	}
	adminPort, err := benchproc.FreePort()
	if err != nil {
		return err
	}
	envFile := filepath.Join(b.s.Work, "dev.env")
	backend := fmt.Sprintf("http://127.0.0.1:%d", b.backendPorts[0])
	logf("starting tollgate dev (control plane on 127.0.0.1:%d; database tollgate_bench, Redis DB 15, prefix %s)", b.controlPort, b.s.RedisPrefix)
	b.dev, err = b.ps.start("tollgate-dev", cpus, []string{
		"TOLLGATE_REDIS_URL=" + b.s.RedisURL,
		"TOLLGATE_REDIS_PREFIX=" + b.s.RedisPrefix,
		"TOLLGATE_SECRET=" + b.secret,
		fmt.Sprintf("TOLLGATE_CONTROL_ADDR=127.0.0.1:%d", b.controlPort),
		fmt.Sprintf("TOLLGATE_PROXY_ADDR=127.0.0.1:%d", proxyPort),
		fmt.Sprintf("TOLLGATE_PROXY_ADMIN_ADDR=127.0.0.1:%d", adminPort),
		"TOLLGATE_LOG_LEVEL=warn",
	}, b.s.Tollgate, "dev", "-database", b.s.DatabaseURL, "-targets", backend, "-rate", "100000000", "-env-file", envFile)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(120 * time.Second)
	var env map[string]string
	for {
		if raw, err := os.ReadFile(envFile); err == nil && len(raw) > 0 {
			env = parseEnvFile(raw)
			if env["TOLLGATE_ADMIN_TOKEN"] != "" {
				break
			}
		}
		if !b.dev.alive() {
			return fmt.Errorf("tollgate dev exited:\n%s", b.dev.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tollgate dev wrote no %s within 120s:\n%s", envFile, b.dev.tail())
		}
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return err
		}
	}
	return b.seed(ctx, env["TOLLGATE_ADMIN_TOKEN"])
}

func parseEnvFile(raw []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			out[k] = v
		}
	}
	return out
}

// seed creates, in the demo tenant: one upstream of two targets (the two
// listeners of the one backend), four APIs (/open without auth; /key, /rl
// and /all with key auth) and three plans, each with its key: "key" (no
// limits), "rl" (rate limit 1e8/s) and "all" (rate limit 1e8/s and a quota
// of 1e12 a month), neither ever reached.
func (b *bench) seed(ctx context.Context, token string) error {
	api := func(method, path string, in, out any) error {
		body, _ := json.Marshal(in)
		req, err := http.NewRequestWithContext(ctx, method, fmt.Sprintf("http://127.0.0.1:%d%s", b.controlPort, path), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, raw)
		}
		if out != nil {
			return json.Unmarshal(raw, out)
		}
		return nil
	}
	type idOf struct {
		ID string `json:"id"`
	}
	var up idOf
	var targets []map[string]any
	for _, p := range b.backendPorts {
		targets = append(targets, map[string]any{"url": fmt.Sprintf("http://127.0.0.1:%d", p), "weight": 1})
	}
	if err := api("POST", "/v1/upstreams", map[string]any{
		"name": "bench", "algorithm": "round_robin", "targets": targets,
		"health_check": map[string]any{"path": "/healthz", "interval_ms": 2000, "timeout_ms": 1000,
			"healthy_threshold": 1, "unhealthy_threshold": 2},
	}, &up); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	apis := map[string]string{}
	for _, a := range []struct{ slug, path, auth string }{
		{"bench-open", "/open", "none"}, {"bench-key", "/key", "key"}, {"bench-rl", "/rl", "key"}, {"bench-all", "/all", "key"},
	} {
		var id idOf
		if err := api("POST", "/v1/apis", map[string]any{"name": a.slug, "slug": a.slug, "base_path": a.path,
			"upstream_id": up.ID, "auth": a.auth}, &id); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		apis[a.path] = id.ID
	}
	var consumer idOf
	if err := api("POST", "/v1/consumers", map[string]any{"name": "bench", "email": "bench@bench.example"}, &consumer); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	for _, p := range []struct {
		name, api string
		rate      int64
		quota     int64
	}{{"key", "/key", 0, 0}, {"rl", "/rl", 100_000_000, 0}, {"all", "/all", 100_000_000, 1_000_000_000_000}} {
		var plan idOf
		in := map[string]any{"name": "bench-" + p.name, "api_ids": []string{apis[p.api]},
			"rate_limit": map[string]any{"requests": p.rate, "per_seconds": 1},
			"quota":      map[string]any{"requests": p.quota, "period": "month"}}
		if p.rate == 0 {
			in["rate_limit"] = map[string]any{"requests": 0, "per_seconds": 0}
		}
		if err := api("POST", "/v1/plans", in, &plan); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		var key struct {
			Key string `json:"key"`
		}
		if err := api("POST", "/v1/keys", map[string]any{"consumer_id": consumer.ID, "plan_id": plan.ID}, &key); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		b.keys[p.name] = key.Key
	}
	logf("seeded: upstream of 2 targets, APIs /open (auth none) /key /rl /all, plans key, rl, all with their keys")
	return nil
}

// --- a mode -----------------------------------------------------------------

func (b *bench) newMode(name string) *mode {
	m := &mode{Name: name, groups: map[string]*proc{}}
	if name == "percore" {
		m.ProxyCPUs, m.ClientCPUs, m.GoMaxProcs, m.Threads = b.s.ProxyCPU, b.s.ClientCPUs, "1", b.s.Threads
	} else {
		m.Threads = b.s.AllThreads
	}
	return m
}

func (b *bench) runMode(ctx context.Context, name string, rep *report) error {
	m := b.newMode(name)
	want := b.s.targetsOf(name)
	logf("== %s: starting the backend and the proxies", name)
	if err := b.startMode(ctx, m, want); err != nil {
		b.stopMode(m)
		return err
	}
	defer b.stopMode(m)
	for _, t := range m.targets {
		if err := b.verify(ctx, t); err != nil {
			return fmt.Errorf("%s %s: %w", name, t.Name, err)
		}
	}
	rm := rep.mode(m)
	for round := 1; round <= b.s.Rounds; round++ {
		for _, t := range m.targets {
			r := b.measure(ctx, m, t, round)
			if err := ctx.Err(); err != nil {
				return err
			}
			rm.add(t, r)
			if r.Error != "" {
				logf("[%s %d/%d] %-13s ERROR: %s", name, round, b.s.Rounds, t.Name, r.Error)
			} else {
				logf("[%s %d/%d] %-13s %8.0f req/s  p99 %6.2f ms  CPU %6.1f µs/req  proxy core %3.0f%%  client %3.0f%%",
					name, round, b.s.Rounds, t.Name, r.RPS, r.P99, r.CPUus, 100*r.ProxyBusy, 100*r.ClientBusy)
			}
		}
	}
	return nil
}

func (b *bench) stopMode(m *mode) {
	var ps []*proc
	for _, p := range m.groups {
		ps = append(ps, p)
	}
	b.ps.stop(ps...)
}

// startMode starts the backend, the control plane if it is not up yet, and
// every proxy a wanted target needs, each pinned per the mode, and fills
// m.targets in the report's order.
func (b *bench) startMode(ctx context.Context, m *mode, want []string) error {
	need := func(names ...string) bool {
		for _, n := range names {
			if slices.Contains(want, n) {
				return true
			}
		}
		return false
	}
	goEnv := func(env ...string) []string {
		if m.GoMaxProcs != "" {
			env = append(env, "GOMAXPROCS="+m.GoMaxProcs)
		}
		return env
	}
	backends := []string{fmt.Sprintf("127.0.0.1:%d", b.backendPorts[0]), fmt.Sprintf("127.0.0.1:%d", b.backendPorts[1])}

	p, err := b.ps.start(m.Name+"-backend", m.ClientCPUs, nil, b.s.Self, "backend", "-addrs", strings.Join(backends, ","), "-engine", b.s.Backend)
	if err != nil {
		return err
	}
	m.groups["backend"] = p
	for _, a := range backends {
		if err := waitHTTP(ctx, p, "http://"+a+"/healthz", ""); err != nil {
			return fmt.Errorf("backend: %w", err)
		}
	}
	if b.dev == nil {
		if err := b.startDev(ctx, b.s.ClientCPUs); err != nil {
			return err
		}
	}
	all := b.keys["all"]
	add := func(t target) {
		if slices.Contains(want, t.Name) {
			if t.Key == "" {
				t.Key = all
			}
			m.targets = append(m.targets, t)
		}
	}
	url := func(port int, path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", port, path) }
	h2url := func(scheme string, port int, path string) string {
		return fmt.Sprintf("%s://%s:%d%s", scheme, benchHost, port, path)
	}
	add(target{Name: "direct", Label: "direct to backend", Group: "backend", Proto: "h1", URL: url(b.backendPorts[0], "/bench"), Port: b.backendPorts[0]})

	dir := filepath.Join(b.s.Work, m.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if need("nginx", "nginx-h2", "nginx-h2c") {
		ports, err := freePorts(3)
		if err != nil {
			return err
		}
		cfg := map[string]any{"Dir": dir, "Workers": "1", "Backends": backends, "HTTP": fmt.Sprintf("127.0.0.1:%d", ports[0]),
			"TLS": "", "H2C": "", "Cert": b.certFile, "Key": b.keyFile}
		if m.ProxyCPUs == "" {
			cfg["Workers"] = "auto"
		}
		if need("nginx-h2") {
			cfg["TLS"] = fmt.Sprintf("127.0.0.1:%d", ports[1])
		}
		if need("nginx-h2c") {
			cfg["H2C"] = fmt.Sprintf("127.0.0.1:%d", ports[2])
		}
		conf := filepath.Join(dir, "nginx.conf")
		if err := renderTemplate(nginxTemplate, cfg, conf); err != nil {
			return err
		}
		p, err := b.ps.start(m.Name+"-nginx", m.ProxyCPUs, nil, nginxBinary(), "-p", dir, "-c", conf, "-e", filepath.Join(dir, "nginx-error.log"))
		if err != nil {
			return err
		}
		m.groups["nginx"] = p
		if err := waitHTTP(ctx, p, url(ports[0], "/healthz"), ""); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		add(target{Name: "nginx", Label: "nginx proxy_pass", Group: "nginx", Proto: "h1", URL: url(ports[0], "/bench"), Port: ports[0], Balanced: true})
		add(target{Name: "nginx-h2", Label: "nginx HTTP/2 (TLS)", Group: "nginx", Proto: "h2", URL: h2url("https", ports[1], "/bench"), Port: ports[1]})
		add(target{Name: "nginx-h2c", Label: "nginx HTTP/2 (h2c)", Group: "nginx", Proto: "h2c", URL: h2url("http", ports[2], "/bench"), Port: ports[2]})
	}
	if need("haproxy") {
		port, err := benchproc.FreePort()
		if err != nil {
			return err
		}
		cfg := map[string]any{"Threads": "1", "Backends": backends, "HTTP": fmt.Sprintf("127.0.0.1:%d", port)}
		if m.ProxyCPUs == "" {
			cfg["Threads"] = ""
		}
		conf := filepath.Join(dir, "haproxy.cfg")
		if err := renderTemplate(haproxyTemplate, cfg, conf); err != nil {
			return err
		}
		p, err := b.ps.start(m.Name+"-haproxy", m.ProxyCPUs, nil, haproxyBinary(), "-db", "-f", conf)
		if err != nil {
			return err
		}
		m.groups["haproxy"] = p
		if err := waitHTTP(ctx, p, url(port, "/healthz"), ""); err != nil {
			return fmt.Errorf("haproxy: %w", err)
		}
		add(target{Name: "haproxy", Label: "HAProxy", Group: "haproxy", Proto: "h1", URL: url(port, "/bench"), Port: port, Balanced: true})
	}
	if need("forwarder") {
		port, err := benchproc.FreePort()
		if err != nil {
			return err
		}
		p, err := b.ps.start(m.Name+"-forwarder", m.ProxyCPUs, goEnv(), b.s.Forwarder,
			"-listen", fmt.Sprintf("127.0.0.1:%d", port), "-targets", strings.Join(backends, ","))
		if err != nil {
			return err
		}
		m.groups["forwarder"] = p
		if err := waitHTTP(ctx, p, url(port, "/healthz"), ""); err != nil {
			return fmt.Errorf("forwarder: %w", err)
		}
		add(target{Name: "forwarder", Label: "fasthttp forwarder (floor)", Group: "forwarder", Proto: "h1", URL: url(port, "/bench"), Port: port})
	}
	workerEnv := func(traffic, admin int) []string {
		return goEnv(
			"TOLLGATE_REDIS_URL="+b.s.RedisURL,
			"TOLLGATE_REDIS_PREFIX="+b.s.RedisPrefix,
			"TOLLGATE_SECRET="+b.secret,
			"TOLLGATE_UPSTREAM_ALLOW_PRIVATE=true",
			fmt.Sprintf("TOLLGATE_PROXY_ADDR=127.0.0.1:%d", traffic),
			fmt.Sprintf("TOLLGATE_PROXY_ADMIN_ADDR=127.0.0.1:%d", admin),
			"TOLLGATE_LOG_LEVEL=warn",
		)
	}
	if need("tollgate", "tollgate-h2", "tollgate-h2c") {
		ports, err := freePorts(4)
		if err != nil {
			return err
		}
		env := append(workerEnv(ports[0], ports[1]), "TOLLGATE_PROXY_SNAPSHOT_FILE="+filepath.Join(dir, "snapshot.json"))
		if need("tollgate-h2") {
			env = append(env, fmt.Sprintf("TOLLGATE_PROXY_TLS_ADDR=127.0.0.1:%d", ports[2]), "TOLLGATE_PROXY_TLS_DIR="+b.tlsDir)
		}
		if need("tollgate-h2c") {
			env = append(env, fmt.Sprintf("TOLLGATE_PROXY_H2C_ADDR=127.0.0.1:%d", ports[3]))
		}
		p, err := b.ps.start(m.Name+"-tollgate-proxy", m.ProxyCPUs, env, b.s.Tollgate, "proxy")
		if err != nil {
			return err
		}
		m.groups["tollgate"] = p
		if err := waitHTTP(ctx, p, url(ports[1], "/readyz"), ""); err != nil {
			return fmt.Errorf("tollgate proxy: %w", err)
		}
		add(target{Name: "tollgate", Label: "tollgate, all features", Group: "tollgate", Proto: "h1", URL: url(ports[0], "/all/bench"), Port: ports[0], Balanced: true, KeyAuth: true})
		add(target{Name: "tollgate-h2", Label: "tollgate HTTP/2 (TLS)", Group: "tollgate", Proto: "h2", URL: h2url("https", ports[2], "/all/bench"), Port: ports[2]})
		add(target{Name: "tollgate-h2c", Label: "tollgate HTTP/2 (h2c)", Group: "tollgate", Proto: "h2c", URL: h2url("http", ports[3], "/all/bench"), Port: ports[3]})
	}
	if need("tg-none", "tg-key", "tg-ratelimit", "tg-quota") {
		ports, err := freePorts(2)
		if err != nil {
			return err
		}
		p, err := b.ps.start(m.Name+"-worker-nometer", m.ProxyCPUs, workerEnv(ports[0], ports[1]), b.s.Self, "worker", "-metering=false")
		if err != nil {
			return err
		}
		m.groups["worker-nometer"] = p
		if err := waitHTTP(ctx, p, url(ports[1], "/readyz"), ""); err != nil {
			return fmt.Errorf("bench worker: %w", err)
		}
		add(target{Name: "tg-none", Label: "worker: auth none", Group: "worker-nometer", Proto: "h1", URL: url(ports[0], "/open/bench"), Port: ports[0], Balanced: true})
		add(target{Name: "tg-key", Label: "  + key auth", Group: "worker-nometer", Proto: "h1", URL: url(ports[0], "/key/bench"), Port: ports[0], Balanced: true, KeyAuth: true, Key: b.keys["key"]})
		add(target{Name: "tg-ratelimit", Label: "  + rate limit", Group: "worker-nometer", Proto: "h1", URL: url(ports[0], "/rl/bench"), Port: ports[0], Balanced: true, KeyAuth: true, Key: b.keys["rl"]})
		add(target{Name: "tg-quota", Label: "  + quota", Group: "worker-nometer", Proto: "h1", URL: url(ports[0], "/all/bench"), Port: ports[0], Balanced: true, KeyAuth: true})
	}
	if need("tg-metering") {
		ports, err := freePorts(2)
		if err != nil {
			return err
		}
		p, err := b.ps.start(m.Name+"-worker-meter", m.ProxyCPUs, workerEnv(ports[0], ports[1]), b.s.Self, "worker", "-metering=true")
		if err != nil {
			return err
		}
		m.groups["worker-meter"] = p
		if err := waitHTTP(ctx, p, url(ports[1], "/readyz"), ""); err != nil {
			return fmt.Errorf("bench worker: %w", err)
		}
		add(target{Name: "tg-metering", Label: "  + metering", Group: "worker-meter", Proto: "h1", URL: url(ports[0], "/all/bench"), Port: ports[0], Balanced: true, KeyAuth: true})
	}
	// Report order is the settings' order, whatever the start order was.
	slices.SortStableFunc(m.targets, func(a, c target) int {
		return slices.Index(allTargets, a.Name) - slices.Index(allTargets, c.Name)
	})
	for i := range m.targets {
		m.targets[i].Reference = referenceOf(m.targets[i].Name)
	}
	return nil
}

// referenceOf is the target whose figures a target's ratios divide by.
func referenceOf(name string) string {
	switch {
	case name == "nginx" || name == "direct":
		return ""
	case name == "tollgate-h2":
		return "nginx-h2"
	case name == "tollgate-h2c":
		return "nginx-h2c"
	case name == "nginx-h2" || name == "nginx-h2c":
		return ""
	}
	return "nginx"
}

func freePorts(n int) ([]int, error) {
	var out []int
	for len(out) < n {
		p, err := benchproc.FreePort()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func renderTemplate(text string, data any, path string) error {
	t, err := template.New(filepath.Base(path)).Option("missingkey=error").Parse(text)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func nginxBinary() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	return "/usr/sbin/nginx"
}

func haproxyBinary() string {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	return "/usr/sbin/haproxy"
}

// waitHTTP polls url until it answers (any status below 500 counts as up,
// since a proxy's / may be a 404; 200 is required for /readyz and /healthz
// of our own processes) or p exits.
func waitHTTP(ctx context.Context, p *proc, url, host string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if !p.alive() {
			return fmt.Errorf("exited while starting:\n%s", p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within 60s (last: %s); log %s:\n%s", url, last, p.log, p.tail())
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// verify checks, before anything is measured, that an HTTP/1.1 target
// returns the backend's answer with the key, from both backend listeners
// where it balances, and 401 without the key where key auth is on. The
// HTTP/2 targets are checked by their warm-up (protocol h2, all 2xx).
func (b *bench) verify(ctx context.Context, t target) error {
	if t.Proto != "h1" {
		return nil
	}
	client := &http.Client{Timeout: 3 * time.Second}
	get := func(key string) (int, string, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", t.URL, nil)
		req.Host = benchHost
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}
	// A fresh worker may not hold the seed's generation yet: retry a while.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, err := get(t.Key)
		if err == nil && code == 200 && strings.Contains(body, `"backend":"bench-`) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s (Host %s, key) = %d %q %v, want 200 from the backend", t.URL, benchHost, code, body, err)
		}
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for range 8 {
		code, body, err := get(t.Key)
		if err != nil || code != 200 {
			return fmt.Errorf("GET %s = %d %v", t.URL, code, err)
		}
		for _, n := range []string{"bench-a", "bench-b"} {
			if strings.Contains(body, `"backend":"`+n+`"`) {
				seen[n] = true
			}
		}
	}
	if t.Balanced && len(seen) != 2 {
		return fmt.Errorf("8 requests to %s reached only %v of the two backend listeners: balancing is not on", t.URL, seen)
	}
	if t.KeyAuth {
		if code, _, err := get(""); err != nil || code != 401 {
			return fmt.Errorf("GET %s without a key = %d %v, want 401: key auth is not on", t.URL, code, err)
		}
	}
	return nil
}
