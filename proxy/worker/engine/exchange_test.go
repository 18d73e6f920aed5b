package engine

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/netguard"
	"github.com/tollgate/tollgate/proxy/pipeline"
)

// rawTarget is a target written by hand on a TCP listener: serve gets each
// accepted connection (numbered from 1) and its reader.
func rawTarget(t *testing.T, serve func(n int64, c net.Conn, br *bufio.Reader)) pipeline.Endpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := conns.Add(1)
			go func() {
				defer c.Close()
				serve(n, c, bufio.NewReader(c))
			}()
		}
	}()
	return pipeline.Endpoint{Scheme: "http", Host: ln.Addr().String()}
}

// readRequest reads one request (head and body) from br.
func readRequest(br *bufio.Reader) (*http.Request, error) {
	r, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, r.Body)
	return r, err
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// TestExchangeWaitsThenReads covers the exchange that writes the request
// and waits for the answer before reading it (writeThenWait): answers in
// pieces, a target that closes a kept-alive connection (the next request is
// sent again on a new connection and succeeds), one that never answers (the
// read timeout, as a timeout), one that answers before it has read the
// body, and a large streamed body.
func TestExchangeWaitsThenReads(t *testing.T) {
	t.Parallel()
	e := New(Options{Dialer: &netguard.Dialer{AllowPrivate: true}})
	do := func(ep pipeline.Endpoint, method string, body io.Reader, size int) (*fasthttp.Response, error) {
		t.Helper()
		hc := e.newClient(ep)
		req, resp := fasthttp.AcquireRequest(), &fasthttp.Response{}
		defer fasthttp.ReleaseRequest(req)
		req.SetRequestURI("http://" + ep.Host + "/x")
		req.Header.SetMethod(method)
		if body != nil {
			req.SetBodyStream(body, size)
		}
		start := time.Now()
		err := e.rt.exchange(hc, req, resp, start, start.Add(5*time.Second))
		return resp, err
	}

	t.Run("answer in pieces", func(t *testing.T) {
		t.Parallel()
		ep := rawTarget(t, func(_ int64, c net.Conn, br *bufio.Reader) {
			if _, err := readRequest(br); err != nil {
				return
			}
			for _, piece := range []string{"HTTP/1.1 200 OK\r\n", "Content-Length: 5\r\n\r\nhel", "lo"} {
				time.Sleep(20 * time.Millisecond)
				_, _ = io.WriteString(c, piece)
			}
		})
		resp, err := do(ep, "GET", nil, 0)
		if err != nil || resp.StatusCode() != 200 || string(resp.Body()) != "hello" {
			t.Fatalf("got %d %q, %v", resp.StatusCode(), resp.Body(), err)
		}
	})

	t.Run("kept-alive connection closed by the target", func(t *testing.T) {
		t.Parallel()
		ep := rawTarget(t, func(_ int64, c net.Conn, br *bufio.Reader) {
			// One answer per connection, kept alive as far as the client
			// knows, then closed.
			if _, err := readRequest(br); err == nil {
				_, _ = io.WriteString(c, okAnswer)
			}
		})
		hc := e.newClient(ep)
		for i := range 3 {
			req, resp := fasthttp.AcquireRequest(), &fasthttp.Response{}
			req.SetRequestURI("http://" + ep.Host + "/x")
			start := time.Now()
			err := e.rt.exchange(hc, req, resp, start, start.Add(5*time.Second))
			fasthttp.ReleaseRequest(req)
			if err != nil || resp.StatusCode() != 200 {
				t.Fatalf("request %d: %d %v", i, resp.StatusCode(), err)
			}
			time.Sleep(30 * time.Millisecond) // the close reaches the client
		}
	})

	t.Run("no answer", func(t *testing.T) {
		t.Parallel()
		ep := rawTarget(t, func(_ int64, c net.Conn, br *bufio.Reader) {
			_, _ = readRequest(br)
			time.Sleep(2 * time.Second)
		})
		ep.ReadTimeout = 200 * time.Millisecond
		start := time.Now()
		_, err := do(ep, "POST", nil, 0) // not retried
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("got %v, want a timeout", err)
		}
		if el := time.Since(start); el > 1500*time.Millisecond {
			t.Fatalf("the timeout took %v", el)
		}
		if failure(err) != pipeline.FailTimeout {
			t.Fatalf("classified %v", failure(err))
		}
	})

	t.Run("answer before the body was read", func(t *testing.T) {
		t.Parallel()
		ep := rawTarget(t, func(_ int64, c net.Conn, br *bufio.Reader) {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			// Read the rest, so that the client's writes do not fail.
			_, _ = io.Copy(io.Discard, br)
		})
		body := bytes.Repeat([]byte("x"), 1<<20)
		resp, err := do(ep, "POST", bytes.NewReader(body), len(body))
		if err != nil || resp.StatusCode() != 413 {
			t.Fatalf("got %d, %v", resp.StatusCode(), err)
		}
	})

	t.Run("large streamed body", func(t *testing.T) {
		t.Parallel()
		ep := rawTarget(t, func(_ int64, c net.Conn, br *bufio.Reader) {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			n, _ := io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(len(itoa(int(n))))+"\r\n\r\n"+itoa(int(n)))
		})
		body := strings.Repeat("y", 4<<20)
		resp, err := do(ep, "POST", strings.NewReader(body), len(body))
		if err != nil || resp.StatusCode() != 200 || string(resp.Body()) != itoa(len(body)) {
			t.Fatalf("got %d %q, %v", resp.StatusCode(), resp.Body(), err)
		}
	})
}

func itoa(n int) string {
	var b [20]byte
	return string(fasthttp.AppendUint(b[:0], n))
}
