package engine

import (
	"bytes"
	"net"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/router"
)

const (
	hdrAPIKey         = "X-Api-Key"
	hdrAuthorization  = "Authorization"
	hdrXFF            = "X-Forwarded-For"
	hdrXFProto        = "X-Forwarded-Proto"
	hdrXFHost         = "X-Forwarded-Host"
	hdrXRealIP        = "X-Real-Ip"
	hdrIdempotencyKey = "Idempotency-Key"
)

// Header names the gateway sets, in fasthttp's canonical form, so that
// setting them skips normalizing the name (SetCanonical).
var (
	keyXFF       = []byte(hdrXFF)
	keyXFProto   = []byte(hdrXFProto)
	keyXFHost    = []byte(hdrXFHost)
	keyXRealIP   = []byte(hdrXRealIP)
	valHTTP      = []byte("http")
	valHTTPS     = []byte("https")
	strSetCookie = []byte("Set-Cookie")
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

// hopHeaders are dropped in both directions (RFC 9110 section 7.6.1), in
// addition to those the Connection header names. Connection comes first
// (hopConnection).
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
}

const hopConnection = 1 << 0

// nameIndex returns the index of k in names, compared without regard to
// case, or -1.
func nameIndex(k []byte, names []string) int {
	for i, name := range names {
		if len(name) == len(k) && bytes.EqualFold(k, []byte(name)) {
			return i
		}
	}
	return -1
}

// Header scans: the headers to remove are found in one pass over the
// header, and only those found are deleted (by name: fasthttp finds them
// again, which costs a pass each, paid only for headers that are there).
// The usual request carries none of them, or only Connection.

// stripRequestHeaders removes the hop-by-hop headers of a request, those
// its Connection header names included, and, from a client that is not a
// trusted proxy, its claims (clientClaims).
func stripRequestHeaders(h *fasthttp.RequestHeader, trusted bool) {
	var hop, claims uint32
	var conn []byte
	for k, v := range h.All() {
		if i := nameIndex(k, hopHeaders); i >= 0 {
			hop |= 1 << i
			if i == 0 {
				conn = v
			}
		} else if !trusted && isClientClaim(k) {
			claims |= 1 << nameIndex(k, clientClaims)
		}
	}
	if hop&hopConnection != 0 {
		for _, name := range connectionTokens(conn) {
			// The message's framing and target are not the client's to drop.
			if bytes.EqualFold(name, []byte("Host")) || bytes.EqualFold(name, []byte("Content-Length")) {
				continue
			}
			h.DelBytes(name)
		}
	}
	for i, name := range hopHeaders {
		if hop&(1<<i) != 0 {
			h.Del(name)
		}
	}
	for i, name := range clientClaims {
		if claims&(1<<i) != 0 {
			h.Del(name)
		}
	}
	// Keep-alive to the upstream is the gateway's choice, not the client's.
	h.ResetConnectionClose()
}

// cleanResponseHeaders removes the hop-by-hop headers of a target's answer,
// those its Connection header names included, and makes its cookies
// host-only (hostOnlyCookies).
func cleanResponseHeaders(h *fasthttp.ResponseHeader) {
	var hop uint32
	var conn []byte
	scoped := false
	for k, v := range h.All() {
		if i := nameIndex(k, hopHeaders); i >= 0 {
			hop |= 1 << i
			if i == 0 {
				conn = v
			}
		} else if !scoped && bytes.Equal(k, strSetCookie) && cookieDomain(v) >= 0 {
			scoped = true
		}
	}
	if hop&hopConnection != 0 {
		for _, name := range connectionTokens(conn) {
			h.DelBytes(name)
		}
	}
	for i, name := range hopHeaders {
		if hop&(1<<i) != 0 {
			h.Del(name)
		}
	}
	// An upstream closing its connection does not close the client's.
	h.ResetConnectionClose()
	if scoped {
		hostOnlyCookies(h)
	}
}

// rewrite makes the client's request the target's, in place, before the
// first attempt: forwarded headers (a client's own claims are kept only when
// it connects from a trusted proxy), the gateway's credentials removed, the
// Host header as the API says. It returns the path to forward (the client's
// in normal form, less the base path's segments when the API strips it),
// appended to pathBuf; setTarget prefixes the target's own path per attempt.
// The hop-by-hop headers, and the claims of an untrusted client, are gone
// already (Prepare).
func (e *Engine) rewrite(ctx *fasthttp.RequestCtx, d *pipeline.Decision, x *Exchange, pathBuf []byte) []byte {
	req := &ctx.Request
	api := d.API
	var ipBuf [48]byte
	clientIP := appendRemoteIP(ipBuf[:0], ctx.RemoteAddr())
	trusted := x.trusted
	var buf [512]byte
	b := buf[:0]
	if trusted {
		if prior := req.Header.Peek(hdrXFF); len(prior) > 0 {
			b = append(append(b, prior...), ", "...)
		}
	}
	b = append(b, clientIP...)
	req.Header.SetCanonical(keyXFF, b)
	if !trusted || len(req.Header.Peek(hdrXFProto)) == 0 {
		if isTLS(ctx) {
			req.Header.SetCanonical(keyXFProto, valHTTPS)
		} else {
			req.Header.SetCanonical(keyXFProto, valHTTP)
		}
	}
	if !trusted || len(req.Header.Peek(hdrXFHost)) == 0 {
		req.Header.SetCanonical(keyXFHost, req.Header.Host())
	}
	// X-Real-IP is the client as the gateway trusts it, like the last
	// X-Forwarded-For entry: a trusted proxy's value is kept.
	if !trusted || len(req.Header.Peek(hdrXRealIP)) == 0 {
		req.Header.SetCanonical(keyXRealIP, clientIP)
	}

	// Credentials of the gateway are not the upstream's business.
	req.Header.Del(hdrAPIKey)
	if d.KeyInAuthorization {
		req.Header.Del(hdrAuthorization)
	}
	// The Host header is always the one written: the target's authority
	// (setTarget), the client's, or the API's own.
	req.UseHostHeader = true
	x.targetHost = false
	switch api.Config.Host {
	case proxycfg.HostTarget:
		x.targetHost = true
	case proxycfg.HostPreserve:
	default:
		req.Header.SetHost(api.Config.Host)
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
	return append(pathBuf, path...)
}

// setTarget points the request at t: the target's path before path, and
// the target's authority as the Host header when the API says so. (The
// request line carries only the path and query, and the client for t is
// already chosen: the URI's scheme and host are not written.)
func setTarget(req *fasthttp.Request, x *Exchange, t *pipeline.Target, path []byte) {
	var buf [512]byte
	req.URI().SetPathBytes(append(append(buf[:0], t.Path...), path...))
	if x.targetHost {
		req.Header.SetHost(t.Authority)
	}
}

// trusted reports whether a client connects from a trusted proxy, whose
// X-Forwarded-* headers are kept.
func (e *Engine) trusted(a net.Addr) bool {
	if len(e.opts.TrustedProxies) == 0 {
		return false
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, p := range e.opts.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// isClientClaim reports whether k names one of clientClaims (a cheap
// rejection first: most headers are not).
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
