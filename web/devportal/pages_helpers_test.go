package devportal_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/store"
)

// Helpers of the page tests: a browser-like client (cookies, forms with
// their CSRF token) on the harness's env.

// pageResp is a page response with its body read.
type pageResp struct {
	*http.Response
	body string
}

// page fetches a page with the client's cookies.
func (c *client) page(method, path string, form url.Values) pageResp {
	c.e.t.Helper()
	var body any
	if form != nil {
		body = form
	}
	resp := c.do(method, path, body)
	return pageResp{Response: resp, body: readBody(c.e.t, resp)}
}

func (r pageResp) must(t *testing.T, want int) pageResp {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, want, pageSnippet(r.body))
	}
	return r
}

// redirectsTo checks a 303 and where it goes.
func (r pageResp) redirectsTo(t *testing.T, prefix string) string {
	t.Helper()
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("%s %s: status %d, want 303 to %s\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, prefix, pageSnippet(r.body))
	}
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, prefix) {
		t.Fatalf("%s %s: redirect to %q, want %s…", r.Request.Method, r.Request.URL.Path, loc, prefix)
	}
	return loc
}

func (r pageResp) contains(t *testing.T, parts ...string) pageResp {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(r.body, p) {
			t.Errorf("%s %s: the page lacks %q\n%s", r.Request.Method, r.Request.URL.Path, p, pageSnippet(r.body))
		}
	}
	return r
}

func (r pageResp) lacks(t *testing.T, parts ...string) pageResp {
	t.Helper()
	for _, p := range parts {
		if strings.Contains(r.body, p) {
			t.Errorf("%s %s: the page holds %q", r.Request.Method, r.Request.URL.Path, p)
		}
	}
	return r
}

// pageSnippet shortens a body for failure messages: the main element when
// there is one.
func pageSnippet(body string) string {
	if i := strings.Index(body, `<main`); i >= 0 {
		body = body[i:]
	}
	if len(body) > 3000 {
		body = body[:3000] + "…"
	}
	return body
}

var pageCSRFRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf is the first form token of a page.
func (r pageResp) csrf(t *testing.T) string {
	t.Helper()
	m := pageCSRFRE.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("%s: no csrf_token on the page\n%s", r.Request.URL.Path, pageSnippet(r.body))
	}
	return html.UnescapeString(m[1])
}

// submit GETs a page and POSTs form to action with the page's CSRF token.
func (c *client) submit(pagePath, action string, form url.Values) pageResp {
	c.e.t.Helper()
	tok := c.page("GET", pagePath, nil).must(c.e.t, 200).csrf(c.e.t)
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf_token", tok)
	return c.page("POST", action, form)
}

// find returns the first submatch of re in the page.
func (r pageResp) find(t *testing.T, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("%s: no match for %s\n%s", r.Request.URL.Path, re, pageSnippet(r.body))
	}
	return html.UnescapeString(m[1])
}

// pageSignedIn signs a developer up through the service (verified unless
// unverified) and signs the browser in through the login form.
func (e *env) pageSignedIn(slug, email string, verified bool) (*client, developers.Developer) {
	e.t.Helper()
	ctx := context.Background()
	f := e.tenants[slug]
	if err := e.devs.Signup(ctx, f.Tenant, developers.SignupInput{Email: email, Password: "correct horse battery",
		Name: "Ada Dev"}, "192.0.2.20"); err != nil {
		e.t.Fatalf("signup: %v", err)
	}
	if verified {
		if _, err := e.devs.Verify(ctx, f.Tenant, e.mailedToken(email, "Confirm"), "192.0.2.20"); err != nil {
			e.t.Fatalf("verify: %v", err)
		}
	}
	c := e.client(slug)
	c.submit("/login", "/login", url.Values{"email": {email}, "password": {"correct horse battery"}}).redirectsTo(e.t, "/apps")
	dev, err := e.devs.Login(ctx, f.Tenant, email, "correct horse battery", "192.0.2.21")
	if err != nil {
		e.t.Fatal(err)
	}
	return c, dev
}

// pageNewApp creates an app through its form and returns its id.
func (c *client) pageNewApp(name string) string {
	c.e.t.Helper()
	loc := c.submit("/apps", "/apps", url.Values{"name": {name}}).redirectsTo(c.e.t, "/apps/")
	return strings.TrimPrefix(loc, "/apps/")
}

var pageKeyRE = `<code id="new-key">([^<]+)</code>`

// pageSubscribe subscribes an app to a plan through the app page's form.
func (c *client) pageSubscribe(appID, planID string) pageResp {
	c.e.t.Helper()
	return c.submit("/apps/"+appID, "/apps/"+appID+"/subscriptions", url.Values{"plan_id": {planID}})
}

// pageInsertUsage writes a minute rollup of n requests of a status class
// for a key, 2 hours ago, with latencies in the 5-10 ms bucket.
func (e *env) pageInsertUsage(slug, keyID, consumerID string, class, n int) {
	e.t.Helper()
	f := e.tenants[slug]
	hist := make([]string, 14)
	for i := range hist {
		hist[i] = "0"
	}
	hist[3] = fmt.Sprint(n)
	minute := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute)
	if _, err := e.db.Exec(context.Background(), `INSERT INTO usage_minutes (tenant_id, minute, api_id, consumer_id,
		key_id, plan_id, status_class, requests, bytes_in, bytes_out, latency_us, latency_hist)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, $9, $10::bigint[])`, f.Tenant.ID, minute, f.API.ID, consumerID,
		keyID, f.FreePlan.ID, class, n, n*7000, "{"+strings.Join(hist, ",")+"}"); err != nil {
		e.t.Fatal(err)
	}
}

// storePage is a page of up to 200 items.
func storePage() store.Page { return store.Page{Limit: store.MaxLimit} }
