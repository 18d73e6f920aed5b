package portal_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/sso"
)

func TestPasswordResetByEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("reset")
	email := "owner@reset.example"

	anon := e.browser()
	anon.get("/forgot")
	mails := len(e.sink.Messages()) // the signup's confirmation link
	p := anon.post("/forgot", url.Values{"email": {"nobody@reset.example"}})
	want(t, p, http.StatusOK, "forgot unknown")
	if len(e.sink.Messages()) != mails {
		t.Fatalf("mail sent for an unknown address")
	}
	known := anon.post("/forgot", url.Values{"email": {email}})
	want(t, known, http.StatusOK, "forgot known")
	if known.body != strings.Replace(p.body, "nobody@reset.example", email, 1) {
		t.Errorf("the answer tells known and unknown addresses apart")
	}
	link := lastLink(t, e.sink, email, "/reset")
	want(t, anon.get(link), http.StatusOK, "reset page")
	tok, _ := url.ParseQuery(strings.SplitN(link, "?", 2)[1])
	short := anon.post("/reset", url.Values{"token": {tok.Get("token")}, "password": {"short"}})
	want(t, short, http.StatusUnprocessableEntity, "short password")
	if fieldErr(short.body, "password") == "" {
		t.Errorf("no error next to the password field")
	}
	want(t, anon.post("/reset", url.Values{"token": {tok.Get("token")}, "password": {"a brand new password"}}), http.StatusSeeOther, "reset")
	// The link is single-use, and the reset ended the owner's open session.
	want(t, anon.post("/reset", url.Values{"token": {tok.Get("token")}, "password": {"another new password"}}), http.StatusNotFound, "reuse")
	if p := owner.get("/dashboard"); p.status != http.StatusSeeOther {
		t.Errorf("old session survived the password reset: %d", p.status)
	}
	anon.get("/login")
	want(t, anon.post("/login", url.Values{"email": {email}, "password": {"correct horse battery"}}), http.StatusUnauthorized, "old password")
	want(t, anon.post("/login", url.Values{"email": {email}, "password": {"a brand new password"}}), http.StatusSeeOther, "new password")
}

func TestLoginThrottled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.signup("throttle")
	b := e.browser()
	b.get("/login")
	for i := 0; i < accounts.RuleLoginAccountClient.Max; i++ {
		want(t, b.post("/login", url.Values{"email": {"owner@throttle.example"}, "password": {"guess number " + string(rune('a'+i))}}),
			http.StatusUnauthorized, "guess")
	}
	p := b.post("/login", url.Values{"email": {"owner@throttle.example"}, "password": {"correct horse battery"}})
	want(t, p, http.StatusTooManyRequests, "throttled login")
	if p.resp.Header.Get("Retry-After") == "" || !strings.Contains(p.body, "too many failed sign-in attempts") {
		t.Errorf("throttled answer lacks Retry-After or message")
	}
	// Other accounts are not locked by it.
	other := e.signup("throttle2")
	want(t, other.get("/dashboard"), http.StatusOK, "other account")
}

// oidcEnv is a portal whose platform IdP is a mockoidc server.
func oidcEnv(t *testing.T) (*env, *mockoidc.MockOIDC) {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatalf("mockoidc: %v", err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	cfg := m.Config()
	return newEnv(t, envOpts{idp: &sso.Config{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret}}), m
}

// startSSO posts the SSO button and returns the IdP authorization URL.
func startSSO(t *testing.T, b *browser) *url.URL {
	t.Helper()
	b.get("/login")
	p := b.post("/sso/start", nil)
	want(t, p, http.StatusSeeOther, "sso start")
	u, err := url.Parse(p.loc)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("state") == "" || q.Get("nonce") == "" || q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" {
		t.Fatalf("authorization URL lacks state, nonce or PKCE: %s", u)
	}
	return u
}

