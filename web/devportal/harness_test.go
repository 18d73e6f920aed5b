package devportal_test

import (
	"context"
	"encoding/json"
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

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/egress"
	"github.com/tollgate/tollgate/services/mail"
	"github.com/tollgate/tollgate/services/sdk"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/services/throttle"
	"github.com/tollgate/tollgate/services/usage"
	"github.com/tollgate/tollgate/web/devportal"
)

var testSecret = []byte("devportal-test-secret-0123456789")

// portalDomain is the portal domain of the tests: portals are at
// <slug>.developers.test.
const portalDomain = "developers.test"

// env is a running developer portal on a fresh database with two tenants,
// "acme" and "globex", each with a portal switched on, an upstream, a
// published API with an OpenAPI document, an unpublished API, and public
// plans: free, approval-required and priced, plus a private plan.
type env struct {
	t    *testing.T
	db   *pgxpool.Pool
	sink *mail.Sink
	srv  *httptest.Server
	cat  *catalog.Service
	devs *developers.Service
	// Gateway is an httptest server standing in for the tenant's gateway
	// (try-it relay target); it echoes what it got.
	gateway *httptest.Server
	tenants map[string]*tenantFixture
}

// tenantFixture holds one tenant's objects.
type tenantFixture struct {
	Tenant       tenancy.Tenant
	Actor        audit.Actor
	API          catalog.API // published, with a document
	Hidden       catalog.API // not published
	FreePlan     catalog.Plan
	ApprovalPlan catalog.Plan
	PricedPlan   catalog.Plan
	PrivatePlan  catalog.Plan
}

// petsDoc is the published APIs' OpenAPI document.
const petsDoc = `{"openapi":"3.0.3","info":{"title":"Pets","version":"1.2.0","description":"Pets of the store."},
"paths":{
 "/pets":{"get":{"operationId":"listPets","tags":["pets"],"summary":"List pets",
   "parameters":[{"name":"limit","in":"query","schema":{"type":"integer","example":10}}],
   "responses":{"200":{"description":"the pets","content":{"application/json":{"schema":{"type":"array","items":{"$ref":"#/components/schemas/Pet"}}}}}}},
  "post":{"operationId":"createPet","tags":["pets"],"summary":"Add a pet",
   "requestBody":{"required":true,"content":{"application/json":{"schema":{"$ref":"#/components/schemas/NewPet"}}}},
   "responses":{"201":{"description":"created","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Pet"}}}}}}},
 "/pets/{id}":{"get":{"operationId":"getPet","tags":["pets"],"summary":"Get a pet",
   "parameters":[{"name":"id","in":"path","required":true,"schema":{"type":"string"}}],
   "responses":{"200":{"description":"a pet","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Pet"}}}},"404":{"description":"no such pet"}}}}},
"components":{"schemas":{
 "Pet":{"type":"object","required":["id","name"],"properties":{"id":{"type":"string"},"name":{"type":"string"},"kind":{"type":"string","enum":["cat","dog"]}}},
 "NewPet":{"type":"object","required":["name"],"properties":{"name":{"type":"string","example":"Rex"},"kind":{"type":"string","enum":["cat","dog"]}}}}}}`

type envOpts struct {
	// signup is the portals' signup mode ("" open).
	signup string
	// throttle turns attempt throttling on.
	throttle bool
	// billing, when set, builds the portals' Billing (billing_test.go).
	billing func(db *pgxpool.Pool, cat *catalog.Service) devportal.Billing
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	ctx := context.Background()
	db := storetest.NewPool(t)
	rdb, keys := storetest.NewRedis(t)
	e := &env{t: t, db: db, sink: &mail.Sink{}, tenants: map[string]*tenantFixture{}}
	e.cat = catalog.New(db, testSecret, true)
	e.gateway = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Gateway", "test")
		_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery,
			"host": r.Host, "key": r.Header.Get("X-API-Key")})
	}))
	t.Cleanup(e.gateway.Close)
	var h http.Handler
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)
	_, port, _ := strings.Cut(strings.TrimPrefix(e.srv.URL, "http://"), ":")
	e.devs = &developers.Service{DB: db, Catalog: e.cat, Mailer: e.sink, Secret: testSecret,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if o.throttle {
		e.devs.Throttle = &throttle.Limiter{DB: db}
	}
	gw, _ := url.Parse(e.gateway.URL)
	gen := &sdk.Generator{}
	p, err := devportal.New(devportal.Options{
		Developers: e.devs, Catalog: e.cat, Tenants: tenancy.Directory{DB: db},
		Usage: usage.Reader{DB: db, Redis: rdb, Keys: keys}, SDKs: gen,
		Domain: portalDomain, GatewayURL: "http://{slug}.gw.test:" + gw.Port(), GatewayDial: gw.Host,
		Port: port, Secret: testSecret, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		// The tests' IdP (mockoidc) listens on loopback over http.
		OIDCClient: egress.New(egress.Options{AllowPrivate: true, AllowHTTP: true}),
		Billing:    o.portalBilling(db, e.cat),
	})
	if err != nil {
		t.Fatalf("devportal.New: %v", err)
	}
	e.devs.PortalURL = p.PortalURL
	h = p
	for _, slug := range []string{"acme", "globex"} {
		e.tenants[slug] = e.seedTenant(ctx, slug, o.signup)
	}
	return e
}

