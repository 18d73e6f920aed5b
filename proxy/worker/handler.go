package worker

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/balance"
	"github.com/tollgate/tollgate/proxy/metrics"
	"github.com/tollgate/tollgate/proxy/netguard"
	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/ratelimit"
	"github.com/tollgate/tollgate/proxy/router"
)

const (
	hdrRequestID       = "X-Request-Id"
	hdrAPIKey          = "X-Api-Key"
	hdrAuthorization   = "Authorization"
	hdrXFF             = "X-Forwarded-For"
	hdrXFProto         = "X-Forwarded-Proto"
	hdrXFHost          = "X-Forwarded-Host"
	hdrRateLimit       = "RateLimit"
	hdrRateLimitPol    = "RateLimit-Policy"
	hdrRetryAfter      = "Retry-After"
	hdrWWWAuthenticate = "WWW-Authenticate"
	hdrTraceparent     = "Traceparent"
	hdrForwarded       = "Forwarded"
	hdrIdempotencyKey  = "Idempotency-Key"
	hdrAllow           = "Allow"
	maxRequestIDLen    = 200
)

// hopHeaders are dropped in both directions (RFC 9110 section 7.6.1), in
// addition to those the Connection header names.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
}

var (
	problemPrivate = problem.BadGateway.WithDetail(
		"The upstream target resolves to a private or loopback address, which this gateway does not connect to.")
	wwwAuthenticate = []byte(`Bearer realm="tollgate"`)
	problemTooLarge = problem.New("payload-too-large", 413, "Content Too Large",
		"The request body is larger than this API accepts.")
	problemShed = problem.New("overloaded", 503, "Service Unavailable",
		"The gateway is at its concurrency limit; retry shortly.")
)

// HandleFastHTTP serves one client request: it runs the pipeline and either
// answers with a problem or forwards to the chosen target (retrying on
// another target where the upstream allows). It is the whole traffic
// handler, exported so that benchmarks can drive it directly.
func (w *Worker) HandleFastHTTP(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	n := w.inflight.Add(1)
	defer w.inflight.Add(-1)
	if limit := w.opts.MaxConcurrent; limit > 0 && n > int64(limit) {
		w.metrics.Shed()
		w.shed(ctx)
		return
	}
	req := &ctx.Request
	var ipBuf [48]byte
	clientIP := appendRemoteIP(ipBuf[:0], ctx.RemoteAddr())
	preq := pipeline.Request{
		Host:          req.Header.Host(),
		Path:          req.URI().Path(),
		Authorization: req.Header.Peek(hdrAuthorization),
		APIKey:        req.Header.Peek(hdrAPIKey),
		Method:        req.Header.Method(),
		ClientIP:      clientIP,
		Headers:       &req.Header,
	}
	var d pipeline.Decision
	// Not ctx itself: fasthttp recycles a RequestCtx once the handler
	// returns, so a context derived from it must not outlive the request,
	// and Redis calls may leave goroutines behind that still hold theirs.
	w.pipe.Decide(w.bg, w.sync.Load(), &preq, &d)

	var idBuf [32]byte
	reqID := req.Header.Peek(hdrRequestID)
	if !saneRequestID(reqID) {
		reqID = w.newRequestID(idBuf[:0])
		req.Header.SetBytesV(hdrRequestID, reqID)
	}
	if !validTraceparent(req.Header.Peek(hdrTraceparent)) {
		var tp [55]byte
		req.Header.SetBytesV(hdrTraceparent, w.newTraceparent(tp[:0]))
	}

	var body reqBody
	defer body.release(req)
	if d.Problem == nil {
		if p := w.prepareBody(req, d.API, &body); p != nil {
			d.Done(balance.Result{})
			d.Problem = p
		}
	}
	if d.Problem != nil {
		w.writeProblem(ctx, d.Problem, &d, reqID)
		if body.clientFailed() {
			ctx.SetConnectionClose()
		}
		w.finish(ctx, &d, start, reqID, body.bytesIn())
		return
	}
	if err := w.forward(ctx, &d, &preq, clientIP, &body); err != nil {
		p := w.upstreamProblem(err, &d)
		if body.clientFailed() {
			// The client's body broke off or went over the limit while it
			// streamed: the upstream exchange was abandoned, nothing was
			// sent to the client yet, so it is told why.
			p = problemBadBody
			if body.tooLarge() {
				p = problemTooLarge
			}
		}
		w.writeProblem(ctx, p, &d, reqID)
		if body.clientFailed() {
			// The connection is at an unknown point of the body.
			ctx.SetConnectionClose()
		}
		w.finish(ctx, &d, start, reqID, body.bytesIn())
		return
	}
	ctx.Response.Header.SetBytesV(hdrRequestID, reqID)
	setRateHeaders(ctx, &d)
	w.finish(ctx, &d, start, reqID, body.bytesIn())
}

