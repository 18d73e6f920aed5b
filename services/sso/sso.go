// Package sso signs people in through OpenID Connect: the authorization code
// flow with PKCE (S256), a state bound to the browser and a nonce bound to the
// ID token, with github.com/coreos/go-oidc/v3 verifying the token. The
// platform may have a default identity provider and every tenant its own.
package sso

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/services/egress"
)

// Config identifies an OIDC client registration at an identity provider.
type Config struct {
	// Issuer is the provider's issuer URL; its discovery document is at
	// Issuer + "/.well-known/openid-configuration".
	Issuer       string
	ClientID     string
	ClientSecret string
	// Scopes are requested in addition to "openid"; if nil, "email" and "profile".
	Scopes []string
}

// Validate checks that c is complete, naming the field at fault.
func (c Config) Validate() (field, msg string) {
	u, err := url.Parse(c.Issuer)
	switch {
	case c.Issuer == "":
		return "oidc_issuer", "is required"
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return "oidc_issuer", "must be an https:// URL"
	case c.ClientID == "":
		return "oidc_client_id", "is required"
	}
	return "", ""
}

// Provider is a discovered identity provider.
type Provider struct {
	cfg      Config
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	client   *http.Client
}

// NewProvider fetches the provider's discovery document. client is used for
// discovery, key fetches and the token exchange: every URL the discovery
// document names is the provider's (a tenant's) choice, so it must be a
// guarded client (services/egress). If nil, egress's strict policy: https
// only, no private addresses, bounded answers.
func NewProvider(ctx context.Context, cfg Config, client *http.Client) (*Provider, error) {
	if field, msg := cfg.Validate(); field != "" {
		return nil, fmt.Errorf("oidc provider: %s %s", field, msg)
	}
	if client == nil {
		client = egress.New(egress.Options{})
	}
	ctx = oidc.ClientContext(ctx, client)
	p, err := oidc.NewProvider(ctx, strings.TrimSuffix(cfg.Issuer, "/"))
	if err != nil {
		return nil, fmt.Errorf("oidc discovery of %s: %w", cfg.Issuer, err)
	}
	return &Provider{
		cfg:      cfg,
		provider: p,
		// Bind the verifier's key fetches to a background context with our
		// client: the discovery ctx may end before the keys are first needed.
		verifier: p.VerifierContext(oidc.ClientContext(context.Background(), client), &oidc.Config{ClientID: cfg.ClientID}),
		client:   client,
	}, nil
}

// Issuer is the provider's issuer URL.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

func (p *Provider) oauth(redirectURL string) *oauth2.Config {
	scopes := p.cfg.Scopes
	if scopes == nil {
		scopes = []string{"email", "profile"}
	}
	return &oauth2.Config{
		ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, RedirectURL: redirectURL,
		Endpoint: p.provider.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID}, scopes...),
	}
}

// Flow is the per-login secret state the browser keeps (in a signed,
// short-lived cookie) between the redirect to the IdP and the callback.
type Flow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
}

// NewFlow makes fresh random state, nonce and PKCE verifier.
func NewFlow() Flow {
	return Flow{State: oauth2.GenerateVerifier(), Nonce: oauth2.GenerateVerifier(), Verifier: oauth2.GenerateVerifier()}
}

// AuthCodeURL is where to send the browser to sign in.
func (p *Provider) AuthCodeURL(redirectURL string, f Flow) string {
	return p.oauth(redirectURL).AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
}

// Claims are the verified facts of an ID token.
type Claims struct {
	Issuer        string
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	// HostedDomain is Google's "hd" claim: the Workspace domain of the
	// account ("" for consumer accounts and other IdPs).
	HostedDomain string
}

// Errors of a refused callback.
var (
	ErrState  = errors.New("sso: state mismatch")
	ErrNonce  = errors.New("sso: nonce mismatch")
	ErrDenied = errors.New("sso: the identity provider refused the sign-in")
)

// Finish completes a login from the callback's query: it checks the state
// against f, exchanges the code with the PKCE verifier, verifies the ID token
// (signature, issuer, audience, expiry) and its nonce.
func (p *Provider) Finish(ctx context.Context, redirectURL string, f Flow, q url.Values) (Claims, error) {
	if f.State == "" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		return Claims{}, ErrState
	}
	if e := q.Get("error"); e != "" {
		return Claims{}, fmt.Errorf("%w: %s %s", ErrDenied, e, q.Get("error_description"))
	}
	code := q.Get("code")
	if code == "" {
		return Claims{}, fmt.Errorf("%w: no code in the callback", ErrDenied)
	}
	ctx = oidc.ClientContext(ctx, p.client)
	tok, err := p.oauth(redirectURL).Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return Claims{}, fmt.Errorf("sso: code exchange: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return Claims{}, errors.New("sso: the token response has no id_token")
	}
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return Claims{}, fmt.Errorf("sso: verify id token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return Claims{}, ErrNonce
	}
	var c struct {
		Email         string `json:"email"`
		EmailVerified any    `json:"email_verified"`
		Name          string `json:"name"`
		HostedDomain  string `json:"hd"`
	}
	if err := idt.Claims(&c); err != nil {
		return Claims{}, fmt.Errorf("sso: id token claims: %w", err)
	}
	// Some IdPs send email_verified as the string "true".
	verified := c.EmailVerified == true || c.EmailVerified == "true"
	return Claims{Issuer: idt.Issuer, Subject: idt.Subject, Email: c.Email, EmailVerified: verified, Name: c.Name,
		HostedDomain: c.HostedDomain}, nil
}

// Cache keeps discovered providers per configuration, so that a tenant's IdP
// is discovered once per TTL and not at every login.
type Cache struct {
	// TTL bounds how long a discovery is reused. If zero, 1h.
	TTL time.Duration
	// Client is passed to NewProvider. If nil, one client with egress's
	// strict policy (https only, no private addresses) shared by the
	// cache's providers.
	Client *http.Client

	mu     sync.Mutex
	m      map[string]cached
	strict *http.Client
}

type cached struct {
	p  *Provider
	at time.Time
}

// Get returns the provider of cfg, discovering it when not cached.
func (c *Cache) Get(ctx context.Context, cfg Config) (*Provider, error) {
	ttl := c.TTL
	if ttl == 0 {
		ttl = time.Hour
	}
	key := cfg.Issuer + "\x00" + cfg.ClientID + "\x00" + cfg.ClientSecret + "\x00" + strings.Join(cfg.Scopes, " ")
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && time.Since(e.at) < ttl {
		return e.p, nil
	}
	p, err := NewProvider(ctx, cfg, c.client())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cached{}
	}
	// Forget expired discoveries (tenants change or drop their IdP), so the
	// map holds at most one TTL's worth of configurations.
	for k, old := range c.m {
		if time.Since(old.at) >= ttl {
			delete(c.m, k)
		}
	}
	c.m[key] = cached{p: p, at: time.Now()}
	c.mu.Unlock()
	return p, nil
}

func (c *Cache) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.strict == nil {
		c.strict = egress.New(egress.Options{})
	}
	return c.strict
}
