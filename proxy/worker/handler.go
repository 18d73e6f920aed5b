package worker

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/worker/engine"
)

// HandleFastHTTP serves one client request: it runs the pipeline and either
// answers with a problem or has the engine forward the request to the
// chosen target (retrying on another where the upstream allows), then
// records the answer. It is the whole traffic handler, exported so that
// benchmarks can drive it directly.
//
// The request's arrival is ctx.Time(), which fasthttp's server reads just
// before calling the handler (and RequestCtx.Init and Init2 set): a caller
// driving the handler with a RequestCtx of its own must Init it for every
// request, or time stands still for the pipeline.
func (w *Worker) HandleFastHTTP(ctx *fasthttp.RequestCtx) {
	start := ctx.Time()
	if start.IsZero() {
		start = time.Now()
	}
	n := w.inflight.enter(w.opts.MaxConcurrent > 0)
	defer w.inflight.leave(w.opts.MaxConcurrent > 0)
	if limit := w.opts.MaxConcurrent; limit > 0 && n > int64(limit) {
		w.metrics.Shed()
		w.shed(ctx)
		return
	}
	req := &ctx.Request
	rt := w.sync.Load() // the pipeline's runtime and the engine's clients, together
	var x engine.Exchange
	defer x.Release(req)
	var d pipeline.Decision
	// Whatever happens below, the picked target is reported once and the
	// concurrency slot released.
	defer d.Done()

	var pathBuf [256]byte
	var preq pipeline.Request
	if p := engine.ReadRequest(ctx, &preq, pathBuf[:0]); p != nil {
		d.Problem = p
	} else {
		preq.Now = start
		// Not ctx itself: fasthttp recycles a RequestCtx once the handler
		// returns, so a context derived from it must not outlive the
		// request, and Redis calls may leave goroutines behind that still
		// hold theirs.
		w.pipe.Decide(w.bg, rt.pipeline(), &preq, &d)
	}
	if d.Problem == nil {
		d.Problem = w.engine.Prepare(ctx, &d, &x)
	}
	// After Prepare, which removes the headers the client's Connection
	// names: the traceparent written here must reach the upstream.
	sp := traceStart(w.opts.Tracer, req, &d, start)
	var idBuf [32]byte
	reqID := w.identify(req, idBuf[:0], w.opts.Tracer != nil)
	if d.Problem == nil {
		// One client span for the whole exchange, retries on other
		// targets included (the engine knows nothing of tracing).
		traceUpstream(&sp, req)
		err := w.engine.Forward(ctx, &d, &preq, rt.transports, &x)
		traceUpstreamDone(&sp, &d)
		if err != nil {
			d.Problem = w.engine.Problem(err, &d, &x)
		}
	}
	if d.Problem != nil {
		engine.WriteProblem(ctx, d.Problem, &d, &x)
	}
	ctx.Response.Header.SetCanonical(keyRequestID, reqID)
	engine.SetRateHeaders(ctx, &d)
	// The answer's head is ready: a streamed body and a WebSocket's
	// spliced traffic go on after the handler returns, outside the span.
	traceEnd(&sp, ctx, &d)
	w.finish(ctx, &d, start, x.Elapsed(start), reqID, x.BytesIn())
	engine.ArmNextWait(ctx, &x)
}