// finish counts the answered request and writes its access log entry;
// bytesIn is the size of the request body read from the client.
func (w *Worker) finish(ctx *fasthttp.RequestCtx, d *pipeline.Decision, start time.Time, reqID []byte, bytesIn int64) {
	status := ctx.Response.StatusCode()
	elapsed := time.Since(start)
	w.endRequest(ctx, d, status, start, elapsed, bytesIn)
	if d.API != nil {
		d.API.Metrics.Observe(status, elapsed)
	} else {
		w.unrouted.Observe(status, elapsed)
	}
	if w.access != nil {
		w.access.log(ctx, d, status, elapsed, reqID, bytesIn)
	}
}

// forward rewrites the client's request in place for the target and
// exchanges it, retrying on another target when the upstream's retry policy
// and budget allow (only a body held whole in memory can be sent again; a
// streamed one is sent once). The response lands in ctx.Response, cleaned
// of hop-by-hop headers.
func (w *Worker) forward(ctx *fasthttp.RequestCtx, d *pipeline.Decision, preq *pipeline.Request, clientIP []byte, body *reqBody) error {
	req := &ctx.Request
	api := d.API

	// Forwarded headers, before the host changes. A client's own claims
	// are kept only when it connects from a trusted proxy.
	trusted := w.trusted(ctx.RemoteAddr())
	var buf [512]byte
	b := buf[:0]
	if prior := req.Header.Peek(hdrXFF); trusted && len(prior) > 0 {
		b = append(append(b, prior...), ", "...)
	}
	b = append(b, clientIP...)
	req.Header.SetBytesV(hdrXFF, b)
	if !trusted || len(req.Header.Peek(hdrXFProto)) == 0 {
		if isTLS(ctx) {
			req.Header.Set(hdrXFProto, "https")
		} else {
			req.Header.Set(hdrXFProto, "http")
		}
	}
	if !trusted || len(req.Header.Peek(hdrXFHost)) == 0 {
		req.Header.SetBytesV(hdrXFHost, req.Header.Host())
	}
	if !trusted {
		req.Header.Del(hdrForwarded)
	}

	// Credentials of the gateway are not the upstream's business.
	req.Header.Del(hdrAPIKey)
	if d.KeyInAuthorization {
		req.Header.Del(hdrAuthorization)
	}
	upgrading := isUpgrade(&req.Header)
	stripHopRequest(&req.Header)
	switch api.Config.Host {
	case proxycfg.HostTarget:
		req.UseHostHeader = false
	case proxycfg.HostPreserve:
		req.UseHostHeader = true
	default:
		req.Header.SetHost(api.Config.Host)
		req.UseHostHeader = true
	}

	// Path: strip the base path; the target's path is prefixed per attempt.
	path := req.URI().Path()
	if api.Config.StripBasePath {
		path = router.StripPrefix(path, api.Config.BasePath)
	}
	var pathBuf [256]byte
	path = append(pathBuf[:0], path...)

	if upgrading {
		t := d.Target
		b = append(append(buf[:0], t.Path...), path...)
		req.URI().SetPathBytes(b)
		if !req.UseHostHeader {
			req.Header.SetHost(t.Authority)
		}
		return w.upgrade(ctx, d)
	}
	stream := wantsStream(&req.Header)
	retryable := body.replayable &&
		pipeline.Retryable(d.Upstream, req.Header.Method(), len(req.Header.Peek(hdrIdempotencyKey)) > 0)
	var tried uint64
	deadline := time.Now().Add(api.Timeout)
	for attempt := 0; ; attempt++ {
		t := d.Target
		b = append(append(buf[:0], t.Path...), path...)
		req.URI().SetPathBytes(b)
		req.URI().SetScheme(t.Scheme)
		req.URI().SetHost(t.Authority)
		if !req.UseHostHeader {
			req.Header.SetHost(t.Authority)
		}
		hc := w.client(d)
		if hc == nil {
			d.Done(balance.Result{})
			return errors.New("target without client")
		}
		ctx.Response.StreamBody = stream
		t0 := time.Now()
		err := hc.DoDeadline(req, &ctx.Response, deadline)
		res := balance.Result{Latency: time.Since(t0)}
		if err != nil && body.clientFailed() {
			// The client's body failed, not the target.
			d.Done(res)
			return err
		}
		if err != nil {
			res.ConnError = true
			d.Upstream.Metrics.Error(errorKind(err))
		} else {
			res.Status = ctx.Response.StatusCode()
		}
		if retryable && attempt < d.Upstream.Retry.Attempts && time.Now().Before(deadline) &&
			(err != nil || res.Status == 502 || res.Status == 503 || res.Status == 504) {
			if d.Repick(preq, res, &tried) {
				ctx.Response.Reset()
				continue
			}
		} else {
			d.Done(res)
		}
		if err != nil {
			return err
		}
		stripHopResponse(&ctx.Response.Header)
		return nil
	}
}

