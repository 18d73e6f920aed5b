// Package portal is the tenant portal: a server-rendered web app (templ) where
// a company signs up, defines its APIs, upstreams and plans, issues keys,
// manages its team and watches its traffic. It holds no business rules and
// no database or Redis client: every change goes through the same domain
// services as /v1 (services/catalog, tenancy, audit, settings, developers)
// and the portal's own (accounts, sso), built in cmd and taken through the
// small interfaces of services.go.
// It also controls the tenant's developer portal: its settings, which APIs
// and plans it offers, and the queue of developers and subscriptions that
// wait for the tenant's approval.
package portal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/a-h/templ"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/clientip"
	"github.com/tollgate/tollgate/services/egress"
	"github.com/tollgate/tollgate/services/mail"
	"github.com/tollgate/tollgate/services/sso"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/web/portal/view"
	"github.com/tollgate/tollgate/web/static"
)

// Options configures the portal.
type Options struct {
	// The control plane's domain, as services that cmd builds (services.go
	// declares what the portal needs of each). Required, as is Catalog.

	// Accounts signs people up and in (*accounts.Service).
	Accounts Accounts
	// Sessions keeps the signed-in browsers' sessions (*accounts.Service).
	Sessions Sessions
	// Team is the tenant's users and invitations (*accounts.Service).
	Team Team
	// Tenants finds tenants (*tenancy.Service).
	Tenants Tenants
	// Tokens are the tenants' admin API tokens (*tenancy.Service).
	Tokens Tokens
	// Settings are the tenant's IdP and developer portal settings
	// (*settings.Service).
	Settings Settings
	// Domains are the tenant's custom domains (*settings.Service, which
	// holds the operator's limits and the resolver that verifies them).
	Domains Domains
	// Audit reads the audit log (*audit.Service).
	Audit AuditLog
	// Usage reads the dashboard's traffic figures (usage.Reader).
	Usage Usage
	// Developers runs the approval queue and developer invitations
	// (*developers.Service, whose PortalURL makes the links in its mail).
	Developers Developers
	// Catalog holds upstreams, APIs, plans, consumers, apps, subscriptions
	// and keys, under the operator's limits (its Limits). Required.
	Catalog *catalog.Service
	// Health reads the live target health the proxy workers report
	// (*health.Reader on their Redis); nil shows the configured state only.
	Health Health
	// Config reads what became of the tenant's config changes
	// (*outbox.StatusReader): the pages where a tenant changes its gateway
	// show a refused change with its reason and the generation that keeps
	// serving, and workers too old for the config. nil shows nothing.
	Config ConfigStatus
	// Secret (TOLLGATE_SECRET) keys the portal's CSRF tokens and the SSO
	// flow cookie. Required (at least 16 bytes).
	Secret []byte
	// AllowPrivateUpstreams (dev and tests) lets tenants' identity
	// providers be on private addresses and plain http.
	AllowPrivateUpstreams bool
	// Logger receives server errors. If nil, slog.Default() is used.
	Logger *slog.Logger
	// ProxyDomain is TOLLGATE_PROXY_DOMAIN, to show tenants their proxy URL.
	ProxyDomain string
	// ProxyURL is the proxy's public base URL pattern shown to tenants, with
	// {slug} standing for the tenant; if "", http://{slug}.<ProxyDomain>.
	ProxyURL string
	// PublicURL is the portal's external base URL (e.g. http://localhost:8080),
	// for links in emails and the OIDC redirect URL. Required.
	PublicURL string
	// Mailer sends invitations and password resets. Required.
	Mailer mail.Sender
	// SecureCookies (true under TLS) adds Secure and the __Host- name prefix
	// to cookies.
	SecureCookies bool
	// DefaultOIDC is the platform's default identity provider (TOLLGATE_OIDC_*);
	// nil means none. It is discovered at its first use, not at start, so an
	// IdP outage never keeps the control plane from starting.
	DefaultOIDC *sso.Config
	// OIDCClient is the HTTP client for tenants' identity providers (their
	// discovery, token and key URLs are the tenants' choice). If nil, a
	// guarded client (services/egress): https only and no private addresses,
	// unless AllowPrivateUpstreams (dev and tests), which allows both.
	OIDCClient *http.Client
	// PlatformOIDCClient is the HTTP client for DefaultOIDC, the operator's
	// own IdP, which may live on a private network. If nil, egress's client
	// with private addresses and http allowed (still bounded in time and size).
	PlatformOIDCClient *http.Client
	// TrustedProxies are the load balancers whose X-Forwarded-For names the
	// client (TOLLGATE_TRUSTED_PROXIES), for throttling; the zero value
	// trusts none and takes the TCP peer.
	TrustedProxies clientip.Trusted
	// DevMail, when set, is served at /dev/mail (dev mode's mail sink).
	DevMail http.Handler
	// DevPortalURL returns the base URL (no trailing slash) of a tenant's
	// developer portal from its slug: the link tenants see. Its host
	// without the slug is also the platform's portal domain, which tenants
	// cannot claim as a custom domain. If nil, http://<slug>.developers.localhost.
	// (Developer mails sent from here take their links from Developers.)
	DevPortalURL func(slug string) string
	// Billing runs the billing page (billing.go); its zero value shows the
	// page with billing off.
	Billing Billing
}

