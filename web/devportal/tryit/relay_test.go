package tryit_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/web/devportal/tryit"
)

// seen is what a backend received.
type seen struct {
	Method, Host, Path, RawPath, Query, Body string
	Header                                   http.Header
}

// gateway is an httptest backend standing in for the tenant's gateway; it
// records every request and answers with handler.
type gateway struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newGateway(t *testing.T, handler http.HandlerFunc) *gateway {
	t.Helper()
	g := &gateway{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		g.mu.Lock()
		g.reqs = append(g.reqs, seen{Method: r.Method, Host: r.Host, Path: r.URL.Path, RawPath: r.URL.EscapedPath(),
			Query: r.URL.RawQuery, Body: string(b), Header: r.Header.Clone()})
		g.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) requests() []seen {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]seen(nil), g.reqs...)
}

// portal mounts the relay like the developer portal does: per API, for
// the tenant "acme", whose gateway host does not resolve, so every
// connection goes to DialAddr.
func portal(t *testing.T, g *gateway, tune func(*tryit.Relay)) *httptest.Server {
	t.Helper()
	rl := &tryit.Relay{
		Gateway: func(_ context.Context, apiID string) (*url.URL, bool) {
			if apiID != "pets" { // "orders" belongs to another tenant
				return nil, false
			}
			return &url.URL{Scheme: "http", Host: "acme.localhost:8000", Path: "/pets"}, true
		},
		DialAddr: g.srv.Listener.Addr().String(),
	}
	if tune != nil {
		tune(rl)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /apis/{id}/try", rl)
	mux.Handle("/try", rl)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type answer struct {
	status  int
	ctype   string
	result  tryit.Result
	problem tryit.Problem
}

func call(t *testing.T, srv *httptest.Server, path, contentType, body string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	// The portal's own cookies and headers must never reach the gateway.
	req.Header.Set("Cookie", "tg_session=secret-session")
	req.Header.Set("Authorization", "Bearer portal-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type")}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		err = json.Unmarshal(raw, &a.result)
	} else {
		err = json.Unmarshal(raw, &a.problem)
	}
	if err != nil {
		t.Fatalf("answer %d is not JSON: %v\n%s", resp.StatusCode, err, raw)
	}
	return a
}

func post(t *testing.T, srv *httptest.Server, req map[string]any) answer {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return call(t, srv, "/apis/pets/try", "application/json", string(b))
}

func TestRelayCallsTheGateway(t *testing.T) {
	t.Parallel()
	g := newGateway(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":42,"name":"Rex"}`)
	})
	srv := portal(t, g, nil)
	a := post(t, srv, map[string]any{
		"method":  "post",
		"path":    "/pets/a b/%C3%A9",
		"query":   map[string]any{"limit": "10", "tag": []string{"x", "y&z"}},
		"headers": map[string]string{"X-API-Key": "tg_live_k", "Content-Type": "application/json", "X-Request-Id": "r1"},
		"body":    `{"name":"Rex"}`,
	})
	if a.status != http.StatusOK || a.ctype != "application/json" {
		t.Fatalf("relay answered %d %s: %+v", a.status, a.ctype, a.problem)
	}
	r := a.result
	if r.Status != http.StatusCreated || r.Body != `{"id":42,"name":"Rex"}` || r.Truncated || r.BodyBase64 != "" {
		t.Errorf("result = %+v", r)
	}
	if r.Headers["Content-Type"] != "application/json" || r.Headers["X-Multi"] != "a, b" {
		t.Errorf("result headers = %v", r.Headers)
	}
	if r.DurationMS <= 0 {
		t.Errorf("duration_ms = %v", r.DurationMS)
	}
	reqs := g.requests()
	if len(reqs) != 1 {
		t.Fatalf("gateway saw %d requests", len(reqs))
	}
	got := reqs[0]
	// The gateway host stays in the Host header although the connection
	// went to DialAddr; the path is under the API's base path.
	if got.Method != "POST" || got.Host != "acme.localhost:8000" || got.RawPath != "/pets/pets/a%20b/%C3%A9" ||
		got.Query != "limit=10&tag=x&tag=y%26z" || got.Body != `{"name":"Rex"}` {
		t.Errorf("gateway saw %+v", got)
	}
	h := got.Header
	if h.Get("X-API-Key") != "tg_live_k" || h.Get("X-Request-Id") != "r1" || h.Get("User-Agent") != tryit.DefaultUserAgent {
		t.Errorf("gateway headers = %v", h)
	}
	if h.Get("Cookie") != "" || h.Get("Authorization") != "" {
		t.Errorf("the portal's cookie or token reached the gateway: %v", h)
	}

	// Mounted without {id}, the JSON names the API.
	a = call(t, srv, "/try", "application/json; charset=utf-8", `{"api_id":"pets","method":"GET","path":""}`)
	if a.status != http.StatusOK || g.requests()[1].Path != "/pets" {
		t.Errorf("api_id in the body: %d %+v", a.status, g.requests())
	}
}

