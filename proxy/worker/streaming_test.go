package worker

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// streamingBackend answers with contentType, writing first, flushing, and
// writing second only once the test closed next (or the request ended): a
// gateway that buffers the answer never lets the client see first, and
// the test times out.
func streamingBackend(t *testing.T, contentType, first, second string, next <-chan struct{}) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rw.Header().Set("Content-Type", contentType)
		_, _ = io.WriteString(rw, first)
		rw.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(rw, second)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestStreamingDecidedByResponse: whether an answer streams is decided by
// the answer, not by the request's Accept header. Clients that send no
// Accept (LLM-style POSTs answered with events, NDJSON feeds) get the first
// record before the backend writes the last; small JSON stays buffered.
func TestStreamingDecidedByResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, contentType string
		first, second             string
	}{
		{name: "server-sent events, no Accept", method: http.MethodGet, contentType: "text/event-stream",
			first: "data: one\n\n", second: "data: two\n\n"},
		{name: "server-sent events answering a POST", method: http.MethodPost, contentType: "text/event-stream; charset=utf-8",
			first: "event: token\ndata: Hel\n\n", second: "event: token\ndata: lo\n\n"},
		{name: "NDJSON feed", method: http.MethodPost, contentType: "application/x-ndjson",
			first: "{\"n\":1}\n", second: "{\"n\":2}\n"},
		{name: "stream+json", method: http.MethodGet, contentType: "application/stream+json",
			first: "{\"n\":1}\n", second: "{\"n\":2}\n"},
		{name: "chunked JSON of unknown length", method: http.MethodGet, contentType: "application/json",
			first: "[{\"n\":1}\n", second: ",{\"n\":2}]\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			next := make(chan struct{})
			be := streamingBackend(t, tc.contentType, tc.first, tc.second, next)
			e := newEnv(t)
			testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
				[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: be.URL, Weight: 1}}}},
				[]proxycfg.API{{ID: "a", Slug: "a", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}}, nil))
			r := e.start(t, true)
			r.waitReady(t, 1)

			var body io.Reader
			if tc.method == http.MethodPost {
				body = strings.NewReader(`{"prompt":"hello"}`)
			}
			req, _ := http.NewRequest(tc.method, "http://"+r.traffic+"/stream", body)
			req.Host = "acme.localhost"
			req.Header.Del("Accept")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.contentType {
				t.Fatalf("status %d content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			got := make([]byte, len(tc.first))
			done := make(chan error, 1)
			go func() { _, err := io.ReadFull(resp.Body, got); done <- err }()
			select {
			case err := <-done:
				if err != nil || string(got) != tc.first {
					t.Fatalf("first record %q, %v; want %q", got, err, tc.first)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the first record did not arrive before the backend wrote the last: the answer was buffered")
			}
			close(next)
			rest, err := io.ReadAll(resp.Body)
			if err != nil || string(rest) != tc.second {
				t.Fatalf("rest %q, %v; want %q", rest, err, tc.second)
			}
		})
	}

	t.Run("small JSON stays buffered", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		be := backend(t, "b")
		testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
			[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: be.URL, Weight: 1}}}},
			[]proxycfg.API{{ID: "a", Slug: "a", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}}, nil))
		r := e.start(t, true)
		r.waitReady(t, 1)
		req, _ := http.NewRequest(http.MethodGet, "http://"+r.traffic+"/small", nil)
		req.Host = "acme.localhost"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(resp.TransferEncoding) != 0 || resp.ContentLength != int64(len(body)) {
			t.Fatalf("status %d, transfer encoding %v, content length %d for a %d-byte body: want a buffered answer with its length",
				resp.StatusCode, resp.TransferEncoding, resp.ContentLength, len(body))
		}
	})
}

