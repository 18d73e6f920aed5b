// Package devportal is the developer portal of every tenant: the site where
// the tenant's API consumers (developers) sign up, read the reference
// documentation of its published APIs, try them, subscribe apps to plans,
// hold and rotate keys, download SDKs and watch their usage. It is served by
// the control plane on <tenant slug>.<portal domain> and on the tenant's
// verified custom portal domain; the tenant comes from the Host header alone.
//
// Pages (server-rendered with templ, working without JavaScript except
// try-it) and a JSON API under /api share one set of rules: both call
// services/developers and services/catalog, and hold none of their own.
//
// Files: devportal.go (options, host routing, sessions, CSRF), api*.go (the
// JSON API), pages*.go and view/ (the HTML pages).
package devportal

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/billing/rating"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/clientip"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/sdk"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/sso"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/services/usage"
	"github.com/tollgate/tollgate/web/static"
)

// Tenants finds the tenant a request is for; tenancy.Directory implements it.
type Tenants interface {
	BySlug(ctx context.Context, slug string) (tenancy.Tenant, error)
	ByPortalDomain(ctx context.Context, host string) (tenancy.Tenant, error)
}

// Usage reads the traffic and quota a developer sees; usage.Reader
// implements it.
type Usage interface {
	Series(ctx context.Context, q usage.Query) ([]usage.Point, error)
	ByKey(ctx context.Context, tenantID, consumerID string, from, to time.Time) ([]usage.KeyTotal, error)
	Quota(ctx context.Context, tenantID, keyID string, now time.Time) (usage.KeyQuota, error)
}

// Billing takes developers' payments and shows them what they pay;
// *billing.Service implements it. Its errors that match
// billing.ErrUnavailable (billing off, tenant not connected, prices not
// synced yet) mean no payment is possible yet, for the reason in the
// *billing.UnavailableError's Detail. The portal checks that the
// subscription is the developer's before every call.
type Billing interface {
	// Checkout returns a Stripe Checkout URL for a payment_required
	// subscription.
	Checkout(ctx context.Context, tenantID, subscriptionID, successURL, cancelURL string) (string, error)
	// CustomerPortal returns a Stripe Customer Portal URL for a paid
	// subscription (card, plan, invoices, cancel).
	CustomerPortal(ctx context.Context, tenantID, subscriptionID, returnURL string) (string, error)
	// Cancel ends a subscription, in Stripe too.
	Cancel(ctx context.Context, tenantID, subscriptionID string, atPeriodEnd bool) (catalog.BillingSubscription, error)
	// Connection says whether the tenant takes payments (a connected
	// Stripe account).
	Connection(ctx context.Context, tenantID string) (billing.Connection, error)
	// Estimate is a subscription's next invoice so far (the rating of its
	// meter events).
	Estimate(ctx context.Context, tenantID, subscriptionID string) (rating.InvoiceEstimate, error)
	// Invoices are a subscription's invoices, newest first.
	Invoices(ctx context.Context, tenantID, subscriptionID string) ([]billing.Invoice, error)
}

// Options configures the developer portals.
type Options struct {
	// Developers holds the developers' accounts and the portal settings.
	// Required.
	Developers *developers.Service
	// Catalog holds APIs, plans, apps, subscriptions and keys. Required.
	Catalog *catalog.Service
	// Tenants resolves the Host header. Required.
	Tenants Tenants
	// Usage reads usage and quotas. Required.
	Usage Usage
	// SDKs builds the SDK downloads; nil answers 404 for them.
	SDKs *sdk.Generator
	// Billing takes payments; nil means billing is off.
	Billing Billing
	// Domain is TOLLGATE_PORTAL_DOMAIN: portals are at <slug>.<Domain>.
	Domain string
	// GatewayURL is TOLLGATE_PROXY_PUBLIC_URL with {slug} for the tenant,
	// e.g. http://{slug}.localhost:8000: the base of every API's URL.
	GatewayURL string
	// GatewayDial, when set, is the address (host:port) the try-it relay
	// connects to for every gateway request, whatever the URL's host (a
	// laptop, where <slug>.localhost may not resolve, or an in-cluster
	// address of the gateway); "" dials the URL's host.
	GatewayDial string
	// Secure (the portal is served over https) adds Secure and the __Host-
	// prefix to cookies and builds https:// links.
	Secure bool
	// Port is the port the portal is reached on, kept in links ("" for the
	// scheme's default).
	Port string
	// OIDCClient is the HTTP client for tenants' developer IdPs; nil uses a
	// client with a 10s timeout.
	OIDCClient *http.Client
	// Logger receives server errors. If nil, slog.Default().
	Logger *slog.Logger
	// TrustedProxies are the load balancers whose X-Forwarded-For names
	// the client (TOLLGATE_TRUSTED_PROXIES); none by default.
	TrustedProxies clientip.Trusted
	// Secret keys the CSRF tokens of signed-out forms and the OIDC flow
	// cookie. Required (at least 16 bytes).
	Secret []byte
}

