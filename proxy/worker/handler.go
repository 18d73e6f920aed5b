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
	hdrIdempotencyKey  = "Idempotency-Key"
	hdrAllow           = "Allow"
	hdrXRealIP         = "X-Real-Ip"
	maxRequestIDLen    = 200
)

// clientClaims are request headers in which a client states facts that
// only the gateway, or a proxy it trusts, may state: who the client is,
// how and where it connected, and (X-Original-URL, X-Rewrite-URL) which
// path it asked for, which some frameworks prefer to the request line.
// They are removed from clients that are not trusted proxies;
// X-Forwarded-For, -Proto and -Host and X-Real-IP are set by the gateway.
var clientClaims = []string{
	"Forwarded", "True-Client-Ip", "X-Client-Ip", "X-Cluster-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip",
	"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server", "X-Forwarded-Ssl", "X-Forwarded-Scheme",
	"X-Original-Url", "X-Rewrite-Url", "X-Original-Forwarded-For",
}

// pathProblem is the answer to a path router.CleanPath refuses.
func pathProblem(err error) *problem.Problem {
	if errors.Is(err, router.ErrPathTooLong) || errors.Is(err, router.ErrTooManySegments) {
		return problemURITooLong
	}
	return problemAmbiguousPath
}

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
	problemURITooLong = problem.New("uri-too-long", 414, "URI Too Long",
		"The request path is longer, or has more segments, than this gateway accepts (8 KiB, 128 segments).")
	problemAmbiguousPath = problem.New("ambiguous-path", 400, "Bad Request",
		"The request path could be read differently by the gateway and the API: an encoded / or \\, a "+
			"backslash, a control character, an empty segment (//), a dot segment (., .., ..;) or a malformed "+
			"percent-encoding. Send the path without it.")
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
	var d pipeline.Decision
	// The path is checked and put in normal form before anything reads
	// it: the router and the pipeline read it decoded (URI.Path), the
	// upstream gets the normal form (URI.PathOriginal), and CleanPath
	// refuses what those two could read differently.
	var pathBuf [256]byte
	clean, changed, perr := router.CleanPath(pathBuf[:0], req.URI().PathOriginal())
	if perr != nil {
		d.Problem = pathProblem(perr)
	} else if changed {
		req.URI().SetPathBytes(clean)
	}
	preq := pipeline.Request{
		Host:          req.Header.Host(),
		Path:          req.URI().Path(),
		Authorization: req.Header.Peek(hdrAuthorization),
		APIKey:        req.Header.Peek(hdrAPIKey),
		Method:        req.Header.Method(),
		ClientIP:      clientIP,
		Headers:       &req.Header,
	}
	if d.Problem == nil {
		// Not ctx itself: fasthttp recycles a RequestCtx once the handler
		// returns, so a context derived from it must not outlive the
		// request, and Redis calls may leave goroutines behind that still
		// hold theirs.
		w.pipe.Decide(w.bg, w.sync.Load(), &preq, &d)
	}

	var body reqBody
	defer body.release(req)
	if d.Problem == nil {
		if p := w.prepareBody(req, d.API, &body); p != nil {
			d.Done(balance.Result{})
			d.Problem = p
		}
	}
	// Hop-by-hop headers of a request to forward, those the client's
	// Connection header names included, go before the gateway sets any of
	// its own (request id, trace context, X-Forwarded-*, X-Real-IP), so
	// that a client cannot name one of those in Connection to have the
	// gateway's value removed. (After the body's framing was read.)
	upgrading := false
	if d.Problem == nil {
		upgrading = isUpgrade(&req.Header)
		stripHopRequest(&req.Header)
	}

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
	if d.Problem != nil {
		w.writeProblem(ctx, d.Problem, &d, reqID)
		if body.clientFailed() {
			ctx.SetConnectionClose()
		}
		w.finish(ctx, &d, start, reqID, body.bytesIn())
		return
	}
	if err := w.forward(ctx, &d, &preq, clientIP, &body, upgrading); err != nil {
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
// The hop-by-hop headers of the request are gone already (HandleFastHTTP);
// upgrading reports a WebSocket upgrade, detected before.
func (w *Worker) forward(ctx *fasthttp.RequestCtx, d *pipeline.Decision, preq *pipeline.Request, clientIP []byte, body *reqBody, upgrading bool) error {
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
		stripClientClaims(&req.Header)
	}
	// X-Real-IP is the client as the gateway trusts it, like the last
	// X-Forwarded-For entry: a trusted proxy's value is kept.
	if !trusted || len(req.Header.Peek(hdrXRealIP)) == 0 {
		req.Header.SetBytesV(hdrXRealIP, clientIP)
	}

	// Credentials of the gateway are not the upstream's business.
	req.Header.Del(hdrAPIKey)
	if d.KeyInAuthorization {
		req.Header.Del(hdrAuthorization)
	}
	switch api.Config.Host {
	case proxycfg.HostTarget:
		req.UseHostHeader = false
	case proxycfg.HostPreserve:
		req.UseHostHeader = true
	default:
		req.Header.SetHost(api.Config.Host)
		req.UseHostHeader = true
	}

	// Path: the client's, in normal form (router.CleanPath) and never
	// decoded, less the base path's segments; the target's path is
	// prefixed per attempt. The request line is written from it as it is
	// (DisablePathNormalizing here and on the HostClients): fasthttp's
	// normalizer would decode "%3B" and the like, which changes the path.
	req.URI().DisablePathNormalizing = true
	path := req.URI().PathOriginal()
	if api.Config.StripBasePath {
		path = router.StripSegments(path, api.BaseSegments)
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
		hostOnlyCookies(&ctx.Response.Header)
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
		// The message's framing and target are not the client's to drop.
		if bytes.EqualFold(name, []byte("Host")) || bytes.EqualFold(name, []byte("Content-Length")) {
			continue
		}
		h.DelBytes(name)
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
	// Keep-alive to the upstream is the gateway's choice, not the client's.
	h.ResetConnectionClose()
}

// stripClientClaims removes the clientClaims headers in one pass over the
// header (no work beyond it when there are none, the usual case).
func stripClientClaims(h *fasthttp.RequestHeader) {
	var found [4][]byte
	n := 0
	for k := range h.All() {
		if n < len(found) && isClientClaim(k) {
			found[n] = k
			n++
		}
	}
	if n == 0 {
		return
	}
	var names [len(found)]string
	for i := range n {
		names[i] = string(found[i])
	}
	for i := range n {
		h.Del(names[i])
	}
	if n == len(found) {
		// More than fit in one pass: remove by name, all of them.
		for _, name := range clientClaims {
			h.Del(name)
		}
	}
}

func isClientClaim(k []byte) bool {
	if len(k) < 9 {
		return false
	}
	switch k[0] | 0x20 {
	case 'f', 't', 'x', 'c':
	default:
		return false
	}
	for _, name := range clientClaims {
		if len(name) == len(k) && bytes.EqualFold(k, []byte(name)) {
			return true
		}
	}
	return false
}

// hostOnlyCookies removes the Domain attribute of every cookie the
// upstream sets, making each one host-only. All tenants are served under
// one proxy domain (<slug>.<domain>), so a cookie of tenant A's backend
// with "Domain=<domain>" would reach tenant B's hosts (and B's backend
// could overwrite A's cookies the same way): a tenant's cookies must stay
// on the host that set them. (Operators should also register the proxy
// domain in the Public Suffix List, so that browsers refuse such cookies
// themselves; that is a deployment step, not the gateway's.)
func hostOnlyCookies(h *fasthttp.ResponseHeader) {
	scoped := false
	for _, v := range h.Cookies() {
		if cookieDomain(v) >= 0 {
			scoped = true
			break
		}
	}
	if !scoped {
		return
	}
	// Rare: rebuild the cookie list (values copied first, as the list's
	// buffers are reused when cookies are added back).
	var all [][]byte
	for _, v := range h.Cookies() {
		all = append(all, stripCookieDomain(nil, v))
	}
	h.DelAllCookies()
	for _, v := range all {
		h.AddBytesV("Set-Cookie", v)
	}
}

// cookieDomain returns the index of the first Domain attribute of a
// Set-Cookie value (after the name=value pair), or -1.
func cookieDomain(v []byte) int {
	i := bytes.IndexByte(v, ';')
	if i < 0 {
		return -1
	}
	for i < len(v) {
		j := bytes.IndexByte(v[i+1:], ';')
		end := len(v)
		if j >= 0 {
			end = i + 1 + j
		}
		name, _, _ := bytes.Cut(v[i+1:end], []byte{'='})
		if bytes.EqualFold(bytes.TrimSpace(name), []byte("domain")) {
			return i
		}
		i = end
	}
	return -1
}

// stripCookieDomain appends v without its Domain attributes to dst.
func stripCookieDomain(dst, v []byte) []byte {
	for {
		i := cookieDomain(v)
		if i < 0 {
			return append(dst, v...)
		}
		dst = append(dst, v[:i]...)
		j := bytes.IndexByte(v[i+1:], ';')
		if j < 0 {
			return dst
		}
		v = v[i+1+j:]
	}
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
