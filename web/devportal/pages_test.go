package devportal_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/settings"
)

// TestPageJourney walks a developer through the pages as a browser without
// JavaScript would: sign-up form, the mailed link (GET shows a button and
// consumes nothing, POST confirms), sign-in, an app, a free subscription
// whose key is shown once, a rotation with a one-hour overlap and a revoke.
func TestPageJourney(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	c := e.client("acme")

	// Sign-up: the form's fields, then "check your inbox".
	c.page("GET", "/signup", nil).must(t, 200).contains(t, `id="signup-form"`, `id="f-name"`, `id="f-email"`,
		`id="f-password"`, `id="signup-button"`)
	c.submit("/signup", "/signup", url.Values{"name": {"Ada Dev"}, "email": {"ada@example.com"},
		"password": {"correct horse battery"}}).redirectsTo(t, "/signup/sent")
	c.page("GET", "/signup/sent", nil).must(t, 200).contains(t, "Check your inbox")
	tok := e.mailedToken("ada@example.com", "Confirm")

	// The link's GET shows a button and does not consume the token, however
	// often it is fetched (mail scanners prefetch links).
	for range 2 {
		c.page("GET", "/verify?token="+tok, nil).must(t, 200).contains(t, `id="verify-form"`, `id="verify-button"`,
			`name="token" value="`+tok+`"`)
	}
	if _, err := e.devs.Login(context.Background(), f.Tenant, "ada@example.com", "correct horse battery", "192.0.2.9"); err != nil {
		t.Fatal(err)
	}
	c.submit("/verify?token="+tok, "/verify", url.Values{"token": {tok}}).redirectsTo(t, "/login")
	c.page("GET", "/login", nil).must(t, 200).contains(t, "Your email address is confirmed.")
	// Used once: the second POST is refused with the reason.
	c.submit("/verify?token="+tok, "/verify", url.Values{"token": {tok}}).must(t, 400).contains(t, "already used or expired")

	// Sign-in goes to the apps, whose empty state says what to do.
	c.submit("/login", "/login", url.Values{"email": {"ada@example.com"}, "password": {"correct horse battery"}}).redirectsTo(t, "/apps")
	c.page("GET", "/apps", nil).must(t, 200).contains(t, `id="apps-empty"`, "No apps yet — create one to get a key",
		`id="app-form"`, `Welcome back, Ada Dev.`).lacks(t, `id="verify-banner"`)

	appID := c.pageNewApp("Billing service")
	app := c.page("GET", "/apps/"+appID, nil).must(t, 200).contains(t, "Billing service", `id="subscribe-form"`,
		`id="plan-`+f.FreePlan.ID+`"`, `id="plan-`+f.ApprovalPlan.ID+`"`, `id="plan-`+f.PricedPlan.ID+`"`, `id="subs-empty"`)
	app.lacks(t, f.PrivatePlan.ID)

	// Free plan: the key is in the POST's own answer, once.
	shown := c.pageSubscribe(appID, f.FreePlan.ID).must(t, 200)
	shown.contains(t, `id="new-key"`, `id="copy-key"`, `id="key-warning"`, "only time it is shown", "Try Pets with this key")
	if cc := shown.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("key page Cache-Control %q", cc)
	}
	key := shown.find(t, pageKeyRE)
	for _, sc := range shown.Header.Values("Set-Cookie") {
		if strings.Contains(sc, key) || strings.Contains(sc, url.QueryEscape(key)) {
			t.Errorf("the key is in a cookie: %s", sc)
		}
	}
	keys := pageKeys(t, e, "acme", appID)
	if len(keys) != 1 || !strings.HasPrefix(key, keys[0].Prefix) {
		t.Fatalf("keys after subscribing: %+v (shown %q)", keys, key)
	}
	first := keys[0]
	// The app page lists it by prefix and never shows it again.
	c.page("GET", "/apps/"+appID, nil).must(t, 200).contains(t, `id="key-`+first.ID+`"`, first.Prefix+"…",
		`data-status="active"`, `class="rotate-form" id="rotate-`+first.ID+`"`).lacks(t, key)

	// Rotate with a one-hour overlap: a new key shown once, the old one
	// listed with its expiry.
	before := time.Now()
	rot := c.submit("/apps/"+appID, "/apps/"+appID+"/keys/"+first.ID+"/rotate", url.Values{"overlap": {"3600"}}).must(t, 200)
	newKey := rot.find(t, pageKeyRE)
	if newKey == key {
		t.Fatal("rotation showed the old key")
	}
	rot.contains(t, `id="old-key-note"`, first.Prefix+"…", "keeps working until")
	keys = pageKeys(t, e, "acme", appID)
	var old, second catalog.Key
	for _, k := range keys {
		if k.ID == first.ID {
			old = k
		} else {
			second = k
		}
	}
	if old.ExpiresAt == nil || old.ExpiresAt.Sub(before) < 59*time.Minute || old.ExpiresAt.Sub(before) > 61*time.Minute {
		t.Fatalf("old key after rotation: %+v", old)
	}
	c.page("GET", "/apps/"+appID, nil).must(t, 200).contains(t, `id="key-`+first.ID+`"`, `data-status="expiring"`,
		old.ExpiresAt.UTC().Format("2 Jan 2006 15:04 UTC"), `id="key-`+second.ID+`"`)

	// A custom overlap over 30 days is refused next to its field.
	c.submit("/apps/"+appID, "/apps/"+appID+"/keys/"+second.ID+"/rotate",
		url.Values{"overlap": {"custom"}, "custom_hours": {"721"}}).must(t, 422).contains(t, "Enter whole hours from 0 to 720")

	// Revoke the new key.
	c.submit("/apps/"+appID, "/apps/"+appID+"/keys/"+second.ID+"/revoke", nil).redirectsTo(t, "/apps/"+appID)
	c.page("GET", "/apps/"+appID, nil).must(t, 200).contains(t, "revoked: calls with it are refused",
		`id="key-`+second.ID+`" data-prefix="`+second.Prefix+`" data-status="revoked"`)
	if k, err := e.cat.GetKey(context.Background(), f.Tenant.ID, second.ID); err != nil || k.Status != "revoked" {
		t.Errorf("revoked key: %+v %v", k, err)
	}

	// Sign out ends the session.
	c.submit("/apps", "/logout", nil).redirectsTo(t, "/")
	c.page("GET", "/apps", nil).redirectsTo(t, "/login?next=%2Fapps")
}

