package portal_test

import (
	"context"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"

	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/clientip"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/health"
	"github.com/tollgate/tollgate/services/mail"
	"github.com/tollgate/tollgate/services/outbox"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/sso"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/services/usage"
	"github.com/tollgate/tollgate/web/portal"
)

var testSecret = []byte("portal-test-secret-0123456789")

// devPortalURL is where the tests' developer portals are (never called).
func devPortalURL(slug string) string { return "http://" + slug + ".developers.test:8081" }

// env is a running portal on a fresh database.
type env struct {
	t    *testing.T
	db   *pgxpool.Pool
	sink *mail.Sink
	srv  *httptest.Server
}

type envOpts struct {
	secure bool
	idp    *sso.Config
	// rdb and keys, if set, give the portal the proxies' Redis (live health).
	rdb  redis.UniversalClient
	keys proxycfg.Keys
	// trusted are the proxies whose X-Forwarded-For is believed.
	trusted clientip.Trusted
	// billing, when set, builds the billing page's back end (billing_test.go).
	billing func(db *pgxpool.Pool) portal.Billing
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	db := storetest.NewPool(t)
	e := &env{t: t, db: db, sink: &mail.Sink{}}
	var h http.Handler
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	pub := e.srv.URL
	if o.secure {
		pub = strings.Replace(pub, "http://", "https://", 1)
	}
	acc := &accounts.Service{DB: db, DigestKey: testSecret}
	ten := &tenancy.Service{DB: db, DigestKey: testSecret}
	set := &settings.Service{DB: db, Secret: testSecret,
		LookupTXT: func(_ context.Context, name string) ([]string, error) {
			// The test's DNS: every challenge record holds tokens starting "tollgate-verify-".
			if strings.HasPrefix(name, "_tollgate-challenge.verified.") {
				return e.txt(name), nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		}}
	cat := catalog.New(db, testSecret, true)
	devs := &developers.Service{DB: db, Catalog: cat, Mailer: e.sink, Secret: testSecret,
		PortalURL: func(t tenancy.Tenant) string { return devPortalURL(t.Slug) }}
	var live portal.Health
	if o.rdb != nil {
		live = &health.Reader{Redis: o.rdb, Keys: o.keys}
	}
	p, err := portal.New(portal.Options{
		Accounts: acc, Sessions: acc, Team: acc, Tenants: ten, Tokens: ten, Settings: set, Domains: set,
		Audit: &audit.Service{DB: db}, Usage: usage.Reader{DB: db}, Developers: devs, Catalog: cat, Health: live,
		Config: &outbox.StatusReader{DB: db, Redis: o.rdb, Keys: o.keys},
		Secret: testSecret, AllowPrivateUpstreams: true,
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		ProxyDomain: "gw.test", PublicURL: pub, Mailer: e.sink, SecureCookies: o.secure, DefaultOIDC: o.idp,
		DevPortalURL: devPortalURL, TrustedProxies: o.trusted,
		Billing: o.portalBilling(db),
	})
	if err != nil {
		t.Fatalf("portal.New: %v", err)
	}
	h = p
	return e
}

// browser is one cookie jar talking to the portal, not following redirects.
type browser struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type page struct {
	status int
	body   string
	loc    string
	resp   *http.Response
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (b *browser) do(req *http.Request) page {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	body := string(raw)
	if m := csrfRE.FindStringSubmatch(body); m != nil {
		b.csrf = html.UnescapeString(m[1])
	}
	return page{status: resp.StatusCode, body: body, loc: resp.Header.Get("Location"), resp: resp}
}

func (b *browser) get(path string) page {
	b.e.t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", b.e.srv.URL+path, nil)
	return b.do(req)
}

// post submits a form with the CSRF token of the last page seen (unless the
// values carry their own csrf_token).
func (b *browser) post(path string, v url.Values) page {
	b.e.t.Helper()
	if v == nil {
		v = url.Values{}
	}
	if _, ok := v["csrf_token"]; !ok {
		v.Set("csrf_token", b.csrf)
	}
	req, _ := http.NewRequestWithContext(context.Background(), "POST", b.e.srv.URL+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func want(t *testing.T, p page, status int, what string) {
	t.Helper()
	if p.status != status {
		snippet := p.body
		if len(snippet) > 1500 {
			snippet = snippet[:1500]
		}
		t.Fatalf("%s: status %d, want %d (location %q)\n%s", what, p.status, status, p.loc, snippet)
	}
}

// signup creates a tenant and its owner and returns the owner's browser,
// signed in.
func (e *env) signup(slug string) *browser {
	e.t.Helper()
	b := e.browser()
	b.get("/signup")
	p := b.post("/signup", url.Values{"company": {"Company " + slug}, "slug": {slug}, "name": {"Owner " + slug},
		"email": {"owner@" + slug + ".example"}, "password": {"correct horse battery"}})
	want(e.t, p, http.StatusSeeOther, "signup "+slug)
	b.get("/dashboard")
	return b
}

var idRE = regexp.MustCompile(`/[a-z]+/([0-9a-f-]{36})`)

// created posts a form that redirects to the new object's page and returns its id.
func created(t *testing.T, p page, what string) string {
	t.Helper()
	want(t, p, http.StatusSeeOther, what)
	m := idRE.FindStringSubmatch(p.loc)
	if m == nil {
		t.Fatalf("%s: no id in redirect %q", what, p.loc)
	}
	return m[1]
}

// seed makes an upstream, an API, a plan, a consumer and a key and returns their ids.
type seeded struct {
	upstream, api, plan, consumer, key, secret string
}

var keyIDRE = regexp.MustCompile(`/keys/([0-9a-f-]{36})/revoke`)
var secretRE = regexp.MustCompile(`<pre class="secret-value"[^>]*><code>([^<]+)</code>`)

func (b *browser) seed(backend string) seeded {
	t := b.e.t
	t.Helper()
	var s seeded
	b.get("/upstreams/new")
	p := b.post("/upstreams", url.Values{"name": {"backend"}, "algorithm": {"round_robin"}, "targets": {backend}})
	want(t, p, http.StatusSeeOther, "create upstream")
	list := b.get("/upstreams")
	m := regexp.MustCompile(`/upstreams/([0-9a-f-]{36})`).FindStringSubmatch(list.body)
	if m == nil {
		t.Fatalf("no upstream in list")
	}
	s.upstream = m[1]
	b.get("/apis/new")
	s.api = created(t, b.post("/apis", url.Values{"name": {"Orders"}, "slug": {"orders"}, "base_path": {"/orders"},
		"upstream_id": {s.upstream}, "auth": {"key"}, "strip_base_path": {"on"}, "timeout_ms": {"0"}}), "create api")
	b.get("/plans/new")
	p = b.post("/plans", url.Values{"name": {"Starter"}, "rate_limit_requests": {"100"}, "rate_limit_per_seconds": {"1"},
		"quota_requests": {"0"}, "quota_period": {"month"}, "api_ids": {s.api}})
	want(t, p, http.StatusSeeOther, "create plan")
	m = regexp.MustCompile(`/plans/([0-9a-f-]{36})`).FindStringSubmatch(b.get("/plans").body)
	if m == nil {
		t.Fatalf("no plan in list")
	}
	s.plan = m[1]
	b.get("/consumers")
	s.consumer = created(t, b.post("/consumers", url.Values{"name": {"Mobile app"}, "email": {"dev@partner.example"}}), "create consumer")
	b.get("/consumers/" + s.consumer)
	p = b.post("/consumers/"+s.consumer+"/keys", url.Values{"plan_id": {s.plan}})
	want(t, p, http.StatusOK, "issue key")
	if m := secretRE.FindStringSubmatch(p.body); m != nil {
		s.secret = m[1]
	} else {
		t.Fatalf("issued key not shown")
	}
	if m := keyIDRE.FindStringSubmatch(p.body); m != nil {
		s.key = m[1]
	} else {
		t.Fatalf("no key id on consumer page")
	}
	return s
}

func lastLink(t *testing.T, sink *mail.Sink, to, path string) string {
	t.Helper()
	m, ok := sink.Last(to)
	if !ok {
		t.Fatalf("no mail to %s", to)
	}
	re := regexp.MustCompile(`https?://\S+` + regexp.QuoteMeta(path) + `\?token=\S+`)
	link := re.FindString(m.Body)
	if link == "" {
		t.Fatalf("no %s link in mail to %s:\n%s", path, to, m.Body)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatalf("bad link %q: %v", link, err)
	}
	return u.RequestURI()
}

func fieldErr(body, field string) string {
	re := regexp.MustCompile(`<p class="field-error" id="e-` + regexp.QuoteMeta(field) + `">([^<]*)</p>`)
	if m := re.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

// txt answers the challenge record of a domain with its stored token.
func (e *env) txt(name string) []string {
	var tok string
	domain := strings.TrimPrefix(name, "_tollgate-challenge.")
	if err := e.db.QueryRow(context.Background(), `SELECT verification_token FROM custom_domains WHERE domain = $1`, domain).Scan(&tok); err != nil {
		return nil
	}
	return []string{tok}
}

// testWriter sends the portal's log to the test's log, shown when it fails.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
