package sso_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/tollgate/tollgate/services/egress"
	"github.com/tollgate/tollgate/services/sso"
)

func TestFinish(t *testing.T) {
	t.Parallel()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	cfg := m.Config()
	ctx := context.Background()
	// mockoidc listens on loopback over http: dev mode's client.
	cache := &sso.Cache{Client: egress.New(egress.Options{AllowPrivate: true, AllowHTTP: true})}
	p, err := cache.Get(ctx, sso.Config{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := cache.Get(ctx, sso.Config{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret}); again != p {
		t.Errorf("cache discovered the provider twice")
	}
	const redirect = "http://portal.example/sso/callback"
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// login runs the IdP side of a flow and returns the callback query.
	login := func(f sso.Flow, tamper func(url.Values)) url.Values {
		t.Helper()
		m.QueueUser(&mockoidc.MockUser{Subject: "u1", Email: "ada@example.com", EmailVerified: true})
		u, _ := url.Parse(p.AuthCodeURL(redirect, f))
		q := u.Query()
		if tamper != nil {
			tamper(q)
		}
		u.RawQuery = q.Encode()
		resp, err := noRedirect.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return loc.Query()
	}
	for _, tc := range []struct {
		name    string
		tamper  func(url.Values)
		cb      func(url.Values)
		flow    func(sso.Flow) sso.Flow
		wantErr error
	}{
		{name: "ok"},
		{name: "wrong state", cb: func(q url.Values) { q.Set("state", "x") }, wantErr: sso.ErrState},
		{name: "no state in the flow", flow: func(f sso.Flow) sso.Flow { f.State = ""; return f }, wantErr: sso.ErrState},
		{name: "wrong nonce", tamper: func(q url.Values) { q.Set("nonce", "other") }, wantErr: sso.ErrNonce},
		{name: "idp error", cb: func(q url.Values) { q.Del("code"); q.Set("error", "access_denied") }, wantErr: sso.ErrDenied},
		{name: "wrong PKCE verifier", flow: func(f sso.Flow) sso.Flow { f.Verifier = sso.NewFlow().Verifier; return f }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := sso.NewFlow()
			q := login(f, tc.tamper)
			if tc.cb != nil {
				tc.cb(q)
			}
			if tc.flow != nil {
				f = tc.flow(f)
			}
			c, err := p.Finish(ctx, redirect, f, q)
			switch {
			case tc.name == "wrong PKCE verifier":
				if err == nil {
					t.Errorf("code redeemed with the wrong verifier")
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("err = %v, want %v", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case c.Subject != "u1" || c.Email != "ada@example.com" || !c.EmailVerified || c.Issuer != cfg.Issuer:
				t.Errorf("claims %+v", c)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, field string
		c           sso.Config
	}{
		{"ok", "", sso.Config{Issuer: "https://idp.example", ClientID: "c"}},
		{"no issuer", "oidc_issuer", sso.Config{ClientID: "c"}},
		{"not a url", "oidc_issuer", sso.Config{Issuer: "idp", ClientID: "c"}},
		{"no client", "oidc_client_id", sso.Config{Issuer: "https://idp.example"}},
	} {
		if f, _ := tc.c.Validate(); f != tc.field {
			t.Errorf("%s: field %q, want %q", tc.name, f, tc.field)
		}
	}
}
