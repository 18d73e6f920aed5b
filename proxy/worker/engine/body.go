package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/problem"
)

// Request bodies are streamed: the traffic server hands the handler the
// body as a stream (fasthttp Server.StreamRequestBody) and the handler
// passes it on to the upstream HostClient as the outgoing request's body
// stream, so a worker holds at most a few buffers of any body, whatever its
// size.
//
// RetryBufferBytes is where streaming starts. A body of at most this many
// bytes (declared by Content-Length, or a chunked body that ends within it)
// is read whole before the request is forwarded, so that an attempt that
// failed can be replayed on another target. A larger body is streamed and
// its request is never retried: what was sent of it cannot be sent again.
const RetryBufferBytes = 64 << 10

// errBodyTooLarge ends a body stream that went over its API's limit.
var errBodyTooLarge = errors.New("request body over the limit")

// bodyBuf is the pooled state of a body read from a stream: the reader
// that limits and counts it, and the buffer a small body is read into.
type bodyBuf struct {
	lim limitReader
	b   []byte
}

var bufPool = sync.Pool{New: func() any { return &bodyBuf{b: make([]byte, RetryBufferBytes+1)} }}

// reqBody is the state of one request's body: how it is sent on and what
// was read of it.
type reqBody struct {
	lim        *limitReader // nil when the body came in memory
	n          int64        // body bytes of an in-memory body
	pooled     *bodyBuf     // holds lim; back to bufPool on release
	replayable bool         // whole in memory: attempts may be retried
	streamed   bool         // read from the client while forwarding
}

// limitReader reads a client's body, counting what it read and failing
// with errBodyTooLarge past left bytes.
type limitReader struct {
	r    io.Reader
	left int64
	n    int64
	err  error // errBodyTooLarge or the client's read error; io.EOF excluded
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	if int64(n) > l.left {
		n = int(l.left)
		l.n += int64(n)
		l.left = 0
		l.err = errBodyTooLarge
		return n, l.err
	}
	l.n += int64(n)
	l.left -= int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		l.err = fmt.Errorf("read request body: %w", err)
		return n, l.err
	}
	return n, err
}

// bytesIn is the number of body bytes read from the client.
func (b *reqBody) bytesIn() int64 {
	if b.lim != nil {
		return b.lim.n
	}
	return b.n
}

// clientFailed reports whether reading the body failed on the client's
// side (too large, or broken off) rather than the upstream's; the client's
// connection is then at an unknown point of the body.
func (b *reqBody) clientFailed() bool { return b.lim != nil && b.lim.err != nil }

// tooLarge reports whether the body went over its limit while it was read.
func (b *reqBody) tooLarge() bool { return b.lim != nil && errors.Is(b.lim.err, errBodyTooLarge) }

// release returns the body's pooled state; the request's body is reset
// first so that nothing refers to it.
func (b *reqBody) release(req *fasthttp.Request) {
	if b.pooled != nil {
		req.ResetBody()
		b.pooled.lim = limitReader{}
		bufPool.Put(b.pooled)
		b.pooled, b.lim = nil, nil
	}
}

// Prepare readies a request the pipeline decided to forward, before the
// gateway adds headers of its own: it applies the API's body limit and
// readies the body (a problem answers a body refused), notes a WebSocket
// upgrade, and removes the hop-by-hop headers, those the client's
// Connection header names included (so that a client cannot name one of the
// gateway's own headers, request id, trace context, X-Forwarded-* or
// X-Real-IP, in Connection to have its value removed), and the claims of a
// client that is not a trusted proxy (clientClaims).
func (e *Engine) Prepare(ctx *fasthttp.RequestCtx, d *pipeline.Decision, x *Exchange) *problem.Problem {
	req := &ctx.Request
	if p := e.prepareBody(req, d.API, &x.body); p != nil {
		return p
	}
	x.upgrading = isUpgrade(&req.Header)
	x.trusted = e.trusted(ctx.RemoteAddr())
	stripRequestHeaders(&req.Header, x.trusted)
	return nil
}

// prepareBody applies the API's body limit (the server's MaxBodyBytes or
// less) and readies the body for forwarding: a body declared larger than
// the limit is refused before a byte of it is read; a small body is read
// whole (replayable); a larger one, or a chunked one that goes on past
// RetryBufferBytes, is streamed through a limitReader and fails the
// exchange when it passes the limit.
func (e *Engine) prepareBody(req *fasthttp.Request, api *pipeline.API, b *reqBody) *problem.Problem {
	limit := int64(e.opts.MaxBodyBytes)
	if api.MaxBodyBytes > 0 && api.MaxBodyBytes < limit {
		limit = api.MaxBodyBytes
	}
	stream := req.BodyStream()
	if stream == nil {
		// Already in memory (the request came through the net/http front
		// or a benchmark's in-memory request).
		b.n = int64(len(req.Body()))
		b.replayable = true
		if b.n > limit {
			return ProblemTooLarge
		}
		return nil
	}
	declared := int64(req.Header.ContentLength())
	if declared > limit {
		return ProblemTooLarge
	}
	if declared == 0 {
		req.SetBodyRaw(nil)
		b.replayable = true
		return nil
	}
	b.pooled = bufPool.Get().(*bodyBuf)
	b.pooled.lim = limitReader{r: stream, left: limit}
	b.lim = &b.pooled.lim
	if declared > RetryBufferBytes {
		b.streamed = true
		req.SetBodyStream(b.lim, int(declared))
		return nil
	}
	buf := b.pooled.b
	if declared >= 0 {
		buf = buf[:declared]
	}
	n, err := io.ReadFull(b.lim, buf)
	switch {
	case b.tooLarge():
		return ProblemTooLarge
	case b.clientFailed(), declared >= 0 && err != nil:
		// Broken off (a truncated chunked body fails in the reader; a
		// short one of declared length ends early).
		return ProblemBadBody
	case declared < 0 && err == nil:
		// A chunked body longer than the buffer: what was read goes
		// first, the rest streams.
		b.streamed = true
		req.SetBodyStream(io.MultiReader(bytes.NewReader(buf[:n]), b.lim), -1)
		return nil
	}
	b.replayable = true
	req.SetBodyRaw(buf[:n])
	return nil
}