// TestLargeDownloadsStreamBounded: a 50 MB answer, chunked or with its
// length, goes through the worker holding a few buffers of it at a time.
// The test counts every byte the test process allocates while the answer
// passes (backend, worker and client all live here): buffering it would
// allocate at least its size.
func TestLargeDownloadsStreamBounded(t *testing.T) {
	// Not parallel: it counts the process's allocations.
	const size = 50 << 20
	chunk := make([]byte, 32<<10)
	for i := range chunk {
		chunk[i] = byte('a' + i%26)
	}
	var opened atomic.Int32
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/octet-stream")
		if r.URL.Path == "/sized" {
			rw.Header().Set("Content-Length", strconv.Itoa(size))
		}
		for n := 0; n < size; n += len(chunk) {
			if _, err := rw.Write(chunk); err != nil {
				return
			}
		}
	}))
	be.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	be.Start()
	t.Cleanup(be.Close)
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: be.URL, Weight: 1}}}},
		[]proxycfg.API{{ID: "a", Slug: "a", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}}, nil))
	r := e.start(t, true)
	r.waitReady(t, 1)
	for _, path := range []string{"/chunked", "/sized"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+r.traffic+path, nil)
			req.Host = "acme.localhost"
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			runtime.ReadMemStats(&after)
			if err != nil || n != size || resp.StatusCode != 200 {
				t.Fatalf("status %d, read %d bytes, %v; want %d", resp.StatusCode, n, err, size)
			}
			if path == "/sized" && resp.ContentLength != size {
				t.Fatalf("content length %d, want %d kept", resp.ContentLength, size)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: %d MB relayed, %.1f MB allocated by the whole process", path, size>>20, float64(alloc)/(1<<20))
			if alloc > 8<<20 {
				t.Fatalf("%d bytes allocated while relaying %d: the answer was buffered", alloc, size)
			}
		})
	}
	// A body relayed to its end leaves its connection to the target
	// reusable: both downloads went over one.
	if n := opened.Load(); n != 1 {
		t.Fatalf("%d connections to the target for two downloads, want 1", n)
	}
}

// TestWebSocketToHTTPSTarget: an upgrade to an https target goes over TLS,
// verified against the roots the worker is given (Options.UpstreamTLS).
func TestWebSocketToHTTPSTarget(t *testing.T) {
	t.Parallel()
	ws := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || r.TLS == nil {
			http.Error(rw, "upgrade over tls required", http.StatusUpgradeRequired)
			return
		}
		c, buf, err := rw.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Path: " + r.URL.Path + "\r\n\r\n")
		_ = buf.Flush()
		_, _ = io.Copy(c, buf)
	}))
	ws.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	t.Cleanup(ws.Close)
	roots := x509.NewCertPool()
	roots.AddCert(ws.Certificate())
	// httptest's certificate names 127.0.0.1 and example.com; the target is
	// dialed by IP, so the name checked is 127.0.0.1.
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: ws.URL, Weight: 1}}}},
		[]proxycfg.API{{ID: "a", Slug: "a", BasePath: "/chat", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true}}, nil))

	tests := []struct {
		name    string
		roots   *x509.CertPool
		upgrade bool
		want    string
	}{
		{name: "trusted target", roots: roots, upgrade: true, want: "HTTP/1.1 101"},
		{name: "plain request over tls", roots: roots, want: "HTTP/1.1 426"},
		{name: "untrusted certificate refused", roots: x509.NewCertPool(), upgrade: true, want: "HTTP/1.1 502"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.startWith(t, func(o *Options) { o.UpstreamTLS = &tls.Config{RootCAs: tc.roots} })
			r.waitReady(t, 1)
			c, err := net.DialTimeout("tcp", r.traffic, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			hs := "GET /chat/room HTTP/1.1\r\nHost: acme.localhost\r\n"
			if tc.upgrade {
				hs += "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			}
			_, err = io.WriteString(c, hs+"\r\n")
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			status, err := br.ReadString('\n')
			if err != nil || !strings.HasPrefix(status, tc.want) {
				t.Fatalf("status line %q, %v; want %s", status, err, tc.want)
			}
			if !strings.HasPrefix(tc.want, "HTTP/1.1 101") {
				return
			}
			var path string
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if v, ok := strings.CutPrefix(l, "X-Path: "); ok {
					path = strings.TrimSpace(v)
				}
				if l == "\r\n" {
					break
				}
			}
			if path != "/room" {
				t.Fatalf("upstream path %q, want /room", path)
			}
			for _, msg := range []string{"ping", "pong-pong"} {
				if _, err := io.WriteString(c, msg); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
					t.Fatalf("echo %q, %v; want %q", got, err, msg)
				}
			}
		})
	}
}