// pageKeys lists an app's keys through the service.
func pageKeys(t *testing.T, e *env, slug, appID string) []catalog.Key {
	t.Helper()
	f := e.tenants[slug]
	var out []catalog.Key
	keys, _, err := e.cat.ListKeys(context.Background(), f.Tenant.ID, "", storePage())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.AppID != nil && *k.AppID == appID {
			out = append(out, k)
		}
	}
	return out
}

// TestPageSubscriptionStates: an approval plan waits, a priced plan needs
// payment (the platform runs without billing), each with its message and badge; a
// subscription is canceled and the app deleted.
func TestPageSubscriptionStates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	c, _ := e.pageSignedIn("acme", "states@example.com", true)
	appID := c.pageNewApp("States")

	c.pageSubscribe(appID, f.ApprovalPlan.ID).redirectsTo(t, "/apps/"+appID)
	c.page("GET", "/apps/"+appID, nil).must(t, 200).contains(t, "waiting for approval", `data-status="pending"`,
		"pending approval")
	c.pageSubscribe(appID, f.PricedPlan.ID).redirectsTo(t, "/apps/"+appID)
	page := c.page("GET", "/apps/"+appID, nil).must(t, 200).contains(t, "payment required", "Payments are not enabled on this platform",
		`data-status="payment_required"`)
	// No plan chosen, and a plan already taken, are errors next to the field.
	c.submit("/apps/"+appID, "/apps/"+appID+"/subscriptions", url.Values{}).must(t, 422).contains(t, "Choose a plan.")
	c.pageSubscribe(appID, f.ApprovalPlan.ID).must(t, 409).contains(t, "already subscribed")
	// A private plan is not offered and not accepted.
	c.pageSubscribe(appID, f.PrivatePlan.ID).must(t, 422).contains(t, "No such plan")

	subID := page.find(t, `<article class="card sub" id="sub-([0-9a-f-]+)" data-plan="Partner"`)
	c.submit("/apps/"+appID, "/apps/"+appID+"/subscriptions/"+subID+"/cancel", nil).redirectsTo(t, "/apps/"+appID)
	c.page("GET", "/apps/"+appID, nil).must(t, 200).contains(t, "The Partner subscription is canceled", `id="past-subscriptions"`)

	c.submit("/apps/"+appID, "/apps/"+appID+"/delete", nil).redirectsTo(t, "/apps")
	c.page("GET", "/apps", nil).must(t, 200).contains(t, "deleted", `id="apps-empty"`)
	c.page("GET", "/apps/"+appID, nil).must(t, 404)
}

