package devportal_test

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
	"github.com/tollgate/tollgate/billing/stripetest"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/web/devportal"
)

// portalBilling is the harness's Billing: nil (billing off) unless the
// test asked for one.
func (o envOpts) portalBilling(db *pgxpool.Pool, cat *catalog.Service) devportal.Billing {
	if o.billing == nil {
		return nil
	}
	return o.billing(db, cat)
}

// billingEnv is a portal env with billing on, over stripe-mock behind a
// recorder: acme is connected to acct_acme with its priced plan synced to
// Stripe; globex has not connected an account.
type billingEnv struct {
	*env
	bill *billing.Service
	rec  *stripetest.Recorder
}

func newBillingEnv(t *testing.T) *billingEnv {
	t.Helper()
	be := &billingEnv{}
	be.env = newEnv(t, envOpts{billing: func(db *pgxpool.Pool, cat *catalog.Service) devportal.Billing {
		client, rec := stripetest.New(t)
		b, err := billing.New(billing.Config{WebhookSecret: "whsec_devportal"}, db, cat, client,
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		be.bill, be.rec = b, rec
		return b
	}})
	ctx := context.Background()
	f := be.tenants["acme"]
	if _, err := be.bill.Connect(ctx, f.Actor, billing.ConnectInput{AccountID: "acct_acme"}); err != nil {
		t.Fatal(err)
	}
	runner := &billing.Runner{Billing: be.bill, SweepEvery: -1}
	if _, err := runner.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := runner.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	be.rec.Reset()
	return be
}

// bill applies ch to an acme subscription as Stripe's webhooks would.
func (be *billingEnv) billed(slug, subID string, ch catalog.BillingChange) {
	be.t.Helper()
	ctx := context.Background()
	tx, err := be.db.Begin(ctx)
	if err != nil {
		be.t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	who := audit.Actor{TenantID: be.tenants[slug].Tenant.ID, Name: "stripe"}
	if _, err := be.cat.ApplyBilling(ctx, tx, who, subID, ch); err != nil {
		be.t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		be.t.Fatal(err)
	}
}

// invoice records an invoice of a subscription as the invoice webhooks do.
func (be *billingEnv) invoice(slug, id, subID, status string, amount int64, created time.Time) {
	be.t.Helper()
	if _, err := be.db.Exec(context.Background(), `INSERT INTO invoices (stripe_invoice_id, tenant_id, subscription_id,
			status, currency, amount_due, amount_paid, period_start, period_end, hosted_invoice_url, created)
		VALUES ($1, $2, $3, $4, 'usd', $5::bigint, CASE WHEN $4 = 'paid' THEN $5::bigint ELSE 0 END, $6, $6::timestamptz + interval '1 month',
			'https://invoice.stripe.com/i/' || $1, $6)`,
		id, be.tenants[slug].Tenant.ID, subID, status, amount, created); err != nil {
		be.t.Fatal(err)
	}
}

// TestAPIBilling: subscribing to a priced plan answers a Stripe Checkout
// URL made on the tenant's account with the subscription as
// client_reference_id and return URLs on the portal; once paid, the
// developer reads the invoices, the estimate of the next one and a
// Customer Portal link; canceling cancels the Stripe subscription. A
// portal whose tenant has no Stripe account answers checkout_url null and
// says why. Another developer's subscription, or another portal's, is 404
// for invoices, estimate and billing.
func TestAPIBilling(t *testing.T) {
	t.Parallel()
	be := newBillingEnv(t)
	f := be.tenants["acme"]
	c := be.apiSignupVerified("acme", "payer@example.com")
	app := c.api("POST", "/api/apps", map[string]string{"name": "Paid app"}).must(201).obj()
	appID := jsonStr(app, "id")
	sub := c.api("POST", "/api/apps/"+appID+"/subscriptions", map[string]string{"plan_id": f.PricedPlan.ID}).must(201).obj()
	subID := jsonStr(sub, "id")
	checkout := jsonStr(sub, "checkout_url")
	if jsonStr(sub, "status") != "payment_required" || !strings.HasPrefix(checkout, "https://checkout.stripe.com/") ||
		sub["key"] != nil || !strings.Contains(jsonStr(sub, "detail"), "checkout_url") {
		t.Fatalf("subscribe to a priced plan: %v", sub)
	}
	sessions := be.rec.Find(http.MethodPost, "/v1/checkout/sessions")
	if len(sessions) != 1 {
		t.Fatalf("checkout sessions: %+v", sessions)
	}
	base := "http://" + host("acme") + ":" + be.port() + "/apps/" + appID
	if s := sessions[0]; s.Account != "acct_acme" || s.Form.Get("client_reference_id") != subID ||
		s.Form.Get("success_url") != base+"?checkout=success" || s.Form.Get("cancel_url") != base+"?checkout=canceled" ||
		!strings.HasPrefix(s.IdempotencyKey, "tg:") {
		t.Errorf("checkout session request: %+v", s)
	}
	if got := jsonStr(c.api("GET", "/api/subscriptions/"+subID, nil).must(200).obj(), "checkout_url"); got == "" {
		t.Error("GET of a payment_required subscription has no checkout_url")
	}
	bl := c.api("GET", "/api/subscriptions/"+subID+"/billing", nil).must(200).obj()
	if jsonStr(bl, "action") != "checkout" || !strings.HasPrefix(jsonStr(bl, "url"), "https://checkout.stripe.com/") ||
		jsonStr(bl, "page_url") != "http://"+host("acme")+":"+be.port()+"/billing/"+subID {
		t.Errorf("billing of a payment_required subscription: %v", bl)
	}
	if items := c.api("GET", "/api/subscriptions/"+subID+"/invoices", nil).must(200).items(); len(items) != 0 {
		t.Errorf("invoices before paying: %v", items)
	}

	// Paid (checkout.session.completed, then the period from
	// customer.subscription.updated): invoices, estimate, Customer Portal.
	start := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Second)
	end := start.AddDate(0, 1, 0)
	be.billed("acme", subID, catalog.BillingChange{Status: catalog.SubActive, StripeSubscriptionID: "sub_dev1",
		StripeStatus: "active", CurrentPeriodStart: &start, CurrentPeriodEnd: &end})
	be.invoice("acme", "in_dev1", subID, "paid", 1900, start)
	invs := c.api("GET", "/api/subscriptions/"+subID+"/invoices", nil).must(200).items()
	if len(invs) != 1 || jsonStr(invs[0], "id") != "in_dev1" || invs[0]["amount_paid"] != 1900.0 ||
		jsonStr(invs[0], "hosted_invoice_url") != "https://invoice.stripe.com/i/in_dev1" || jsonStr(invs[0], "status") != "paid" {
		t.Errorf("invoices: %v", invs)
	}
	est := c.api("GET", "/api/subscriptions/"+subID+"/estimate", nil).must(200).obj()
	if est["total"] != 1900.0 || jsonStr(est, "currency") != "usd" || est["stripe_period"] != true ||
		jsonStr(est, "period_end") != end.Format(time.RFC3339) {
		t.Errorf("estimate: %v", est)
	}
	if lines, _ := est["lines"].([]any); len(lines) != 1 {
		t.Errorf("estimate lines: %v", est["lines"])
	}
	bl = c.api("GET", "/api/subscriptions/"+subID+"/billing", nil).must(200).obj()
	if jsonStr(bl, "action") != "customer_portal" || jsonStr(bl, "url") == "" || jsonStr(bl, "current_period_end") == "" {
		t.Errorf("billing of an active subscription: %v", bl)
	}
	if got := be.rec.Find(http.MethodPost, "/v1/billing_portal/sessions"); len(got) != 1 || got[0].Account != "acct_acme" ||
		got[0].Form.Get("return_url") != base {
		t.Errorf("portal session: %+v", got)
	}

	// Isolation: another developer of the portal, and a developer of
	// another portal asking with this id, find nothing.
	other := be.apiSignupVerified("acme", "other@example.com")
	globex := be.apiSignupVerified("globex", "payer@example.com")
	for _, who := range []*client{other, globex} {
		for _, path := range []string{"/invoices", "/estimate", "/billing"} {
			if typ := who.api("GET", "/api/subscriptions/"+subID+path, nil).must(404).problemType(); typ != "not-found" {
				t.Errorf("%s of someone else's subscription: %s", path, typ)
			}
		}
		who.api("DELETE", "/api/subscriptions/"+subID, nil).must(404)
	}

	// Canceling a paid subscription cancels it in Stripe first, at once.
	be.rec.Reset()
	canceled := c.api("DELETE", "/api/subscriptions/"+subID, nil).must(200).obj()
	if jsonStr(canceled, "status") != "canceled" {
		t.Errorf("cancel: %v", canceled)
	}
	if got := be.rec.Find(http.MethodDelete, "/v1/subscriptions/sub_dev1"); len(got) != 1 || got[0].Account != "acct_acme" ||
		got[0].IdempotencyKey == "" {
		t.Errorf("Stripe cancel: %+v", got)
	}

	// A free subscription is canceled without Stripe.
	free := be.apiSubscribeFree(c)
	be.rec.Reset()
	c.api("DELETE", "/api/subscriptions/"+free.SubID, nil).must(200)
	if n := len(be.rec.Requests()); n != 0 {
		t.Errorf("canceling a free subscription made %d Stripe calls", n)
	}

	// A portal whose tenant has no Stripe account: no checkout URL, and why.
	gapp := globex.api("POST", "/api/apps", map[string]string{"name": "G"}).must(201).obj()
	gsub := globex.api("POST", "/api/apps/"+jsonStr(gapp, "id")+"/subscriptions",
		map[string]string{"plan_id": be.tenants["globex"].PricedPlan.ID}).must(201)
	if !strings.Contains(string(gsub.Body), `"checkout_url":null`) ||
		!strings.Contains(jsonStr(gsub.obj(), "detail"), "has not connected a Stripe account") {
		t.Errorf("priced plan of an unconnected tenant: %s", gsub.Body)
	}
	gbl := globex.api("GET", "/api/subscriptions/"+jsonStr(gsub.obj(), "id")+"/billing", nil).must(200)
	if !strings.Contains(string(gbl.Body), `"url":null`) || !strings.Contains(string(gbl.Body), `"action":null`) {
		t.Errorf("billing of an unconnected tenant: %s", gbl.Body)
	}
}

// TestAPIBillingOff: without billing, a priced plan answers checkout_url
// null with the reason, invoices are empty, the estimate is a 409
// billing-unavailable problem, the billing link null with the reason; and
// someone else's subscription is still 404.
func TestAPIBillingOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	c := e.apiSignupVerified("acme", "nobill@example.com")
	app := c.api("POST", "/api/apps", map[string]string{"name": "A"}).must(201).obj()
	sub := c.api("POST", "/api/apps/"+jsonStr(app, "id")+"/subscriptions", map[string]string{"plan_id": f.PricedPlan.ID}).must(201)
	subID := jsonStr(sub.obj(), "id")
	if !strings.Contains(string(sub.Body), `"checkout_url":null`) ||
		!strings.Contains(jsonStr(sub.obj(), "detail"), "payments are not enabled on this platform") {
		t.Errorf("priced plan without billing: %s", sub.Body)
	}
	if items := c.api("GET", "/api/subscriptions/"+subID+"/invoices", nil).must(200).items(); len(items) != 0 {
		t.Errorf("invoices: %v", items)
	}
	if typ := c.api("GET", "/api/subscriptions/"+subID+"/estimate", nil).must(409).problemType(); typ != "billing-unavailable" {
		t.Errorf("estimate without billing: %s", typ)
	}
	bl := c.api("GET", "/api/subscriptions/"+subID+"/billing", nil).must(200)
	if !strings.Contains(string(bl.Body), `"url":null`) || !strings.Contains(jsonStr(bl.obj(), "detail"), "payments are not enabled") {
		t.Errorf("billing without billing: %s", bl.Body)
	}
	other := e.apiSignupVerified("acme", "nosy@example.com")
	for _, path := range []string{"/invoices", "/estimate", "/billing"} {
		other.api("GET", "/api/subscriptions/"+subID+path, nil).must(404)
	}
}

