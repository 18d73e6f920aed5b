package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// nextWaitServer serves handler on a NextWaitListener that sweeps every
// sweep; the handler's answers are armed as the worker's are. A test's
// server has a long read timeout, so that a wait the sweeper did not end
// would show as a stall of a minute. Tests that expect no wait ended sweep
// every second (a busy machine may pause a client for a sweep of 20 ms).
func nextWaitServer(t *testing.T, sweep time.Duration, handler fasthttp.RequestHandler) (*NextWaitListener, *fasthttp.Server) {
	t.Helper()
	return nextWaitServerTimeouts(t, sweep, time.Minute, time.Minute, handler)
}

// nextWaitServerTimeouts is nextWaitServer with the server's read and idle
// timeouts.
func nextWaitServerTimeouts(t *testing.T, sweep, read, idle time.Duration, handler fasthttp.RequestHandler) (*NextWaitListener, *fasthttp.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nl := newNextWaitListener(ln, sweep)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			var x Exchange
			handler(ctx)
			ArmNextWait(ctx, &x)
		},
		ReadTimeout: read, IdleTimeout: idle,
		StreamRequestBody: true, WriteBufferSize: WriteBufferSize, CloseOnShutdown: true,
	}
	go func() { _ = srv.Serve(nl) }()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		nl.Stop()
	})
	return nl, srv
}

func okHandler(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok " + string(ctx.Path())) }

// dialNextWait opens a client connection and returns a reader of answers.
func dialNextWait(t *testing.T, nl *NextWaitListener) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", nl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func getRequest(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: example\r\n\r\n"
}

// readAnswer reads one answer and checks its body.
func readAnswer(t *testing.T, br *bufio.Reader, wantBody string) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if string(body) != wantBody {
		t.Fatalf("body %q, want %q", trim(string(body)), trim(wantBody))
	}
	return resp
}

func trim(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// theConn is the listener's one connection.
func theConn(t *testing.T, nl *NextWaitListener) *waitConn {
	t.Helper()
	nl.mu.Lock()
	defer nl.mu.Unlock()
	if len(nl.conns) != 1 {
		t.Fatalf("%d connections, want 1", len(nl.conns))
	}
	for c := range nl.conns {
		return c
	}
	return nil
}

// A client that sends each request after the answer to the one before has
// every answer written by the wait, and none ended by the sweeper.
func TestNextWaitKeepAlive(t *testing.T) {
	nl, _ := nextWaitServer(t, time.Second, okHandler)
	c, br := dialNextWait(t, nl)
	const n = 200
	for i := range n {
		p := fmt.Sprintf("/r%d", i)
		if _, err := io.WriteString(c, getRequest(p)); err != nil {
			t.Fatal(err)
		}
		readAnswer(t, br, "ok "+p)
	}
	wc := theConn(t, nl)
	if got := wc.seq.Load(); got != n {
		t.Errorf("%d answers written by the wait, want %d", got, n)
	}
	if k := nl.kicks.Load(); k != 0 {
		t.Errorf("%d waits ended by the sweeper, want 0", k)
	}
}

// A request pipelined in a segment of its own while the handler runs
// arrives before the wait is armed: the sweeper ends the wait, the request
// is answered within a few sweeps (not the read timeout of a minute), and
// the connection does not wait again.
func TestNextWaitPipelinedSegment(t *testing.T) {
	nl, _ := nextWaitServer(t, 20*time.Millisecond, func(ctx *fasthttp.RequestCtx) {
		time.Sleep(200 * time.Millisecond)
		okHandler(ctx)
	})
	c, br := dialNextWait(t, nl)
	start := time.Now()
	if _, err := io.WriteString(c, getRequest("/a")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // the handler is sleeping
	if _, err := io.WriteString(c, getRequest("/b")); err != nil {
		t.Fatal(err)
	}
	readAnswer(t, br, "ok /a")
	readAnswer(t, br, "ok /b")
	t.Logf("two answers after %v", time.Since(start))
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("two pipelined answers took %v", el)
	}
	if k := nl.kicks.Load(); k != 1 {
		t.Errorf("%d waits ended by the sweeper, want 1", k)
	}
	if !theConn(t, nl).off {
		t.Error("the connection still waits after a wait was ended")
	}
	// It goes on serving, without waits.
	if _, err := io.WriteString(c, getRequest("/c")); err != nil {
		t.Fatal(err)
	}
	readAnswer(t, br, "ok /c")
}

// Requests pipelined in one segment are read together: the second answer's
// handler finds the connection still armed and turns the waits off.
func TestNextWaitPipelinedTogether(t *testing.T) {
	nl, _ := nextWaitServer(t, time.Second, okHandler)
	c, br := dialNextWait(t, nl)
	if _, err := io.WriteString(c, getRequest("/a")+getRequest("/b")+getRequest("/c")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/a", "/b", "/c"} {
		readAnswer(t, br, "ok "+p)
	}
	if !theConn(t, nl).off {
		t.Error("waits still on after pipelining")
	}
	if k := nl.kicks.Load(); k != 0 {
		t.Errorf("%d waits ended by the sweeper, want 0", k)
	}
}

// An answer to Connection: close is not waited on: the server closes the
// connection at once.
func TestNextWaitConnectionClose(t *testing.T) {
	nl, _ := nextWaitServer(t, time.Second, okHandler)
	c, br := dialNextWait(t, nl)
	if _, err := io.WriteString(c, "GET /a HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	readAnswer(t, br, "ok /a")
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the answer: %v, want EOF", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("the close came after %v", el)
	}
	if k := nl.kicks.Load(); k != 0 {
		t.Errorf("%d waits ended by the sweeper, want 0", k)
	}
}

// An answer larger than the write buffer goes out in pieces; only the last
// waits, and the next request is served.
func TestNextWaitLargeAnswer(t *testing.T) {
	big := strings.Repeat("x", 3*WriteBufferSize+17)
	exact := strings.Repeat("y", 2*WriteBufferSize)
	nl, _ := nextWaitServer(t, time.Second, func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/big":
			ctx.SetBodyString(big)
		case "/exact":
			ctx.SetBodyString(exact)
		default:
			okHandler(ctx)
		}
	})
	c, br := dialNextWait(t, nl)
	for _, step := range []struct{ path, body string }{{"/big", big}, {"/a", "ok /a"}, {"/exact", exact}, {"/b", "ok /b"}, {"/big", big}} {
		if _, err := io.WriteString(c, getRequest(step.path)); err != nil {
			t.Fatal(err)
		}
		readAnswer(t, br, step.body)
	}
	if k := nl.kicks.Load(); k != 0 {
		t.Errorf("%d waits ended by the sweeper, want 0", k)
	}
}

