package billing_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/catalog"
)

// TestPaidPlanEndToEnd follows a paid plan at the service level: a tenant
// connects its account, its plan becomes a Product with a flat and a
// metered Price on it, a developer subscribes and pays through Checkout,
// the webhooks make the subscription active, past due (keys served until
// the grace period ends, then 402 by the workers' clock), active again when
// the invoice is paid, and canceled when Stripe deletes it. Every Stripe
// call carries the account and an idempotency key.
func TestPaidPlanEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn := e.tenant("acme", true)
	if got := e.rec.Find(http.MethodGet, "/v1/accounts/"+tn.Account); len(got) != 1 || got[0].Account != "" {
		t.Fatalf("connect: want one platform GET of the account, got %+v", got)
	}

	// The plan becomes a product, a meter and two prices on the account.
	plan := e.plan(tn, "Pro", &catalog.Price{AmountCents: 1900, Currency: "usd", Interval: "month",
		PerRequestDecimal: "0.05", IncludedRequests: 1000})
	e.runJobs()
	products := e.rec.Find(http.MethodPost, "/v1/products")
	meters := e.rec.Find(http.MethodPost, "/v1/billing/meters")
	prices := e.rec.Find(http.MethodPost, "/v1/prices")
	if len(products) != 1 || len(meters) != 1 || len(prices) != 2 {
		t.Fatalf("sync: want 1 product, 1 meter, 2 prices; got %d, %d, %d", len(products), len(meters), len(prices))
	}
	if f := products[0].Form; f.Get("name") != "Pro" || f.Get("metadata[tollgate_plan_id]") != plan.ID {
		t.Errorf("product form: %v", f)
	}
	if f := meters[0].Form; f.Get("event_name") != "tollgate_requests" || f.Get("customer_mapping[type]") != "by_id" ||
		f.Get("customer_mapping[event_payload_key]") != "stripe_customer_id" || f.Get("value_settings[event_payload_key]") != "value" ||
		f.Get("default_aggregation[formula]") != "sum" {
		t.Errorf("meter form: %v", f)
	}
	flat, metered := prices[0].Form, prices[1].Form
	for k, want := range map[string]string{"unit_amount": "1900", "currency": "usd", "recurring[interval]": "month"} {
		if flat.Get(k) != want {
			t.Errorf("flat price %s = %q, want %q (%v)", k, flat.Get(k), want, flat)
		}
	}
	for k, want := range map[string]string{"recurring[usage_type]": "metered", "recurring[interval]": "month",
		"billing_scheme": "tiered", "tiers_mode": "graduated", "tiers[0][up_to]": "1000", "tiers[0][unit_amount]": "0",
		"tiers[1][up_to]": "inf", "tiers[1][unit_amount_decimal]": "0.05"} {
		if metered.Get(k) != want {
			t.Errorf("metered price %s = %q, want %q (%v)", k, metered.Get(k), want, metered)
		}
	}
	if metered.Get("recurring[meter]") == "" {
		t.Errorf("metered price without meter: %v", metered)
	}
	pp, err := e.bill.PlanPriceVersion(e.ctx, tn.ID, plan.ID, 1)
	if err != nil || pp.FlatPriceID == "" || pp.MeteredPriceID == "" || pp.MeterID == "" || pp.SyncedAt == nil {
		t.Fatalf("plan price v1: %+v %v", pp, err)
	}

	// A developer subscribes: payment required, with a Checkout URL.
	dev := e.developer(tn, "dana")
	sub := e.subscribe(tn, dev, plan.ID)
	if sub.Status != catalog.SubPaymentRequired {
		t.Fatalf("subscribe: status %s", sub.Status)
	}
	e.rec.Reset()
	url, err := e.bill.Checkout(e.ctx, tn.ID, sub.ID, "https://acme.developers.test/apps/ok", "https://acme.developers.test/apps/cancel")
	if err != nil || !strings.HasPrefix(url, "https://") {
		t.Fatalf("checkout: %q %v", url, err)
	}
	customers := e.rec.Find(http.MethodPost, "/v1/customers")
	sessions := e.rec.Find(http.MethodPost, "/v1/checkout/sessions")
	if len(customers) != 1 || len(sessions) != 1 {
		t.Fatalf("checkout: want 1 customer and 1 session, got %d, %d", len(customers), len(sessions))
	}
	cs := sessions[0].Form
	for k, want := range map[string]string{"mode": "subscription", "client_reference_id": sub.ID,
		"line_items[0][price]": pp.FlatPriceID, "line_items[0][quantity]": "1", "line_items[1][price]": pp.MeteredPriceID,
		"metadata[tollgate_subscription_id]": sub.ID, "metadata[tollgate_tenant_id]": tn.ID,
		"subscription_data[metadata][tollgate_subscription_id]": sub.ID, "subscription_data[application_fee_percent]": "5",
		"success_url": "https://acme.developers.test/apps/ok", "cancel_url": "https://acme.developers.test/apps/cancel"} {
		if cs.Get(k) != want {
			t.Errorf("checkout session %s = %q, want %q", k, cs.Get(k), want)
		}
	}
	if cs.Has("line_items[1][quantity]") {
		t.Errorf("metered line item has a quantity: %v", cs)
	}
	// Asking again reuses the customer and the session's idempotency key.
	if _, err := e.bill.Checkout(e.ctx, tn.ID, sub.ID, "https://acme.developers.test/apps/ok", "https://acme.developers.test/apps/cancel"); err != nil {
		t.Fatal(err)
	}
	again := e.rec.Find(http.MethodPost, "/v1/checkout/sessions")
	if len(e.rec.Find(http.MethodPost, "/v1/customers")) != 1 || len(again) != 2 || again[1].IdempotencyKey != again[0].IdempotencyKey {
		t.Errorf("second checkout: customers %d, sessions %+v", len(e.rec.Find(http.MethodPost, "/v1/customers")), again)
	}
	if b := e.sub(tn, sub.ID); b.PlanVersion == nil || *b.PlanVersion != 1 || b.StripeCheckoutSessionID == "" {
		t.Errorf("after checkout: plan_version %v, session %q", b.PlanVersion, b.StripeCheckoutSessionID)
	}

	// Stripe says the checkout is paid: active; the developer takes a key.
	start := time.Now().Truncate(time.Second)
	end := start.AddDate(0, 1, 0)
	if got := e.apply(event{ID: newEventID(), Type: "checkout.session.completed", Account: tn.Account,
		Object: checkoutCompleted(sub.ID, "sub_acme1", "cus_acme1")}); got != "applied" {
		t.Fatalf("checkout.session.completed: %s", got)
	}
	if got := e.apply(event{ID: newEventID(), Type: "customer.subscription.created", Account: tn.Account,
		Object: subscriptionObj(sub.ID, "sub_acme1", "active", start, end, pp.FlatPriceID, pp.MeteredPriceID)}); got != "applied" {
		t.Fatalf("customer.subscription.created: %s", got)
	}
	b := e.sub(tn, sub.ID)
	if b.Status != catalog.SubActive || b.StripeSubscriptionID != "sub_acme1" || b.CurrentPeriodEnd == nil ||
		!b.CurrentPeriodEnd.Equal(end) {
		t.Fatalf("after checkout webhook: %+v", b)
	}
	key, secretKey, err := e.cat.CreateSubscriptionKey(e.ctx, tn.who, dev.ConsumerID, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec := e.keyRecord(secretKey); rec.Status != proxycfg.KeyActive || rec.SubscriptionID != sub.ID ||
		rec.PeriodStart != start.Unix() || rec.PeriodEnd != end.Unix() {
		t.Fatalf("key record after activation: %+v", rec)
	}
	_ = key
	// The renewal moves the billing period, and with it the quota's window
	// in the key record.
	start, end = end, end.AddDate(0, 1, 0)
	if got := e.apply(event{ID: newEventID(), Type: "customer.subscription.updated", Account: tn.Account,
		Object: subscriptionObj(sub.ID, "sub_acme1", "active", start, end, pp.FlatPriceID, pp.MeteredPriceID)}); got != "applied" {
		t.Fatalf("renewal: %s", got)
	}
	if rec := e.keyRecord(secretKey); rec.Status != proxycfg.KeyActive || rec.PeriodStart != start.Unix() || rec.PeriodEnd != end.Unix() {
		t.Fatalf("key record after renewal: %+v", rec)
	}

	// The renewal fails: past due, served until the grace period ends. The
	// clock is put back so that the grace period (an hour) is already over.
	past := time.Now().Add(-2 * time.Hour)
	e.now.Store(&past)
	if got := e.apply(event{ID: newEventID(), Type: "invoice.payment_failed", Account: tn.Account,
		Object: invoiceObj("in_acme1", "sub_acme1", "open", 1900, 0)}); got != "applied" {
		t.Fatalf("invoice.payment_failed: %s", got)
	}
	e.now.Store(nil)
	b = e.sub(tn, sub.ID)
	if b.Status != catalog.SubPastDue || b.GraceUntil == nil {
		t.Fatalf("after payment failure: %+v", b)
	}
	rec := e.keyRecord(secretKey)
	if rec.Status != proxycfg.KeyPastDue || rec.GraceUntil != b.GraceUntil.Unix() || rec.GraceUntil >= time.Now().Unix() ||
		rec.BillingURL != "http://acme.developers.test/billing/"+sub.ID {
		t.Fatalf("key record after grace: %+v (grace until %v)", rec, b.GraceUntil)
	}
	// A second failure does not extend the grace period.
	if got := e.apply(event{ID: newEventID(), Type: "invoice.payment_failed", Account: tn.Account,
		Object: invoiceObj("in_acme1", "sub_acme1", "open", 1900, 0)}); got != "applied" {
		t.Fatalf("second invoice.payment_failed: %s", got)
	}
	if b2 := e.sub(tn, sub.ID); !b2.GraceUntil.Equal(*b.GraceUntil) {
		t.Errorf("grace moved from %v to %v", b.GraceUntil, b2.GraceUntil)
	}

	// The invoice is paid: active at once.
	if got := e.apply(event{ID: newEventID(), Type: "invoice.paid", Account: tn.Account,
		Object: invoiceObj("in_acme1", "sub_acme1", "paid", 1900, 1900)}); got != "applied" {
		t.Fatalf("invoice.paid: %s", got)
	}
	b = e.sub(tn, sub.ID)
	if b.Status != catalog.SubActive || b.GraceUntil != nil {
		t.Fatalf("after invoice.paid: %+v", b)
	}
	if rec := e.keyRecord(secretKey); rec.Status != proxycfg.KeyActive || rec.GraceUntil != 0 {
		t.Fatalf("key record after invoice.paid: %+v", rec)
	}
	var invStatus string
	var paid int64
	if err := e.db.QueryRow(e.ctx, `SELECT status, amount_paid FROM invoices WHERE stripe_invoice_id = 'in_acme1'
		AND subscription_id = $1`, sub.ID).Scan(&invStatus, &paid); err != nil || invStatus != "paid" || paid != 1900 {
		t.Errorf("invoice row: %s %d %v", invStatus, paid, err)
	}

	// Stripe ends the subscription: the key answers 403 subscription-canceled.
	if got := e.apply(event{ID: newEventID(), Type: "customer.subscription.deleted", Account: tn.Account,
		Object: subscriptionObj(sub.ID, "sub_acme1", "canceled", start, end, pp.FlatPriceID)}); got != "applied" {
		t.Fatalf("customer.subscription.deleted: %s", got)
	}
	if rec := e.keyRecord(secretKey); rec.Status != proxycfg.KeyCanceled {
		t.Fatalf("key record after deletion: %+v", rec)
	}
	// Once canceled, a late invoice.paid revives nothing.
	if got := e.apply(event{ID: newEventID(), Type: "invoice.paid", Account: tn.Account,
		Object: invoiceObj("in_acme2", "sub_acme1", "paid", 1900, 1900)}); got != "applied" {
		t.Fatalf("late invoice.paid: %s", got)
	}
	if b := e.sub(tn, sub.ID); b.Status != catalog.SubCanceled {
		t.Fatalf("late invoice.paid revived the subscription: %s", b.Status)
	}

	// The audit log tells the story.
	var actions []string
	rows, err := e.db.Query(e.ctx, `SELECT action FROM audit_log WHERE tenant_id = $1 AND resource_id = $2 ORDER BY at, id`,
		tn.ID, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a string
		_ = rows.Scan(&a)
		actions = append(actions, a)
	}
	want := "subscription.create subscription.active subscription.past_due subscription.active subscription.canceled"
	if strings.Join(actions, " ") != want {
		t.Errorf("audit: %v, want %s", actions, want)
	}
	checkRequests(t, e.rec.Requests())
}