// TestPageBilling: subscribing to a priced plan goes straight to Stripe
// Checkout; the app page offers "Complete payment" (/billing/{id}, which
// opens Checkout); back from Checkout a banner says what happens next; a
// paid subscription shows "Manage billing" (the Customer Portal), the
// estimate with its lines and the invoices; a past-due one the banner with
// its grace deadline and "Fix payment". /billing/{id} needs a session and
// the developer's own subscription. Canceling says what Stripe does.
func TestPageBilling(t *testing.T) {
	t.Parallel()
	be := newBillingEnv(t)
	f := be.tenants["acme"]
	c, _ := be.pageSignedIn("acme", "pages@example.com", true)
	appID := c.pageNewApp("Paid pages")
	loc := c.pageSubscribe(appID, f.PricedPlan.ID).redirectsTo(t, "https://checkout.stripe.com/")
	page := c.page("GET", "/apps/"+appID, nil).must(t, 200).contains(t, `data-status="payment_required"`, "Complete payment")
	subID := page.find(t, `id="pay-([0-9a-f-]+)"`)
	if got := c.page("GET", "/billing/"+subID, nil).redirectsTo(t, "https://checkout.stripe.com/"); got != loc {
		t.Errorf("the billing link opened %s, the subscribe form %s (one session within the window)", got, loc)
	}
	c.page("GET", "/apps/"+appID+"?checkout=success", nil).must(t, 200).contains(t, `id="checkout-note"`, "confirming your payment")
	c.page("GET", "/apps/"+appID+"?checkout=canceled", nil).must(t, 200).contains(t, "nothing was charged")

	// Paid, with an invoice: Manage billing, the estimate, the invoices.
	start := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	end := start.AddDate(0, 1, 0)
	be.billed("acme", subID, catalog.BillingChange{Status: catalog.SubActive, StripeSubscriptionID: "sub_page1",
		StripeStatus: "active", CurrentPeriodStart: &start, CurrentPeriodEnd: &end})
	be.invoice("acme", "in_page1", subID, "paid", 1900, start)
	c.page("GET", "/apps/"+appID, nil).must(t, 200).
		contains(t, `id="manage-billing-`+subID+`"`, `href="/billing/`+subID+`"`, `id="estimate-`+subID+`"`, "Total so far",
			`id="estimate-total-`+subID+`">$19.00<`, `data-invoice="in_page1"`, "https://invoice.stripe.com/i/in_page1", "View invoice").
		lacks(t, "Complete payment", `id="past-due-`)
	c.page("GET", "/billing/"+subID, nil).redirectsTo(t, "https://")
	if got := be.rec.Find(http.MethodPost, "/v1/billing_portal/sessions"); len(got) == 0 ||
		!strings.HasSuffix(got[len(got)-1].Form.Get("return_url"), "/apps/"+appID) {
		t.Errorf("portal session: %+v", got)
	}

	// Past due: the banner with the grace deadline and Fix payment.
	grace := time.Now().UTC().Add(72 * time.Hour).Truncate(time.Second)
	be.billed("acme", subID, catalog.BillingChange{Status: catalog.SubPastDue, StripeStatus: "past_due", GraceUntil: &grace})
	c.page("GET", "/apps/"+appID, nil).must(t, 200).
		contains(t, `id="past-due-`+subID+`"`, "A payment failed", grace.Format(time.RFC3339), `id="fix-payment-`+subID+`"`)

	// Signed out: sign in first, then back here. Someone else: 404.
	anon := be.client("acme")
	anon.page("GET", "/billing/"+subID, nil).redirectsTo(t, "/login?next="+url.QueryEscape("/billing/"+subID))
	nosy, _ := be.pageSignedIn("acme", "nosy@example.com", true)
	nosy.page("GET", "/billing/"+subID, nil).must(t, 404)
	g, _ := be.pageSignedIn("globex", "pages@example.com", true)
	g.page("GET", "/billing/"+subID, nil).must(t, 404)

	// Cancel: Stripe first, and the flash says what it does.
	be.rec.Reset()
	c.submit("/apps/"+appID, "/apps/"+appID+"/subscriptions/"+subID+"/cancel", nil).redirectsTo(t, "/apps/"+appID)
	c.page("GET", "/apps/"+appID, nil).must(t, 200).contains(t, "is canceled", "invoices the usage so far")
	if got := be.rec.Find(http.MethodDelete, "/v1/subscriptions/sub_page1"); len(got) != 1 {
		t.Errorf("Stripe cancel: %+v", got)
	}

	// A tenant without a Stripe account: the page says why, no button.
	gapp := g.pageNewApp("G")
	g.pageSubscribe(gapp, be.tenants["globex"].PricedPlan.ID).redirectsTo(t, "/apps/"+gapp)
	gp := g.page("GET", "/apps/"+gapp, nil).must(t, 200).contains(t, "has not connected a payment account").lacks(t, "Complete payment")
	gsub := gp.find(t, `id="payment-note-([0-9a-f-]+)"`)
	g.page("GET", "/billing/"+gsub, nil).must(t, 409).contains(t, "has not connected a Stripe account")
}