// A request with a body the handler did not read is not waited on (the
// server reads the rest of the body after the answer).
func TestNextWaitUnreadBody(t *testing.T) {
	nl, _ := nextWaitServer(t, time.Second, okHandler)
	c, br := dialNextWait(t, nl)
	body := strings.Repeat("b", 100)
	for i := range 3 {
		if _, err := fmt.Fprintf(c, "POST /p%d HTTP/1.1\r\nHost: example\r\nContent-Length: %d\r\n\r\n%s", i, len(body), body); err != nil {
			t.Fatal(err)
		}
		readAnswer(t, br, fmt.Sprintf("ok /p%d", i))
	}
	if got := theConn(t, nl).seq.Load(); got != 0 {
		t.Errorf("%d answers waited on, want 0", got)
	}
}

// A client that pauses between requests longer than two sweeps has its
// wait ended by the sweeper; its next request is served and the
// connection does not wait again.
func TestNextWaitPause(t *testing.T) {
	nl, _ := nextWaitServer(t, 20*time.Millisecond, okHandler)
	c, br := dialNextWait(t, nl)
	if _, err := io.WriteString(c, getRequest("/a")); err != nil {
		t.Fatal(err)
	}
	readAnswer(t, br, "ok /a")
	deadline := time.Now().Add(5 * time.Second)
	for nl.kicks.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if k := nl.kicks.Load(); k != 1 {
		t.Fatalf("%d waits ended by the sweeper, want 1", k)
	}
	for _, p := range []string{"/b", "/c"} {
		if _, err := io.WriteString(c, getRequest(p)); err != nil {
			t.Fatal(err)
		}
		readAnswer(t, br, "ok "+p)
	}
	wc := theConn(t, nl)
	if !wc.off || wc.seq.Load() != 1 {
		t.Errorf("off %v after %d waits; want off after 1", wc.off, wc.seq.Load())
	}
}

// A connection waiting for its client's next request does not hold up a
// graceful shutdown: closing the listener ends the wait, and the server
// closes the connection as idle.
func TestNextWaitShutdown(t *testing.T) {
	nl, srv := nextWaitServer(t, time.Second, okHandler)
	c, br := dialNextWait(t, nl)
	if _, err := io.WriteString(c, getRequest("/a")); err != nil {
		t.Fatal(err)
	}
	readAnswer(t, br, "ok /a")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.ShutdownWithContext(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("shutdown took %v", el)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("the connection is still open after shutdown")
	}
}

// The read deadlines fasthttp sets twice per request are set on the
// connection lazily (SetReadDeadline): a keep-alive connection is still
// closed at its idle timeout after the last answer, not before (the
// deadline set on the connection is the first request's, earlier) and not
// much after.
func TestNextWaitIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	nl, _ := nextWaitServerTimeouts(t, time.Second, idle, idle, okHandler)
	c, br := dialNextWait(t, nl)
	for _, p := range []string{"/a", "/b", "/c"} {
		time.Sleep(50 * time.Millisecond) // each request moves the deadlines on
		if _, err := io.WriteString(c, getRequest(p)); err != nil {
			t.Fatal(err)
		}
		readAnswer(t, br, "ok "+p)
	}
	last := time.Now()
	_ = c.SetReadDeadline(last.Add(idle - 100*time.Millisecond))
	if _, err := br.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("before the idle timeout: %v, want the client's own deadline", err)
	}
	_ = c.SetReadDeadline(last.Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the idle timeout: %v, want EOF", err)
	}
	if el := time.Since(last); el < idle-20*time.Millisecond || el > 5*time.Second {
		t.Errorf("closed %v after the last answer, idle timeout %v", el, idle)
	}
}

// A client that trickles a request's headers is cut off at the read
// timeout, counted from the request's first byte, though the deadline set
// on the connection is an earlier one.
func TestNextWaitSlowHeaders(t *testing.T) {
	const read = 400 * time.Millisecond
	nl, _ := nextWaitServerTimeouts(t, time.Second, read, time.Minute, okHandler)
	c, br := dialNextWait(t, nl)
	if _, err := io.WriteString(c, getRequest("/a")); err != nil {
		t.Fatal(err)
	}
	readAnswer(t, br, "ok /a")
	time.Sleep(100 * time.Millisecond)
	first := time.Now()
	if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: example\r\n"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := io.WriteString(c, "X-Slow: 1\r\n"); err != nil {
					return
				}
			}
		}
	}()
	// The server answers 408 or closes; either way the connection ends.
	_, _ = io.Copy(io.Discard, br)
	if el := time.Since(first); el < read-50*time.Millisecond || el > 5*time.Second {
		t.Errorf("a trickling request cut off %v after its first byte, read timeout %v", el, read)
	}
}