// Portal serves every tenant's developer portal.
type Portal struct {
	opts    Options
	log     *slog.Logger
	mux     *http.ServeMux
	idps    *sso.Cache
	cookies cookieNames
}

// New validates opts and returns the handler of every portal host.
func New(opts Options) (*Portal, error) {
	switch {
	case opts.Developers == nil || opts.Catalog == nil || opts.Tenants == nil || opts.Usage == nil:
		return nil, errors.New("devportal: Developers, Catalog, Tenants and Usage are required")
	case opts.Domain == "":
		return nil, errors.New("devportal: Domain is required")
	case len(opts.Secret) < 16:
		return nil, errors.New("devportal: Secret must be at least 16 bytes")
	case !strings.Contains(opts.GatewayURL, "{slug}"):
		return nil, errors.New("devportal: GatewayURL must contain {slug}")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Domain = strings.ToLower(strings.Trim(opts.Domain, "."))
	p := &Portal{opts: opts, log: opts.Logger, idps: &sso.Cache{Client: opts.OIDCClient},
		cookies: newCookieNames(opts.Secure)}
	p.mux = p.routes()
	return p, nil
}

// Matches reports whether host (a Host header, port allowed) is a portal
// host under the portal domain. Custom portal domains are not known here;
// the control plane sends hosts it does not serve otherwise to Handler too.
func (p *Portal) Matches(host string) bool {
	h := hostOnly(host)
	return strings.HasSuffix(h, "."+p.opts.Domain) && !strings.Contains(strings.TrimSuffix(h, "."+p.opts.Domain), ".")
}

// ServesCustomDomain reports whether host is a tenant's verified custom
// portal domain.
func (p *Portal) ServesCustomDomain(ctx context.Context, host string) bool {
	_, err := p.opts.Tenants.ByPortalDomain(ctx, hostOnly(host))
	return err == nil
}

func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

type ctxKey int

const tenantKey ctxKey = 0

// tenantOf returns the tenant ServeHTTP resolved for the request.
func tenantOf(r *http.Request) tenancy.Tenant {
	t, _ := r.Context().Value(tenantKey).(tenancy.Tenant)
	return t
}

// ServeHTTP resolves the tenant from the host and serves its portal, with
// the portal's security headers. An unknown host, or a tenant whose portal
// is off, answers 404 like a portal that does not exist.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' https: data:; style-src 'self'; "+
		"script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self' https: http:")
	t, err := p.resolve(r.Context(), r.Host)
	if err != nil {
		if !errors.Is(err, fault.ErrNotFound) {
			p.log.Error("devportal: resolve host", "host", r.Host, "err", err)
			http.Error(w, "portal temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
		p.notFound(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/static/") {
		p.mux.ServeHTTP(w, r)
		return
	}
	if _, err := p.opts.Developers.Portal(r.Context(), t.ID); err != nil {
		if !errors.Is(err, fault.ErrNotFound) {
			p.log.Error("devportal: portal settings", "tenant", t.Slug, "err", err)
			http.Error(w, "portal temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
		p.notFound(w, r)
		return
	}
	routed := r.WithContext(context.WithValue(r.Context(), tenantKey, t))
	withGzip(w, routed, p.mux)
	// The pattern the mux matched, on the caller's request too, as a
	// ServeMux leaves it: the control plane's metrics label by it.
	r.Pattern = routed.Pattern
}

func (p *Portal) resolve(ctx context.Context, host string) (tenancy.Tenant, error) {
	h := hostOnly(host)
	if slug, ok := strings.CutSuffix(h, "."+p.opts.Domain); ok && !strings.Contains(slug, ".") {
		return p.opts.Tenants.BySlug(ctx, slug)
	}
	return p.opts.Tenants.ByPortalDomain(ctx, h)
}

func (p *Portal) notFound(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/api" {
		writeProblem(w, r, fault.ErrNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte("There is no developer portal here.\n"))
}

// baseURL is the absolute URL of the tenant's portal on the host the
// request came to (a custom domain stays a custom domain).
func (p *Portal) baseURL(r *http.Request) string {
	scheme := "http"
	if p.opts.Secure {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// PortalURL is the canonical base URL of a tenant's portal under the portal
// domain, for links in mails (developers.Service.PortalURL).
func (p *Portal) PortalURL(t tenancy.Tenant) string {
	scheme := "http"
	if p.opts.Secure {
		scheme = "https"
	}
	u := scheme + "://" + t.Slug + "." + p.opts.Domain
	if p.opts.Port != "" {
		u += ":" + p.opts.Port
	}
	return u
}

// gatewayBase is the gateway URL of the tenant (no trailing slash).
func (p *Portal) gatewayBase(t tenancy.Tenant) string {
	return strings.TrimSuffix(strings.ReplaceAll(p.opts.GatewayURL, "{slug}", t.Slug), "/")
}

// apiURL is the gateway base URL of one of the tenant's APIs.
func (p *Portal) apiURL(t tenancy.Tenant, a catalog.API) string {
	if a.BasePath == "/" {
		return p.gatewayBase(t)
	}
	return p.gatewayBase(t) + a.BasePath
}

// ---- sessions and cookies ----

// cookieNames are the portal's cookie names. Every cookie is host-only (no
// Domain attribute), so a session on one tenant's portal is never sent to
// another's; under TLS the __Host- prefix makes browsers enforce it.
type cookieNames struct {
	session, csrf, flash, sso string
	secure                    bool
}

func newCookieNames(secure bool) cookieNames {
	pre := "tgp_"
	if secure {
		pre = "__Host-tgp_"
	}
	return cookieNames{session: pre + "session", csrf: pre + "csrf", flash: pre + "flash", sso: pre + "sso", secure: secure}
}

func (p *Portal) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: p.cookies.secure,
		SameSite: http.SameSiteLaxMode}
	if maxAge < 0 {
		c.MaxAge = -1
	} else if maxAge > 0 {
		c.MaxAge = int(maxAge.Seconds())
	}
	http.SetCookie(w, c)
}

// cookieSession returns the browser session of the request in the tenant's
// portal, or fault.ErrUnauthenticated.
func (p *Portal) cookieSession(r *http.Request) (developers.Session, error) {
	c, err := r.Cookie(p.cookies.session)
	if err != nil {
		return developers.Session{}, fault.ErrUnauthenticated
	}
	return p.opts.Developers.LookupSession(r.Context(), tenantOf(r).ID, c.Value)
}

// bearerSession returns the session of an "Authorization: Bearer" token of
// the JSON API, or fault.ErrUnauthenticated.
func (p *Portal) bearerSession(r *http.Request) (developers.Session, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return developers.Session{}, fault.ErrUnauthenticated
	}
	return p.opts.Developers.LookupSession(r.Context(), tenantOf(r).ID, strings.TrimSpace(tok))
}

// signIn starts a session for dev and sets its cookie (a new id at every
// sign-in; the old session, if any, ends).
func (p *Portal) signIn(w http.ResponseWriter, r *http.Request, dev developers.Developer) (developers.Session, error) {
	if old, err := r.Cookie(p.cookies.session); err == nil {
		_ = p.opts.Developers.EndSession(r.Context(), old.Value)
	}
	s, err := p.opts.Developers.StartSession(r.Context(), dev)
	if err != nil {
		return developers.Session{}, err
	}
	p.setCookie(w, p.cookies.session, s.ID, 0)
	return s, nil
}

// anonToken returns the double-submit CSRF token of a signed-out browser,
// setting its cookie when missing. The token is an HMAC of the cookie's
// random value and the host, so a cookie alone (or one from another
// tenant's portal) is useless.
func (p *Portal) anonToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(p.cookies.csrf); err == nil && len(c.Value) >= 32 {
		return p.mac("csrf", hostOnly(r.Host)+"\x00"+c.Value)
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	p.setCookie(w, p.cookies.csrf, v, 0)
	return p.mac("csrf", hostOnly(r.Host)+"\x00"+v)
}

// validAnonCSRF checks the token of a signed-out form (field csrf_token).
func (p *Portal) validAnonCSRF(r *http.Request) bool {
	c, err := r.Cookie(p.cookies.csrf)
	if err != nil {
		return false
	}
	return p.sameOrigin(r) && equal(r.PostFormValue("csrf_token"), p.mac("csrf", hostOnly(r.Host)+"\x00"+c.Value))
}

// validSessionCSRF checks the token of a signed-in form against the
// session's.
func (p *Portal) validSessionCSRF(r *http.Request, s developers.Session) bool {
	return p.sameOrigin(r) && equal(r.PostFormValue("csrf_token"), s.CSRF)
}

func (p *Portal) mac(purpose, v string) string {
	m := hmac.New(sha256.New, p.opts.Secret)
	m.Write([]byte("tollgate/devportal/" + purpose + "\x00" + v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func equal(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// sameOrigin checks Origin (or Referer) when the browser sends one: a
// second line of defence behind the CSRF token.
func (p *Portal) sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		ref := r.Header.Get("Referer")
		if ref == "" {
			return o == ""
		}
		o = ref
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// clientIP is the client's address, for throttling: the peer, or the
// right-most untrusted X-Forwarded-For hop when the peer is a trusted load
// balancer (Options.TrustedProxies), with IPv6 grouped by /64.
func (p *Portal) clientIP(r *http.Request) string {
	return clientip.Bucket(p.opts.TrustedProxies.From(r))
}

// portalSettings returns the tenant's (enabled) portal settings.
func (p *Portal) portalSettings(r *http.Request) (settings.Portal, error) {
	return p.opts.Developers.Portal(r.Context(), tenantOf(r).ID)
}

// routes mounts the static files, the JSON API (api*.go) and the pages
// (pages*.go).
func (p *Portal) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("GET /static/", http.StripPrefix("/static/", static.Handler()))
	p.apiRoutes(m)
	p.pageRoutes(m)
	return m
}
