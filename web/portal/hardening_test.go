package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/clientip"
)

// TestLoginNextStaysOnSite: the page after sign-in is a path of this site;
// every known way of smuggling another site through "next" lands on the
// dashboard.
func TestLoginNextStaysOnSite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.signup("next")
	for _, tc := range []struct {
		name, next, want string
	}{
		{"empty", "", "/dashboard"},
		{"path", "/apis", "/apis"},
		{"path with query", "/consumers?after=x&y=%2F", "/consumers?after=x&y=%2F"},
		{"tab between slashes", "/\t/evil.com", "/dashboard"},
		{"newline between slashes", "/\n/evil.com", "/dashboard"},
		{"carriage return", "/\r/evil.com", "/dashboard"},
		{"space", "/ /evil.com", "/dashboard"},
		{"protocol-relative", "//evil.com", "/dashboard"},
		{"backslash", "/\\evil.com", "/dashboard"},
		{"backslashes", "\\\\evil.com", "/dashboard"},
		{"absolute", "https://evil.com/", "/dashboard"},
		{"scheme without slashes", "https:evil.com", "/dashboard"},
		{"javascript", "javascript:alert(1)", "/dashboard"},
		{"encoded slash", "/%2F/evil.com", "/dashboard"},
		{"encoded backslash", "/%5Cevil.com", "/dashboard"},
		{"encoded tab", "/%09/evil.com", "/dashboard"},
		{"double-encoded slash", "/%252F/evil.com", "/dashboard"},
		{"dot segment", "/.//evil.com", "/dashboard"},
		{"dot-dot segment", "/x/..//evil.com", "/dashboard"},
		{"no leading slash", "evil.com", "/dashboard"},
		{"null byte", "/\x00/evil.com", "/dashboard"},
		{"non-breaking space", "/\u00a0/evil.com", "/dashboard"},
		{"userinfo trick", "/@evil.com", "/@evil.com"}, // a path on this site
		{"bad escape", "/%zz", "/dashboard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			b.get("/login?next=" + url.QueryEscape(tc.next))
			p := b.post("/login", url.Values{"email": {"owner@next.example"}, "password": {"correct horse battery"}, "next": {tc.next}})
			want(t, p, http.StatusSeeOther, "login")
			if p.loc != tc.want {
				t.Errorf("redirect to %q, want %q", p.loc, tc.want)
			}
		})
	}
}

// TestSignupVerification: a new owner gets a single-use confirmation link;
// until it is used every page shows a banner that can send a new one.
func TestSignupVerification(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.signup("confirm")
	d := b.get("/dashboard")
	if !strings.Contains(d.body, `id="verify-banner"`) {
		t.Fatalf("no banner for an unverified owner")
	}
	first := lastLink(t, e.sink, "owner@confirm.example", "/verify")
	want(t, b.post("/verify/resend", nil), http.StatusSeeOther, "resend")
	second := lastLink(t, e.sink, "owner@confirm.example", "/verify")
	if first == second {
		t.Fatalf("the resent link is the same")
	}
	p := b.get(second)
	want(t, p, http.StatusSeeOther, "verify")
	if p.loc != "/dashboard" {
		t.Errorf("verified owner sent to %q", p.loc)
	}
	if d := b.get("/dashboard"); strings.Contains(d.body, `id="verify-banner"`) || !strings.Contains(d.body, "is confirmed") {
		t.Errorf("banner still shown, or no confirmation")
	}
	want(t, b.get(second), http.StatusNotFound, "reused link")
	// A link opened in another browser signs nobody in.
	other := e.browser()
	want(t, other.get(first), http.StatusSeeOther, "older link still valid once")
	if other.cookie("tg_session") != nil {
		t.Errorf("the link signed a browser in")
	}
}

