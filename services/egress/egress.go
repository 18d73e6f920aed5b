// Package egress is the control plane's HTTP client for URLs that tenants
// supply: their identity providers' discovery documents, token endpoints and
// key sets (services/sso), and later webhooks. A tenant controls where those
// URLs point, and a discovery document names further URLs, so every request,
// every redirect hop and every connection is checked:
//
//   - the dialer resolves the host and refuses, at connect time, addresses of
//     the platform's own network (proxycfg.IsPrivateAddr: loopback, private,
//     link-local, metadata and the like), which also defeats DNS rebinding;
//   - only https URLs are fetched (plain http too when AllowHTTP is set);
//   - redirects are followed a few hops at most, each hop checked like the
//     first request, and never from https down to http;
//   - responses are bounded in size and requests in time;
//   - proxies from the environment are ignored (a proxy would dial for us).
//
// The platform operator's own services (the default IdP of TOLLGATE_OIDC_*,
// SMTP) are trusted and do not need this client.
package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// Errors of refused requests, wrapped in the errors net/http returns.
var (
	// ErrPrivateAddr refuses a connection to an address of the platform's
	// own network.
	ErrPrivateAddr = errors.New("egress: refusing to connect to a loopback, private, link-local or metadata address")
	// ErrScheme refuses a URL that is not https (or http with AllowHTTP),
	// has no host, or carries credentials.
	ErrScheme = errors.New("egress: only https:// URLs with a host are allowed")
	// ErrTooLarge ends a response body longer than MaxResponseBytes.
	ErrTooLarge = errors.New("egress: response body too large")
	// ErrRedirect refuses a redirect beyond MaxRedirects or from https to http.
	ErrRedirect = errors.New("egress: redirect refused")
)

// Options configure a client. The zero value is the strict production
// policy.
type Options struct {
	// AllowPrivate turns the address check off: dev mode and tests, where
	// identity providers run on loopback (TOLLGATE_UPSTREAM_ALLOW_PRIVATE).
	AllowPrivate bool
	// AllowHTTP accepts plain http:// URLs (dev mode and tests).
	AllowHTTP bool
	// Refuse reports whether an address is off limits. If nil,
	// proxycfg.IsPrivateAddr, the rule the proxy applies to upstream
	// targets. Tests use it to treat one loopback address as public.
	Refuse func(netip.Addr) bool
	// Timeout bounds a whole request, redirects and body included. If zero, 10s.
	Timeout time.Duration
	// DialTimeout bounds resolving and connecting. If zero, 5s.
	DialTimeout time.Duration
	// MaxResponseBytes bounds a response body. If zero, 1 MiB.
	MaxResponseBytes int64
	// MaxRedirects bounds the redirects followed. If zero, 3; negative
	// follows none (the redirect response is returned).
	MaxRedirects int
	// Resolver resolves host names. If nil, net.DefaultResolver.
	Resolver *net.Resolver
	// TLS configures TLS (for example the roots of a test server). If nil,
	// the system's roots.
	TLS *tls.Config
}

func (o Options) withDefaults() Options {
	if o.Refuse == nil {
		o.Refuse = proxycfg.IsPrivateAddr
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = 1 << 20
	}
	if o.MaxRedirects == 0 {
		o.MaxRedirects = 3
	}
	return o
}

// New returns a client that applies the options to every request. Each
// call makes its own transport (and connection pool); make one per use and
// share it.
func New(o Options) *http.Client {
	o = o.withDefaults()
	d := &net.Dialer{
		Timeout:  o.DialTimeout,
		Resolver: o.Resolver,
		// ControlContext runs for every address the dialer tries, after
		// resolution and before connecting: the address checked is the one
		// connected to, whatever the name resolved to a moment earlier.
		ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
			if o.AllowPrivate {
				return nil
			}
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrPrivateAddr, address)
			}
			if o.Refuse(ap.Addr().Unmap()) {
				return fmt.Errorf("%w: %s", ErrPrivateAddr, ap.Addr().Unmap())
			}
			return nil
		},
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSClientConfig:        o.TLS,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    o.DialTimeout,
		ResponseHeaderTimeout:  o.Timeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        90 * time.Second,
	}
	return &http.Client{
		Transport: &guard{next: tr, o: o},
		Timeout:   o.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if o.MaxRedirects < 0 {
				return http.ErrUseLastResponse
			}
			if len(via) > o.MaxRedirects {
				return fmt.Errorf("%w: more than %d redirects", ErrRedirect, o.MaxRedirects)
			}
			if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return fmt.Errorf("%w: from https to %s", ErrRedirect, req.URL.Scheme)
			}
			return o.checkURL(req.URL)
		},
	}
}

// checkURL refuses what no request may reach, before any connection: other
// schemes, URLs without a host or with credentials, and literal addresses
// (and localhost names) the dialer would refuse anyway, with a clearer error.
func (o Options) checkURL(u *url.URL) error {
	switch {
	case u.Scheme != "https" && !(o.AllowHTTP && u.Scheme == "http"):
		return fmt.Errorf("%w: %s", ErrScheme, redact(u))
	case u.Host == "" || u.User != nil:
		return fmt.Errorf("%w: %s", ErrScheme, redact(u))
	case o.AllowPrivate:
		return nil
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return fmt.Errorf("%w: %s", ErrPrivateAddr, host)
	}
	if ip, err := netip.ParseAddr(host); err == nil && o.Refuse(ip.Unmap()) {
		return fmt.Errorf("%w: %s", ErrPrivateAddr, ip.Unmap())
	}
	return nil
}

// redact is u without credentials and query, for error messages.
func redact(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.Fragment = nil, "", ""
	return c.String()
}

// guard checks every request (the first and each redirect hop) and bounds
// every response body.
type guard struct {
	next http.RoundTripper
	o    Options
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := g.o.checkURL(req.URL); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	resp, err := g.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > g.o.MaxResponseBytes {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %d bytes announced, at most %d", ErrTooLarge, resp.ContentLength, g.o.MaxResponseBytes)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: g.o.MaxResponseBytes}
	return resp, nil
}

// limitedBody fails with ErrTooLarge once more than its limit was read, so
// that a reader never mistakes a truncated document for a whole one.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n - int(-b.left), ErrTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
