package worker

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/meter"
	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/problem"
)

const (
	hdrRequestID    = "X-Request-Id"
	hdrTraceparent  = "Traceparent"
	hdrRetryAfter   = "Retry-After"
	maxRequestIDLen = 200
)

// Header names the worker sets, in fasthttp's canonical form
// (SetCanonical skips normalizing them).
var (
	keyRequestID   = []byte(hdrRequestID)
	keyTraceparent = []byte(hdrTraceparent)
)

var problemShed = problem.New("overloaded", 503, "Service Unavailable",
	"The gateway is at its concurrency limit; retry shortly.")

// inflight counts the requests being served. A worker with a concurrency
// cap counts them exactly on one counter (the cap needs the count); one
// without spreads the count over padded shards, so that cores do not pass
// one cache line around on every request (the gauge sums them).
type inflight struct {
	exact  atomic.Int64
	shards [16]struct {
		n atomic.Int64
		_ [56]byte
	}
}

// enter counts a request in; with exact it returns the requests in flight
// (it included), else 0.
func (c *inflight) enter(exact bool) int64 {
	if exact {
		return c.exact.Add(1)
	}
	c.shards[rand.Uint32N(uint32(len(c.shards)))].n.Add(1)
	return 0
}

// leave counts a request out, on the counter enter used.
func (c *inflight) leave(exact bool) {
	if exact {
		c.exact.Add(-1)
		return
	}
	c.shards[rand.Uint32N(uint32(len(c.shards)))].n.Add(-1)
}

// Load is the number of requests in flight.
func (c *inflight) Load() int64 {
	n := c.exact.Load()
	for i := range c.shards {
		n += c.shards[i].n.Load()
	}
	return n
}

// finish records the answered request: its metrics, its usage (metered),
// and its access log entry; elapsed is the time from start until the answer
// was ready, bytesIn the size of the request body read from the client.
func (w *Worker) finish(ctx *fasthttp.RequestCtx, d *pipeline.Decision, start time.Time, elapsed time.Duration, reqID []byte, bytesIn int64) {
	status := ctx.Response.StatusCode()
	if d.API != nil {
		d.API.Metrics.Observe(status, elapsed)
		w.meter(ctx, d, status, start, elapsed, bytesIn)
	} else {
		w.unrouted.Observe(status, elapsed)
	}
	if w.access != nil {
		w.access.log(ctx, d, status, elapsed, reqID, bytesIn)
	}
}

// meter records the request's usage; bytesIn counts the body bytes read
// (streamed ones included).
func (w *Worker) meter(ctx *fasthttp.RequestCtx, d *pipeline.Decision, status int, start time.Time, elapsed time.Duration, bytesIn int64) {
	if w.thr.meter == nil {
		return
	}
	s := meter.Sample{At: start, TenantID: d.API.TenantID, APIID: d.API.Config.ID, Status: status,
		BytesIn: bytesIn, BytesOut: int64(max(responseBodyLen(&ctx.Response), 0)), Latency: elapsed}
	if k := d.Key; k != nil {
		s.KeyID, s.ConsumerID, s.PlanID = k.ID, k.ConsumerID, k.PlanID
	}
	w.thr.meter.Record(&s)
}

// responseBodyLen is the size of a response body without reading a
// streamed one (-1 when a streamed body's size is unknown).
func responseBodyLen(r *fasthttp.Response) int {
	if r.IsBodyStream() {
		return r.Header.ContentLength()
	}
	return len(r.Body())
}

// identify gives the request an id (the client's, when sane) and a W3C
// trace context (the client's, when valid), and returns the id, appended to
// idBuf. traced says the tracer has settled the trace context already
// (traceStart): it is then left alone.
func (w *Worker) identify(req *fasthttp.Request, idBuf []byte, traced bool) []byte {
	reqID := req.Header.Peek(hdrRequestID)
	if !saneRequestID(reqID) {
		reqID = w.newRequestID(idBuf)
		req.Header.SetCanonical(keyRequestID, reqID)
	}
	if !traced && !validTraceparent(req.Header.Peek(hdrTraceparent)) {
		var tp [55]byte
		req.Header.SetCanonical(keyTraceparent, w.newTraceparent(tp[:0]))
	}
	return reqID
}

func (w *Worker) shed(ctx *fasthttp.RequestCtx) {
	resp := &ctx.Response
	resp.SetStatusCode(problemShed.Status)
	resp.Header.SetContentType(problem.ContentType)
	resp.Header.Set(hdrRetryAfter, "1")
	resp.SetBody(problemShed.Body)
}

// validTraceparent checks a W3C traceparent header of version 00 (or a
// later version, whose first 55 bytes have the same layout).
func validTraceparent(v []byte) bool {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || (len(v) > 55 && v[55] != '-') {
		return false
	}
	if v[0] == 'f' && v[1] == 'f' || (len(v) > 55 && v[0] == '0' && v[1] == '0') {
		return false
	}
	zeroTrace, zeroSpan := true, true
	for i, c := range v[:55] {
		if i == 2 || i == 35 || i == 52 {
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
		if c != '0' {
			if i > 2 && i < 35 {
				zeroTrace = false
			} else if i > 35 && i < 52 {
				zeroSpan = false
			}
		}
	}
	return !zeroTrace && !zeroSpan
}

// newTraceparent appends a sampled traceparent with a new trace and span id.
func (w *Worker) newTraceparent(b []byte) []byte {
	b = append(b, "00-"...)
	b = w.newRequestID(b)
	b = append(b, '-')
	n := w.idSeq.Add(1) ^ w.spanSalt
	for i := 60; i >= 0; i -= 4 {
		b = append(b, "0123456789abcdef"[(n>>uint(i))&0xf])
	}
	return append(b, "-01"...)
}

// saneRequestID accepts a client's request id of printable token characters.
func saneRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestIDLen {
		return false
	}
	for _, c := range id {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '+', c == '/', c == '=':
		default:
			return false
		}
	}
	return true
}

// newRequestID appends a 32 hex digit id: the worker's random prefix and a
// counter, unique without a random read per request.
func (w *Worker) newRequestID(b []byte) []byte {
	b = append(b, w.idPrefix[:]...)
	n := w.idSeq.Add(1)
	for i := 60; i >= 0; i -= 4 {
		b = append(b, "0123456789abcdef"[(n>>uint(i))&0xf])
	}
	return b
}
