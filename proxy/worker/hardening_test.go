package worker

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/configsync"
	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/router"
)

// rawEcho is what rawBackend answers: the request target exactly as it
// arrived, and the headers.
type rawEcho struct {
	URI    string      `json:"uri"`
	Header http.Header `json:"header"`
}

// rawBackend echoes the raw request target and sets cookies scoped to the
// proxy domain and to a tenant's host, and a host-only one.
func rawBackend(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		h := rw.Header()
		h.Add("Set-Cookie", "sid=1; Domain=localhost; Path=/; HttpOnly")
		h.Add("Set-Cookie", "pref=dark; Path=/; domain=.acme.localhost; Secure; SameSite=Lax")
		h.Add("Set-Cookie", "plain=1; Path=/")
		h.Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(rawEcho{URI: r.RequestURI, Header: r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

type rawResponse struct {
	status int
	header http.Header
	body   []byte
	echo   rawEcho
}

// rawDo writes one request exactly as given (path and header lines
// unparsed by any client library) and reads the answer.
func (r *running) rawDo(t *testing.T, method, path string, headers ...string) rawResponse {
	t.Helper()
	conn, err := net.DialTimeout("tcp", r.traffic, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: acme.localhost\r\n", method, path)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %.80s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := rawResponse{status: resp.StatusCode, header: resp.Header, body: body}
	if resp.StatusCode == 200 {
		_ = json.Unmarshal(body, &out.echo)
	}
	return out
}

func hardeningTenant(t *testing.T, e *env, backendURL string, gen int64) {
	t.Helper()
	testredis.Publish(t, e.rdb, e.keys, oneTenant(gen,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: backendURL + "/base", Weight: 1}}}},
		[]proxycfg.API{
			{ID: "a", Slug: "a", BasePath: "/a", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true},
			{ID: "admin", Slug: "admin", BasePath: "/admin", UpstreamID: "u", Auth: proxycfg.AuthKey, StripBasePath: false},
		}, nil))
}

// TestAmbiguousPathsRefused is the regression test of path tricks reaching
// upstreams: what the gateway and an upstream could read differently is
// refused with 400 ambiguous-path (or 414), and what passes is forwarded in
// normal form, never decoded.
func TestAmbiguousPathsRefused(t *testing.T) {
	t.Parallel()
	b := rawBackend(t)
	e := newEnv(t)
	hardeningTenant(t, e, b.URL, 1)
	r := e.startWith(t, nil)
	r.waitReady(t, 1)
	tests := []struct {
		name     string
		path     string
		want     int
		code     string
		upstream string // the request target the backend sees
	}{
		{name: "plain", path: "/a/x?q=1", want: 200, upstream: "/base/x?q=1"},
		{name: "normal form forwarded", path: "/a/caf%c3%a9;v=1/%7Euser/x%3By", want: 200, upstream: "/base/caf%C3%A9;v=1/~user/x%3By"},
		{name: "base path stripped by segments", path: "/%61/x", want: 200, upstream: "/base/x"},
		{name: "tomcat dot dot semicolon", path: "/a/..;/admin/users", want: 400, code: "ambiguous-path"},
		{name: "encoded slash", path: "/a/..%2Fadmin/users", want: 400, code: "ambiguous-path"},
		{name: "encoded backslash", path: "/a/..%5Cadmin", want: 400, code: "ambiguous-path"},
		{name: "raw backslash", path: "/a/..\\admin", want: 400, code: "ambiguous-path"},
		{name: "encoded dot segment", path: "/a/%2e%2e/admin/users", want: 400, code: "ambiguous-path"},
		{name: "dot segment", path: "/a/../admin/users", want: 400, code: "ambiguous-path"},
		{name: "encoded nul", path: "/a/x%00.json", want: 400, code: "ambiguous-path"},
		{name: "empty segment", path: "/a//admin", want: 400, code: "ambiguous-path"},
		{name: "malformed encoding", path: "/a/100%", want: 400, code: "ambiguous-path"},
		{name: "path too long", path: "/a/" + strings.Repeat("x", router.MaxPathLen), want: 414, code: "uri-too-long"},
		{name: "too many segments", path: "/a" + strings.Repeat("/x", router.MaxPathSegments), want: 414, code: "uri-too-long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := r.rawDo(t, "GET", tc.path)
			if got.status != tc.want {
				t.Fatalf("status %d (%s), want %d", got.status, got.body, tc.want)
			}
			if tc.code != "" && !bytes.Contains(got.body, []byte(`"code":"`+tc.code+`"`)) {
				t.Fatalf("body %s, want code %q", got.body, tc.code)
			}
			if tc.upstream != "" && got.echo.URI != tc.upstream {
				t.Fatalf("upstream got %q, want %q", got.echo.URI, tc.upstream)
			}
		})
	}
}

