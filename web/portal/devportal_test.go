package portal_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/tenancy"
)

// portalValues is a complete, valid developer portal settings form.
func portalValues() url.Values {
	return url.Values{"enabled": {"on"}, "signup": {"approval"}, "allowed_email_domains": {"Example.com\n\n partner.example \n"},
		"display_name": {"Acme Developers"}, "accent_color": {"#12AB9f"}, "logo_url": {"https://acme.example/logo.svg"},
		"support_email": {"api@acme.example"}}
}

func (e *env) tenant(slug string) tenancy.Tenant {
	e.t.Helper()
	t, err := tenancy.GetBySlug(context.Background(), e.db, slug)
	if err != nil {
		e.t.Fatalf("tenant %s: %v", slug, err)
	}
	return t
}

func (e *env) portalSettings(slug string) settings.Portal {
	e.t.Helper()
	p, err := settings.GetPortal(context.Background(), e.db, e.tenant(slug).ID)
	if err != nil {
		e.t.Fatalf("get portal: %v", err)
	}
	return p
}

func (e *env) catalog() *catalog.Service { return catalog.New(e.db, testSecret, true) }

// developers is the developer portal's own service, as the developer
// portal runs it (the tenant portal's decisions must reach its accounts).
func (e *env) developers() *developers.Service {
	return &developers.Service{DB: e.db, Catalog: e.catalog(), Mailer: e.sink, Secret: testSecret,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		PortalURL: func(t tenancy.Tenant) string { return devPortalURL(t.Slug) }}
}

func TestDeveloperPortalSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.signup("devp")
	page := b.get("/developer-portal")
	want(t, page, http.StatusOK, "developer portal page")
	for _, s := range []string{"http://devp.developers.test:8081", `id="portal-state">off`, "0 of 0 APIs published"} {
		if !strings.Contains(page.body, s) {
			t.Errorf("developer portal page lacks %q", s)
		}
	}

	for _, tc := range []struct {
		name, field, value, msg string
	}{
		{"colour", "accent_color", "red", "colour"},
		{"domain list", "allowed_email_domains", "example.com\n\nnot a domain", "line 2"},
		{"logo", "logo_url", "http://acme.example/logo.svg", "https://"},
		{"support email", "support_email", "nope", "email"},
		{"signup mode", "signup", "everyone", "approval"},
	} {
		t.Run("invalid "+tc.name, func(t *testing.T) {
			b.get("/developer-portal")
			v := portalValues()
			v.Set(tc.field, tc.value)
			p := b.post("/developer-portal", v)
			want(t, p, http.StatusUnprocessableEntity, "save "+tc.name)
			if got := fieldErr(p.body, tc.field); !strings.Contains(got, tc.msg) {
				t.Errorf("error next to %s = %q, want it to mention %q", tc.field, got, tc.msg)
			}
			if !strings.Contains(p.body, `value="Acme Developers"`) {
				t.Errorf("the form does not keep what was typed")
			}
			if got := e.portalSettings("devp"); got.Enabled || got.DisplayName != "" || got.AccentColor != "" {
				t.Errorf("an invalid form saved something: %+v", got)
			}
		})
	}

	b.get("/developer-portal")
	want(t, b.post("/developer-portal", portalValues()), http.StatusSeeOther, "save")
	got := e.portalSettings("devp")
	if !got.Enabled || got.Signup != settings.SignupApproval || got.DisplayName != "Acme Developers" || got.AccentColor != "#12ab9f" ||
		got.LogoURL != "https://acme.example/logo.svg" || got.SupportEmail != "api@acme.example" ||
		strings.Join(got.AllowedEmailDomains, ",") != "example.com,partner.example" {
		t.Fatalf("saved %+v", got)
	}
	page = b.get("/developer-portal")
	if !strings.Contains(page.body, "Developer portal saved.") || !strings.Contains(page.body, `id="portal-state">on`) ||
		!strings.Contains(page.body, "example.com\npartner.example</textarea>") {
		t.Errorf("the page does not show the saved portal")
	}

	// The old branding form still works, and changes only the branding.
	t.Run("old branding route", func(t *testing.T) {
		b.get("/settings")
		p := b.post("/settings/branding", url.Values{"portal_color": {"red"}})
		want(t, p, http.StatusUnprocessableEntity, "bad branding")
		if !strings.Contains(fieldErr(p.body, "accent_color"), "colour") {
			t.Errorf("no colour error next to the accent colour")
		}
		want(t, b.post("/settings/branding", url.Values{"portal_title": {"Renamed"}, "portal_color": {"#000000"},
			"portal_logo_url": {""}, "support_email": {"help@acme.example"}}), http.StatusSeeOther, "branding")
		got := e.portalSettings("devp")
		if got.DisplayName != "Renamed" || got.AccentColor != "#000000" || got.LogoURL != "" || got.SupportEmail != "help@acme.example" {
			t.Errorf("branding not saved: %+v", got)
		}
		if !got.Enabled || got.Signup != settings.SignupApproval || len(got.AllowedEmailDomains) != 2 {
			t.Errorf("the branding form changed other settings: %+v", got)
		}
	})

	t.Run("turn off", func(t *testing.T) {
		b.get("/developer-portal")
		v := portalValues()
		v.Del("enabled")
		want(t, b.post("/developer-portal", v), http.StatusSeeOther, "turn off")
		if e.portalSettings("devp").Enabled {
			t.Errorf("an unchecked box did not turn the portal off")
		}
	})

	t.Run("developer identity provider", func(t *testing.T) {
		b.get("/developer-portal")
		p := b.post("/developer-portal/oidc", url.Values{"oidc_issuer": {"nope"}, "oidc_client_id": {"portal"}, "oidc_client_secret": {"s3cret-value"}})
		want(t, p, http.StatusUnprocessableEntity, "bad issuer")
		if !strings.Contains(fieldErr(p.body, "oidc_issuer"), "issuer URL") {
			t.Errorf("no error next to the issuer")
		}
		if strings.Contains(p.body, "s3cret-value") {
			t.Errorf("the client secret is shown back")
		}
		want(t, b.post("/developer-portal/oidc", url.Values{"oidc_issuer": {"https://login.acme.example"}, "oidc_client_id": {"portal"},
			"oidc_client_secret": {"s3cret-value"}}), http.StatusSeeOther, "save idp")
		page := b.get("/developer-portal").body
		if !strings.Contains(page, "A secret is stored") || strings.Contains(page, "s3cret-value") ||
			!strings.Contains(page, `value="https://login.acme.example"`) {
			t.Errorf("the page does not show the stored IdP (and only the fact that a secret is stored)")
		}
		o, ok, err := settings.DeveloperOIDC(context.Background(), e.db, testSecret, e.tenant("devp").ID)
		if err != nil || !ok || o.ClientSecret != "s3cret-value" || o.ClientID != "portal" {
			t.Errorf("developer IdP = %+v, %v, %v", o, ok, err)
		}
		// An empty secret keeps the stored one.
		want(t, b.post("/developer-portal/oidc", url.Values{"oidc_issuer": {"https://login.acme.example"}, "oidc_client_id": {"portal2"}}),
			http.StatusSeeOther, "save idp again")
		if o, _, _ := settings.DeveloperOIDC(context.Background(), e.db, testSecret, e.tenant("devp").ID); o.ClientSecret != "s3cret-value" {
			t.Errorf("saving without a secret lost it")
		}
	})

	t.Run("portal domain", func(t *testing.T) {
		b.get("/settings")
		p := b.post("/settings/domains", url.Values{"domain": {"acme.developers.test"}, "purpose": {"portal"}})
		want(t, p, http.StatusUnprocessableEntity, "platform portal domain")
		if !strings.Contains(fieldErr(p.body, "domain"), "platform") {
			t.Errorf("no reason next to the domain")
		}
		want(t, b.post("/settings/domains", url.Values{"domain": {"developers.acme.example"}, "purpose": {"portal"}}), http.StatusSeeOther, "add")
		want(t, b.post("/settings/domains", url.Values{"domain": {"api.acme.example"}}), http.StatusSeeOther, "add gateway")
		ds, err := settings.ListDomains(context.Background(), e.db, e.tenant("devp").ID)
		if err != nil || len(ds) != 2 || ds[0].Purpose != settings.PurposePortal || ds[1].Purpose != settings.PurposeGateway {
			t.Fatalf("domains %+v, %v", ds, err)
		}
		b.get("/settings") // shows the flash of the last addition
		page := b.get("/developer-portal").body
		if !strings.Contains(page, "developers.acme.example") || strings.Contains(page, "api.acme.example") {
			t.Errorf("the developer portal page should list its own domains only")
		}
	})
}