// Portal is the tenant portal's HTTP handler.
type Portal struct {
	secret []byte
	cat    *catalog.Service
	devs   Developers
	log    *slog.Logger
	opts   Options
	public *url.URL
	idps   *sso.Cache // tenants' IdPs, through the guarded client
	// platformIdP holds the operator's default IdP (TOLLGATE_OIDC_*).
	platformIdP *sso.Cache
	mux         *http.ServeMux
	cookies     cookieNames
	logins      atomic.Uint64
}

// New validates opts and returns the portal's handler, to be mounted at "/".
func New(opts Options) (*Portal, error) {
	if missing := missingServices(opts); missing != "" {
		return nil, fmt.Errorf("portal: %s is required", missing)
	}
	if opts.Billing.Service != nil && opts.Billing.Reports == nil {
		return nil, errors.New("portal: Billing.Reports is required with Billing.Service")
	}
	if len(opts.Secret) < 16 {
		return nil, errors.New("portal: Secret must be at least 16 bytes")
	}
	if opts.Mailer == nil {
		return nil, errors.New("portal: Mailer is required")
	}
	pub, err := url.Parse(strings.TrimSuffix(opts.PublicURL, "/"))
	if err != nil || (pub.Scheme != "http" && pub.Scheme != "https") || pub.Host == "" {
		return nil, fmt.Errorf("portal: PublicURL %q must be an absolute http(s) URL", opts.PublicURL)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DefaultOIDC != nil {
		if field, msg := opts.DefaultOIDC.Validate(); field != "" {
			return nil, fmt.Errorf("portal: default OIDC provider: %s %s", field, msg)
		}
	}
	if opts.ProxyDomain == "" {
		opts.ProxyDomain = "localhost"
	}
	if opts.DevPortalURL == nil {
		opts.DevPortalURL = func(slug string) string { return "http://" + slug + ".developers.localhost" }
	}
	if opts.OIDCClient == nil {
		opts.OIDCClient = egress.New(egress.Options{AllowPrivate: opts.AllowPrivateUpstreams, AllowHTTP: opts.AllowPrivateUpstreams})
	}
	if opts.PlatformOIDCClient == nil {
		opts.PlatformOIDCClient = egress.New(egress.Options{AllowPrivate: true, AllowHTTP: true})
	}
	p := &Portal{
		secret: opts.Secret, log: opts.Logger, opts: opts, public: pub,
		cat: opts.Catalog, devs: opts.Developers,
		idps:        &sso.Cache{Client: opts.OIDCClient},
		platformIdP: &sso.Cache{Client: opts.PlatformOIDCClient},
		cookies:     newCookieNames(opts.SecureCookies),
	}
	p.mux = p.routes()
	return p, nil
}

// missingServices names the first required service opts lacks ("" when
// none is missing).
func missingServices(opts Options) string {
	for _, s := range []struct {
		name string
		set  bool
	}{
		{"Accounts", opts.Accounts != nil}, {"Sessions", opts.Sessions != nil}, {"Team", opts.Team != nil},
		{"Tenants", opts.Tenants != nil}, {"Tokens", opts.Tokens != nil}, {"Settings", opts.Settings != nil},
		{"Domains", opts.Domains != nil}, {"Audit", opts.Audit != nil}, {"Usage", opts.Usage != nil},
		{"Developers", opts.Developers != nil}, {"Catalog", opts.Catalog != nil},
	} {
		if !s.set {
			return s.name
		}
	}
	return ""
}

// ServeHTTP serves the portal with its security headers.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	csp := "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self' https: http:"
	if r.URL.Path == "/dev/mail" {
		csp = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
	}
	h.Set("Content-Security-Policy", csp)
	p.mux.ServeHTTP(w, r)
}