// TestPageUnverified: an unverified developer browses, sees the banner and
// resends the link, and cannot subscribe.
func TestPageUnverified(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	c, _ := e.pageSignedIn("acme", "late@example.com", false)
	before := len(e.sink.Messages())
	c.page("GET", "/apis", nil).must(t, 200).contains(t, `id="verify-banner"`, `id="resend-form"`, "late@example.com")
	c.submit("/apis", "/verify/resend", url.Values{"next": {"/apis"}}).redirectsTo(t, "/apis")
	c.page("GET", "/apis", nil).must(t, 200).contains(t, "We sent a new confirmation link")
	if len(e.sink.Messages()) != before+1 {
		t.Errorf("resend sent %d mails", len(e.sink.Messages())-before)
	}
	appID := c.pageNewApp("Early")
	c.page("GET", "/apps/"+appID, nil).must(t, 200).contains(t, `id="subscribe-blocked"`, "Confirm your email address first")
	c.pageSubscribe(appID, f.FreePlan.ID).must(t, 403).contains(t, "Confirm your email address first")
	if keys := pageKeys(t, e, "acme", appID); len(keys) != 0 {
		t.Errorf("an unverified developer got keys: %+v", keys)
	}
	// The API page explains why try-it is off.
	c.page("GET", "/apis/pets", nil).must(t, 200).contains(t, "Confirm your email address to get a key").lacks(t, `data-relay=`)
}

