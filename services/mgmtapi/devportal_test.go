package mgmtapi

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/mail"
	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
)

// devEnv is the API with the developer portal service and a mail sink.
func newDevEnv(t *testing.T) (*env, *developers.Service, *mail.Sink) {
	t.Helper()
	db := storetest.NewPool(t)
	sink := &mail.Sink{}
	cat := catalog.New(db, testSecret, true)
	devs := &developers.Service{DB: db, Catalog: cat, Mailer: sink, Secret: testSecret,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		PortalURL: func(t tenancy.Tenant) string { return "http://" + t.Slug + ".developers.test" }}
	h := New(Options{DB: db, Secret: testSecret, OperatorToken: testOperatorToken, AllowPrivateUpstreams: true, ConfigSize: publish.TenantConfigBytes,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Developers: devs})
	return &env{t: t, db: db, h: h}, devs, sink
}

// portalFixture is a tenant with its portal on (approval signup), a public
// plan that requires approval, a pending developer with a verified address,
// an app and a pending subscription.
type portalFixture struct {
	fixture
	developer, app, subscription string
}

func (e *env) portalFixture(devs *developers.Service, sink *mail.Sink, slug string) portalFixture {
	e.t.Helper()
	f := portalFixture{fixture: e.fixture(slug)}
	p := e.must(200, "PUT", "/v1/portal", f.token, map[string]any{"enabled": true, "signup": "approval",
		"display_name": slug + " devs", "accent_color": "#112233", "allowed_email_domains": []string{"example.com"}})
	if p["signup"] != "approval" || p["enabled"] != true || p["display_name"] != slug+" devs" {
		e.t.Fatalf("PUT /v1/portal answered %v", p)
	}
	e.must(200, "PATCH", "/v1/apis/"+f.api, f.token, map[string]any{"published": true})
	e.must(200, "PATCH", "/v1/plans/"+f.plan, f.token, map[string]any{"public": true, "approval_required": true})
	ctx := context.Background()
	ten, err := tenancy.Get(ctx, e.db, f.tenantID)
	if err != nil {
		e.t.Fatal(err)
	}
	email := "ada@example.com"
	if err := devs.Signup(ctx, ten, developers.SignupInput{Email: email, Password: "correct horse battery", Name: "Ada"},
		"192.0.2.1"); err != nil {
		e.t.Fatalf("signup: %v", err)
	}
	tok := ""
	for _, m := range sink.Messages() {
		if m.To == email && strings.Contains(m.Subject, "Confirm") {
			_, after, _ := strings.Cut(m.Body, "token=")
			tok = strings.Fields(after)[0]
		}
	}
	dev, err := devs.Verify(ctx, ten, tok, "192.0.2.1")
	if err != nil {
		e.t.Fatalf("verify: %v", err)
	}
	f.developer = dev.ID
	app, err := devs.Catalog.CreateApp(ctx, dev.Actor(), dev.ConsumerID, catalog.AppInput{Name: "My app"})
	if err != nil {
		e.t.Fatal(err)
	}
	f.app = app.ID
	// A pending developer may not subscribe yet: approve through /v1 first.
	if _, err := devs.Subscribe(ctx, dev, app.ID, f.plan); err == nil || !strings.Contains(err.Error(), "developer-pending") {
		e.t.Fatalf("pending developer subscribed: %v", err)
	}
	return f
}

