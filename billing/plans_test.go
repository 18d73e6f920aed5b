package billing_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/billing/stripetest"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

// TestPlanPriceVersions: a price change makes a new version with new
// Prices and archives the old ones, a subscriber keeps the version it paid
// for, a rename only renames the Product, a plan made free archives its
// prices, and a deleted plan archives its Product.
func TestPlanPriceVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn := e.tenant("versions", true)
	plan := e.plan(tn, "Team", &catalog.Price{AmountCents: 4900, Currency: "eur", Interval: "year", PerRequestDecimal: "0.000000000001"})
	e.runJobs()
	v1, err := e.bill.PlanPriceVersion(e.ctx, tn.ID, plan.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The 12-decimal amount goes exactly, not through a float.
	if m := e.rec.Find(http.MethodPost, "/v1/prices"); len(m) != 2 || m[1].Form.Get("unit_amount_decimal") != "0.000000000001" ||
		m[1].Form.Get("billing_scheme") != "" || m[0].Form.Get("recurring[interval]") != "year" {
		t.Fatalf("v1 prices: %+v", m)
	}
	dev := e.developer(tn, "vera")
	sub := e.subscribe(tn, dev, plan.ID)
	if _, err := e.bill.Checkout(e.ctx, tn.ID, sub.ID, "https://x.test/ok", "https://x.test/no"); err != nil {
		t.Fatal(err)
	}

	// A rename: the product follows, no new version.
	e.rec.Reset()
	update(e, tn, plan.ID, func(in *catalog.PlanInput) { in.Name = "Team Plus" })
	if got := e.rec.Find(http.MethodPost, "/v1/prices"); len(got) != 0 {
		t.Errorf("a rename created prices: %+v", got)
	}
	if got := e.rec.Find(http.MethodPost, "/v1/products/"+v1.ProductID); len(got) != 1 || got[0].Form.Get("name") != "Team Plus" {
		t.Errorf("rename: %+v", got)
	}

	// A price change: version 2 with new prices, version 1's archived.
	e.rec.Reset()
	update(e, tn, plan.ID, func(in *catalog.PlanInput) { in.Price.AmountCents = 5900 })
	v2, err := e.bill.PlanPriceVersion(e.ctx, tn.ID, plan.ID, 2)
	if err != nil || v2.FlatPriceID == "" || v2.FlatPriceID == v1.FlatPriceID || v2.ProductID != v1.ProductID ||
		v2.MeterID != v1.MeterID {
		t.Fatalf("v2: %+v %v", v2, err)
	}
	for _, id := range []string{v1.FlatPriceID, v1.MeteredPriceID} {
		got := e.rec.Find(http.MethodPost, "/v1/prices/"+id)
		if len(got) != 1 || got[0].Form.Get("active") != "false" {
			t.Errorf("archive of %s: %+v", id, got)
		}
	}
	if v1, _ = e.bill.PlanPriceVersion(e.ctx, tn.ID, plan.ID, 1); v1.ArchivedAt == nil {
		t.Error("v1 not marked archived")
	}
	if len(e.rec.Find(http.MethodPost, "/v1/billing/meters")) != 0 {
		t.Error("a second meter was created")
	}
	// The subscriber keeps version 1 (and its meter target).
	if b := e.sub(tn, sub.ID); b.PlanVersion == nil || *b.PlanVersion != 1 {
		t.Errorf("subscriber moved to version %v", b.PlanVersion)
	}

	// Made free: the prices can no longer be bought.
	e.rec.Reset()
	update(e, tn, plan.ID, func(in *catalog.PlanInput) { in.Price = nil })
	if got := e.rec.Find(http.MethodPost, "/v1/prices/"); len(got) != 2 {
		t.Errorf("made free: archived %d prices, want 2", len(got))
	}

	// Deleted: product archived (the subscription has to go first).
	other := e.plan(tn, "Solo", &catalog.Price{AmountCents: 500, Currency: "eur"})
	e.runJobs()
	solo, _ := e.bill.PlanPriceVersion(e.ctx, tn.ID, other.ID, 1)
	e.rec.Reset()
	if err := deletePlan(e, tn, other.ID); err != nil {
		t.Fatal(err)
	}
	e.runJobs()
	if got := e.rec.Find(http.MethodPost, "/v1/products/"+solo.ProductID); len(got) != 1 || got[0].Form.Get("active") != "false" {
		t.Errorf("deleted plan's product: %+v", got)
	}
	if got := e.rec.Find(http.MethodPost, "/v1/prices/"+solo.FlatPriceID); len(got) != 1 || got[0].Account != tn.Account {
		t.Errorf("deleted plan's price: %+v", got)
	}
	checkRequests(t, e.rec.Requests())
}