// TestUpstreamCookiesHostOnly is the regression test of tenant backends
// setting cookies for the whole proxy domain: Domain attributes are
// removed, every other attribute is kept.
func TestUpstreamCookiesHostOnly(t *testing.T) {
	t.Parallel()
	b := rawBackend(t)
	e := newEnv(t)
	hardeningTenant(t, e, b.URL, 1)
	r := e.startWith(t, nil)
	r.waitReady(t, 1)
	got := r.rawDo(t, "GET", "/a/x")
	if got.status != 200 {
		t.Fatalf("status %d", got.status)
	}
	want := []string{"sid=1; Path=/; HttpOnly", "pref=dark; Path=/; Secure; SameSite=Lax", "plain=1; Path=/"}
	cookies := got.header.Values("Set-Cookie")
	if strings.Join(cookies, "|") != strings.Join(want, "|") {
		t.Fatalf("Set-Cookie %q, want %q", cookies, want)
	}
}

// TestForwardedHeadersUntrusted is the regression test of a client
// removing the gateway's X-Forwarded-For through Connection, and of client
// claims (X-Real-IP, True-Client-IP, X-Original-URL) passing untouched.
func TestForwardedHeadersUntrusted(t *testing.T) {
	t.Parallel()
	b := rawBackend(t)
	e := newEnv(t)
	hardeningTenant(t, e, b.URL, 1)
	r := e.startWith(t, nil) // no trusted proxies
	r.waitReady(t, 1)
	got := r.rawDo(t, "GET", "/a/x",
		"Connection: keep-alive, X-Forwarded-For, X-Request-Id, X-Real-IP, Traceparent, X-Hop",
		"X-Forwarded-For: 203.0.113.66", "X-Hop: 1", "X-Request-Id: client-id-1",
		"X-Real-IP: 203.0.113.7", "True-Client-IP: 203.0.113.8", "X-Client-IP: 203.0.113.9",
		"X-Original-URL: /admin/users", "Forwarded: for=203.0.113.10")
	if got.status != 200 {
		t.Fatalf("status %d (%s)", got.status, got.body)
	}
	h := got.echo.Header
	if v := h.Get("X-Forwarded-For"); v != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want the client address set by the gateway", v)
	}
	if v := h.Get("X-Real-Ip"); v != "127.0.0.1" {
		t.Errorf("X-Real-IP %q, want the client address", v)
	}
	if v := h.Get("X-Request-Id"); len(v) != 32 {
		t.Errorf("X-Request-Id %q: the gateway's own id is missing", v)
	}
	if !validTraceparent([]byte(h.Get("Traceparent"))) {
		t.Errorf("Traceparent %q: the gateway's own is missing", h.Get("Traceparent"))
	}
	for _, name := range []string{"X-Hop", "True-Client-Ip", "X-Client-Ip", "X-Original-Url", "Forwarded"} {
		if v := h.Get(name); v != "" {
			t.Errorf("%s forwarded: %q", name, v)
		}
	}
}