// TestPreAccountTakeover: someone signs up with another person's address
// and never confirms it; when that person signs in through single sign-on,
// the account is theirs and the squatter's session and password are gone.
func TestPreAccountTakeover(t *testing.T) {
	t.Parallel()
	e, m := oidcEnv(t)
	squatter := e.signup("squat") // owner@squat.example, not confirmed
	want(t, squatter.get("/dashboard"), http.StatusOK, "squatter signed in")

	victim := e.browser()
	m.QueueUser(&mockoidc.MockUser{Subject: "victim-1", Email: "owner@squat.example", EmailVerified: true})
	want(t, victim.get(authorize(t, victim, startSSO(t, victim))), http.StatusSeeOther, "victim's sso")
	if d := victim.get("/dashboard"); d.status != http.StatusOK || strings.Contains(d.body, `id="verify-banner"`) {
		t.Errorf("victim's dashboard: %d, banner shown: %v", d.status, strings.Contains(d.body, `id="verify-banner"`))
	}
	if p := squatter.get("/dashboard"); p.status != http.StatusSeeOther {
		t.Errorf("the squatter's session survived: %d", p.status)
	}
	anon := e.browser()
	anon.get("/login")
	want(t, anon.post("/login", url.Values{"email": {"owner@squat.example"}, "password": {"correct horse battery"}}),
		http.StatusUnauthorized, "squatter's password")
}

// TestLoginThrottleBehindProxy: behind a trusted proxy each client has its
// own bucket (one guesser does not lock out its neighbours), and
// X-Forwarded-For from anyone else is ignored.
func TestLoginThrottleBehindProxy(t *testing.T) {
	t.Parallel()
	trusted, err := clientip.Parse("127.0.0.1/32, ::1")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{trusted: trusted})
	e.signup("proxied")
	login := func(b *browser, xff, pw string) page {
		t.Helper()
		v := url.Values{"email": {"owner@proxied.example"}, "password": {pw}, "csrf_token": {b.csrf}}
		req, _ := http.NewRequestWithContext(context.Background(), "POST", e.srv.URL+"/login", strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", xff)
		return b.do(req)
	}
	guesser := e.browser()
	guesser.get("/login")
	for i := 0; i < accounts.RuleLoginAccountClient.Max; i++ {
		want(t, login(guesser, "203.0.113.1", "wrong guess"), http.StatusUnauthorized, "guess")
	}
	want(t, login(guesser, "203.0.113.1", "correct horse battery"), http.StatusTooManyRequests, "guesser throttled")
	// A spoofed left-most entry does not change the client the proxy saw.
	want(t, login(guesser, "198.51.100.50, 203.0.113.1", "correct horse battery"), http.StatusTooManyRequests, "spoofed entry")
	neighbour := e.browser()
	neighbour.get("/login")
	want(t, login(neighbour, "203.0.113.2", "correct horse battery"), http.StatusSeeOther, "neighbour signs in")

	// Without trusted proxies the header means nothing: every request is
	// the same client.
	plain := newEnv(t, envOpts{})
	plain.signup("direct")
	g := plain.browser()
	g.get("/login")
	for i := 0; i <= accounts.RuleLoginAccountClient.Max; i++ {
		v := url.Values{"email": {"owner@direct.example"}, "password": {"wrong guess"}, "csrf_token": {g.csrf}}
		req, _ := http.NewRequestWithContext(context.Background(), "POST", plain.srv.URL+"/login", strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", "203.0.113."+string(rune('1'+i)))
		p := g.do(req)
		if i == accounts.RuleLoginAccountClient.Max && p.status != http.StatusTooManyRequests {
			t.Errorf("rotating X-Forwarded-For escaped the throttle: %d", p.status)
		}
	}
}

// TestSignupThrottled: sign-ups from one client are limited.
func TestSignupThrottled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.browser()
	b.get("/signup")
	var last page
	for i := 0; i <= accounts.RuleSignupClient.Max; i++ {
		slug := "many-" + string(rune('a'+i))
		last = b.post("/signup", url.Values{"company": {"Co"}, "slug": {slug}, "name": {"O"},
			"email": {"o@" + slug + ".example"}, "password": {"correct horse battery"}})
		b.get("/signup")
	}
	want(t, last, http.StatusTooManyRequests, "signup over the limit")
	if last.resp.Header.Get("Retry-After") == "" || !strings.Contains(last.body, "Too many attempts") {
		t.Errorf("throttled signup lacks Retry-After or message")
	}
}