// TestPageCSRF: a form without the token, or with a wrong one, answers
// 403 and changes nothing, signed in or out.
func TestPageCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	c, dev := e.pageSignedIn("acme", "csrf@example.com", true)
	appID := c.pageNewApp("Guarded")
	count := func() int {
		apps, _, err := e.cat.ListApps(context.Background(), f.Tenant.ID, dev.ConsumerID, storePage())
		if err != nil {
			t.Fatal(err)
		}
		return len(apps)
	}
	for _, tc := range []struct {
		name  string
		token string
	}{{"missing", ""}, {"wrong", "not-the-token"}} {
		form := url.Values{"name": {"Sneaky"}}
		if tc.token != "" {
			form.Set("csrf_token", tc.token)
		}
		c.page("POST", "/apps", form).must(t, 403).contains(t, "This form has expired")
		c.page("POST", "/apps/"+appID+"/subscriptions", url.Values{"plan_id": {f.FreePlan.ID}, "csrf_token": {tc.token}}).must(t, 403)
		c.page("POST", "/apps/"+appID+"/delete", url.Values{"csrf_token": {tc.token}}).must(t, 403)
		c.page("POST", "/logout", url.Values{"csrf_token": {tc.token}}).must(t, 403)
	}
	if n := count(); n != 1 {
		t.Errorf("apps after refused posts: %d", n)
	}
	if keys := pageKeys(t, e, "acme", appID); len(keys) != 0 {
		t.Errorf("keys after refused posts: %+v", keys)
	}
	c.page("GET", "/apps", nil).must(t, 200).contains(t, "Guarded")

	// Signed out: the sign-up and sign-in forms need the double-submit token.
	anon := e.client("acme")
	mails := len(e.sink.Messages())
	anon.page("POST", "/signup", url.Values{"name": {"X"}, "email": {"x@example.com"}, "password": {"correct horse battery"}}).must(t, 403)
	anon.page("GET", "/signup", nil).must(t, 200) // sets the token cookie
	anon.page("POST", "/signup", url.Values{"name": {"X"}, "email": {"x@example.com"}, "password": {"correct horse battery"},
		"csrf_token": {"forged"}}).must(t, 403)
	anon.page("POST", "/login", url.Values{"email": {"csrf@example.com"}, "password": {"correct horse battery"}}).must(t, 403)
	if len(e.sink.Messages()) != mails {
		t.Error("a refused sign-up sent mail")
	}
	// A token of another tenant's portal is useless here.
	other := e.client("globex")
	tok := other.page("GET", "/signup", nil).must(t, 200).csrf(t)
	anon.page("POST", "/signup", url.Values{"name": {"X"}, "email": {"x@example.com"}, "password": {"correct horse battery"},
		"csrf_token": {tok}}).must(t, 403)
}