func update(e *env, tn tenant, planID string, change func(*catalog.PlanInput)) {
	e.t.Helper()
	if _, err := e.cat.UpdatePlan(e.ctx, tn.who, planID, func(in *catalog.PlanInput) error {
		if in.Price != nil {
			p := *in.Price
			in.Price = &p
		}
		change(in)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	e.enqueueSync(tn, planID)
	e.runJobs()
}

// TestJobRetryReusesIdempotencyKey: a job whose Stripe call fails is put
// back with backoff; its next attempt sends the same calls with the same
// idempotency keys, so Stripe makes each object once.
func TestJobRetryReusesIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn := e.tenant("retry", true)
	failures := 0
	e.rec.Fail = func(q stripetest.Request) bool {
		if q.Method == http.MethodPost && q.Path == "/v1/prices" && q.Form.Get("recurring[usage_type]") == "metered" && failures < 1 {
			failures++
			return true
		}
		return false
	}
	plan := e.plan(tn, "Metered", &catalog.Price{AmountCents: 100, Currency: "usd", PerRequestDecimal: "0.5"})
	if n, err := e.runner.RunDue(e.ctx); err != nil || n != 1 {
		t.Fatalf("first run: %d %v", n, err)
	}
	var attempts int
	var lastErr string
	var runAt time.Time
	if err := e.db.QueryRow(e.ctx, `SELECT attempts, last_error, run_at FROM billing_jobs WHERE ref = $1`, plan.ID).
		Scan(&attempts, &lastErr, &runAt); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || !strings.Contains(lastErr, "create price") || !runAt.After(time.Now()) {
		t.Fatalf("after failure: attempts %d, last_error %q, run_at %v", attempts, lastErr, runAt)
	}
	if _, err := e.bill.PlanPriceVersion(e.ctx, tn.ID, plan.ID, 1); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("a failed attempt left a version: %v", err)
	}
	// Not due yet: nothing runs.
	if n, _ := e.runner.RunDue(e.ctx); n != 0 {
		t.Fatalf("ran a job before its backoff ended")
	}
	if _, err := e.db.Exec(e.ctx, `UPDATE billing_jobs SET run_at = now()`); err != nil {
		t.Fatal(err)
	}
	e.runJobs()
	byKey := map[string][]stripetest.Request{}
	for _, q := range e.rec.Requests() {
		if q.Method == http.MethodPost {
			byKey[q.IdempotencyKey] = append(byKey[q.IdempotencyKey], q)
		}
	}
	for _, purpose := range []string{"product", "price-flat", "price-metered", "meter"} {
		var found bool
		for k, qs := range byKey {
			if strings.HasPrefix(k, "tg:"+purpose+":") {
				found = true
				if len(qs) != 2 {
					t.Errorf("%s: sent %d times under %s, want 2 (first attempt and retry)", purpose, len(qs), k)
				}
				if sameForm(qs[0], qs[1]) != "" {
					t.Errorf("%s: retry changed the parameters under one key", purpose)
				}
			}
		}
		if !found {
			t.Errorf("no %s request", purpose)
		}
	}
	if _, err := e.bill.PlanPriceVersion(e.ctx, tn.ID, plan.ID, 1); err != nil {
		t.Fatal(err)
	}
}

// sameForm compares two requests' forms, except the ids of objects made
// earlier in the attempt: stripe-mock keeps no state and makes a new id for
// each product or meter, where Stripe answers a repeated idempotency key
// with the first object.
func sameForm(a, b stripetest.Request) string {
	fa, fb := a.Form, b.Form
	for _, k := range []string{"product", "recurring[meter]"} {
		fa.Del(k)
		fb.Del(k)
	}
	if fa.Encode() != fb.Encode() {
		return fa.Encode() + " != " + fb.Encode()
	}
	return ""
}