func TestRelayRefuses(t *testing.T) {
	t.Parallel()
	g := newGateway(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := portal(t, g, func(rl *tryit.Relay) { rl.MaxRequestBody = 1 << 10 })
	tests := []struct {
		name   string
		path   string // relay URL, default /apis/pets/try
		ctype  string // default application/json
		body   string
		status int
		code   string
	}{
		{name: "absolute URL", body: `{"method":"GET","path":"http://169.254.169.254/latest"}`, status: 400, code: tryit.CodeInvalidPath},
		{name: "scheme-relative URL", body: `{"method":"GET","path":"//evil.example/x"}`, status: 400, code: tryit.CodeInvalidPath},
		{name: "other scheme", body: `{"method":"GET","path":"file:/etc/passwd"}`, status: 400, code: tryit.CodeInvalidPath},
		{name: "dot-dot", body: `{"method":"GET","path":"/../admin"}`, status: 400, code: tryit.CodeInvalidPath},
		{name: "encoded dot-dot", body: `{"method":"GET","path":"/a/%2e%2E/b"}`, status: 400, code: tryit.CodeInvalidPath},
		{name: "dot-dot behind an encoded slash", body: `{"method":"GET","path":"/a/..%2fb"}`, status: 400, code: tryit.CodeInvalidPath},
		{name: "dot segment", body: `{"method":"GET","path":"/./x"}`, status: 400, code: tryit.CodeInvalidPath},
		{name: "backslash", body: `{"method":"GET","path":"/a\\..\\b"}`, status: 400, code: tryit.CodeInvalidPath},
		{name: "CRLF in path", body: `{"method":"GET","path":"/x\r\nHost: evil"}`, status: 400, code: tryit.CodeInvalidPath},
		{name: "encoded CRLF in path", body: `{"method":"GET","path":"/x%0d%0aHost:%20evil"}`, status: 400, code: tryit.CodeInvalidPath},
		{name: "query in path", body: `{"method":"GET","path":"/x?admin=1"}`, status: 400, code: tryit.CodeInvalidPath},
		{name: "bad percent-escape", body: `{"method":"GET","path":"/x%zz"}`, status: 400, code: tryit.CodeInvalidPath},
		{name: "CRLF in header", body: `{"method":"GET","path":"/","headers":{"X-A":"1\r\nX-Injected: 1"}}`, status: 400, code: tryit.CodeInvalidHeader},
		{name: "bad header name", body: `{"method":"GET","path":"/","headers":{"X A":"1"}}`, status: 400, code: tryit.CodeInvalidHeader},
		{name: "Host", body: `{"method":"GET","path":"/","headers":{"host":"evil.example"}}`, status: 400, code: tryit.CodeForbiddenHeader},
		{name: "Cookie", body: `{"method":"GET","path":"/","headers":{"Cookie":"a=b"}}`, status: 400, code: tryit.CodeForbiddenHeader},
		{name: "Connection", body: `{"method":"GET","path":"/","headers":{"Connection":"close"}}`, status: 400, code: tryit.CodeForbiddenHeader},
		{name: "Transfer-Encoding", body: `{"method":"POST","path":"/","headers":{"Transfer-Encoding":"chunked"}}`, status: 400, code: tryit.CodeForbiddenHeader},
		{name: "Proxy-Authorization", body: `{"method":"GET","path":"/","headers":{"Proxy-Authorization":"x"}}`, status: 400, code: tryit.CodeForbiddenHeader},
		{name: "X-Forwarded-For", body: `{"method":"GET","path":"/","headers":{"X-Forwarded-For":"10.0.0.1"}}`, status: 400, code: tryit.CodeForbiddenHeader},
		{name: "Forwarded", body: `{"method":"GET","path":"/","headers":{"Forwarded":"for=10.0.0.1"}}`, status: 400, code: tryit.CodeForbiddenHeader},
		{name: "TRACE", body: `{"method":"TRACE","path":"/"}`, status: 400, code: tryit.CodeInvalidMethod},
		{name: "CONNECT", body: `{"method":"CONNECT","path":"/"}`, status: 400, code: tryit.CodeInvalidMethod},
		{name: "made-up method", body: `{"method":"GET /x HTTP/1.1\r\n","path":"/"}`, status: 400, code: tryit.CodeInvalidMethod},
		{name: "huge body", body: `{"method":"POST","path":"/","body":"` + strings.Repeat("a", 2<<10) + `"}`, status: 413, code: tryit.CodeTooLarge},
		{name: "huge envelope", body: `{"method":"POST","path":"/","body":"` + strings.Repeat("\\u0061", 20<<10) + `"}`, status: 413, code: tryit.CodeTooLarge},
		{name: "not JSON", ctype: "application/x-www-form-urlencoded", body: `method=GET&path=/`, status: 415, code: tryit.CodeUnsupportedMediaType},
		{name: "malformed JSON", body: `{"method":`, status: 400, code: tryit.CodeBadRequest},
		{name: "unknown field", body: `{"method":"GET","path":"/","url":"http://evil.example"}`, status: 400, code: tryit.CodeBadRequest},
		{name: "api id mismatch", body: `{"api_id":"orders","method":"GET","path":"/"}`, status: 400, code: tryit.CodeBadRequest},
		{name: "no api id", path: "/try", body: `{"method":"GET","path":"/"}`, status: 400, code: tryit.CodeBadRequest},
		{name: "another tenant's API", path: "/apis/orders/try", body: `{"method":"GET","path":"/"}`, status: 404, code: tryit.CodeNotFound},
		{name: "another tenant's API by body", path: "/try", body: `{"api_id":"orders","method":"GET","path":"/"}`, status: 404, code: tryit.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path, ctype := tt.path, tt.ctype
			if path == "" {
				path = "/apis/pets/try"
			}
			if ctype == "" {
				ctype = "application/json"
			}
			a := call(t, srv, path, ctype, tt.body)
			if a.status != tt.status || a.problem.Code != tt.code || a.ctype != "application/problem+json" ||
				a.problem.Type != tryit.ProblemBase+tt.code || a.problem.Status != tt.status || a.problem.Title == "" {
				t.Errorf("got %d %s %+v, want %d %s", a.status, a.ctype, a.problem, tt.status, tt.code)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		t.Parallel()
		resp, err := http.Get(srv.URL + "/try")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
			t.Errorf("GET = %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
	// None of the refused requests reached the gateway.
	t.Cleanup(func() {
		if n := len(g.requests()); n != 0 {
			t.Errorf("the gateway saw %d refused requests", n)
		}
	})
}

func TestRelayDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	elsewhere := newGateway(t, func(w http.ResponseWriter, r *http.Request) {})
	g := newGateway(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.srv.URL+"/steal", http.StatusFound)
	})
	a := post(t, portal(t, g, nil), map[string]any{"method": "GET", "path": "/x"})
	if a.status != http.StatusOK || a.result.Status != http.StatusFound || a.result.Headers["Location"] != elsewhere.srv.URL+"/steal" {
		t.Errorf("redirect: %d %+v", a.status, a.result)
	}
	if n := len(elsewhere.requests()); n != 0 {
		t.Errorf("the redirect was followed (%d requests elsewhere)", n)
	}
}

func TestRelayCapsTheResponse(t *testing.T) {
	t.Parallel()
	text := strings.Repeat("é", 1000) // 2000 bytes; the cut falls inside a rune
	bin := []byte{0xff, 0xfe, 0x00, 0x01}
	g := newGateway(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/pets/bin" {
			_, _ = w.Write(bin)
			return
		}
		_, _ = io.WriteString(w, text)
	})
	srv := portal(t, g, func(rl *tryit.Relay) { rl.MaxResponseBody = 1001 })
	a := post(t, srv, map[string]any{"method": "GET", "path": "/text"})
	if !a.result.Truncated || a.result.Body != strings.Repeat("é", 500) {
		t.Errorf("truncated text: truncated %v, %d bytes", a.result.Truncated, len(a.result.Body))
	}
	a = post(t, srv, map[string]any{"method": "GET", "path": "/bin"})
	if got, _ := base64.StdEncoding.DecodeString(a.result.BodyBase64); string(got) != string(bin) || a.result.Body != "" || a.result.Truncated {
		t.Errorf("binary body: %+v", a.result)
	}
}

func TestRelayGatewayFailures(t *testing.T) {
	t.Parallel()
	slow := newGateway(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	a := post(t, portal(t, slow, func(rl *tryit.Relay) { rl.Timeout = 100 * time.Millisecond }), map[string]any{"method": "GET", "path": "/"})
	if a.status != http.StatusGatewayTimeout || a.problem.Code != tryit.CodeGatewayTimeout {
		t.Errorf("slow gateway: %d %+v", a.status, a.problem)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	a = post(t, portal(t, slow, func(rl *tryit.Relay) { rl.DialAddr = closed }), map[string]any{"method": "GET", "path": "/"})
	if a.status != http.StatusBadGateway || a.problem.Code != tryit.CodeGatewayUnreachable {
		t.Errorf("unreachable gateway: %d %+v", a.status, a.problem)
	}
}