// authorize lets the IdP answer and returns the callback path with its query.
func authorize(t *testing.T, b *browser, auth *url.URL) string {
	t.Helper()
	resp, err := b.c.Get(auth.String())
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("IdP did not redirect back with a code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.RequestURI()
}

func TestOIDCLogin(t *testing.T) {
	t.Parallel()
	e, m := oidcEnv(t)
	e.signup("ssoco")
	user := &mockoidc.MockUser{Subject: "sub-1", Email: "owner@ssoco.example", EmailVerified: true}

	t.Run("wrong state", func(t *testing.T) {
		b := e.browser()
		m.QueueUser(user)
		cb := authorize(t, b, startSSO(t, b))
		u, _ := url.Parse(cb)
		q := u.Query()
		q.Set("state", "not-the-state")
		u.RawQuery = q.Encode()
		p := b.get(u.RequestURI())
		want(t, p, http.StatusBadRequest, "wrong state")
		if b.cookie("tg_session") != nil {
			t.Errorf("session set despite wrong state")
		}
	})

	t.Run("wrong nonce", func(t *testing.T) {
		b := e.browser()
		m.QueueUser(user)
		auth := startSSO(t, b)
		// The IdP is asked for another nonce than the one the browser's flow
		// cookie holds, as if an ID token of another login were replayed.
		q := auth.Query()
		q.Set("nonce", "a-different-nonce")
		auth.RawQuery = q.Encode()
		p := b.get(authorize(t, b, auth))
		want(t, p, http.StatusBadRequest, "wrong nonce")
		if b.cookie("tg_session") != nil {
			t.Errorf("session set despite wrong nonce")
		}
	})

	t.Run("tampered flow cookie", func(t *testing.T) {
		b := e.browser()
		m.QueueUser(user)
		cb := authorize(t, b, startSSO(t, b))
		c := b.cookie("tg_sso")
		v, sig, _ := strings.Cut(c.Value, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(v)
		var st map[string]any
		_ = json.Unmarshal(raw, &st)
		st["t"] = "00000000-0000-0000-0000-000000000000"
		raw, _ = json.Marshal(st)
		srv, _ := url.Parse(e.srv.URL)
		b.c.Jar.SetCookies(srv, []*http.Cookie{{Name: "tg_sso", Value: base64.RawURLEncoding.EncodeToString(raw) + "." + sig, Path: "/"}})
		want(t, b.get(cb), http.StatusBadRequest, "tampered cookie")
	})

	t.Run("no account", func(t *testing.T) {
		b := e.browser()
		m.QueueUser(&mockoidc.MockUser{Subject: "sub-2", Email: "stranger@else.example", EmailVerified: true})
		p := b.get(authorize(t, b, startSSO(t, b)))
		want(t, p, http.StatusBadRequest, "unknown user")
		if !strings.Contains(p.body, "invite") {
			t.Errorf("no hint to ask for an invitation")
		}
	})

	t.Run("success", func(t *testing.T) {
		b := e.browser()
		m.QueueUser(user)
		p := b.get(authorize(t, b, startSSO(t, b)))
		want(t, p, http.StatusSeeOther, "sso callback")
		d := b.get("/dashboard")
		want(t, d, http.StatusOK, "dashboard after sso")
		if !strings.Contains(d.body, "owner@ssoco.example") {
			t.Errorf("signed in as someone else")
		}
		// The callback cannot be replayed: the flow cookie is gone.
		want(t, b.get(p.resp.Request.URL.RequestURI()), http.StatusBadRequest, "replay")
	})
}

// TestTenantOIDCAdmission: a workspace's own IdP admits nobody by default;
// invited people join with their role; once the owner allows a domain,
// verified addresses there join as viewers, and others are still refused.
func TestTenantOIDCAdmission(t *testing.T) {
	t.Parallel()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatalf("mockoidc: %v", err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	e := newEnv(t, envOpts{})
	owner := e.signup("corp")
	cfg := m.Config()
	owner.get("/settings")
	bad := owner.post("/settings/sso", url.Values{"oidc_issuer": {"not a url"}, "oidc_client_id": {""}})
	want(t, bad, http.StatusUnprocessableEntity, "bad sso settings")
	if fieldErr(bad.body, "oidc_issuer") == "" || fieldErr(bad.body, "oidc_client_id") == "" {
		t.Errorf("sso errors not next to their fields")
	}
	sso := url.Values{"oidc_issuer": {cfg.Issuer}, "oidc_client_id": {cfg.ClientID}, "oidc_client_secret": {cfg.ClientSecret}}
	want(t, owner.post("/settings/sso", sso), http.StatusSeeOther, "save sso")
	if strings.Contains(owner.get("/settings").body, cfg.ClientSecret) {
		t.Errorf("the client secret is shown back")
	}

	// signIn runs the tenant SSO flow for a person and returns the callback's answer.
	signIn := func(sub, email string) (*browser, page) {
		t.Helper()
		b := e.browser()
		b.get("/login")
		m.QueueUser(&mockoidc.MockUser{Subject: sub, Email: email, EmailVerified: true})
		p := b.post("/sso/start", url.Values{"workspace": {"corp"}})
		want(t, p, http.StatusSeeOther, "tenant sso start")
		auth, _ := url.Parse(p.loc)
		return b, b.get(authorize(t, b, auth))
	}
	_, p := signIn("emp-1", "employee@corp.example")
	want(t, p, http.StatusBadRequest, "no allowed domains: refused")
	if !strings.Contains(p.body, "invite") {
		t.Errorf("no hint to ask for an invitation")
	}

	owner.get("/team")
	want(t, owner.post("/team/invites", url.Values{"email": {"contractor@partner.example"}, "role": {"admin"}}),
		http.StatusSeeOther, "invite")
	b, p := signIn("ctr-1", "contractor@partner.example")
	want(t, p, http.StatusSeeOther, "invited person admitted")
	if d := b.get("/team"); !strings.Contains(d.body, "contractor@partner.example") || !strings.Contains(d.body, "role-admin") {
		t.Errorf("invited person missing or not an admin")
	}

	owner.get("/settings")
	sso.Set("sso_allowed_domains", "not a domain!")
	badDomains := owner.post("/settings/sso", sso)
	want(t, badDomains, http.StatusUnprocessableEntity, "bad domains")
	if fieldErr(badDomains.body, "sso_allowed_domains") == "" {
		t.Errorf("domain error not next to its field")
	}
	sso.Set("sso_allowed_domains", "corp.example, corp.example.org")
	want(t, owner.post("/settings/sso", sso), http.StatusSeeOther, "save allowed domains")
	if !strings.Contains(owner.get("/settings").body, "corp.example, corp.example.org") {
		t.Errorf("allowed domains not shown back")
	}
	b, p = signIn("emp-1", "employee@corp.example")
	want(t, p, http.StatusSeeOther, "allowed domain admitted")
	if d := b.get("/team"); !strings.Contains(d.body, "employee@corp.example") || !strings.Contains(d.body, "role-viewer") {
		t.Errorf("provisioned user missing or not a viewer")
	}
	_, p = signIn("out-1", "someone@elsewhere.example")
	want(t, p, http.StatusBadRequest, "outsider refused")

	unknown := e.browser()
	unknown.get("/login")
	want(t, unknown.post("/sso/start", url.Values{"workspace": {"no-such-workspace"}}), http.StatusBadRequest, "unknown workspace")
}
