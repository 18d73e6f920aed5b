package engine

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Responses are read whole or relayed as streams as the response itself
// says, whatever the client asked for. The rule, applied to the target's
// response headers:
//
//   - a streaming media type (text/event-stream, application/x-ndjson and
//     the other line- or record-delimited types of streamingTypes,
//     multipart/x-mixed-replace) is relayed as a stream, chunked to the
//     client, each piece flushed as it arrives from the target;
//   - a body without a length (chunked, or delimited by the target closing
//     the connection) is relayed the same way;
//   - a body longer than Options.MaxBufferedResponse is relayed with its
//     Content-Length kept, through the connection's write buffer (so a
//     download never sits whole in memory);
//   - anything else, the usual small JSON answer, is read whole and sent in
//     one write: the fast path.
//
// A relayed body holds at most a few buffers of memory whatever its size.
// It is bounded by an idle timeout between reads from the target (the API's
// read timeout, else its timeout) rather than by the API's timeout as a
// whole, so that an event stream may last.

// streamingTypes are media types whose bodies are sequences of records
// meant to be read as they come (compared without parameters, ignoring
// case).
var streamingTypes = [][]byte{
	[]byte("text/event-stream"),
	[]byte("application/x-ndjson"),
	[]byte("application/ndjson"),
	[]byte("application/jsonl"),
	[]byte("application/x-jsonlines"),
	[]byte("application/stream+json"),
	[]byte("application/x-json-stream"),
	[]byte("application/json-seq"),
	[]byte("multipart/x-mixed-replace"),
}

// streamingType reports whether a Content-Type value names a streaming
// media type.
func streamingType(contentType []byte) bool {
	mt := contentType
	if i := bytes.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = bytes.TrimSpace(mt)
	for _, t := range streamingTypes {
		if len(mt) == len(t) && bytes.EqualFold(mt, t) {
			return true
		}
	}
	return false
}

// maxInterimResponses bounds the 1xx answers skipped before the final one.
const maxInterimResponses = 8

var errTooManyInterim = errors.New("too many interim (1xx) responses")

// roundTripper is the engine's exchange over a HostClient's pooled
// connection (also its fasthttp.RoundTripper): fasthttp's own, except that
// the response's headers decide whether its body is read whole or relayed
// as a stream (the rule above).
type roundTripper struct {
	maxBuffered int
}

// maxConnAttempts bounds the connections an idempotent request is tried on
// when kept-alive ones turn out closed by the target (fasthttp's default).
const maxConnAttempts = fasthttp.DefaultMaxIdemponentCallAttempts

var userAgent = []byte("tollgate")

// exchange sends req to hc's target and reads the answer into resp, by the
// given deadline (start is the current time, as the caller read it). It is
// what HostClient.DoDeadline does, less the work the engine needs not (its
// clients serve one scheme and address each; the deadline is computed
// once): an idempotent request without a body stream is sent again on
// another connection when a kept-alive one failed before any answer, as
// fasthttp does.
func (rt *roundTripper) exchange(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, start, deadline time.Time) error {
	resp.Reset()
	if len(req.Header.UserAgent()) == 0 {
		req.Header.SetUserAgentBytes(userAgent)
	}
	for attempt := 1; ; attempt++ {
		retry, err := rt.roundTrip(hc, req, resp, start, deadline)
		if err == nil {
			return nil
		}
		start = time.Now()
		if !retry || attempt >= maxConnAttempts || req.IsBodyStream() || !idempotent(&req.Header) || !start.Before(deadline) {
			if errors.Is(err, io.EOF) {
				err = fasthttp.ErrConnectionClosed
			}
			return err
		}
		resp.Reset()
	}
}

// idempotent reports a request fasthttp would resend on a new connection.
func idempotent(h *fasthttp.RequestHeader) bool { return h.IsGet() || h.IsHead() || h.IsPut() }

// RoundTrip implements fasthttp.RoundTripper, for exchanges that go
// through the HostClient's own methods (the engine calls exchange).
func (rt *roundTripper) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (retry bool, err error) {
	var start, deadline time.Time
	if timeout := req.GetTimeOut(); timeout > 0 {
		start = time.Now()
		deadline = start.Add(timeout)
	}
	return rt.roundTrip(hc, req, resp, start, deadline)
}

