package worker

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/tracing"
)

// The handler's tracing hooks (proxy/tracing): each is a nil or
// not-sampled check unless the request is sampled, and none allocates
// for a request that is not.

// traceStart starts the request's trace once the pipeline has decided (a
// zero Span when t is nil, tracing off) and writes the traceparent the
// request carries on. It runs after the engine's Prepare, which removes
// the headers a client's Connection header names (the one written here
// must reach the upstream), and before identify: a client's traceparent
// is the span's parent, and the one written here is the one identify
// keeps. With a tracer the request always leaves it with a valid
// traceparent (written here, or the client's, which Start parsed), so
// identify need not check it again. The span starts at start, the
// request's arrival.
func traceStart(t *tracing.Tracer, req *fasthttp.Request, d *pipeline.Decision, start time.Time) tracing.Span {
	if t == nil {
		return tracing.Span{}
	}
	sp := t.Start(&req.Header, start)
	setTraceparent(req, &sp)
	if sp.Recording() {
		r := tracing.Request{Method: req.Header.Method()}
		if api := d.API; api != nil {
			r.API, r.Auth, r.Route = api.Config.Slug, api.Config.Auth, routeTemplate(api.Config.BasePath)
			if api.Upstream != nil {
				r.Tenant = api.Upstream.TenantSlug
			}
		}
		if d.Problem != nil {
			r.Problem = d.Problem.Code
		}
		sp.Decided(r)
	}
	return sp
}

// traceUpstream starts the span of the upstream exchange; the upstream gets
// its id as the parent in traceparent.
func traceUpstream(sp *tracing.Span, req *fasthttp.Request) {
	if !sp.Recording() {
		return
	}
	sp.StartUpstream()
	setTraceparent(req, sp)
}

// traceUpstreamDone ends the span of the upstream exchange with the last
// target's outcome.
func traceUpstreamDone(sp *tracing.Span, d *pipeline.Decision) {
	if !sp.Recording() {
		return
	}
	u := tracing.Upstream{Status: d.Outcome.Status, Failure: failureName(d.Outcome.Failure)}
	if t := d.Target; t != nil {
		u.Address, u.Scheme = t.Authority, t.Scheme
	}
	sp.EndUpstream(u)
}

// traceEnd ends the request's span with the answer.
func traceEnd(sp *tracing.Span, ctx *fasthttp.RequestCtx, d *pipeline.Decision) {
	if !sp.Recording() {
		return
	}
	var code string
	if d.Problem != nil {
		code = d.Problem.Code
	}
	sp.End(ctx.Response.StatusCode(), code)
}

// setTraceparent writes the traceparent sp says the request carries on.
func setTraceparent(req *fasthttp.Request, sp *tracing.Span) {
	var b [tracing.TraceparentLen]byte
	if tp, ok := sp.AppendTraceparent(b[:0]); ok {
		req.Header.SetCanonical(keyTraceparent, tp)
	}
}

// routeTemplate is the http.route of an API served under basePath: every
// path below it ("/billing/*"; "/*" for "/").
func routeTemplate(basePath string) string {
	if basePath == "" || basePath == "/" {
		return "/*"
	}
	if basePath[len(basePath)-1] == '/' {
		return basePath + "*"
	}
	return basePath + "/*"
}

// failureName is the error.type of an exchange that got no answer.
func failureName(f pipeline.Failure) string {
	switch f {
	case pipeline.FailConnect:
		return "connect"
	case pipeline.FailTimeout:
		return "timeout"
	case pipeline.FailOther:
		return "other"
	}
	return ""
}
