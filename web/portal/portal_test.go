package portal_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestSignupLoginAndSessionCookies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		secure     bool
		cookieName string
	}{
		{name: "plain http", secure: false, cookieName: "tg_session"},
		{name: "under TLS", secure: true, cookieName: "__Host-tg_session"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{secure: tc.secure})
			b := e.browser()
			b.get("/signup")
			p := b.post("/signup", url.Values{"company": {"Acme"}, "slug": {"acme"}, "name": {"Ada"},
				"email": {"ada@acme.example"}, "password": {"correct horse battery"}})
			want(t, p, http.StatusSeeOther, "signup")
			var set *http.Cookie
			for _, c := range p.resp.Cookies() {
				if c.Name == tc.cookieName {
					set = c
				}
			}
			if set == nil {
				t.Fatalf("no %s cookie in %v", tc.cookieName, p.resp.Header.Values("Set-Cookie"))
			}
			if !set.HttpOnly || set.SameSite != http.SameSiteLaxMode || set.Path != "/" || set.Secure != tc.secure {
				t.Errorf("cookie flags: HttpOnly=%v SameSite=%v Path=%q Secure=%v", set.HttpOnly, set.SameSite, set.Path, set.Secure)
			}
			if tc.secure {
				return // the test client does not send Secure cookies over http
			}
			dash := b.get("/dashboard")
			want(t, dash, http.StatusOK, "dashboard")
			if !strings.Contains(dash.body, "Get your first API live") {
				t.Errorf("a new tenant's dashboard lacks the getting-started checklist")
			}
			first := b.cookie(tc.cookieName).Value
			want(t, b.post("/logout", nil), http.StatusSeeOther, "logout")
			if p := b.get("/dashboard"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.loc, "/login") {
				t.Fatalf("after logout: %d %q", p.status, p.loc)
			}

			// A session id planted before login must not survive it.
			u, _ := url.Parse(e.srv.URL)
			b.c.Jar.SetCookies(u, []*http.Cookie{{Name: tc.cookieName, Value: first, Path: "/"}})
			b.get("/login")
			bad := b.post("/login", url.Values{"email": {"ada@acme.example"}, "password": {"wrong password!"}})
			want(t, bad, http.StatusUnauthorized, "wrong password")
			if !strings.Contains(bad.body, "Wrong email or password.") {
				t.Errorf("wrong password: message missing")
			}
			ok := b.post("/login", url.Values{"email": {"ADA@acme.example"}, "password": {"correct horse battery"}})
			want(t, ok, http.StatusSeeOther, "login")
			second := b.cookie(tc.cookieName).Value
			if second == first || second == "" {
				t.Fatalf("session id not rotated at login")
			}
			old := e.browser()
			old.c.Jar.SetCookies(u, []*http.Cookie{{Name: tc.cookieName, Value: first, Path: "/"}})
			if p := old.get("/dashboard"); p.status != http.StatusSeeOther {
				t.Errorf("the pre-login session id still works: %d", p.status)
			}
			want(t, b.get("/dashboard"), http.StatusOK, "dashboard after login")
		})
	}
}

func TestSignupErrorsNextToFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.signup("taken")
	for _, tc := range []struct {
		name   string
		values url.Values
		field  string
		msg    string
	}{
		{"short password", url.Values{"company": {"X"}, "slug": {"x1"}, "name": {"X"}, "email": {"x@x.example"}, "password": {"short"}}, "password", "at least 10"},
		{"bad slug", url.Values{"company": {"X"}, "slug": {"Not A Slug"}, "name": {"X"}, "email": {"x@x.example"}, "password": {"long enough pw"}}, "slug", "lowercase DNS label"},
		{"taken slug", url.Values{"company": {"X"}, "slug": {"taken"}, "name": {"X"}, "email": {"x2@x.example"}, "password": {"long enough pw"}}, "slug", "taken"},
		{"taken email", url.Values{"company": {"X"}, "slug": {"x3"}, "name": {"X"}, "email": {"owner@taken.example"}, "password": {"long enough pw"}}, "email", "already exists"},
		{"bad email", url.Values{"company": {"X"}, "slug": {"x4"}, "name": {"X"}, "email": {"nope"}, "password": {"long enough pw"}}, "email", "email address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			b.get("/signup")
			p := b.post("/signup", tc.values)
			want(t, p, http.StatusUnprocessableEntity, tc.name)
			if got := fieldErr(p.body, tc.field); !strings.Contains(got, tc.msg) {
				t.Errorf("error next to %s = %q, want it to contain %q", tc.field, got, tc.msg)
			}
		})
	}
}

func TestCSRFRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.signup("csrf")
	anon := e.browser()
	anon.get("/login")
	for _, tc := range []struct {
		name  string
		b     *browser
		path  string
		token []string // nil: no token field at all
		extra http.Header
	}{
		{name: "signed in, no token", b: b, path: "/consumers"},
		{name: "signed in, wrong token", b: b, path: "/consumers", token: []string{"forged"}},
		{name: "signed in, empty token", b: b, path: "/tokens", token: []string{""}},
		{name: "signed in, cross-site origin", b: b, path: "/consumers", token: []string{"use-page"}, extra: http.Header{"Origin": {"https://evil.example"}}},
		{name: "signed out login, no token", b: anon, path: "/login"},
		{name: "signed out signup, wrong token", b: anon, path: "/signup", token: []string{"forged"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := url.Values{"name": {"x"}, "email": {"x@y.example"}, "password": {"whatever12345"}}
			switch {
			case tc.token == nil:
				// no csrf_token field at all
			case tc.token[0] == "use-page":
				v.Set("csrf_token", tc.b.csrf)
			default:
				v.Set("csrf_token", tc.token[0])
			}
			req := httptest.NewRequest("POST", e.srv.URL+tc.path, strings.NewReader(v.Encode()))
			req.RequestURI = ""
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, vs := range tc.extra {
				req.Header[k] = vs
			}
			p := tc.b.do(req)
			want(t, p, http.StatusForbidden, tc.name)
		})
	}
	// The same form with the page's token goes through.
	b.get("/consumers")
	want(t, b.post("/consumers", url.Values{"name": {"ok"}, "email": {"ok@y.example"}}), http.StatusSeeOther, "with token")
}

func TestLoginRedirectStaysOnSite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.signup("next")
	for _, tc := range []struct{ name, next, want string }{
		{"page", "/apis", "/apis"},
		{"none", "", "/dashboard"},
		{"other site", "//evil.example/x", "/dashboard"},
		{"backslash", "/\\evil.example", "/dashboard"},
		{"absolute", "https://evil.example/", "/dashboard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			if p := b.get("/apis"); p.loc != "/login?next=%2Fapis" {
				t.Fatalf("signed-out GET /apis redirects to %q", p.loc)
			}
			b.get("/login?next=" + url.QueryEscape(tc.next))
			p := b.post("/login", url.Values{"email": {"owner@next.example"}, "password": {"correct horse battery"}, "next": {tc.next}})
			if p.status != http.StatusSeeOther || p.loc != tc.want {
				t.Errorf("login with next=%q: %d to %q, want %q", tc.next, p.status, p.loc, tc.want)
			}
		})
	}
}

func TestSecurityHeadersAndDevMail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.browser()
	p := b.get("/login")
	for h, want := range map[string]string{
		"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
	} {
		if got := p.resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if csp := p.resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	// The dev mail sink is only served when configured (dev mode).
	want(t, b.get("/dev/mail"), http.StatusNotFound, "dev mail without a sink")
	if css := b.get("/static/style.css"); css.status != http.StatusOK || !strings.Contains(css.body, ".sidebar") {
		t.Errorf("stylesheet: %d", css.status)
	}
}
