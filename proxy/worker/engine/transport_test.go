package engine

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/netguard"
	"github.com/tollgate/tollgate/proxy/pipeline"
)

// connCounter is a backend that counts the connections opened to it and
// those closed.
type connCounter struct {
	srv            *httptest.Server
	mu             sync.Mutex
	opened, closed int
}

func newConnCounter(t *testing.T) *connCounter {
	c := &connCounter{}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		_, _ = rw.Write([]byte("ok"))
	}))
	c.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch s {
		case http.StateNew:
			c.opened++
		case http.StateClosed, http.StateHijacked:
			c.closed++
		}
	}
	c.srv.Start()
	t.Cleanup(c.srv.Close)
	return c
}

func (c *connCounter) counts() (opened, closed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opened, c.closed
}

func (c *connCounter) endpoint() pipeline.Endpoint {
	return pipeline.Endpoint{Scheme: "http", Host: strings.TrimPrefix(c.srv.URL, "http://")}
}

func get(t *testing.T, hc *fasthttp.HostClient) {
	t.Helper()
	var req fasthttp.Request
	var resp fasthttp.Response
	req.SetRequestURI("http://" + hc.Addr + "/")
	if err := hc.DoTimeout(&req, &resp, 5*time.Second); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("GET %s: %d %v", hc.Addr, resp.StatusCode(), err)
	}
}

// TestTransportsLifecycle: making a runtime's clients dials nothing (a
// runtime that is never swapped in leaves nothing open); the next runtime
// carries the clients of endpoints it shares over, warm connections and
// all; retiring the old runtime closes only what it alone held.
func TestTransportsLifecycle(t *testing.T) {
	t.Parallel()
	a, b := newConnCounter(t), newConnCounter(t)
	e := New(Options{Dialer: &netguard.Dialer{AllowPrivate: true}})

	first := e.NewTransports([]pipeline.Endpoint{a.endpoint(), b.endpoint()}, nil)
	if ao, _ := a.counts(); ao != 0 {
		t.Fatalf("making clients dialed %d connections", ao)
	}
	get(t, first.client(0))
	get(t, first.client(1))

	// A runtime that only has b: its client is first's, connection and all.
	second := e.NewTransports([]pipeline.Endpoint{b.endpoint()}, first)
	if second.client(0) != first.client(1) {
		t.Fatal("the client of an endpoint both runtimes have was not carried over")
	}
	first.Retire(second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ac := a.counts(); ac == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the retired runtime's idle connection to a target no longer used was not closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	get(t, second.client(0))
	if bo, bc := b.counts(); bo != 1 || bc != 0 {
		t.Fatalf("b: %d connections opened, %d closed; want the one kept across the reload", bo, bc)
	}

	// Another endpoint of the same address (an API with its own timeouts)
	// is a client of its own.
	ep := b.endpoint()
	ep.ReadTimeout = time.Second
	third := e.NewTransports([]pipeline.Endpoint{b.endpoint(), ep}, second)
	if third.client(0) != second.client(0) || third.client(1) == third.client(0) {
		t.Fatal("endpoints must be carried over by their whole identity, timeouts included")
	}
	second.Retire(third)
	third.Retire(nil)
}

func TestStreamingType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		contentType string
		want        bool
	}{
		{"text/event-stream", true},
		{"Text/Event-Stream; charset=utf-8", true},
		{" application/x-ndjson ", true},
		{"application/stream+json", true},
		{"multipart/x-mixed-replace; boundary=frame", true},
		{"application/json", false},
		{"text/plain", false},
		{"", false},
		{"text/event-streams", false},
	}
	for _, tc := range tests {
		if got := streamingType([]byte(tc.contentType)); got != tc.want {
			t.Errorf("streamingType(%q) = %v, want %v", tc.contentType, got, tc.want)
		}
	}
}

// TestCanonicalKeys: the names the engine sets with SetCanonical are in
// fasthttp's normal form, or a header of the same name would be repeated
// rather than replaced.
func TestCanonicalKeys(t *testing.T) {
	t.Parallel()
	for _, key := range [][]byte{keyXFF, keyXFProto, keyXFHost, keyXRealIP, keyRateLimit, keyRateLimitPol} {
		var h fasthttp.ResponseHeader
		h.Set(strings.ToLower(string(key)), "v")
		h.SetCanonical(key, []byte("w"))
		n := 0
		for k, v := range h.All() {
			if strings.EqualFold(string(k), string(key)) {
				n++
				if string(k) != string(key) || string(v) != "w" {
					t.Errorf("%s: header %s: %s", key, k, v)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s: %d headers of that name", key, n)
		}
	}
}