func (e *env) seedTenant(ctx context.Context, slug, signup string) *tenantFixture {
	t := e.t
	ten, _, err := tenancy.Create(ctx, e.db, testSecret, strings.ToUpper(slug[:1])+slug[1:]+" Inc", slug)
	if err != nil {
		t.Fatalf("create tenant %s: %v", slug, err)
	}
	f := &tenantFixture{Tenant: ten, Actor: audit.Actor{TenantID: ten.ID, Name: audit.Operator}}
	if _, err := settings.SavePortal(ctx, e.db, f.Actor, func(p *settings.Portal) error {
		p.Enabled, p.Signup, p.DisplayName, p.AccentColor = true, signup, ten.Name+" Developers", "#0f766e"
		return nil
	}); err != nil {
		t.Fatalf("save portal: %v", err)
	}
	up, err := e.cat.CreateUpstream(ctx, f.Actor, catalog.UpstreamInput{Name: "backend", Algorithm: "round_robin",
		Targets: []catalog.Target{{URL: "http://127.0.0.1:9"}}})
	if err != nil {
		t.Fatalf("create upstream: %v", err)
	}
	f.API, err = e.cat.CreateAPI(ctx, f.Actor, catalog.APIInput{Name: "Pets", Slug: "pets", BasePath: "/pets",
		UpstreamID: up.ID, Auth: "key", Published: true})
	if err != nil {
		t.Fatalf("create api: %v", err)
	}
	if _, err := e.cat.ImportOpenAPI(ctx, f.Actor, f.API.ID, []byte(petsDoc)); err != nil {
		t.Fatalf("import openapi: %v", err)
	}
	f.Hidden, err = e.cat.CreateAPI(ctx, f.Actor, catalog.APIInput{Name: "Internal", Slug: "internal", BasePath: "/internal",
		UpstreamID: up.ID, Auth: "key"})
	if err != nil {
		t.Fatalf("create hidden api: %v", err)
	}
	plan := func(name string, in catalog.PlanInput) catalog.Plan {
		in.Name, in.APIIDs = name, []string{f.API.ID}
		p, err := e.cat.CreatePlan(ctx, f.Actor, in)
		if err != nil {
			t.Fatalf("create plan %s: %v", name, err)
		}
		return p
	}
	f.FreePlan = plan("Free", catalog.PlanInput{Public: true, RateLimit: catalog.RateLimit{Requests: 10, PerSeconds: 1},
		Quota: catalog.Quota{Requests: 1000, Period: "month"}})
	f.ApprovalPlan = plan("Partner", catalog.PlanInput{Public: true, ApprovalRequired: true})
	f.PricedPlan = plan("Pro", catalog.PlanInput{Public: true, Price: &catalog.Price{AmountCents: 1900, Currency: "usd"}})
	f.PrivatePlan = plan("Internal", catalog.PlanInput{})
	return f
}

// host is the portal host of a tenant.
func host(slug string) string { return slug + "." + portalDomain }

// client is an HTTP client of one browser or API caller (own cookie jar)
// that sends every request to the test server with the Host of a tenant's
// portal, and does not follow redirects.
type client struct {
	e    *env
	slug string
	hc   *http.Client
	// bearer, when set, is sent as Authorization: Bearer.
	bearer string
}

func (e *env) client(slug string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, slug: slug, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request for path on the client's tenant portal. body, when not
// nil, is sent as JSON (a url.Values as a form).
func (c *client) do(method, path string, body any) *http.Response {
	c.e.t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ctype = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case string:
		rd, ctype = strings.NewReader(b), "application/json"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.e.t.Fatal(err)
		}
		rd, ctype = strings.NewReader(string(raw)), "application/json"
	}
	// The cookie jar keys cookies by the URL's host: use the portal host in
	// the URL and dial the test server.
	u := "http://" + host(c.slug) + ":" + c.e.port() + path
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := c.transport().Do(req)
	if err != nil {
		c.e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

func (c *client) transport() *http.Client {
	hc := *c.hc
	addr := strings.TrimPrefix(c.e.srv.URL, "http://")
	hc.Transport = &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	return &hc
}

func (e *env) port() string {
	_, port, _ := strings.Cut(strings.TrimPrefix(e.srv.URL, "http://"), ":")
	return port
}

// readJSON decodes a response body into v (and closes it).
func readJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode %s: %v", resp.Request.URL.Path, err)
	}
}

// readBody returns a response body as a string (and closes it).
func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var tokenRE = regexp.MustCompile(`token=([A-Za-z0-9_]+)`)

// mailedToken returns the token of the newest mail to addr whose subject
// contains subject.
func (e *env) mailedToken(addr, subject string) string {
	e.t.Helper()
	msgs := e.sink.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if strings.EqualFold(m.To, addr) && strings.Contains(m.Subject, subject) {
			if mm := tokenRE.FindStringSubmatch(m.Body); mm != nil {
				return mm[1]
			}
		}
	}
	e.t.Fatalf("no mail %q to %s with a token (mails: %d)", subject, addr, len(msgs))
	return ""
}

// signupVerified signs a developer up in a tenant's portal through the
// service, verifies the address and returns a JSON API client holding a
// bearer token, and the developer.
func (e *env) signupVerified(slug, email string) (*client, developers.Developer) {
	e.t.Helper()
	ctx := context.Background()
	f := e.tenants[slug]
	if err := e.devs.Signup(ctx, f.Tenant, developers.SignupInput{Email: email, Password: "correct horse battery",
		Name: "Ada Dev"}, "192.0.2.10"); err != nil {
		e.t.Fatalf("signup: %v", err)
	}
	dev, err := e.devs.Verify(ctx, f.Tenant, e.mailedToken(email, "Confirm"), "192.0.2.10")
	if err != nil {
		e.t.Fatalf("verify: %v", err)
	}
	sess, err := e.devs.StartSession(ctx, dev)
	if err != nil {
		e.t.Fatalf("session: %v", err)
	}
	c := e.client(slug)
	c.bearer = sess.ID
	return c, dev
}