// client returns the HostClient for d's target with d's API's timeouts.
func (w *Worker) client(d *pipeline.Decision) *fasthttp.HostClient {
	var h any
	if d.API.Handles != nil {
		h = d.API.Handles[d.Member]
	} else {
		h = d.Target.Handle
	}
	hc, _ := h.(*fasthttp.HostClient)
	return hc
}

func errorKind(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout), errors.As(err, &ne) && ne.Timeout():
		return metrics.ErrTimeout
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" || errors.Is(err, netguard.ErrPrivateAddr) {
		return metrics.ErrConnect
	}
	return metrics.ErrOther
}

// trusted reports whether a client connects from a trusted proxy, whose
// X-Forwarded-* headers are kept.
func (w *Worker) trusted(a net.Addr) bool {
	if len(w.opts.TrustedProxies) == 0 {
		return false
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, p := range w.opts.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
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

func (w *Worker) upstreamProblem(err error, d *pipeline.Decision) *problem.Problem {
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
	w.logger.Debug("upstream exchange failed", "target", d.Target.URL, "err", err)
	return problem.BadGateway
}

func (w *Worker) writeProblem(ctx *fasthttp.RequestCtx, p *problem.Problem, d *pipeline.Decision, reqID []byte) {
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(p.Status)
	resp.Header.SetContentType(problem.ContentType)
	resp.SetBody(p.Body)
	resp.Header.SetBytesV(hdrRequestID, reqID)
	switch p.Status {
	case fasthttp.StatusUnauthorized:
		resp.Header.SetBytesV(hdrWWWAuthenticate, wwwAuthenticate)
	case fasthttp.StatusMethodNotAllowed:
		resp.Header.SetBytesV(hdrAllow, d.Allow)
	case fasthttp.StatusTooManyRequests:
		var b [20]byte
		resp.Header.SetBytesV(hdrRetryAfter, strconv.AppendInt(b[:0], ratelimit.Seconds(d.Rate.RetryAfter), 10))
	}
	setRateHeaders(ctx, d)
}

// setRateHeaders adds the IETF draft RateLimit headers when a limit applied.
func setRateHeaders(ctx *fasthttp.RequestCtx, d *pipeline.Decision) {
	if !d.Limited || d.Plan == nil {
		return
	}
	h := &ctx.Response.Header
	h.SetBytesV(hdrRateLimitPol, d.Plan.Policy)
	var buf [96]byte
	h.SetBytesV(hdrRateLimit, pipeline.AppendRateLimit(buf[:0], d))
}

func stripHopRequest(h *fasthttp.RequestHeader) {
	for _, name := range connectionTokens(h.Peek("Connection")) {
		h.DelBytes(name)
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
	// Keep-alive to the upstream is the gateway's choice, not the client's.
	h.ResetConnectionClose()
}

func stripHopResponse(h *fasthttp.ResponseHeader) {
	for _, name := range connectionTokens(h.Peek("Connection")) {
		h.DelBytes(name)
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
	// An upstream closing its connection does not close the client's.
	h.ResetConnectionClose()
}

// connectionTokens lists the header names a Connection header value names
// (other than close and keep-alive, which fasthttp handles itself).
func connectionTokens(v []byte) [][]byte {
	if len(v) == 0 {
		return nil
	}
	var out [][]byte
	for tok := range bytes.SplitSeq(v, []byte{','}) {
		tok = bytes.TrimSpace(tok)
		if len(tok) == 0 || bytes.EqualFold(tok, []byte("close")) || bytes.EqualFold(tok, []byte("keep-alive")) {
			continue
		}
		out = append(out, tok)
	}
	return out
}

func appendRemoteIP(b []byte, a net.Addr) []byte {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap().AppendTo(b)
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return append(b, a.String()...)
	}
	return append(b, host...)
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