// TestPageIsolation: another tenant's (or developer's) app, subscription
// and key ids on this host answer 404 and change nothing; a session of one
// portal means nothing on another.
func TestPageIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	g := e.tenants["globex"]
	gc, _ := e.pageSignedIn("globex", "gina@example.com", true)
	gApp := gc.pageNewApp("Globex app")
	gc.pageSubscribe(gApp, g.FreePlan.ID).must(t, 200)
	gKey := pageKeys(t, e, "globex", gApp)[0]
	gSub := *gKey.SubscriptionID

	ac, _ := e.pageSignedIn("acme", "adam@example.com", true)
	aApp := ac.pageNewApp("Acme app")
	ac.page("GET", "/apps/"+gApp, nil).must(t, 404).contains(t, "Page not found")
	ac.page("GET", "/usage?app="+gApp, nil).must(t, 404)
	ac.page("GET", "/usage?key="+gKey.ID, nil).must(t, 404)
	for _, path := range []string{
		"/apps/" + gApp + "/delete",
		"/apps/" + gApp + "/subscriptions",
		"/apps/" + gApp + "/subscriptions/" + gSub + "/cancel",
		"/apps/" + gApp + "/subscriptions/" + gSub + "/keys",
		"/apps/" + gApp + "/keys/" + gKey.ID + "/rotate",
		"/apps/" + gApp + "/keys/" + gKey.ID + "/revoke",
		// Own app, other tenant's objects.
		"/apps/" + aApp + "/subscriptions/" + gSub + "/cancel",
		"/apps/" + aApp + "/keys/" + gKey.ID + "/revoke",
	} {
		ac.submit("/apps", path, url.Values{"plan_id": {g.FreePlan.ID}, "overlap": {"0"}}).must(t, 404)
	}
	if k, err := e.cat.GetKey(context.Background(), g.Tenant.ID, gKey.ID); err != nil || k.Status != "active" {
		t.Errorf("globex key after acme's attempts: %+v %v", k, err)
	}
	gc.page("GET", "/apps/"+gApp, nil).must(t, 200).contains(t, "Globex app")

	// The acme session cookie, sent to globex's portal, is no session there.
	var session *http.Cookie
	for _, ck := range ac.hc.Jar.Cookies(&url.URL{Scheme: "http", Host: host("acme")}) {
		if strings.HasSuffix(ck.Name, "session") {
			session = ck
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	req, _ := http.NewRequest("GET", "http://"+host("globex")+":"+e.port()+"/apps", nil)
	req.AddCookie(session)
	resp, err := ac.transport().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("acme session on globex: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestPageCookies: every cookie the pages set is host-only (no Domain),
// HttpOnly and SameSite=Lax.
func TestPageCookies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.client("acme")
	var all []string
	collect := func(r pageResp) { all = append(all, r.Header.Values("Set-Cookie")...) }
	r := c.page("GET", "/login", nil).must(t, 200)
	collect(r)
	e.pageSignedIn("acme", "cookie@example.com", true)
	login := c.page("POST", "/login", url.Values{"email": {"cookie@example.com"}, "password": {"correct horse battery"},
		"csrf_token": {r.csrf(t)}})
	login.redirectsTo(t, "/apps")
	collect(login)
	collect(c.page("GET", "/apps", nil).must(t, 200))
	names := map[string]bool{}
	for _, sc := range all {
		lower := strings.ToLower(sc)
		names[strings.SplitN(sc, "=", 2)[0]] = true
		if strings.Contains(lower, "domain=") || !strings.Contains(lower, "httponly") || !strings.Contains(lower, "samesite=lax") ||
			!strings.Contains(lower, "path=/") {
			t.Errorf("cookie %q: want host-only, HttpOnly, SameSite=Lax, Path=/", sc)
		}
	}
	for _, want := range []string{"tgp_csrf", "tgp_session", "tgp_flash"} {
		if !names[want] {
			t.Errorf("no %s cookie among %v", want, names)
		}
	}
}

// TestPageTheme: the tenant's accent colour reaches every page through
// /theme.css, which is cacheable with an ETag.
func TestPageTheme(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.client("acme")
	home := c.page("GET", "/", nil).must(t, 200)
	href := home.find(t, `<link rel="stylesheet" href="(/theme\.css\?v=[0-9a-f]+)"`)
	home.contains(t, `href="/static/devportal.css"`, "Acme Inc Developers")
	css := c.page("GET", href, nil).must(t, 200)
	if ct := css.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("theme.css Content-Type %q", ct)
	}
	css.contains(t, "--accent:#0f766e", "--accent-text:#ffffff", "--accent-ink:")
	etag := css.Header.Get("ETag")
	if etag == "" || !strings.Contains(css.Header.Get("Cache-Control"), "max-age") {
		t.Fatalf("theme.css caching: ETag %q Cache-Control %q", etag, css.Header.Get("Cache-Control"))
	}
	req, _ := http.NewRequest("GET", "http://"+host("acme")+":"+e.port()+"/theme.css", nil)
	req.Header.Set("If-None-Match", etag)
	resp, err := c.transport().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("theme.css with its ETag: %d", resp.StatusCode)
	}
	// Another colour: another version in the link, the new colour in the sheet.
	f := e.tenants["acme"]
	if _, err := settings.SavePortal(context.Background(), e.db, f.Actor, func(p *settings.Portal) error {
		p.AccentColor = "#fde047" // light: dark text on it, a darker ink for links
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	href2 := c.page("GET", "/apis", nil).must(t, 200).find(t, `<link rel="stylesheet" href="(/theme\.css\?v=[0-9a-f]+)"`)
	if href2 == href {
		t.Error("the theme link did not change with the colour")
	}
	c.page("GET", href2, nil).must(t, 200).contains(t, "--accent:#fde047", "--accent-text:#111827").lacks(t, "--accent-ink:#fde047")
	// The other tenant keeps its own.
	e.client("globex").page("GET", "/theme.css", nil).must(t, 200).contains(t, "--accent:#0f766e")
}

// TestPageEscaping: a tenant's display name and an API's name with markup
// are shown as text.
func TestPageEscaping(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	ctx := context.Background()
	if _, err := settings.SavePortal(ctx, e.db, f.Actor, func(p *settings.Portal) error {
		p.DisplayName = `<script>alert("portal")</script>`
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cat.UpdateAPI(ctx, f.Actor, f.API.ID, func(in *catalog.APIInput) error {
		in.Name = `<script>alert("api")</script><img src=x onerror=alert(1)>`
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c, _ := e.pageSignedIn("acme", "xss@example.com", true)
	appID := c.pageNewApp(`<b onmouseover=alert(1)>app</b>`)
	for _, path := range []string{"/", "/apis", "/apis/pets", "/apps", "/apps/" + appID, "/usage", "/nowhere"} {
		r := c.page("GET", path, nil)
		r.lacks(t, `<script>alert(`, `<img src=x`, `<b onmouseover`)
		if path != "/nowhere" {
			r.must(t, 200)
		}
		r.contains(t, `&lt;script&gt;alert(&#34;portal&#34;)&lt;/script&gt;`)
	}
	c.page("GET", "/apis", nil).contains(t, `&lt;script&gt;alert(&#34;api&#34;)&lt;/script&gt;`)
}

// TestPageErrors: unknown pages and objects get the portal's 404 page; the
// JSON API keeps its problem answers.
func TestPageErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.client("acme")
	r := c.page("GET", "/no/such/page", nil).must(t, 404).contains(t, "Page not found", `id="error"`, "Acme Inc Developers",
		`href="/static/devportal.css"`)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("404 Content-Type %q", ct)
	}
	c.page("GET", "/apis/no-such-api", nil).must(t, 404).contains(t, "Page not found")
	c.page("GET", "/apis/"+e.tenants["acme"].Hidden.Slug, nil).must(t, 404)
	c.page("GET", "/apis/"+e.tenants["globex"].API.ID, nil).must(t, 404)
	if ct := c.page("GET", "/api/nothing", nil).must(t, 404).Header.Get("Content-Type"); !strings.Contains(ct, "problem+json") {
		t.Errorf("/api 404 Content-Type %q", ct)
	}
	// Signed-in pages send a signed-out browser to the sign-in page and back.
	c.page("GET", "/usage", nil).redirectsTo(t, "/login?next=%2Fusage")
	c.page("GET", "/login?next=%2Fusage", nil).must(t, 200).contains(t, `name="next" value="/usage"`)
	// An open redirect is not possible through next.
	ac, _ := e.pageSignedIn("acme", "next@example.com", true)
	ac.page("GET", "/login?next=//evil.example/x", nil).redirectsTo(t, "/apps")
}

// TestPageNoInlineCode: the pages work under the portal's CSP (no inline
// script or style): every script has a src, no element has a style
// attribute or an event handler.
func TestPageNoInlineCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	c, _ := e.pageSignedIn("acme", "csp@example.com", true)
	appID := c.pageNewApp("Strict")
	keyPage := c.pageSubscribe(appID, f.FreePlan.ID).must(t, 200)
	handler := regexp.MustCompile(`\son[a-z]+\s*=`)
	check := func(r pageResp) {
		t.Helper()
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") ||
			!strings.Contains(csp, "style-src 'self'") {
			t.Errorf("%s: CSP %q", r.Request.URL.Path, csp)
		}
		for rest := r.body; ; {
			i := strings.Index(rest, "<script")
			if i < 0 {
				break
			}
			end := strings.Index(rest[i:], ">")
			if !strings.Contains(rest[i:i+end], "src=") {
				t.Errorf("%s: inline script", r.Request.URL.Path)
			}
			rest = rest[i+end:]
		}
		if strings.Contains(r.body, ` style=`) || handler.MatchString(r.body) {
			t.Errorf("%s: inline style or event handler", r.Request.URL.Path)
		}
	}
	check(keyPage)
	for _, path := range []string{"/", "/apis", "/apis/pets", "/apps", "/apps/" + appID, "/usage", "/nowhere"} {
		check(c.page("GET", path, nil))
	}
	anon := e.client("acme")
	for _, path := range []string{"/signup", "/login", "/forgot", "/reset?token=x", "/verify?token=x", "/signup/sent"} {
		check(anon.page("GET", path, nil).must(t, 200))
	}
}
