package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/egress"
	"github.com/tollgate/tollgate/services/mail"
	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/sdk"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/services/throttle"
	usagesvc "github.com/tollgate/tollgate/services/usage"
	"github.com/tollgate/tollgate/web/devportal"
)

// gatewayURL is TOLLGATE_PROXY_PUBLIC_URL, or http://{slug}.<proxy
// domain>[:<proxy port>] from the proxy's listen address.
func (c config) gatewayURL() string {
	if c.ProxyPublicURL != "" {
		return strings.TrimSuffix(c.ProxyPublicURL, "/")
	}
	u := "http://{slug}." + c.ProxyDomain
	if _, port, err := net.SplitHostPort(c.ProxyAddr); err == nil && port != "" && port != "80" {
		u += ":" + port
	}
	return u
}

// gatewayDial is where the try-it relay connects: TOLLGATE_PORTAL_GATEWAY_ADDR,
// or loopback at the gateway URL's port when its host is under localhost
// (which Go's resolver does not map to 127.0.0.1).
func (c config) gatewayDial() string {
	if c.PortalGatewayAddr != "" {
		return c.PortalGatewayAddr
	}
	u, err := url.Parse(strings.ReplaceAll(c.gatewayURL(), "{slug}", "x"))
	if err != nil || !(u.Hostname() == "localhost" || strings.HasSuffix(u.Hostname(), ".localhost")) {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443"}[u.Scheme]
		if port == "" {
			port = "80"
		}
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// newDevPortal builds the developer portals and the developer account
// service they share with /v1 and the tenant portal.
func newDevPortal(cfg config, db *pgxpool.Pool, rdb redis.UniversalClient, keys proxycfg.Keys, log *slog.Logger,
	controlAddr string, devSink *mail.Sink, bill *billing.Service) (*devportal.Portal, *developers.Service, error) {
	mailer, _, err := newMailer(cfg, slog.New(slog.DiscardHandler), devSink)
	if err != nil {
		return nil, nil, err
	}
	cat := catalog.New(db, cfg.digestKey(), cfg.AllowPrivate)
	cat.Limits = cfg.Limits
	cat.ConfigSize = publish.TenantConfigBytes
	devs := &developers.Service{DB: db, Catalog: cat, Mailer: mailer, Throttle: &throttle.Limiter{DB: db},
		Logger: log.With("component", "devportal"), Secret: cfg.Secret}
	pub := cfg.publicURL(controlAddr)
	port := ""
	if u, err := url.Parse(pub); err == nil {
		port = u.Port()
	}
	dp, err := devportal.New(devportal.Options{
		Developers: devs, Catalog: cat, Tenants: tenancy.Directory{DB: db},
		Usage: usagesvc.Reader{DB: db, Redis: rdb, Keys: keys}, SDKs: &sdk.Generator{},
		Domain: cfg.PortalDomain, GatewayURL: cfg.gatewayURL(), GatewayDial: cfg.gatewayDial(),
		Secure: strings.HasPrefix(pub, "https://"), Port: port, Logger: log.With("component", "devportal"),
		Secret: cfg.Secret, Billing: billingOf(bill), TrustedProxies: cfg.TrustedProxies,
		// Tenants' developer IdPs: guarded like upstream targets (dev mode
		// allows loopback and http).
		OIDCClient: egress.New(egress.Options{AllowPrivate: cfg.AllowPrivate, AllowHTTP: cfg.AllowPrivate}),
	})
	if err != nil {
		return nil, nil, err
	}
	devs.PortalURL = dp.PortalURL
	return dp, devs, nil
}

// hostRouter sends the developer portals' hosts to portal (dp, or dp
// instrumented) and every other host (the control plane's own: /v1 and the
// tenant portal) to control. A host under the portal domain is a portal;
// any other host that is not the control plane's is looked up as a
// verified custom portal domain.
func hostRouter(dp *devportal.Portal, portal http.Handler, controlHost string, control http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if dp.Matches(r.Host) || (!isControlHost(r.Host, controlHost) && dp.ServesCustomDomain(r.Context(), r.Host)) {
			portal.ServeHTTP(w, r)
			return
		}
		control.ServeHTTP(w, r)
	})
}

// isControlHost reports whether host is the control plane's own: its
// public host, localhost or an IP address.
func isControlHost(host, controlHost string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.ToLower(h)
	return h == "" || h == "localhost" || strings.EqualFold(h, controlHost) || net.ParseIP(strings.Trim(h, "[]")) != nil
}

// hostOfURL is the host name of an absolute URL ("" when it has none).
func hostOfURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// billingOf is bill as the portal's Billing, nil when billing is off.
func billingOf(bill *billing.Service) devportal.Billing {
	if !bill.Enabled() {
		return nil
	}
	return bill
}