// TestSweepQueuesUnsyncedPlans: priced plans whose change queued no job
// (the catalog hook not wired, a plan made before billing was connected)
// are found by the sweeper; a synced plan is not queued again.
func TestSweepQueuesUnsyncedPlans(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn := e.tenant("sweep", false)
	// Before billing is connected: no job.
	early, err := e.cat.CreatePlan(e.ctx, tn.who, catalog.PlanInput{Name: "Early", Price: &catalog.Price{AmountCents: 100, Currency: "usd"}})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := e.runner.Sweep(e.ctx); n != 0 {
		t.Fatalf("sweep queued %d plans of an unconnected tenant", n)
	}
	// Connecting queues the tenant's priced plans.
	grace := 60
	if _, err := e.bill.Connect(e.ctx, tn.who, billing.ConnectInput{AccountID: "acct_sweep", GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	e.runJobs()
	if _, err := e.bill.PlanPriceVersion(e.ctx, tn.ID, early.ID, 1); err != nil {
		t.Fatalf("connect did not sync the plan: %v", err)
	}
	// A plan made without the hook, and a free one.
	late, err := e.cat.CreatePlan(e.ctx, tn.who, catalog.PlanInput{Name: "Late", Price: &catalog.Price{AmountCents: 200, Currency: "usd"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cat.CreatePlan(e.ctx, tn.who, catalog.PlanInput{Name: "Free"}); err != nil {
		t.Fatal(err)
	}
	if n, err := e.runner.Sweep(e.ctx); err != nil || n != 1 {
		t.Fatalf("sweep: queued %d, %v; want 1", n, err)
	}
	e.runJobs()
	if _, err := e.bill.PlanPriceVersion(e.ctx, tn.ID, late.ID, 1); err != nil {
		t.Fatal(err)
	}
	// A change that keeps the price: one sync that finds nothing to do,
	// then the sweeper is quiet.
	if _, err := e.cat.UpdatePlan(e.ctx, tn.who, late.ID, func(in *catalog.PlanInput) error { in.Public = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.runner.Sweep(e.ctx); n != 1 {
		t.Fatalf("sweep after a change: %d", n)
	}
	e.runJobs()
	if n, _ := e.runner.Sweep(e.ctx); n != 0 {
		t.Fatalf("sweep queued %d synced plans", n)
	}
	if _, err := e.bill.PlanPriceVersion(e.ctx, tn.ID, late.ID, 2); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("an unchanged price made a version: %v", err)
	}
}

// TestMeterTarget: metering finds the account, the app's customer and the
// meter of a paid metered subscription, and nothing for others.
func TestMeterTarget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn := e.tenant("meter", true)
	metered := e.plan(tn, "Metered", &catalog.Price{Currency: "usd", PerRequestDecimal: "0.2"})
	flat := e.plan(tn, "Flat", &catalog.Price{AmountCents: 100, Currency: "usd"})
	e.runJobs()
	dev := e.developer(tn, "mia")
	sub := e.subscribe(tn, dev, metered.ID)
	if _, err := billing.SubscriptionMeterTarget(e.ctx, e.db, tn.ID, sub.ID); !errors.Is(err, billing.ErrNotMetered) {
		t.Fatalf("before checkout: %v", err)
	}
	if _, err := e.bill.Checkout(e.ctx, tn.ID, sub.ID, "https://x.test/ok", "https://x.test/no"); err != nil {
		t.Fatal(err)
	}
	mt, err := billing.SubscriptionMeterTarget(e.ctx, e.db, tn.ID, sub.ID)
	customer := e.rec.Find(http.MethodPost, "/v1/customers")
	if err != nil || mt.Account != tn.Account || mt.EventName != billing.MeterEventName || mt.MeterID == "" || len(customer) != 1 {
		t.Fatalf("meter target: %+v %v", mt, err)
	}
	if c, err := billing.SubscriptionCustomer(e.ctx, e.db, tn.ID, sub.ID); err != nil || c != mt.Customer {
		t.Fatalf("customer: %q %v (target %q)", c, err, mt.Customer)
	}
	// The app's second subscription (flat) has the same customer, no meter.
	sub2 := e.subscribe(tn, dev, flat.ID)
	if _, err := e.bill.Checkout(e.ctx, tn.ID, sub2.ID, "https://x.test/ok", "https://x.test/no"); err != nil {
		t.Fatal(err)
	}
	if n := len(e.rec.Find(http.MethodPost, "/v1/customers")); n != 1 {
		t.Errorf("one app made %d customers", n)
	}
	if _, err := billing.SubscriptionMeterTarget(e.ctx, e.db, tn.ID, sub2.ID); !errors.Is(err, billing.ErrNotMetered) {
		t.Errorf("flat plan: %v", err)
	}
	// Another app of the same developer: its own customer.
	app2, err := e.cat.CreateApp(e.ctx, tn.who, dev.ConsumerID, catalog.AppInput{Name: "second"})
	if err != nil {
		t.Fatal(err)
	}
	sub3 := e.subscribe(tn, developer{ConsumerID: dev.ConsumerID, AppID: app2.ID}, metered.ID)
	if _, err := e.bill.Checkout(e.ctx, tn.ID, sub3.ID, "https://x.test/ok", "https://x.test/no"); err != nil {
		t.Fatal(err)
	}
	if n := len(e.rec.Find(http.MethodPost, "/v1/customers")); n != 2 {
		t.Errorf("two apps made %d customers", n)
	}
}
