package engine

import (
	"errors"
	"net"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/netguard"
	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/ratelimit"
)

const (
	hdrRateLimit       = "RateLimit"
	hdrRateLimitPol    = "RateLimit-Policy"
	hdrRetryAfter      = "Retry-After"
	hdrWWWAuthenticate = "WWW-Authenticate"
	hdrAllow           = "Allow"
)

// Canonical names of the RateLimit headers (SetCanonical): fasthttp's
// normal form, so that a header of the same name from the target is
// replaced, not repeated.
var (
	keyRateLimit    = []byte("Ratelimit")
	keyRateLimitPol = []byte("Ratelimit-Policy")
)

// Problems of request bodies.
var (
	// ProblemTooLarge answers a body over the API's limit (413).
	ProblemTooLarge = problem.New("payload-too-large", 413, "Content Too Large",
		"The request body is larger than this API accepts.")
	// ProblemBadBody answers a body that broke off or could not be read.
	ProblemBadBody = problem.New("bad-request", 400, "Bad Request", "The request body could not be read.")
)

// Problems of the engine.
var (
	problemPrivate = problem.BadGateway.WithDetail(
		"The upstream target resolves to a private or loopback address, which this gateway does not connect to.")
	wwwAuthenticate   = []byte(`Bearer realm="tollgate"`)
	problemURITooLong = problem.New("uri-too-long", 414, "URI Too Long",
		"The request path is longer, or has more segments, than this gateway accepts (8 KiB, 128 segments).")
	problemAmbiguousPath = problem.New("ambiguous-path", 400, "Bad Request",
		"The request path could be read differently by the gateway and the API: an encoded / or \\, a "+
			"backslash, a control character, an empty segment (//), a dot segment (., .., ..;) or a malformed "+
			"percent-encoding. Send the path without it.")
	problemNoUpgrade = problem.New("upgrade-not-supported", 501, "Not Implemented",
		"WebSocket upgrades are served on the gateway's HTTP/1.1 port.")
	// Requests the engine refuses before the handler runs.
	problemHeaderTooLarge = problem.New("header-too-large", 431, "Request Header Fields Too Large",
		"The request's header block is larger than this gateway accepts.")
	problemClientTimeout = problem.New("request-timeout", 408, "Request Timeout",
		"The request was not received in time.")
	problemMalformed = problem.New("bad-request", 400, "Bad Request", "The request could not be parsed.")
)

// Problem is the answer to a failed Forward: the client's body when it
// broke off or went over the limit while it streamed (nothing was sent to
// the client yet, so it is told why), else what the upstream's failure
// means to the client.
func (e *Engine) Problem(err error, d *pipeline.Decision, x *Exchange) *problem.Problem {
	if x.body.clientFailed() {
		if x.body.tooLarge() {
			return ProblemTooLarge
		}
		return ProblemBadBody
	}
	var ne net.Error
	switch {
	case errors.Is(err, netguard.ErrPrivateAddr):
		return problemPrivate
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.As(err, &ne) && ne.Timeout():
		return problem.GatewayTimeout
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return problem.Unavailable
	}
	if d.Target != nil {
		e.opts.Logger.Debug("upstream exchange failed", "target", d.Target.URL, "err", err)
	}
	return problem.BadGateway
}

// failure classifies a failed exchange for the target's Outcome.
func failure(err error) pipeline.Failure {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout), errors.As(err, &ne) && ne.Timeout():
		return pipeline.FailTimeout
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" || errors.Is(err, netguard.ErrPrivateAddr) {
		return pipeline.FailConnect
	}
	return pipeline.FailOther
}

// WriteProblem answers with p instead of whatever the response held, with
// the headers its status calls for (WWW-Authenticate, Allow, Retry-After)
// and d's RateLimit headers; a client whose body failed is hung up on
// after the answer.
func WriteProblem(ctx *fasthttp.RequestCtx, p *problem.Problem, d *pipeline.Decision, x *Exchange) {
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(p.Status)
	resp.Header.SetContentType(problem.ContentType)
	resp.SetBody(p.Body)
	switch p.Status {
	case fasthttp.StatusUnauthorized:
		resp.Header.SetBytesV(hdrWWWAuthenticate, wwwAuthenticate)
	case fasthttp.StatusMethodNotAllowed:
		resp.Header.SetBytesV(hdrAllow, d.Allow)
	case fasthttp.StatusTooManyRequests:
		var b [20]byte
		resp.Header.SetBytesV(hdrRetryAfter, strconv.AppendInt(b[:0], ratelimit.Seconds(d.Rate.RetryAfter), 10))
	}
	if x != nil && x.body.clientFailed() {
		// The connection is at an unknown point of the body.
		ctx.SetConnectionClose()
	}
}

// SetRateHeaders adds the IETF draft RateLimit headers when a limit
// applied.
func SetRateHeaders(ctx *fasthttp.RequestCtx, d *pipeline.Decision) {
	if !d.Limited || d.Plan == nil {
		return
	}
	h := &ctx.Response.Header
	h.SetCanonical(keyRateLimitPol, d.Plan.Policy)
	var buf [96]byte
	h.SetCanonical(keyRateLimit, pipeline.AppendRateLimit(buf[:0], d))
}

// ServerError answers requests fasthttp refuses while reading them (its
// Server.ErrorHandler): too large a body, too large a header block, a slow
// client, or a malformed request. (Bodies stream, so their limits are
// mostly the handler's: body.go.) Every answer is problem+json, like the
// handler's.
func ServerError(ctx *fasthttp.RequestCtx, err error) {
	p := problemMalformed
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		p = ProblemTooLarge
	case errors.As(err, &small):
		p = problemHeaderTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		p = problemClientTimeout
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(p.Status)
	ctx.Response.Header.SetContentType(problem.ContentType)
	ctx.SetBody(p.Body)
}
