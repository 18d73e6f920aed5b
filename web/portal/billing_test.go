package portal_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/billing/metering"
	"github.com/tollgate/tollgate/billing/stripetest"
	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/web/portal"
)

// portalBilling is the harness's billing back end: the zero value (billing
// not wired) unless the test asked for one.
func (o envOpts) portalBilling(db *pgxpool.Pool) portal.Billing {
	if o.billing == nil {
		return portal.Billing{}
	}
	return o.billing(db)
}

// billingFixture is billing over the env's database with stripe-mock
// behind a recorder, and the metering producer the page repairs with.
type billingFixture struct {
	bill *billing.Service
	rec  *stripetest.Recorder
	cat  *catalog.Service
}

func newBillingEnv(t *testing.T) (*env, *billingFixture) {
	t.Helper()
	bf := &billingFixture{}
	e := newEnv(t, envOpts{billing: func(db *pgxpool.Pool) portal.Billing {
		client, rec := stripetest.New(t)
		cat := catalog.New(db, testSecret, true)
		b, err := billing.New(billing.Config{WebhookSecret: "whsec_portal"}, db, cat, client, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		prod, err := metering.NewProducer(metering.ProducerOptions{DB: db, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		bf.bill, bf.rec, bf.cat = b, rec, cat
		return portal.Billing{Service: b, Usage: prod, Reports: metering.Reports{DB: db}}
	}})
	return e, bf
}

func (bf *billingFixture) apply(t *testing.T, db *pgxpool.Pool, who audit.Actor, subID string, ch catalog.BillingChange) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := bf.cat.ApplyBilling(ctx, tx, who, subID, ch); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// seed gives the tenant of who a priced plan with a per-request price,
// synced to Stripe; a developer's subscription to it paid through Checkout
// and then past due (an open invoice beside a paid one), and 40 requests
// served under its key ten minutes ago, never reported. The tenant must be
// connected.
func (bf *billingFixture) seed(t *testing.T, db *pgxpool.Pool, who audit.Actor) catalog.Subscription {
	t.Helper()
	ctx := context.Background()
	// A priced plan with a per-request price, synced to Stripe; a developer
	// subscribes and pays through Checkout (customer, plan version).
	plan, err := bf.cat.CreatePlan(ctx, who, catalog.PlanInput{Name: "Metered", Public: true,
		Price: &catalog.Price{AmountCents: 1900, Currency: "usd", Interval: "month", PerRequestDecimal: "0.05"}})
	if err != nil {
		t.Fatal(err)
	}
	runner := &billing.Runner{Billing: bf.bill, SweepEvery: -1}
	if _, err := runner.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := runner.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	cons, err := bf.cat.CreateConsumer(ctx, who, catalog.ConsumerInput{Name: "Ann", Email: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	app, err := bf.cat.CreateApp(ctx, who, cons.ID, catalog.AppInput{Name: "Ann's app"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := bf.cat.Subscribe(ctx, who, cons.ID, catalog.SubscribeInput{AppID: app.ID, PlanID: plan.ID})
	if err != nil {
		t.Fatal(err)
	}
	sub := out.Subscription
	if _, err := bf.bill.Checkout(ctx, who.TenantID, sub.ID, "https://x.example/ok", "https://x.example/no"); err != nil {
		t.Fatal(err)
	}
	bf.apply(t, db, who, sub.ID, catalog.BillingChange{Status: catalog.SubActive, StripeSubscriptionID: "sub_page",
		StripeStatus: "active"})
	key, _, err := bf.cat.CreateSubscriptionKey(ctx, who, cons.ID, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The renewal failed: past due with a grace period, an open invoice.
	grace := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	bf.apply(t, db, who, sub.ID, catalog.BillingChange{Status: catalog.SubPastDue, StripeStatus: "past_due", GraceUntil: &grace})
	for _, in := range []struct {
		id, status string
		paid       int64
	}{{"in_paid", "paid", 1900}, {"in_failed", "open", 0}} {
		if _, err := db.Exec(ctx, `INSERT INTO invoices (stripe_invoice_id, tenant_id, subscription_id, status, currency,
			amount_due, amount_paid, hosted_invoice_url, created) VALUES ($1, $2, $3, $4, 'usd', 1900, $5, 'https://invoice.stripe.com/i/' || $1, now())`,
			in.id, who.TenantID, sub.ID, in.status, in.paid); err != nil {
			t.Fatal(err)
		}
	}
	// 40 requests served ten minutes ago, never reported.
	minute := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Minute)
	if _, err := db.Exec(ctx, `INSERT INTO usage_minutes (tenant_id, minute, api_id, consumer_id, key_id, plan_id,
		status_class, requests, bytes_in, bytes_out, latency_us, latency_hist)
		VALUES ($1, $2, '', $3, $4, $5, 2, 40, 0, 0, 0, '{}')`, who.TenantID, minute, cons.ID, key.ID, plan.ID); err != nil {
		t.Fatal(err)
	}
	return sub
}

// TestBillingPage drives the tenant's billing page: connecting a Stripe
// account (a bad id is refused next to its field), revenue, subscribers per
// plan and failed payments from the recorded invoices, usage served but
// not reported (repaired into pending meter reports) and refused reports
// (sent again), the subscription check against stripe-mock (a past-due
// subscription Stripe calls active) and its repair. Viewers read it and
// change nothing; another tenant's subscription is not found.
func TestBillingPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, bf := newBillingEnv(t)
	owner := e.signup("billco")
	ten, err := tenancy.GetBySlug(ctx, e.db, "billco")
	if err != nil {
		t.Fatal(err)
	}
	who := audit.Actor{TenantID: ten.ID, Name: "test"}

	p := owner.get("/billing")
	want(t, p, http.StatusOK, "billing page")
	for _, s := range []string{`href="/billing" class="active"`, `id="stripe-state">not connected<`, `id="stripe-connect-form"`,
		`id="stripe-onboard-form"`, "No paid invoices", `id="usage-drift-state">in step<`, `id="check-subscriptions"`} {
		if !strings.Contains(p.body, s) {
			t.Errorf("billing page lacks %s", s)
		}
	}
	// Connect: a malformed id is refused next to the field.
	p = owner.post("/billing/stripe", url.Values{"account_id": {"nope"}, "grace_hours": {"2"}})
	want(t, p, http.StatusUnprocessableEntity, "bad account id")
	if fieldErr(p.body, "account_id") == "" {
		t.Errorf("no error next to account_id")
	}
	want(t, owner.post("/billing/stripe", url.Values{"account_id": {"acct_billco"}, "grace_hours": {"2"}}), http.StatusSeeOther, "connect")
	p = owner.get("/billing")
	for _, s := range []string{`id="stripe-state">connected<`, `<code id="stripe-account">acct_billco</code>`, `id="grace-hours">2 hours<`} {
		if !strings.Contains(p.body, s) {
			t.Errorf("after connecting, the page lacks %s", s)
		}
	}

	sub := bf.seed(t, e.db, who)
	p = owner.get("/billing")
	for _, s := range []string{`data-currency="USD"`, "19.00 USD", `data-plan="Metered"`, `data-invoice="in_failed"`,
		"https://invoice.stripe.com/i/in_failed", "ann@example.com", "work until", `id="usage-drift-state">1 differ<`,
		`class="num unreported">40<`, `id="usage-repair-form"`, "Report the 40 missing requests"} {
		if !strings.Contains(p.body, s) {
			t.Errorf("billing page lacks %s", s)
		}
	}
	if strings.Contains(p.body, `data-invoice="in_paid"`) {
		t.Errorf("a paid invoice is listed as failed")
	}

	// Viewers read, and change nothing.
	viewer := e.invite(owner, "viewer@billco.example", accounts.RoleViewer)
	vp := viewer.get("/billing")
	want(t, vp, http.StatusOK, "viewer billing page")
	if strings.Contains(vp.body, `id="stripe-connect-form"`) || strings.Contains(vp.body, `id="usage-repair-form"`) ||
		!strings.Contains(vp.body, `data-invoice="in_failed"`) {
		t.Errorf("viewer's billing page shows forms or lacks figures")
	}
	for _, path := range []string{"/billing/stripe", "/billing/stripe/onboarding", "/billing/usage/repair", "/billing/usage/requeue",
		"/billing/drift/subscriptions/" + sub.ID + "/repair"} {
		if got := viewer.post(path, url.Values{"account_id": {"acct_viewer"}}); got.status != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d", path, got.status)
		}
	}
	// A post without the session's token is refused.
	if got := owner.post("/billing/usage/repair", url.Values{"csrf_token": {"forged"}}); got.status != http.StatusForbidden {
		t.Errorf("forged repair: %d", got.status)
	}

	// Usage repair: the missing report is written, pending.
	owner.get("/billing")
	p = owner.post("/billing/usage/repair", nil)
	want(t, p, http.StatusSeeOther, "usage repair")
	var pending, value int64
	if err := e.db.QueryRow(ctx, `SELECT count(*), coalesce(sum(value), 0) FROM meter_reports WHERE tenant_id = $1 AND status = 'pending'`,
		ten.ID).Scan(&pending, &value); err != nil {
		t.Fatal(err)
	}
	if pending != 1 || value != 40 {
		t.Fatalf("after repair: %d pending reports of %d requests", pending, value)
	}
	p = owner.get("/billing")
	if !strings.Contains(p.body, "Usage reports repaired: 1 written (40 requests)") || !strings.Contains(p.body, `id="usage-drift-state">in step<`) {
		t.Errorf("after repair the page does not say so")
	}
	// Stripe refused it: shown, and sent again on request.
	if _, err := e.db.Exec(ctx, `UPDATE meter_reports SET status = 'refused', last_error = 'No such customer' WHERE tenant_id = $1`, ten.ID); err != nil {
		t.Fatal(err)
	}
	p = owner.get("/billing")
	if !strings.Contains(p.body, "Stripe: No such customer") || !strings.Contains(p.body, `id="usage-requeue-form"`) {
		t.Errorf("refused report not shown")
	}
	want(t, owner.post("/billing/usage/requeue", nil), http.StatusSeeOther, "requeue")
	if err := e.db.QueryRow(ctx, `SELECT count(*) FROM meter_reports WHERE tenant_id = $1 AND status = 'pending'`, ten.ID).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending != 1 {
		t.Errorf("after requeue: %d pending", pending)
	}

	// The subscription check: stripe-mock answers "active" for sub_page,
	// which Tollgate holds past due.
	bf.rec.Reset()
	p = owner.get("/billing?check=subscriptions")
	want(t, p, http.StatusOK, "check subscriptions")
	if got := bf.rec.Find(http.MethodGet, "/v1/subscriptions/sub_page"); len(got) != 1 || got[0].Account != "acct_billco" {
		t.Errorf("Stripe reads: %+v", got)
	}
	for _, s := range []string{`data-subscription="` + sub.ID + `"`, "Stripe says active", "Apply Stripe&#39;s state",
		`/billing/drift/subscriptions/` + sub.ID + `/repair`} {
		if !strings.Contains(p.body, s) {
			t.Errorf("check lacks %s", s)
		}
	}
	p = owner.post("/billing/drift/subscriptions/"+sub.ID+"/repair", nil)
	want(t, p, http.StatusSeeOther, "repair subscription")
	if b, err := bf.cat.GetBillingSubscription(ctx, e.db, ten.ID, sub.ID, ""); err != nil || b.Status != catalog.SubActive {
		t.Errorf("after repair: %s %v", b.Status, err)
	}
	if !strings.Contains(owner.get(p.loc).body, "is now active, as in Stripe") {
		t.Errorf("repair flash missing")
	}
	// Another tenant's subscription is not found.
	other := e.signup("otherbill")
	other.get("/billing")
	want(t, other.post("/billing/stripe", url.Values{"account_id": {"acct_otherbill"}}), http.StatusSeeOther, "connect other")
	other.get("/billing")
	want(t, other.post("/billing/drift/subscriptions/"+sub.ID+"/repair", nil), http.StatusNotFound, "repair another tenant's")
}

// TestBillingPageOff: without billing wired in, the page says so and the
// navigation still leads there; its posts change nothing.
func TestBillingPageOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("nobill")
	p := owner.get("/billing")
	want(t, p, http.StatusOK, "billing page")
	if !strings.Contains(p.body, `id="billing-unavailable"`) || strings.Contains(p.body, `id="stripe-connect-form"`) {
		t.Errorf("billing off: %s", p.body)
	}
	if !strings.Contains(owner.get("/dashboard").body, `href="/billing"`) {
		t.Errorf("no Billing in the navigation")
	}
	want(t, owner.post("/billing/stripe", url.Values{"account_id": {"acct_x"}}), http.StatusSeeOther, "connect without billing")
}