// TestRestartRedisDownDefaultSnapshot: with no snapshot file configured,
// the proxy command gives a worker the default file
// (configsync.DefaultSnapshotPath of its Redis URL and prefix, in the state
// directory), and a worker restarted while Redis is down (at the same
// address) serves from it.
func TestRestartRedisDownDefaultSnapshot(t *testing.T) {
	t.Parallel()
	b := backend(t, "b1")
	direct := newEnv(t)
	testredis.Publish(t, direct.rdb, direct.keys, oneTenant(9,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: b.URL, Weight: 1}}}},
		[]proxycfg.API{{ID: "a", Slug: "a", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}}, nil))
	fwd := testredis.NewForwarder(t)
	e := &env{rdb: fwd.Client(t), keys: direct.keys}
	redisURL := "redis://" + fwd.Addr() + "/0"
	byDefault := func(o *Options) { o.SnapshotFile = configsync.DefaultSnapshotPath(redisURL, o.Keys.Prefix) }

	first := e.startWith(t, byDefault)
	first.waitReady(t, 9)
	file := first.w.SnapshotFile()
	if file == "" || !strings.HasPrefix(file, os.Getenv("TOLLGATE_STATE_DIR")) {
		t.Fatalf("default snapshot file %q, want one in the state directory", file)
	}
	eventually(t, func() bool { _, err := os.Stat(file); return err == nil })
	first.cancel()
	<-first.done
	first.done <- nil

	fwd.Cut() // Redis is down
	second := (&env{rdb: fwd.Client(t), keys: e.keys}).startWith(t, byDefault)
	eventually(t, func() bool { return second.w.Ready() && second.w.Generation() == 9 })
	if got := second.doReq(t, http.MethodGet, "acme.localhost", "/x", nil, nil); got.status != 200 || got.echo.Backend != "b1" {
		t.Fatalf("restarted worker with Redis down: %d %s", got.status, got.body)
	}

	// "off" keeps nothing on disk.
	off, err := New(Options{Redis: e.rdb, Keys: e.keys, Secret: secret, SnapshotFile: configsync.SnapshotOff})
	if err != nil || off.SnapshotFile() != "" {
		t.Fatalf("SnapshotFile off: %q, %v", off.SnapshotFile(), err)
	}
}

// jsonLines decodes the JSON log lines written to buf.
func jsonLines(buf *syncBuffer) []map[string]any {
	var out []map[string]any
	for line := range strings.SplitSeq(buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// TestRedisOutageLoggedOnce: during a Redis outage the worker logs once
// that Redis is down (not once per failed poll, subscription retry, flush
// or heartbeat), once that it is back, and a metric says for how long it
// has been down.
func TestRedisOutageLoggedOnce(t *testing.T) {
	t.Parallel()
	b := backend(t, "b1")
	direct := newEnv(t)
	testredis.Publish(t, direct.rdb, direct.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: b.URL, Weight: 1}}}},
		[]proxycfg.API{{ID: "a", Slug: "a", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}}, nil))
	fwd := testredis.NewForwarder(t)
	var logs syncBuffer
	e := &env{rdb: fwd.Client(t), keys: direct.keys}
	r := e.startWith(t, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		o.MeterInterval = 100 * time.Millisecond
	})
	r.waitReady(t, 1)
	downSeconds := func() float64 {
		resp, err := http.Get("http://" + r.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for line := range strings.SplitSeq(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, "tollgate_redis_down_seconds "); ok {
				var f float64
				fmt.Sscan(v, &f)
				return f
			}
		}
		t.Fatal("no tollgate_redis_down_seconds metric")
		return 0
	}
	if d := downSeconds(); d != 0 {
		t.Fatalf("down %v s before the outage", d)
	}

	fwd.Cut()
	// Traffic goes on (the config is in memory) while every background
	// loop keeps failing: polls every 100ms, subscriptions every 250ms,
	// usage flushes every 100ms, heartbeats every second.
	for range 15 {
		r.doReq(t, http.MethodGet, "acme.localhost", "/x", nil, nil)
		time.Sleep(100 * time.Millisecond)
	}
	if d := downSeconds(); d < 1 {
		t.Fatalf("tollgate_redis_down_seconds %v during a 1.5s outage", d)
	}
	fwd.Restore()
	eventually(t, func() bool { return strings.Contains(logs.String(), "redis reachable again") })
	if d := downSeconds(); d != 0 {
		t.Fatalf("down %v s after recovery", d)
	}

	var down, back, other int
	for _, l := range jsonLines(&logs) {
		msg, _ := l["msg"].(string)
		switch {
		case msg == "redis unreachable":
			down++
		case msg == "redis reachable again":
			back++
		case l["level"] == "WARN" || l["level"] == "ERROR":
			other++
			t.Logf("other warning: %v", l)
		}
	}
	if down != 1 || back != 1 || other != 0 {
		t.Fatalf("outage logged %d times down, %d back, %d other warnings; want 1, 1, 0:\n%s", down, back, other, logs.String())
	}
}