// roundTrip writes req on a pooled connection and reads the answer into
// resp, by deadline (unless zero; start is the current time, as the caller
// read it). retry reports whether the request may be sent again on another
// connection (a kept-alive connection the target had closed).
func (rt *roundTripper) roundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, start, deadline time.Time) (retry bool, err error) {
	var timeout time.Duration
	if !deadline.IsZero() {
		if timeout = deadline.Sub(start); timeout <= 0 {
			return false, fasthttp.ErrTimeout
		}
	}
	cc, err := hc.AcquireConn(timeout, req.ConnectionClose())
	if err != nil {
		return false, err
	}
	conn := cc.Conn()
	if err := conn.SetDeadline(deadline); err != nil {
		hc.CloseConn(cc)
		return true, err
	}
	idle := timeout
	var readDeadline time.Time
	if rd := hc.ReadTimeout; rd > 0 {
		idle = rd
		if t := time.Now().Add(rd); deadline.IsZero() || t.Before(deadline) {
			readDeadline = t
		}
	}
	rc := rawConnOf(conn)
	if rc != nil && !readDeadline.IsZero() {
		// Before the request goes out: the wait for the answer starts
		// with the write (writeThenWait).
		if err := conn.SetReadDeadline(readDeadline); err != nil {
			hc.CloseConn(cc)
			return true, err
		}
	}
	bw := hc.AcquireWriter(conn)
	var waitErr error
	if rc != nil {
		err, waitErr = writeThenWait(rc, req, bw)
	} else {
		err = writeRequest(req, bw)
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		hc.CloseConn(cc)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = fasthttp.ErrTimeout
		}
		return true, err
	}
	if waitErr != nil {
		// No answer came (the read deadline, or the connection failed):
		// as a failed read of the answer's head.
		hc.CloseConn(cc)
		return true, waitErr
	}
	if rc == nil && !readDeadline.IsZero() {
		if err := conn.SetReadDeadline(readDeadline); err != nil {
			hc.CloseConn(cc)
			return true, err
		}
	}
	if hc.DisableHeaderNamesNormalizing {
		resp.Header.DisableNormalizing()
	}
	if req.Header.IsHead() {
		resp.SkipBody = true
	}
	br := hc.AcquireReader(conn)
	if err := readResponseHeader(&resp.Header, br); err != nil {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return true, err
	}
	closeConn := req.ConnectionClose() || resp.ConnectionClose()
	cl := resp.Header.ContentLength()
	status := resp.Header.StatusCode()
	noBody := resp.SkipBody || status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified
	streaming := !noBody && streamingType(resp.Header.ContentType())
	switch {
	case noBody:
	case cl >= 0 && cl <= rt.maxBuffered && !streaming:
		err = resp.ReadBody(br, rt.maxBuffered)
	default:
		size := cl
		if cl < 0 || streaming {
			size = -1 // chunked to the client, a chunk per read
		}
		body := newUpstreamBody(br, conn, cl, idle, closeConn, func(reuse bool) {
			hc.ReleaseReader(br)
			if reuse {
				hc.ReleaseConn(cc)
			} else {
				hc.CloseConn(cc)
			}
		})
		if err := body.start(); err != nil {
			_ = body.Close()
			return false, err
		}
		resp.SetBodyStream(body, size)
		// The client sees the headers at once, not with the first piece
		// of the body (which may be an event far off).
		resp.ImmediateHeaderFlush = true
		return false, nil
	}
	hc.ReleaseReader(br)
	if err != nil || closeConn {
		hc.CloseConn(cc)
		return false, err
	}
	hc.ReleaseConn(cc)
	return false, nil
}

// writeRequest writes req on bw and flushes it.
func writeRequest(req *fasthttp.Request, bw *bufio.Writer) error {
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	return err
}

// rawConnOf is the raw connection of a plain TCP connection to a target
// (nil for TLS, whose records a read of the socket does not line up with).
func rawConnOf(c net.Conn) syscall.RawConn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// writeThenWait writes req on bw (a writer of rc's connection) and then
// waits until the connection has something to read, the answer or its end,
// without reading it. It saves a system call per exchange: Go's net package
// reads a socket before it waits on it, and right after a request is sent
// the answer is never there yet, so the reader of the answer's head would
// first get EAGAIN (bench/README.md, "syscalls/req"). The answer is then
// read as usual, at once. writeErr is the write's failure, waitErr the
// wait's (the read deadline passed, or the connection closed under it).
func writeThenWait(rc syscall.RawConn, req *fasthttp.Request, bw *bufio.Writer) (writeErr, waitErr error) {
	w := requestWaits.Get().(*requestWait)
	w.req, w.bw = req, bw
	_, writeErr, waitErr = w.run(rc)
	w.req, w.bw = nil, nil
	requestWaits.Put(w)
	return writeErr, waitErr
}

