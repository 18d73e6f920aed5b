package worker

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

func TestServerSentEventsFlushed(t *testing.T) {
	t.Parallel()
	next := make(chan struct{})
	sse := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/event-stream")
		fl := rw.(http.Flusher)
		_, _ = io.WriteString(rw, "data: one\n\n")
		fl.Flush()
		// The second event waits until the client has seen the first:
		// a buffering proxy would deadlock here (and the test time out).
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(rw, "data: two\n\n")
	}))
	t.Cleanup(sse.Close)
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: sse.URL, Weight: 1}}}},
		[]proxycfg.API{{ID: "a", Slug: "a", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone, TimeoutMS: 30000}}, nil))
	r := e.start(t, true)
	r.waitReady(t, 1)

	req, _ := http.NewRequest(http.MethodGet, "http://"+r.traffic+"/events", nil)
	req.Host = "acme.localhost"
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event %q, %v", line, err)
	}
	close(next)
	rest, err := io.ReadAll(br)
	if err != nil || !strings.Contains(string(rest), "data: two") {
		t.Fatalf("rest %q, %v", rest, err)
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	t.Parallel()
	// A backend that accepts the upgrade and then echoes raw bytes: the
	// gateway does not look inside WebSocket frames.
	ws := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(rw, "upgrade required", http.StatusUpgradeRequired)
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
	t.Cleanup(ws.Close)
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: ws.URL, Weight: 1}}}},
		[]proxycfg.API{{ID: "a", Slug: "a", BasePath: "/chat", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true}}, nil))
	r := e.start(t, true)
	r.waitReady(t, 1)

	tests := []struct {
		name    string
		upgrade bool
		want    string
	}{
		{name: "upgrade spliced", upgrade: true, want: "HTTP/1.1 101"},
		{name: "plain request refused by the backend", upgrade: false, want: "HTTP/1.1 426"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
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
			hs += "\r\n"
			if _, err := io.WriteString(c, hs); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			status, err := br.ReadString('\n')
			if err != nil || !strings.HasPrefix(status, tc.want) {
				t.Fatalf("status line %q, %v; want %s", status, err, tc.want)
			}
			if !tc.upgrade {
				return
			}
			var path string
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(l, "X-Path: ") {
					path = strings.TrimSpace(strings.TrimPrefix(l, "X-Path: "))
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
