package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/billing/metering"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/health"
	"github.com/tollgate/tollgate/services/mail"
	"github.com/tollgate/tollgate/services/outbox"
	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/sso"
	"github.com/tollgate/tollgate/services/tenancy"
	usagesvc "github.com/tollgate/tollgate/services/usage"
	"github.com/tollgate/tollgate/web/portal"
)

// publicURL is TOLLGATE_PUBLIC_URL, or http://localhost:<port of the control
// address> when unset (right for a laptop, wrong behind a load balancer).
func (c config) publicURL(controlAddr string) string {
	if c.PublicURL != "" {
		return strings.TrimSuffix(c.PublicURL, "/")
	}
	_, port, err := net.SplitHostPort(controlAddr)
	if err != nil || port == "" {
		port = "8080"
	}
	return "http://localhost:" + port
}

// newPortal builds the tenant portal from the configuration. devSink, when
// not nil, receives every email (dev mode and tests) and is served at
// /dev/mail; otherwise TOLLGATE_SMTP_URL is required to deliver mail, and
// without it mail is kept in memory with a warning. bill runs the billing
// page; nil shows billing off.
func newPortal(ctx context.Context, cfg config, db *pgxpool.Pool, rdb redis.UniversalClient, keys proxycfg.Keys, log *slog.Logger, controlAddr string, devSink *mail.Sink, bill *controlBilling) (http.Handler, error) {
	mailer, devMail, err := newMailer(cfg, log, devSink)
	if err != nil {
		return nil, err
	}
	var idp *sso.Config
	if cfg.OIDCIssuer != "" {
		idp = &sso.Config{Issuer: cfg.OIDCIssuer, ClientID: cfg.OIDCClientID, ClientSecret: cfg.OIDCClientSecret}
		if field, msg := idp.Validate(); field != "" {
			return nil, fmt.Errorf("TOLLGATE_OIDC_%s %s", strings.ToUpper(strings.TrimPrefix(field, "oidc_")), msg)
		}
	}
	pub := cfg.publicURL(controlAddr)
	// Tenants see their proxy URL with the proxy's port unless it is 80.
	proxyURL := "http://{slug}." + cfg.ProxyDomain
	if _, port, err := net.SplitHostPort(cfg.ProxyAddr); err == nil && port != "" && port != "80" {
		proxyURL += ":" + port
	}
	devURL := cfg.devPortalURL(pub)
	acc := &accounts.Service{DB: db, DigestKey: cfg.digestKey()}
	ten := &tenancy.Service{DB: db, DigestKey: cfg.digestKey()}
	set := &settings.Service{DB: db, Secret: cfg.Secret, Limits: cfg.Limits}
	cat := catalog.New(db, cfg.digestKey(), cfg.AllowPrivate)
	cat.Limits = cfg.Limits
	cat.ConfigSize = publish.TenantConfigBytes
	// The same account rules as /v1 and the developer portal itself; mail
	// sent from here links to the tenant's developer portal.
	devs := &developers.Service{DB: db, Catalog: cat, Mailer: mailer, Logger: log, Secret: cfg.Secret,
		PortalURL: func(t tenancy.Tenant) string { return strings.TrimSuffix(devURL(t.Slug), "/") }}
	var live portal.Health
	if rdb != nil {
		live = &health.Reader{Redis: rdb, Keys: keys}
	}
	billPage := bill.portal()
	if billPage.Service != nil {
		billPage.Reports = metering.Reports{DB: db}
	}
	return portal.New(portal.Options{
		Accounts: acc, Sessions: acc, Team: acc, Tenants: ten, Tokens: ten, Settings: set, Domains: set,
		Audit: &audit.Service{DB: db}, Usage: usagesvc.Reader{DB: db, Redis: rdb, Keys: keys}, Developers: devs,
		Catalog: cat, Health: live, Config: &outbox.StatusReader{DB: db, Redis: rdb, Keys: keys},
		Secret: cfg.Secret, AllowPrivateUpstreams: cfg.AllowPrivate, Logger: log,
		ProxyDomain: cfg.ProxyDomain, ProxyURL: proxyURL, PublicURL: pub, Mailer: mailer,
		SecureCookies: strings.HasPrefix(pub, "https://"), DefaultOIDC: idp, DevMail: devMail,
		DevPortalURL: devURL, TrustedProxies: cfg.TrustedProxies, Billing: billPage,
	})
}

// devPortalURL returns the base URL of a tenant's developer portal: the
// portal domain with the control plane's scheme and port.
func (c config) devPortalURL(publicURL string) func(slug string) string {
	scheme, port := "http", ""
	if u, err := url.Parse(publicURL); err == nil {
		scheme, port = u.Scheme, u.Port()
	}
	return func(slug string) string {
		u := scheme + "://" + slug + "." + c.PortalDomain
		if port != "" {
			u += ":" + port
		}
		return u
	}
}

// newMailer is the control plane's mail: devSink when not nil (dev mode and
// tests; served at /dev/mail), else SMTP at TOLLGATE_SMTP_URL, else an
// in-memory sink with a warning (mail is then not delivered).
func newMailer(cfg config, log *slog.Logger, devSink *mail.Sink) (mail.Sender, http.Handler, error) {
	switch {
	case devSink != nil:
		return devSink, devSink, nil
	case cfg.SMTPURL != "":
		s, err := mail.ParseSMTPURL(cfg.SMTPURL)
		if err != nil {
			return nil, nil, fmt.Errorf("TOLLGATE_SMTP_URL: %w", err)
		}
		return s, nil, nil
	}
	log.Warn("TOLLGATE_SMTP_URL is unset: portal mail (invitations, verification, password reset) is not delivered")
	return &mail.Sink{}, nil, nil
}

// Demo portal login printed by `tollgate dev`.
const (
	devPortalEmail    = "demo@tollgate.localhost"
	devPortalPassword = "tollgate-demo"
)

// seedPortalOwner gives the demo tenant an owner who can sign in to the portal.
func seedPortalOwner(ctx context.Context, db *pgxpool.Pool, slug string) error {
	t, err := tenancy.GetBySlug(ctx, db, slug)
	if err != nil {
		return fmt.Errorf("demo tenant: %w", err)
	}
	_, err = accounts.CreateUser(ctx, db, audit.Actor{TenantID: t.ID, Name: audit.Operator},
		devPortalEmail, "Demo Owner", accounts.RoleOwner, devPortalPassword)
	return err
}