// requestWait is writeThenWait's state, pooled with its write bound.
type requestWait struct {
	readWait
	req *fasthttp.Request
	bw  *bufio.Writer
}

var requestWaits = sync.Pool{New: func() any {
	w := &requestWait{}
	w.bind(func() error { return writeRequest(w.req, w.bw) })
	return w
}}

// readWait writes on a connection and then waits until it has something to
// read, both inside one RawConn.Read: that call clears the connection's
// read readiness and then calls the function that writes, so the wait is
// armed before the write goes out and whatever the peer sends in answer,
// or its close, wakes it. The engine's side of an exchange (writeThenWait)
// and the client's (nextwait.go) use it. Its function is bound once (a
// closure or a method value per write would be allocated).
type readWait struct {
	write   func() error
	written bool
	err     error
	step    func(uintptr) bool
}

// bind sets the write the wait runs.
func (w *readWait) bind(write func() error) {
	w.write = write
	w.step = func(uintptr) bool {
		if w.written {
			return true // readable
		}
		w.written = true
		w.err = w.write()
		return w.err != nil
	}
}

// run writes and waits on rc. wrote reports whether the write ran (it does
// not when the read deadline had passed or the connection is closed);
// writeErr is its failure, and then waitErr is nil; waitErr is the wait's
// failure otherwise.
func (w *readWait) run(rc syscall.RawConn) (wrote bool, writeErr, waitErr error) {
	w.written, w.err = false, nil
	waitErr = rc.Read(w.step)
	wrote, writeErr = w.written, w.err
	w.err = nil
	if writeErr != nil {
		waitErr = nil
	}
	return wrote, writeErr, waitErr
}

// readResponseHeader reads the final response header, skipping interim
// (1xx) answers other than 101.
func readResponseHeader(h *fasthttp.ResponseHeader, br *bufio.Reader) error {
	for n := 0; ; n++ {
		if err := h.Read(br); err != nil {
			return err
		}
		if s := h.StatusCode(); s < 100 || s > 199 || s == fasthttp.StatusSwitchingProtocols {
			return nil
		}
		if n >= maxInterimResponses {
			return errTooManyInterim
		}
	}
}

// upstreamBody relays a target's response body as the client's response
// body stream. fasthttp's server reads it (or the net/http front does) and
// closes it when done, which hands the connection back to its pool when the
// body was read to its end, and closes the connection otherwise.
type upstreamBody struct {
	frame    *fasthttp.Response // parses the body's framing (chunks, trailer)
	br       *bufio.Reader      // the connection's pooled reader
	stream   io.Reader
	conn     net.Conn
	idle     time.Duration
	release  func(reuse bool)
	reusable bool // the framing allows reuse (not until-close), and no Connection: close
	eof      bool // read to its end
	failed   bool // a read failed: the connection is at an unknown point
	closed   bool
}

func newUpstreamBody(br *bufio.Reader, conn net.Conn, contentLength int, idle time.Duration, closeConn bool,
	release func(reuse bool)) *upstreamBody {
	b := &upstreamBody{frame: fasthttp.AcquireResponse(), br: br, conn: conn, idle: idle, release: release,
		reusable: !closeConn && contentLength != -2}
	b.frame.StreamBody = true
	b.frame.Header.SetContentLength(contentLength)
	return b
}

// start readies the framing reader over the connection's reader.
func (b *upstreamBody) start() error {
	if err := b.frame.ReadBody(b.br, 0); err != nil {
		b.failed = true
		return err
	}
	b.stream = b.frame.BodyStream()
	return nil
}

// Read reads the body, each read bounded by the idle timeout.
func (b *upstreamBody) Read(p []byte) (int, error) {
	if b.closed || b.stream == nil {
		return 0, io.ErrClosedPipe
	}
	if b.eof {
		return 0, io.EOF
	}
	if b.idle > 0 {
		_ = b.conn.SetReadDeadline(time.Now().Add(b.idle))
	}
	n, err := b.stream.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		b.eof = true
	default:
		b.failed = true
	}
	return n, err
}

// Close ends the relay and releases the connection: back to its pool when
// the body was read to its end, else closed.
func (b *upstreamBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	_ = b.frame.CloseBodyStream()
	fasthttp.ReleaseResponse(b.frame)
	b.release(b.reusable && b.eof && !b.failed)
	return nil
}
