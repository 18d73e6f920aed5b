package engine

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/pipeline"
)

// Forward exchanges the client's request with d's target, through tr (the
// clients of the runtime d was decided against), and leaves the answer in
// ctx.Response, cleaned of hop-by-hop headers and of cookie domains. The
// request is rewritten for the target in place first (headers.go).
//
// A request whose body is held whole (body.go) and that is idempotent, or
// carries an Idempotency-Key, is retried on another target when the
// upstream's retry policy and budget allow and the target failed or
// answered 502, 503 or 504. Each exchange's outcome goes into d.Outcome:
// d.Retry reports every attempt but the last, and the caller's deferred
// d.Done the last one. A WebSocket upgrade is spliced instead
// (websocket.go).
func (e *Engine) Forward(ctx *fasthttp.RequestCtx, d *pipeline.Decision, preq *pipeline.Request, tr *Transports, x *Exchange) error {
	req := &ctx.Request
	var pathBuf [256]byte
	path := e.rewrite(ctx, d, x, pathBuf[:0])
	if x.upgrading {
		setTarget(req, x, d.Target, path)
		return e.upgrade(ctx, d)
	}
	retryable := x.body.replayable &&
		pipeline.Retryable(d.Upstream, req.Header.Method(), len(req.Header.Peek(hdrIdempotencyKey)) > 0)
	// Clock reads cost tens of nanoseconds each here (a VM's vDSO): the
	// exchange reads the monotonic clock once before and once after, and
	// takes the wall clock from the request's arrival (preq.Now).
	start := now(preq.Now)
	deadline := start.Add(d.API.Timeout)
	for attempt := 0; ; attempt++ {
		setTarget(req, x, d.Target, path)
		err := e.rt.exchange(tr.client(d.Endpoint()), req, &ctx.Response, start, deadline)
		end := now(start)
		x.done = end
		d.Outcome = pipeline.Outcome{Latency: end.Sub(start)}
		start = end
		if err != nil && x.body.clientFailed() {
			// The client's body failed, not the target: the exchange was
			// abandoned (a zero Failure tells the balancer nothing).
			return err
		}
		if err != nil {
			d.Outcome.Failure = failure(err)
		} else {
			d.Outcome.Status = ctx.Response.StatusCode()
		}
		if retryable && attempt < d.Upstream.Retry.Attempts && end.Before(deadline) &&
			(err != nil || pipeline.RetryStatus(d.Outcome.Status)) && d.Retry(preq) {
			ctx.Response.Reset()
			continue
		}
		if err != nil {
			return err
		}
		cleanResponseHeaders(&ctx.Response.Header)
		return nil
	}
}

// now is the current time from one read of the monotonic clock: since, a
// recent time.Now (with its monotonic reading), plus the time since then.
// A since without a monotonic reading (zero, or made by hand) costs a
// time.Now instead.
func now(since time.Time) time.Time {
	if since.IsZero() || since == since.Round(0) {
		return time.Now()
	}
	return since.Add(time.Since(since))
}