func TestDeveloperPortalAdmin(t *testing.T) {
	t.Parallel()
	e, devs, sink := newDevEnv(t)
	a := e.portalFixture(devs, sink, "acme")
	b := e.portalFixture(devs, sink, "globex")

	// Bad input changes nothing.
	before := e.counts()
	r := e.do("PUT", "/v1/portal", a.token, map[string]any{"accent_color": "red", "signup": "sometimes"})
	if r.Status != 422 {
		t.Fatalf("bad portal settings: %d %s", r.Status, r.Body)
	}
	if got := fieldsOf(t, r); strings.Join(got, ",") != "signup,accent_color" {
		t.Errorf("fields %v", got)
	}
	if r := e.do("PUT", "/v1/portal", a.token, map[string]any{"colour": "#000000"}); r.Status != 400 {
		t.Errorf("unknown field: %d", r.Status)
	}
	if after := e.counts(); after["audit_log"] != before["audit_log"] {
		t.Errorf("a refused change was audited")
	}
	// PUT merges: naming one field keeps the others.
	p := e.must(200, "PUT", "/v1/portal", a.token, map[string]any{"logo_url": "https://cdn.example.com/logo.png"})
	if p["signup"] != "approval" || p["accent_color"] != "#112233" || p["logo_url"] != "https://cdn.example.com/logo.png" {
		t.Errorf("merge lost fields: %v", p)
	}

	// Pending developers: listed for their tenant only; approve mails them.
	list := e.must(200, "GET", "/v1/developers?status=pending", a.token, nil)
	items := list["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["id"] != a.developer {
		t.Fatalf("pending developers: %v", list)
	}
	e.must(404, "POST", "/v1/developers/"+b.developer+"/approve", a.token, nil)
	e.must(404, "GET", "/v1/developers/"+b.developer, a.token, nil)
	d := e.must(200, "POST", "/v1/developers/"+a.developer+"/approve", a.token, nil)
	if d["status"] != "active" {
		t.Fatalf("approved developer: %v", d)
	}
	e.must(409, "POST", "/v1/developers/"+a.developer+"/reject", a.token, nil)
	if !mailed(sink, "ada@example.com", "approved") {
		t.Error("no approval mail")
	}

	// The approved developer subscribes: pending until the tenant approves.
	ctx := context.Background()
	dev, err := devs.Get(ctx, a.tenantID, a.developer)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := devs.Subscribe(ctx, dev, a.app, a.plan)
	if err != nil || sub.Subscription.Status != catalog.SubPending || sub.Key != nil {
		t.Fatalf("subscribe: %+v %v", sub, err)
	}
	a.subscription = sub.Subscription.ID
	pend := e.must(200, "GET", "/v1/subscriptions?status=pending", a.token, nil)["items"].([]any)
	if len(pend) != 1 || pend[0].(map[string]any)["id"] != a.subscription {
		t.Fatalf("pending subscriptions: %v", pend)
	}
	if got := e.must(200, "GET", "/v1/subscriptions?status=pending", b.token, nil)["items"].([]any); len(got) != 0 {
		t.Fatalf("globex sees acme's subscriptions: %v", got)
	}
	for _, path := range []string{"/v1/subscriptions/" + a.subscription, "/v1/apps/" + a.app} {
		e.must(404, "GET", path, b.token, nil)
		e.must(200, "GET", path, a.token, nil)
	}
	for _, action := range []string{"approve", "reject", "suspend", "resume", "cancel"} {
		e.must(404, "POST", "/v1/subscriptions/"+a.subscription+"/"+action, b.token, nil)
	}
	s := e.must(200, "POST", "/v1/subscriptions/"+a.subscription+"/approve", a.token, nil)
	if s["status"] != "active" {
		t.Fatalf("approved subscription: %v", s)
	}
	if !mailed(sink, "ada@example.com", "subscription is approved") {
		t.Error("no subscription approval mail")
	}
	// Suspend and resume re-publish the keys' records.
	key, _, err := devs.Catalog.CreateSubscriptionKey(ctx, dev.Actor(), dev.ConsumerID, a.subscription)
	if err != nil {
		t.Fatal(err)
	}
	e.must(200, "POST", "/v1/subscriptions/"+a.subscription+"/suspend", a.token, nil)
	var rec string
	if err := e.db.QueryRow(ctx, `SELECT record->>'status' FROM key_outbox WHERE record->>'id' = $1 ORDER BY id DESC LIMIT 1`,
		key.ID).Scan(&rec); err != nil || rec != "past_due" {
		t.Errorf("suspended key record status %q (%v), want past_due (402 at the proxy)", rec, err)
	}
	e.must(200, "POST", "/v1/subscriptions/"+a.subscription+"/resume", a.token, nil)
	// The developer's consumer suspended: every key refused with 403.
	c := e.must(200, "PATCH", "/v1/consumers/"+dev.ConsumerID, a.token, map[string]any{"status": "suspended"})
	if c["status"] != "suspended" || c["developer_id"] != a.developer {
		t.Fatalf("suspended consumer: %v", c)
	}
	if err := e.db.QueryRow(ctx, `SELECT record->>'status' FROM key_outbox WHERE record->>'id' = $1 ORDER BY id DESC LIMIT 1`,
		key.ID).Scan(&rec); err != nil || rec != "suspended" {
		t.Errorf("consumer-suspended key record status %q (%v)", rec, err)
	}
	e.must(404, "PATCH", "/v1/consumers/"+dev.ConsumerID, b.token, map[string]any{"status": "active"})
	e.must(422, "PATCH", "/v1/consumers/"+dev.ConsumerID, a.token, map[string]any{"status": "gone"})

	// Invitations mail a signup link.
	e.must(202, "POST", "/v1/developer-invites", a.token, map[string]any{"email": "grace@example.com"})
	if !mailed(sink, "grace@example.com", "invited") {
		t.Error("no invitation mail")
	}
	e.must(422, "POST", "/v1/developer-invites", a.token, map[string]any{"email": "not an address"})

	// The developer IdP: secret write-only.
	o := e.must(200, "PUT", "/v1/portal/oidc", a.token, map[string]any{"issuer": "https://idp.example.com",
		"client_id": "portal", "client_secret": "s3cret"})
	oidc := o["oidc"].(map[string]any)
	if oidc["issuer"] != "https://idp.example.com" || oidc["has_secret"] != true || strings.Contains(string(e.do("GET", "/v1/portal", a.token, nil).Body), "s3cret") {
		t.Errorf("oidc settings: %v", o)
	}
}

func mailed(s *mail.Sink, to, subject string) bool {
	for _, m := range s.Messages() {
		if m.To == to && strings.Contains(m.Subject, subject) && m.Body != "" && m.HTML != "" {
			return true
		}
	}
	return false
}