func TestPublishAPIsAndPlans(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.signup("pub")
	s := b.seed("http://127.0.0.1:9")
	if strings.Contains(b.get("/apis").body, ">published<") || strings.Contains(b.get("/plans").body, ">public<") {
		t.Fatalf("new APIs and plans are published")
	}
	b.get("/apis/" + s.api)
	want(t, b.post("/apis/"+s.api, url.Values{"name": {"Orders"}, "slug": {"orders"}, "base_path": {"/orders"},
		"upstream_id": {s.upstream}, "auth": {"key"}, "strip_base_path": {"on"}, "timeout_ms": {"0"}, "published": {"on"}}),
		http.StatusSeeOther, "publish")
	a, err := e.catalog().GetAPI(context.Background(), e.tenant("pub").ID, s.api)
	if err != nil || !a.Published {
		t.Fatalf("API not published: %+v %v", a, err)
	}
	if !strings.Contains(b.get("/apis").body, ">published<") {
		t.Errorf("no published badge in the API list")
	}
	if !strings.Contains(b.get("/apis/"+s.api).body, `name="published" value="on" checked`) {
		t.Errorf("the API form does not show it published")
	}

	b.get("/plans/" + s.plan)
	want(t, b.post("/plans/"+s.plan, url.Values{"name": {"Starter"}, "rate_limit_requests": {"100"}, "rate_limit_per_seconds": {"1"},
		"quota_requests": {"0"}, "quota_period": {"month"}, "api_ids": {s.api}, "public": {"on"}, "approval_required": {"on"}}),
		http.StatusSeeOther, "make public")
	pl, err := e.catalog().GetPlan(context.Background(), e.tenant("pub").ID, s.plan)
	if err != nil || !pl.Public || !pl.ApprovalRequired {
		t.Fatalf("plan %+v %v", pl, err)
	}
	list := b.get("/plans").body
	if !strings.Contains(list, ">public<") || !strings.Contains(list, ">approval required<") {
		t.Errorf("no public / approval badges in the plan list")
	}
	if !strings.Contains(b.get("/developer-portal").body, "1 of 1 APIs published") {
		t.Errorf("the developer portal page does not count the published API")
	}
	// Unchecking unpublishes.
	want(t, b.post("/apis/"+s.api, url.Values{"name": {"Orders"}, "slug": {"orders"}, "base_path": {"/orders"},
		"upstream_id": {s.upstream}, "auth": {"key"}, "strip_base_path": {"on"}, "timeout_ms": {"0"}}), http.StatusSeeOther, "unpublish")
	if a, _ := e.catalog().GetAPI(context.Background(), e.tenant("pub").ID, s.api); a.Published {
		t.Errorf("API still published")
	}
}

// devSeed is a developer and a subscription that wait for the tenant.
type devSeed struct {
	developer, consumer, app, subscription string
}

// seedDeveloper turns the tenant's portal on with approval signup, makes
// the seeded plan public with approval required, signs a developer up and
// has its app ask for a subscription to the plan.
func (e *env) seedDeveloper(b *browser, slug string, s seeded, email string) devSeed {
	t := e.t
	t.Helper()
	ctx := context.Background()
	b.get("/developer-portal")
	v := portalValues()
	v.Set("allowed_email_domains", "")
	want(t, b.post("/developer-portal", v), http.StatusSeeOther, "portal on")
	b.get("/plans/" + s.plan)
	want(t, b.post("/plans/"+s.plan, url.Values{"name": {"Starter"}, "rate_limit_requests": {"100"}, "rate_limit_per_seconds": {"1"},
		"quota_requests": {"0"}, "quota_period": {"month"}, "api_ids": {s.api}, "public": {"on"}, "approval_required": {"on"}}),
		http.StatusSeeOther, "plan public")
	ten := e.tenant(slug)
	devs := e.developers()
	if err := devs.Signup(ctx, ten, developers.SignupInput{Email: email, Password: "developer password", Name: "Dev " + email}, "192.0.2.1"); err != nil {
		t.Fatalf("signup: %v", err)
	}
	list, _, err := devs.List(ctx, ten.ID, developers.StatusPending, store.Page{})
	if err != nil {
		t.Fatalf("list developers: %v", err)
	}
	var d devSeed
	for _, dev := range list {
		if dev.Email == email {
			d.developer, d.consumer = dev.ID, dev.ConsumerID
		}
	}
	if d.developer == "" {
		t.Fatalf("no pending developer %s", email)
	}
	who := audit.Actor{TenantID: ten.ID, Name: "developer:" + d.developer}
	app, err := e.catalog().CreateApp(ctx, who, d.consumer, catalog.AppInput{Name: "Checkout app"})
	if err != nil {
		t.Fatalf("create app: %v", err)
	}
	sub, err := e.catalog().Subscribe(ctx, who, d.consumer, catalog.SubscribeInput{AppID: app.ID, PlanID: s.plan})
	if err != nil || sub.Subscription.Status != catalog.SubPending {
		t.Fatalf("subscribe: %+v %v", sub, err)
	}
	d.app, d.subscription = app.ID, sub.Subscription.ID
	return d
}

func TestApprovalQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	b := e.signup("queue")
	s := b.seed("http://127.0.0.1:9")
	if got := b.get("/approvals").body; !strings.Contains(got, "Nobody waits") || strings.Contains(got, `id="pending-count"`) {
		t.Fatalf("the empty queue is not shown as empty")
	}
	d := e.seedDeveloper(b, "queue", s, "ada@example.com")
	other := e.seedDeveloper(b, "queue", s, "bob@example.com")

	page := b.get("/approvals")
	want(t, page, http.StatusOK, "approvals")
	for _, s := range []string{"ada@example.com", "bob@example.com", "Checkout app", "Starter", "/approvals/developers/" + d.developer + "/approve",
		"/approvals/subscriptions/" + d.subscription + "/approve", `id="pending-count"><span class="sr-only">(</span>4<`} {
		if !strings.Contains(page.body, s) {
			t.Errorf("approval queue lacks %q", s)
		}
	}
	// The badge is on every page.
	if !strings.Contains(b.get("/dashboard").body, `id="pending-count"`) {
		t.Errorf("no pending badge in the navigation")
	}

	want(t, b.post("/approvals/developers/"+d.developer+"/approve", nil), http.StatusSeeOther, "approve developer")
	if dev, err := e.developers().Get(ctx, e.tenant("queue").ID, d.developer); err != nil || dev.Status != developers.StatusActive {
		t.Errorf("developer after approval: %+v %v", dev, err)
	}
	if m, ok := e.sink.Last("ada@example.com"); !ok || !strings.Contains(m.Subject, "approved") || !strings.Contains(m.Body, "developers.test") {
		t.Errorf("no approval mail to the developer: %+v", m)
	}
	if !strings.Contains(b.get("/approvals").body, "is approved") {
		t.Errorf("no flash after approval")
	}
	want(t, b.post("/approvals/developers/"+other.developer+"/reject", nil), http.StatusSeeOther, "reject developer")
	if m, ok := e.sink.Last("bob@example.com"); !ok || !strings.Contains(m.Subject, "not approved") {
		t.Errorf("no rejection mail: %+v", m)
	}
	// A decision is made once.
	want(t, b.post("/approvals/developers/"+d.developer+"/reject", nil), http.StatusSeeOther, "decide again")
	if got := b.get("/approvals").body; !strings.Contains(got, "Nothing changed") {
		t.Errorf("a second decision is not explained")
	}
	if dev, _ := e.developers().Get(ctx, e.tenant("queue").ID, d.developer); dev.Status != developers.StatusActive {
		t.Errorf("a second decision changed the developer: %s", dev.Status)
	}

	want(t, b.post("/approvals/subscriptions/"+d.subscription+"/approve", nil), http.StatusSeeOther, "approve subscription")
	sub, err := e.catalog().GetSubscription(ctx, e.tenant("queue").ID, "", d.subscription)
	if err != nil || sub.Status != catalog.SubActive {
		t.Errorf("subscription after approval: %+v %v", sub, err)
	}
	if m, ok := e.sink.Last("ada@example.com"); !ok || !strings.Contains(m.Subject, "subscription is approved") || !strings.Contains(m.Body, "Starter") {
		t.Errorf("no subscription approval mail: %+v", m)
	}
	want(t, b.post("/approvals/subscriptions/"+other.subscription+"/reject", nil), http.StatusSeeOther, "reject subscription")
	if sub, _ := e.catalog().GetSubscription(ctx, e.tenant("queue").ID, "", other.subscription); sub.Status != catalog.SubRejected {
		t.Errorf("rejected subscription is %s", sub.Status)
	}
	page = b.get("/approvals")
	if strings.Contains(page.body, `id="pending-count"`) || strings.Contains(page.body, "ada@example.com") {
		t.Errorf("decided items still wait")
	}

	// The developer's consumer page: its account, apps, subscriptions.
	cp := b.get("/consumers/" + d.consumer).body
	for _, s := range []string{"badge-portal", "account approved", "Checkout app", "sub-active", "/subscriptions/" + d.subscription + "/suspend",
		"/subscriptions/" + d.subscription + "/cancel"} {
		if !strings.Contains(cp, s) {
			t.Errorf("consumer page lacks %q", s)
		}
	}
	if !strings.Contains(b.get("/consumers").body, ">developer<") {
		t.Errorf("the consumer list does not mark developers")
	}

	// Invitations.
	b.get("/approvals")
	p := b.post("/approvals/invite", url.Values{"email": {"not-an-address"}})
	want(t, p, http.StatusUnprocessableEntity, "bad invite")
	if fieldErr(p.body, "email") == "" {
		t.Errorf("no error next to the email")
	}
	want(t, b.post("/approvals/invite", url.Values{"email": {"Carol@Example.com"}}), http.StatusSeeOther, "invite")
	if m, ok := e.sink.Last("carol@example.com"); !ok || !strings.Contains(m.Body, "/signup?invite=") {
		t.Errorf("no invitation mail: %+v", m)
	}
}

func TestSubscriptionActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	b := e.signup("subs")
	s := b.seed("http://127.0.0.1:9")
	d := e.seedDeveloper(b, "subs", s, "ada@example.com")
	ten := e.tenant("subs")
	b.get("/approvals")
	want(t, b.post("/approvals/subscriptions/"+d.subscription+"/approve", nil), http.StatusSeeOther, "approve")
	key, secret, err := e.catalog().CreateSubscriptionKey(ctx, audit.Actor{TenantID: ten.ID, Name: "developer"}, d.consumer, d.subscription)
	if err != nil || secret == "" {
		t.Fatalf("subscription key: %v", err)
	}
	page := b.get("/consumers/" + d.consumer).body
	if !strings.Contains(page, "Checkout app <span class=\"muted small\" title=\""+d.subscription) {
		t.Errorf("the key does not show its subscription")
	}
	status := func() string {
		sub, err := e.catalog().GetSubscription(ctx, ten.ID, "", d.subscription)
		if err != nil {
			t.Fatal(err)
		}
		return sub.Status
	}
	for _, step := range []struct{ action, status string }{
		{"suspend", catalog.SubSuspended}, {"resume", catalog.SubActive}, {"cancel", catalog.SubCanceled},
	} {
		before := outboxRows(t, e, key.ID, keyStatusAfter(step.status))
		b.get("/consumers/" + d.consumer)
		p := b.post("/subscriptions/"+d.subscription+"/"+step.action, nil)
		want(t, p, http.StatusSeeOther, step.action)
		if p.loc != "/consumers/"+d.consumer {
			t.Errorf("%s went to %q", step.action, p.loc)
		}
		if got := status(); got != step.status {
			t.Errorf("after %s the subscription is %s", step.action, got)
		}
		if n := outboxRows(t, e, key.ID, keyStatusAfter(step.status)); n != before+1 {
			t.Errorf("after %s no key record with status %s was queued", step.action, keyStatusAfter(step.status))
		}
	}
	// A canceled subscription stays canceled.
	b.get("/consumers/" + d.consumer)
	want(t, b.post("/subscriptions/"+d.subscription+"/suspend", nil), http.StatusSeeOther, "suspend canceled")
	if !strings.Contains(b.get("/consumers/"+d.consumer).body, "Nothing changed") || status() != catalog.SubCanceled {
		t.Errorf("a canceled subscription was suspended")
	}
}

// keyStatusAfter is the status of a key record whose subscription is in
// status (catalog.effectiveRecord).
func keyStatusAfter(sub string) string {
	switch sub {
	case catalog.SubSuspended:
		return "past_due"
	case catalog.SubCanceled:
		return "canceled"
	}
	return "active"
}

// outboxRows counts the key records queued for the workers for a key with status.
func outboxRows(t *testing.T, e *env, keyID, status string) int {
	t.Helper()
	var n int
	if err := e.db.QueryRow(context.Background(), `SELECT count(*) FROM key_outbox WHERE record->>'id' = $1
		AND record->>'status' = $2`, keyID, status).Scan(&n); err != nil {
		t.Fatalf("read key outbox: %v", err)
	}
	return n
}

