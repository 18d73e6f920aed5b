package devportal_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/tollgate/tollgate/services/settings"
)

// TestPageOIDC: a tenant with a developer identity provider offers it on
// the sign-up and sign-in pages; the flow signs a new developer in with a
// confirmed address; a tampered state is refused; a portal without an IdP
// offers none.
func TestPageOIDC(t *testing.T) {
	t.Parallel()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatalf("mockoidc: %v", err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	cfg := m.Config()
	if err := settings.SaveDeveloperOIDC(context.Background(), e.db, testSecret, f.Actor,
		settings.OIDC{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, AllowHTTP: true}); err != nil {
		t.Fatal(err)
	}
	c := e.client("acme")
	c.page("GET", "/signup", nil).must(t, 200).contains(t, `id="oidc-form"`, `id="oidc-button"`)
	c.page("GET", "/login", nil).must(t, 200).contains(t, `id="oidc-button"`)

	// authorize follows the IdP's redirect back and returns the callback path.
	idp := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	start := func() *url.URL {
		t.Helper()
		loc := c.submit("/login", "/sso/start", nil).redirectsTo(t, cfg.Issuer)
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Query().Get("redirect_uri"); got != "http://"+host("acme")+":"+e.port()+"/sso/callback" {
			t.Errorf("redirect_uri %q", got)
		}
		return u
	}
	authorize := func(u *url.URL) *url.URL {
		t.Helper()
		resp, err := idp.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		back, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || back.Query().Get("code") == "" {
			t.Fatalf("the IdP did not redirect back with a code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return back
	}

	m.QueueUser(&mockoidc.MockUser{Subject: "sub-1", Email: "sso.dev@example.com", EmailVerified: true})
	back := authorize(start())
	q := back.Query()
	q.Set("state", "tampered")
	c.page("GET", "/sso/callback?"+q.Encode(), nil).must(t, 400).contains(t, "did not match this sign-in attempt")

	m.QueueUser(&mockoidc.MockUser{Subject: "sub-1", Email: "sso.dev@example.com", EmailVerified: true})
	back = authorize(start())
	c.page("GET", back.RequestURI(), nil).redirectsTo(t, "/apps")
	c.page("GET", "/apps", nil).must(t, 200).contains(t, "Welcome,", "sso.dev@example.com").lacks(t, `id="verify-banner"`)
	// The callback works once: replaying it finds no flow.
	c.page("GET", back.RequestURI(), nil).must(t, 400)

	// globex has no IdP.
	g := e.client("globex")
	g.page("GET", "/login", nil).must(t, 200).lacks(t, `id="oidc-button"`)
	r := g.submit("/login", "/sso/start", nil).must(t, 503)
	if !strings.Contains(r.body, "not available") {
		t.Errorf("sso start without an IdP: %s", pageSnippet(r.body))
	}
}