// TestEveryCallCarriesAccountAndKey runs every kind of Stripe call billing
// makes and checks the recorded requests: the account on each (but the
// named platform calls), an idempotency key on every POST.
func TestEveryCallCarriesAccountAndKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn := e.tenant("every", true)
	basic := e.plan(tn, "Basic", &catalog.Price{AmountCents: 900, Currency: "usd"})
	pro := e.plan(tn, "Pro", &catalog.Price{AmountCents: 2900, Currency: "usd", PerRequestDecimal: "0.01"})
	e.runJobs()
	// A price change (new version, old prices archived), a rename.
	if _, err := e.cat.UpdatePlan(e.ctx, tn.who, basic.ID, func(in *catalog.PlanInput) error {
		in.Name, in.Price.AmountCents = "Basic+", 1000
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.enqueueSync(tn, basic.ID)
	e.runJobs()
	dev := e.developer(tn, "evan")
	sub := e.subscribe(tn, dev, basic.ID)
	if _, err := e.bill.Checkout(e.ctx, tn.ID, sub.ID, "https://every.test/ok", "https://every.test/no"); err != nil {
		t.Fatal(err)
	}
	e.apply(event{ID: newEventID(), Type: "checkout.session.completed", Account: tn.Account,
		Object: checkoutCompleted(sub.ID, "sub_every1", "cus_every1")})
	if _, err := e.bill.CustomerPortal(e.ctx, tn.ID, sub.ID, "https://every.test/apps"); err != nil {
		t.Fatal(err)
	}
	// Upgrade (at once) and downgrade (at period end).
	ch, err := e.bill.ChangePlan(e.ctx, tn.ID, sub.ID, pro.ID)
	if err != nil || !ch.Immediate || ch.Subscription.PlanID != pro.ID {
		t.Fatalf("upgrade: %+v %v", ch, err)
	}
	ch, err = e.bill.ChangePlan(e.ctx, tn.ID, sub.ID, basic.ID)
	if err != nil || ch.Immediate || ch.Subscription.PlanID != pro.ID {
		t.Fatalf("downgrade: %+v %v", ch, err)
	}
	// Cancel at period end, then at once.
	if c, err := e.bill.Cancel(e.ctx, tn.ID, sub.ID, true); err != nil || !c.CancelAtPeriodEnd || c.Status != catalog.SubActive {
		t.Fatalf("cancel at period end: %+v %v", c, err)
	}
	if c, err := e.bill.Cancel(e.ctx, tn.ID, sub.ID, false); err != nil || c.Status != catalog.SubCanceled {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	if got := e.rec.Find(http.MethodDelete, "/v1/subscriptions/sub_every1"); len(got) != 1 || got[0].Account != tn.Account ||
		got[0].IdempotencyKey == "" {
		t.Fatalf("cancel request: %+v", got)
	}
	if err := e.client.MeterEvent(e.ctx, tn.Account, "tollgate_requests", "tg-test-1", "cus_every1", 12, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Onboarding of a second tenant: the platform calls.
	tn2 := e.tenant("every-two", false)
	ob, err := e.bill.Onboard(e.ctx, tn2.who, billingOnboard())
	if err != nil || ob.URL == "" || !strings.HasPrefix(ob.AccountID, "acct_") {
		t.Fatalf("onboard: %+v %v", ob, err)
	}
	// And a deleted plan's product and prices are archived.
	if err := deletePlan(e, tn, basic.ID); err != nil {
		t.Fatal(err)
	}
	e.runJobs()

	reqs := e.rec.Requests()
	checkRequests(t, reqs)
	seen := map[string]bool{}
	for _, q := range reqs {
		seen[q.Method+" "+pathShape(q.Path)] = true
	}
	for _, want := range []string{"GET /v1/accounts/*", "POST /v1/products", "POST /v1/products/*", "POST /v1/prices",
		"POST /v1/prices/*", "POST /v1/billing/meters", "POST /v1/customers", "POST /v1/checkout/sessions",
		"POST /v1/billing_portal/sessions", "GET /v1/subscriptions/*", "POST /v1/subscriptions/*",
		"POST /v1/subscription_schedules", "POST /v1/subscription_schedules/*", "DELETE /v1/subscriptions/*", "POST /v1/billing/meter_events",
		"POST /v1/accounts", "POST /v1/account_links"} {
		if !seen[want] {
			t.Errorf("no %s recorded (saw %v)", want, seen)
		}
	}
}

// pathShape replaces the object id ending a path with *.
func pathShape(p string) string {
	i := strings.LastIndexByte(p, '/')
	for _, prefix := range []string{"acct_", "prod_", "price_", "sub_", "cus_"} {
		if strings.HasPrefix(p[i+1:], prefix) {
			return p[:i+1] + "*"
		}
	}
	return p
}

func billingOnboard() billing.OnboardInput {
	return billing.OnboardInput{ReturnURL: "https://portal.test/billing/done", RefreshURL: "https://portal.test/billing/again"}
}

// deletePlan deletes a plan as the catalog will once the lead wires
// catalog.EnqueuePlanArchive into DeletePlan (before its DELETE).
func deletePlan(e *env, tn tenant, planID string) error {
	tx, err := e.db.Begin(e.ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(e.ctx)
	if err := catalog.EnqueuePlanArchive(e.ctx, tx, tn.ID, planID); err != nil {
		return err
	}
	if err := tx.Commit(e.ctx); err != nil {
		return err
	}
	return e.cat.DeletePlan(e.ctx, tn.who, planID)
}