func (p *Portal) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("GET /static/", http.StripPrefix("/static/", static.Handler()))
	if p.opts.DevMail != nil {
		m.Handle("GET /dev/mail", p.opts.DevMail)
	}
	m.HandleFunc("GET /{$}", p.home)

	// Signed-out pages. Their forms carry a double-submit CSRF token.
	m.HandleFunc("GET /signup", p.anon(p.signupPage))
	m.HandleFunc("POST /signup", p.anonPost(p.signup))
	m.HandleFunc("GET /login", p.anon(p.loginPage))
	m.HandleFunc("POST /login", p.anonPost(p.login))
	m.HandleFunc("GET /forgot", p.anon(p.forgotPage))
	m.HandleFunc("POST /forgot", p.anonPost(p.forgot))
	m.HandleFunc("GET /reset", p.anon(p.resetPage))
	m.HandleFunc("POST /reset", p.anonPost(p.reset))
	m.HandleFunc("GET /invite", p.anon(p.invitePage))
	m.HandleFunc("POST /invite", p.anonPost(p.acceptInvite))
	m.HandleFunc("GET /verify", p.verify)
	m.HandleFunc("POST /sso/start", p.anonPost(p.ssoStart))
	m.HandleFunc("GET /sso/callback", p.ssoCallback)
	m.HandleFunc("POST /logout", p.user(roleAny, p.logout))

	// Signed-in pages. Reads are open to every role; each mutating route
	// names the role it needs and checks the session's CSRF token.
	get := func(path string, h handler) { m.HandleFunc("GET "+path, p.user(roleAny, h)) }
	post := func(path string, need role, h handler) { m.HandleFunc("POST "+path, p.user(need, h)) }

	get("/dashboard", p.dashboard)
	post("/verify/resend", roleAny, p.resendVerification)

	get("/apis", p.apisList)
	get("/apis/new", p.apiNew)
	post("/apis", roleWrite, p.apiCreate)
	get("/apis/{id}", p.apiEdit)
	post("/apis/{id}", roleWrite, p.apiUpdate)
	post("/apis/{id}/delete", roleWrite, p.apiDelete)
	post("/apis/{id}/openapi", roleWrite, p.apiImport)

	get("/upstreams", p.upstreamsList)
	get("/upstreams/new", p.upstreamNew)
	post("/upstreams", roleWrite, p.upstreamCreate)
	get("/upstreams/{id}", p.upstreamEdit)
	post("/upstreams/{id}", roleWrite, p.upstreamUpdate)
	post("/upstreams/{id}/delete", roleWrite, p.upstreamDelete)

	get("/plans", p.plansList)
	get("/plans/new", p.planNew)
	post("/plans", roleWrite, p.planCreate)
	get("/plans/{id}", p.planEdit)
	post("/plans/{id}", roleWrite, p.planUpdate)
	post("/plans/{id}/delete", roleWrite, p.planDelete)

	get("/consumers", p.consumersList)
	post("/consumers", roleWrite, p.consumerCreate)
	get("/consumers/{id}", p.consumerShow)
	post("/consumers/{id}", roleWrite, p.consumerUpdate)
	post("/consumers/{id}/delete", roleWrite, p.consumerDelete)
	post("/consumers/{id}/suspend", roleWrite, p.consumerSuspend)
	post("/consumers/{id}/reinstate", roleWrite, p.consumerReinstate)
	post("/subscriptions/{id}/suspend", roleWrite, p.subscriptionSuspend)
	post("/subscriptions/{id}/resume", roleWrite, p.subscriptionResume)
	post("/subscriptions/{id}/cancel", roleWrite, p.subscriptionCancel)
	post("/consumers/{id}/keys", roleWrite, p.keyIssue)
	post("/keys/{id}/rotate", roleWrite, p.keyRotate)
	post("/keys/{id}/revoke", roleWrite, p.keyRevoke)

	get("/developer-portal", p.devPortalPage)
	post("/developer-portal", roleWrite, p.devPortalSave)
	post("/developer-portal/oidc", roleWrite, p.devPortalOIDC)

	get("/approvals", p.approvals)
	post("/approvals/invite", roleWrite, p.developerInvite)
	post("/approvals/developers/{id}/approve", roleWrite, p.developerApprove)
	post("/approvals/developers/{id}/reject", roleWrite, p.developerReject)
	post("/approvals/subscriptions/{id}/approve", roleWrite, p.subscriptionApprove)
	post("/approvals/subscriptions/{id}/reject", roleWrite, p.subscriptionReject)

	get("/billing", p.billingPage)
	post("/billing/stripe", roleWrite, p.billingConnect)
	post("/billing/stripe/onboarding", roleWrite, p.billingOnboard)
	post("/billing/usage/repair", roleWrite, p.billingUsageRepair)
	post("/billing/usage/requeue", roleWrite, p.billingUsageRequeue)
	post("/billing/drift/subscriptions/{id}/repair", roleWrite, p.billingSubscriptionRepair)

	get("/team", p.team)
	post("/team/invites", roleOwner, p.inviteCreate)
	post("/team/invites/{id}/revoke", roleOwner, p.inviteRevoke)
	post("/team/users/{id}/role", roleOwner, p.userRole)
	post("/team/users/{id}/remove", roleOwner, p.userRemove)

	get("/tokens", p.tokens)
	post("/tokens", roleWrite, p.tokenCreate)
	post("/tokens/{id}/revoke", roleWrite, p.tokenRevoke)

	get("/audit", p.auditLog)

	get("/settings", p.settingsPage)
	// The old branding form: its fields now belong to the developer portal's.
	post("/settings/branding", roleWrite, p.settingsBranding)
	post("/settings/sso", roleOwner, p.settingsSSO)
	post("/settings/domains", roleWrite, p.domainAdd)
	post("/settings/domains/{id}/delete", roleWrite, p.domainRemove)
	post("/settings/domains/{id}/verify", roleWrite, p.domainVerify)

	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.renderStatus(w, r, http.StatusNotFound, view.PlainError(http.StatusNotFound, "This page does not exist."))
	})
	return m
}

