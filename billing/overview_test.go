package billing_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

// TestOverviewAndInvoices: the tenant's revenue counts paid invoices of
// this month and of the last 30 days per currency (not another tenant's,
// not unpaid ones); subscribers are counted per priced plan by status;
// failed payments list the open invoices with their subscription's grace
// period; a developer's invoices are those of the subscription, newest
// first; the estimate rates the subscription's price.
func TestOverviewAndInvoices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	e.now.Store(&now)
	tn := e.tenant("money", true)
	other := e.tenant("otherco", true)
	pro := e.plan(tn, "Pro", &catalog.Price{AmountCents: 1900, Currency: "usd", Interval: "month"})
	e.plan(tn, "Basic", &catalog.Price{AmountCents: 500, Currency: "usd", Interval: "month"})
	if _, err := e.cat.CreatePlan(e.ctx, tn.who, catalog.PlanInput{Name: "Free", Public: true}); err != nil {
		t.Fatal(err)
	}
	otherPlan := e.plan(other, "Pro", &catalog.Price{AmountCents: 1900, Currency: "usd", Interval: "month"})
	e.runJobs()
	grace := now.Add(time.Hour)
	active := e.subscribe(tn, e.developer(tn, "ann"), pro.ID)
	e.billed(tn, active.ID, catalog.BillingChange{Status: catalog.SubActive, StripeSubscriptionID: "sub_ann"})
	late := e.subscribe(tn, e.developer(tn, "bob"), pro.ID)
	e.billed(tn, late.ID, catalog.BillingChange{Status: catalog.SubActive, StripeSubscriptionID: "sub_bob"})
	e.billed(tn, late.ID, catalog.BillingChange{Status: catalog.SubPastDue, GraceUntil: &grace})
	e.subscribe(tn, e.developer(tn, "cy"), pro.ID) // payment required
	theirs := e.subscribe(other, e.developer(other, "dee"), otherPlan.ID)

	inv := func(tenantID, id, subID, status, currency string, paid int64, created time.Time) {
		t.Helper()
		if _, err := e.db.Exec(e.ctx, `INSERT INTO invoices (stripe_invoice_id, tenant_id, subscription_id, status, currency,
				amount_due, amount_paid, hosted_invoice_url, created, period_start, period_end)
			VALUES ($1, $2, $3, $4, $5, 1900, $6, 'https://invoice.stripe.com/i/' || $1, $7, $7, $7::timestamptz + interval '1 month')`,
			id, tenantID, subID, status, currency, paid, created); err != nil {
			t.Fatal(err)
		}
	}
	inv(tn.ID, "in_month", active.ID, "paid", "usd", 1900, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC))
	inv(tn.ID, "in_feb", active.ID, "paid", "usd", 500, time.Date(2026, 2, 20, 0, 0, 0, 0, time.UTC))
	inv(tn.ID, "in_old", active.ID, "paid", "eur", 700, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	inv(tn.ID, "in_eur", late.ID, "paid", "eur", 300, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	inv(tn.ID, "in_failed", late.ID, "open", "usd", 0, time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC))
	inv(other.ID, "in_theirs", theirs.ID, "paid", "usd", 99999, time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC))

	o, err := e.bill.Overview(e.ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []billing.Revenue{{Currency: "eur", Month: 300, Last30Days: 300, Invoices: 1},
		{Currency: "usd", Month: 1900, Last30Days: 2400, Invoices: 2}}
	if len(o.Revenue) != len(want) {
		t.Fatalf("revenue %+v, want %+v", o.Revenue, want)
	}
	for i := range want {
		if o.Revenue[i] != want[i] {
			t.Errorf("revenue %+v, want %+v", o.Revenue[i], want[i])
		}
	}
	if len(o.Plans) != 2 || o.Plans[0].PlanName != "Basic" || o.Plans[1].PlanName != "Pro" ||
		o.Plans[1].Active != 1 || o.Plans[1].PastDue != 1 || o.Plans[1].PaymentRequired != 1 || o.Plans[0].Active != 0 {
		t.Errorf("plans: %+v", o.Plans)
	}
	if len(o.Failed) != 1 || o.Failed[0].ID != "in_failed" || o.Failed[0].SubscriptionStatus != catalog.SubPastDue ||
		o.Failed[0].GraceUntil == nil || !o.Failed[0].GraceUntil.Equal(grace) || o.Failed[0].AppName != "bob's app" ||
		o.Failed[0].ConsumerEmail != "bob@example.com" || o.Failed[0].PlanName != "Pro" {
		t.Errorf("failed payments: %+v", o.Failed)
	}

	invs, err := e.bill.Invoices(e.ctx, tn.ID, active.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(invs) != 3 || invs[0].ID != "in_month" || invs[2].ID != "in_old" || invs[0].HostedInvoiceURL == nil ||
		invs[0].PeriodStart == nil || invs[0].AmountPaid != 1900 {
		t.Errorf("invoices: %+v", invs)
	}
	// Another tenant's subscription has none here.
	if invs, err := e.bill.Invoices(e.ctx, tn.ID, theirs.ID); err != nil || len(invs) != 0 {
		t.Errorf("another tenant's invoices: %+v %v", invs, err)
	}
	est, err := e.bill.Estimate(e.ctx, tn.ID, active.ID)
	if err != nil || est.Total != 1900 || est.Currency != "usd" || !est.AsOf.Equal(now) {
		t.Errorf("estimate: %+v %v", est, err)
	}
	if _, err := e.bill.Estimate(e.ctx, tn.ID, theirs.ID); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("estimate of another tenant's subscription: %v", err)
	}
}
