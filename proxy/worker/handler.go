package worker

import (
	"bytes"
	"errors"
	"net"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/netguard"
	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/problem"
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
)

// HandleFastHTTP serves one client request: it runs the pipeline and either
// answers with a problem or forwards to the chosen target. It is the whole
// traffic handler, exported so that benchmarks can drive it directly.
func (w *Worker) HandleFastHTTP(ctx *fasthttp.RequestCtx) {
	req := &ctx.Request
	var d pipeline.Decision
	w.pipe.Decide(ctx, w.sync.Load(), &pipeline.Request{
		Host:          req.Header.Host(),
		Path:          req.URI().Path(),
		Authorization: req.Header.Peek(hdrAuthorization),
		APIKey:        req.Header.Peek(hdrAPIKey),
	}, &d)

	var idBuf [32]byte
	reqID := req.Header.Peek(hdrRequestID)
	if !saneRequestID(reqID) {
		reqID = w.newRequestID(idBuf[:0])
		req.Header.SetBytesV(hdrRequestID, reqID)
	}

	if d.Problem != nil {
		w.writeProblem(ctx, d.Problem, &d, reqID)
		return
	}
	if err := w.forward(ctx, &d); err != nil {
		w.writeProblem(ctx, w.upstreamProblem(err, &d), &d, reqID)
		return
	}
	ctx.Response.Header.SetBytesV(hdrRequestID, reqID)
	setRateHeaders(ctx, &d)
}

// forward rewrites the client's request in place for the target and
// exchanges it. The response lands in ctx.Response, cleaned of hop-by-hop
// headers.
func (w *Worker) forward(ctx *fasthttp.RequestCtx, d *pipeline.Decision) error {
	req := &ctx.Request
	t := d.Target
	api := d.API

	// Forwarded headers, before the host changes.
	var buf [512]byte
	b := buf[:0]
	if prior := req.Header.Peek(hdrXFF); len(prior) > 0 {
		b = append(append(b, prior...), ", "...)
	}
	b = appendRemoteIP(b, ctx.RemoteAddr())
	req.Header.SetBytesV(hdrXFF, b)
	if ctx.IsTLS() {
		req.Header.Set(hdrXFProto, "https")
	} else {
		req.Header.Set(hdrXFProto, "http")
	}
	req.Header.SetBytesV(hdrXFHost, req.Header.Host())

	// Credentials of the gateway are not the upstream's business.
	req.Header.Del(hdrAPIKey)
	if d.KeyInAuthorization {
		req.Header.Del(hdrAuthorization)
	}
	stripHopRequest(&req.Header)

	// Path: strip the base path, prefix the target's path, keep the query.
	path := req.URI().Path()
	if api.Config.StripBasePath {
		path = router.StripPrefix(path, api.Config.BasePath)
	}
	b = append(append(buf[:0], t.Path...), path...)
	req.URI().SetPathBytes(b)
	req.URI().SetScheme(t.Scheme)
	req.URI().SetHost(t.Authority)
	req.Header.SetHost(t.Authority)
	req.UseHostHeader = false

	hc, _ := t.Handle.(*fasthttp.HostClient)
	if hc == nil {
		return errors.New("target without client")
	}
	if err := hc.DoTimeout(req, &ctx.Response, api.Timeout); err != nil {
		return err
	}
	stripHopResponse(&ctx.Response.Header)
	return nil
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
	var buf [64]byte
	b := append(buf[:0], `"default";r=`...)
	b = strconv.AppendInt(b, d.Rate.Remaining, 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, ratelimit.Seconds(d.Rate.Reset), 10)
	h.SetBytesV(hdrRateLimit, b)
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
