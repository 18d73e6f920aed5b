package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/bench/internal/benchproc"
)

// The processes of the bench: real `tollgate proxy` workers and a real
// `tollgate control`, a private redis-server, in-process backends and a TCP
// proxy in front of Postgres that the bench can cut. Every child process
// logs to its own file under the work directory and dies with the bench
// (childAttr).

// proc is a child process that can be started again with the same
// command line and environment, after it exited or was killed.
type proc struct {
	name string
	argv []string
	env  []string
	dir  string
	log  string // file that receives stdout and stderr, appended to

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error // receives Wait's error once per start
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	lf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s log: %w", p.name, err)
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = p.env, p.dir, lf, lf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); lf.Close() }()
	p.cmd, p.exited = cmd, exited
	return nil
}

// signal sends sig to the running process; false when none runs.
func (p *proc) signal(sig os.Signal) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	return p.cmd.Process.Signal(sig) == nil
}

// wait waits for the running process to exit and returns Wait's error.
func (p *proc) wait() error {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if exited == nil {
		return nil
	}
	err := <-exited
	p.mu.Lock()
	if p.exited == exited {
		p.cmd, p.exited = nil, nil
	}
	p.mu.Unlock()
	return err
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.signal(syscall.SIGKILL) {
		_ = p.wait()
	}
}

// logLines counts the lines of the process's log file.
func (p *proc) logLines() int {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return 0
	}
	return bytes.Count(data, []byte{'\n'})
}

// logSummary summarises the lines of the process's log after the first
// from: warnings and errors, and information about outages, counted by
// message ("ERROR publisher stopped leading; retrying ×5"). Routine lines
// (a snapshot published or swapped in) are left out.
func (p *proc) logSummary(from int) string {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return "log unreadable"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if from > len(lines) {
		return "none"
	}
	counts := map[string]int{}
	var order []string
	total := 0
	for _, l := range lines[from:] {
		var e struct{ Level, Msg string }
		if json.Unmarshal([]byte(l), &e) != nil || e.Msg == "" {
			continue
		}
		if e.Level == "INFO" && !strings.Contains(e.Msg, "reachable") {
			continue
		}
		total++
		k := e.Level + " " + e.Msg
		if len(k) > 72 {
			k = k[:71] + "…"
		}
		if counts[k] == 0 {
			order = append(order, k)
		}
		counts[k]++
	}
	if total == 0 {
		return "none"
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%q ×%d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}

// logHas reports whether a line after the first from contains s.
func (p *proc) logHas(from int, s string) bool {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return false
	}
	lines := strings.Split(string(data), "\n")
	return from < len(lines) && strings.Contains(strings.Join(lines[from:], "\n"), s)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// --- Redis -----------------------------------------------------------------

// redisServer is the bench's own redis-server on a free loopback port, with
// an append-only file fsynced every second in the work directory, so that
// a SIGKILL loses at most the last second of writes, as a production
// Redis with AOF does. The machine's Redis is never used.
type redisServer struct {
	proc
	addr string
}

func startRedis(bin, dir string) (*redisServer, error) {
	port, err := benchproc.FreePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "redis")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	r := &redisServer{addr: "127.0.0.1:" + strconv.Itoa(port)}
	r.proc = proc{name: "redis-server", dir: data, env: benchproc.Env(), log: filepath.Join(dir, "logs", "redis.log"),
		argv: []string{bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", data,
			"--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no"}}
	return r, r.start()
}

// start starts redis-server and waits until it answers PING with its data
// loaded.
func (r *redisServer) start() error {
	if err := r.proc.start(); err != nil {
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s not answering: %w (log: %s)", r.addr, err, r.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *redisServer) url() string { return "redis://" + r.addr + "/0" }

// --- workers ---------------------------------------------------------------

// worker is one `tollgate proxy` process. Its state directory
// (TOLLGATE_STATE_DIR) survives restarts, so a restarted worker finds its
// last good snapshot on disk, as in production.
type worker struct {
	proc
	traffic  string
	admin    string
	stateDir string
}

func newWorker(b *bench, name string, trafficPort, adminPort int, prefix string) *worker {
	w := &worker{traffic: "127.0.0.1:" + strconv.Itoa(trafficPort), admin: "127.0.0.1:" + strconv.Itoa(adminPort),
		stateDir: filepath.Join(b.dir, "state-"+name)}
	w.proc = proc{name: "worker " + name, argv: []string{*binary, "proxy"}, log: filepath.Join(b.dir, "logs", "worker-"+name+".log"),
		env: benchproc.Env(
			"TOLLGATE_REDIS_URL="+b.redis.url(),
			"TOLLGATE_REDIS_PREFIX="+prefix,
			"TOLLGATE_SECRET="+b.secret,
			"TOLLGATE_PROXY_ADDR="+w.traffic,
			"TOLLGATE_PROXY_ADMIN_ADDR="+w.admin,
			"TOLLGATE_UPSTREAM_ALLOW_PRIVATE=true",
			"TOLLGATE_LOG_LEVEL=info",
			"TOLLGATE_PROXY_DRAIN_DELAY=1s",
			// The product default: the last good snapshot kept on disk, in
			// a state directory of this run (empty at the start).
			"TOLLGATE_STATE_DIR="+w.stateDir,
		)}
	return w
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
			return fmt.Errorf("%s not ready at generation %d (log: %s)", w.name, gen, w.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// redisDown is the worker's tollgate_redis_down_seconds (0 while Redis
// answers its calls), or -1 when /metrics cannot be read.
func (w *worker) redisDown() float64 {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + w.admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "tollgate_redis_down_seconds "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}

// snapshotFiles lists the snapshot files in the worker's state directory.
func (w *worker) snapshotFiles() []string {
	m, _ := filepath.Glob(filepath.Join(w.stateDir, "snapshot-*.json"))
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// --- control plane and Postgres ---------------------------------------------

// control is one `tollgate control` process on a free port.
type control struct {
	proc
	url      string
	operator string
	// consumer and plan are the ones setup made, for newKey.
	consumer, plan string
}

// cutProxy forwards TCP connections to Postgres until it is cut: then it
// drops every open connection and hangs up on new ones at once, as a
// Postgres that went away does; restore makes it forward again.
type cutProxy struct {
	ln     net.Listener
	target string
	down   atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func startCutProxy(target string) (*cutProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("postgres proxy: %w", err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.down.Load() {
				c.Close()
				continue
			}
			go p.forward(c)
		}
	}()
	return p, nil
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down.Load() {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down.Store(true)
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) restore() { p.down.Store(false) }

func (p *cutProxy) close() { p.ln.Close(); p.cut() }

// --- backends ----------------------------------------------------------------

type backend struct {
	name  string
	url   string
	ln    net.Listener
	srv   *fasthttp.Server
	delay atomic.Int64
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

// exitStatus describes how a process ended.
func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.String()
	}
	return err.Error()
}