func TestSuspendConsumer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.signup("susp")
	s := b.seed("http://127.0.0.1:9")
	if outboxRows(t, e, s.key, "suspended") != 0 {
		t.Fatalf("a key record is suspended before anything happened")
	}
	b.get("/consumers")
	p := b.post("/consumers/"+s.consumer+"/suspend", url.Values{"from": {"list"}})
	want(t, p, http.StatusSeeOther, "suspend")
	if p.loc != "/consumers" {
		t.Errorf("suspending from the list went to %q", p.loc)
	}
	if outboxRows(t, e, s.key, "suspended") != 1 {
		t.Errorf("suspending did not queue the key's record as suspended")
	}
	list := b.get("/consumers").body
	if !strings.Contains(list, "is suspended") || !strings.Contains(list, "consumer-suspended") ||
		!strings.Contains(list, "/consumers/"+s.consumer+"/reinstate") {
		t.Errorf("the list does not show the suspension")
	}
	// Editing the name keeps the suspension.
	b.get("/consumers/" + s.consumer)
	want(t, b.post("/consumers/"+s.consumer, url.Values{"name": {"Renamed"}, "email": {"dev@partner.example"}}), http.StatusSeeOther, "rename")
	c, err := e.catalog().GetConsumer(context.Background(), e.tenant("susp").ID, s.consumer)
	if err != nil || c.Status != catalog.ConsumerSuspended || c.Name != "Renamed" {
		t.Errorf("after rename: %+v %v", c, err)
	}
	page := b.get("/consumers/" + s.consumer).body
	if !strings.Contains(page, `id="consumer-status">suspended`) {
		t.Errorf("the consumer page does not show the suspension")
	}
	activeBefore := outboxRows(t, e, s.key, "active")
	want(t, b.post("/consumers/"+s.consumer+"/reinstate", nil), http.StatusSeeOther, "reinstate")
	if outboxRows(t, e, s.key, "active") != activeBefore+1 {
		t.Errorf("reinstating did not queue the key's record as active")
	}
	if c, _ := e.catalog().GetConsumer(context.Background(), e.tenant("susp").ID, s.consumer); c.Status != catalog.ConsumerActive {
		t.Errorf("consumer is %s after reinstating", c.Status)
	}
}

func TestOtherTenantsDevelopersAreNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	a := e.signup("dev-a")
	s := a.seed("http://127.0.0.1:9")
	d := e.seedDeveloper(a, "dev-a", s, "ada@example.com")
	b := e.signup("dev-b")
	for _, path := range devMutations(s, d) {
		if !idRE.MatchString(path) {
			continue
		}
		t.Run(path, func(t *testing.T) {
			b.get("/dashboard")
			want(t, b.post(path, nil), http.StatusNotFound, "tenant b POST "+path)
		})
	}
	if page := b.get("/approvals").body; strings.Contains(page, "ada@example.com") || strings.Contains(page, `id="pending-count"`) {
		t.Errorf("tenant b sees tenant a's queue")
	}
	ctx := context.Background()
	if dev, _ := e.developers().Get(ctx, e.tenant("dev-a").ID, d.developer); dev.Status != developers.StatusPending {
		t.Errorf("tenant b decided tenant a's developer")
	}
	if sub, _ := e.catalog().GetSubscription(ctx, e.tenant("dev-a").ID, "", d.subscription); sub.Status != catalog.SubPending {
		t.Errorf("tenant b changed tenant a's subscription")
	}
	if c, _ := e.catalog().GetConsumer(ctx, e.tenant("dev-a").ID, s.consumer); c.Status != catalog.ConsumerActive {
		t.Errorf("tenant b suspended tenant a's consumer")
	}
}

// devMutations lists the mutating routes of the developer portal controls.
func devMutations(s seeded, d devSeed) []string {
	return []string{
		"/developer-portal", "/developer-portal/oidc", "/approvals/invite",
		"/approvals/developers/" + d.developer + "/approve", "/approvals/developers/" + d.developer + "/reject",
		"/approvals/subscriptions/" + d.subscription + "/approve", "/approvals/subscriptions/" + d.subscription + "/reject",
		"/consumers/" + s.consumer + "/suspend", "/consumers/" + s.consumer + "/reinstate",
		"/subscriptions/" + d.subscription + "/suspend", "/subscriptions/" + d.subscription + "/resume",
		"/subscriptions/" + d.subscription + "/cancel",
	}
}