func (p *Portal) home(w http.ResponseWriter, r *http.Request) {
	if _, err := p.session(r); err == nil {
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// render writes a page with status 200.
func (p *Portal) render(w http.ResponseWriter, r *http.Request, c templ.Component) {
	p.renderStatus(w, r, http.StatusOK, c)
}

func (p *Portal) renderStatus(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := c.Render(r.Context(), w); err != nil && !errors.Is(err, context.Canceled) {
		p.log.Error("portal: render", "path", r.URL.Path, "err", err)
	}
}

// internal logs err and shows a generic error page: internal errors never
// reach the user. An unreachable database answers 503 with Retry-After
// (logged once per outage by the control plane's store.Monitor, not here).
func (p *Portal) internal(w http.ResponseWriter, r *http.Request, err error) {
	if store.Unavailable(err) {
		p.log.Debug("portal: database unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "5")
		p.renderStatus(w, r, http.StatusServiceUnavailable, view.PlainError(http.StatusServiceUnavailable,
			"Tollgate is temporarily unavailable. Please try again in a moment."))
		return
	}
	p.log.Error("portal: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	p.renderStatus(w, r, http.StatusInternalServerError,
		view.PlainError(http.StatusInternalServerError, "Something went wrong on our side. Please try again."))
}

// devPortalURL is the base URL of the tenant's developer portal.
func (p *Portal) devPortalURL(slug string) string {
	return strings.TrimSuffix(p.opts.DevPortalURL(slug), "/")
}

// devPortalDomain is the platform's developer portal domain: the host of
// DevPortalURL without the tenant's label ("" when it cannot be told).
func (p *Portal) devPortalDomain() string {
	const probe = "tenant-slug"
	u, err := url.Parse(p.devPortalURL(probe))
	if err != nil {
		return ""
	}
	host, ok := strings.CutPrefix(u.Hostname(), probe+".")
	if !ok {
		return ""
	}
	return host
}

// absURL makes a link for emails and the OIDC redirect.
func (p *Portal) absURL(path string, q url.Values) string {
	u := *p.public
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// proxyURL is the base URL of the tenant's APIs at the proxy.
func (p *Portal) proxyURL(slug string) string {
	if p.opts.ProxyURL != "" {
		return strings.ReplaceAll(p.opts.ProxyURL, "{slug}", slug)
	}
	return "http://" + slug + "." + p.opts.ProxyDomain
}

func (p *Portal) sendMail(ctx context.Context, to, subject, body string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := p.opts.Mailer.Send(ctx, mail.Message{To: to, Subject: subject, Body: body}); err != nil {
		return fmt.Errorf("send %q to %s: %w", subject, to, err)
	}
	return nil
}
