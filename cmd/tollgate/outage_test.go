package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/storetest"
)

// cutProxy forwards TCP connections to a target until it is cut: then it
// drops every open connection and hangs up on new ones at once, as a
// Postgres that went away does; restore makes it forward again.
type cutProxy struct {
	ln     net.Listener
	target string
	down   atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	p := &cutProxy{ln: listen(t), target: target, conns: map[net.Conn]struct{}{}}
	go func() {
		for {
			c, err := p.ln.Accept()
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
	t.Cleanup(func() { p.ln.Close(); p.cut() })
	return p
}

func (p *cutProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
}

func (p *cutProxy) cut() {
	p.down.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

func (p *cutProxy) restore() { p.down.Store(false) }

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPostgresOutage: with Postgres gone the control plane answers 503
// (problem+json with Retry-After on /v1, a plain page on the portal, 503 on
// /healthz) instead of 500, logs the outage once and its end once, and
// serves again when Postgres is back, without a restart.
func TestPostgresOutage(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	dsn := storetest.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pgProxy := newCutProxy(t, u.Host)
	u.Host = pgProxy.ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	db, err := store.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	rdb, keys := storetest.NewRedis(t)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	secret := []byte("outage-secret-" + randHex(8))
	ln := listen(t)
	base := "http://" + ln.Addr().String()
	cfg := config{Secret: secret, AllowPrivate: true, ProxyDomain: "localhost", PublicURL: base, DigestKey: testDigestKey(t, db, secret)}
	web, err := newPortal(ctx, cfg, db, rdb, keys, log, ln.Addr().String(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	operator := "op-" + randHex(8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = serveControl(ctx, controlDeps{DB: db, Redis: rdb, Keys: keys, Secret: secret, OperatorToken: operator, DigestKey: cfg.DigestKey,
			AllowPrivate: true, Logger: log, PollInterval: 200 * time.Millisecond, Portal: web,
			DBMonitor: &store.Monitor{DB: db, Logger: log, Interval: 50 * time.Millisecond}}, ln)
	}()
	t.Cleanup(func() { cancel(); <-done; db.Close() })

	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	call := func(method, path, token string, body any) (*http.Response, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set("Content-Type", "application/json")
		if strings.HasPrefix(token, "tga_") {
			req.Header.Set("Authorization", "Bearer "+token)
		} else if token != "" {
			req.AddCookie(&http.Cookie{Name: "tg_session", Value: token})
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp, data
	}

	// Up: a tenant, its admin token and a portal session.
	var created struct {
		AdminToken string `json:"admin_token"`
	}
	req, _ := http.NewRequest("POST", base+"/v1/tenants", strings.NewReader(`{"name":"Outage","slug":"outage"}`))
	req.Header.Set("Authorization", "Bearer "+operator)
	req.Header.Set("Content-Type", "application/json")
	r, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(r.Body).Decode(&created)
	r.Body.Close()
	if r.StatusCode != http.StatusCreated || created.AdminToken == "" {
		t.Fatalf("create tenant: %d", r.StatusCode)
	}
	_, owner, err := accounts.Signup(ctx, db, secret, accounts.SignupInput{Company: "Owner Co", Slug: "outage-owner",
		Name: "Owner", Email: "owner@outage.example", Password: "correct horse battery", Client: "test"})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := accounts.StartSession(ctx, db, owner)
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := call("GET", "/v1/apis", created.AdminToken, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("before the outage: %d %s", resp.StatusCode, body)
	}

	// What is logged from the cut on (a monitor ping that timed out while
	// the machine was busy starting everything may have logged a flap
	// before it: that is not this outage).
	logStart := len(logs.String())
	pgProxy.cut()
	for _, tc := range []struct {
		name, path, token string
		problem           bool
	}{
		{"management API", "/v1/apis", created.AdminToken, true},
		{"management API again (pool reconnecting)", "/v1/upstreams", created.AdminToken, true},
		{"tenant portal page", "/dashboard", sess.ID, false},
		{"health", "/healthz", "", false},
	} {
		resp, body := call("GET", tc.path, tc.token, nil)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s during the outage: %d, want 503: %s", tc.name, resp.StatusCode, body)
			continue
		}
		if !tc.problem {
			continue
		}
		var p struct {
			Type   string `json:"type"`
			Status int    `json:"status"`
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" || json.Unmarshal(body, &p) != nil ||
			!strings.HasSuffix(p.Type, "/unavailable") || p.Status != 503 {
			t.Errorf("%s: %s %s, want an unavailable problem", tc.name, ct, body)
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", tc.name)
		}
	}
	if resp, _ := call("GET", "/dashboard", sess.ID, nil); resp.Header.Get("Retry-After") == "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("portal outage page: %q, Retry-After %q", resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"))
	}
	time.Sleep(300 * time.Millisecond) // several monitor pings while down

	pgProxy.restore()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body := call("GET", "/v1/apis", created.AdminToken, nil)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after Postgres came back: %d %s", resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp, body := call("GET", "/dashboard", sess.ID, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("portal after recovery: %d %.300s", resp.StatusCode, body)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String()[logStart:], "postgres reachable again") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	out := logs.String()[logStart:]
	if n := strings.Count(out, "postgres unreachable"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "postgres reachable again"); n != 1 {
		t.Errorf("recovery logged %d times, want once:\n%s", n, out)
	}
	if strings.Contains(out, "request failed") {
		t.Errorf("requests during the outage were logged as errors:\n%s", out)
	}
}

// TestControlServerLimits: the control plane's server bounds how long a
// client may take to send a request and how long an answer may take, and
// the size of request headers.
func TestControlServerLimits(t *testing.T) {
	t.Parallel()
	srv := controlServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Fatalf("a timeout is unset: %+v", srv)
	}
	if srv.WriteTimeout < 45*time.Second {
		t.Errorf("WriteTimeout %s leaves no room for a 30s try-it call or an SDK download", srv.WriteTimeout)
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 {
		t.Errorf("MaxHeaderBytes %d", srv.MaxHeaderBytes)
	}
	// Headers beyond the limit are refused.
	ln := listen(t)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("x", controlMaxHeaderBytes+4096))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized headers: %d, want 431", resp.StatusCode)
	}
}
