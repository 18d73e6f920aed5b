package billing_test

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/billing/stripetest"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

// billed applies ch to a subscription as a webhook would have.
func (e *env) billed(tn tenant, subID string, ch catalog.BillingChange) catalog.BillingSubscription {
	e.t.Helper()
	tx, err := e.db.Begin(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	defer tx.Rollback(e.ctx)
	out, err := e.cat.ApplyBilling(e.ctx, tx, tn.who, subID, ch)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := tx.Commit(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// TestSubscriptionDrift compares billed subscriptions with stripe-mock's
// answers. stripe-mock keeps no state: every subscription it returns is
// its fixture (status "active", cancel_at_period_end true, an item whose
// period ends before it starts) under the id asked for. So a subscription
// Tollgate holds past due differs in status, one active that will not end
// at the period's end differs in that flag, the fixture's nonsense period
// is no period at all, one Tollgate canceled is still billed, and one
// Stripe answers 404 for is missing; a read that fails is an error row.
// Repair applies Stripe's state through the catalog, audited.
func TestSubscriptionDrift(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn := e.tenant("drift", true)
	other := e.tenant("other", true)
	plan := e.plan(tn, "Pro", &catalog.Price{AmountCents: 1900, Currency: "usd", Interval: "month"})
	otherPlan := e.plan(other, "Pro", &catalog.Price{AmountCents: 900, Currency: "usd", Interval: "month"})
	e.runJobs()
	start := time.Now().Add(-24 * time.Hour).Truncate(time.Second).UTC()
	end := start.AddDate(0, 1, 0)
	yes, no := true, false
	mk := func(tn tenant, planID, name, stripeID string, ch catalog.BillingChange) catalog.BillingSubscription {
		sub := e.subscribe(tn, e.developer(tn, name), planID)
		ch.StripeSubscriptionID = stripeID
		if ch.CurrentPeriodStart == nil {
			ch.CurrentPeriodStart, ch.CurrentPeriodEnd = &start, &end
		}
		return e.billed(tn, sub.ID, ch)
	}
	inStep := mk(tn, plan.ID, "instep", "sub_instep", catalog.BillingChange{Status: catalog.SubActive, StripeStatus: "active",
		CancelAtPeriodEnd: &yes})
	pastDue := mk(tn, plan.ID, "pastdue", "sub_pastdue", catalog.BillingChange{Status: catalog.SubPastDue, StripeStatus: "past_due",
		CancelAtPeriodEnd: &yes})
	flag := mk(tn, plan.ID, "flag", "sub_flag", catalog.BillingChange{Status: catalog.SubActive, StripeStatus: "active",
		CancelAtPeriodEnd: &no})
	ended := mk(tn, plan.ID, "ended", "sub_ended", catalog.BillingChange{Status: catalog.SubActive, StripeStatus: "active",
		CancelAtPeriodEnd: &yes})
	if _, err := e.cat.SetSubscriptionStatus(e.ctx, tn.who, "", ended.ID, catalog.SubCanceled); err != nil {
		t.Fatal(err)
	}
	missing := mk(tn, plan.ID, "missing", "sub_missing", catalog.BillingChange{Status: catalog.SubActive, StripeStatus: "active",
		CancelAtPeriodEnd: &yes})
	broken := mk(tn, plan.ID, "broken", "sub_broken", catalog.BillingChange{Status: catalog.SubActive, StripeStatus: "active",
		CancelAtPeriodEnd: &yes})
	// Suspended by the tenant (Stripe's last word was "active"): Stripe's
	// active does not lift a tenant's suspension, so no drift.
	tenantSuspended := mk(tn, plan.ID, "suspended", "sub_tsusp", catalog.BillingChange{Status: catalog.SubActive,
		StripeStatus: "active", CancelAtPeriodEnd: &yes})
	if _, err := e.cat.SetSubscriptionStatus(e.ctx, tn.who, "", tenantSuspended.ID, catalog.SubSuspended); err != nil {
		t.Fatal(err)
	}
	// Free and never paid subscriptions are not asked about.
	e.subscribe(tn, e.developer(tn, "unpaid"), plan.ID)
	theirs := mk(other, otherPlan.ID, "theirs", "sub_theirs", catalog.BillingChange{Status: catalog.SubPastDue, StripeStatus: "past_due"})

	e.rec.Intercept = func(r stripetest.Request) (*http.Response, error) {
		switch r.Path {
		case "/v1/subscriptions/sub_missing":
			return stripetest.ErrorResponse(404, "invalid_request_error", "resource_missing", "No such subscription: 'sub_missing'"), nil
		case "/v1/subscriptions/sub_broken":
			return stripetest.ErrorResponse(500, "api_error", "", "Something went wrong"), nil
		}
		return nil, nil
	}
	e.rec.Reset()
	drifts, err := e.bill.CheckSubscriptions(e.ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	gets := e.rec.Find(http.MethodGet, "/v1/subscriptions/")
	var asked []string
	for _, g := range gets {
		asked = append(asked, strings.TrimPrefix(g.Path, "/v1/subscriptions/"))
		if g.Account != tn.Account {
			t.Errorf("%s asked on account %q", g.Path, g.Account)
		}
	}
	slices.Sort(asked)
	if want := []string{"sub_broken", "sub_ended", "sub_flag", "sub_instep", "sub_missing", "sub_pastdue", "sub_tsusp"}; !slices.Equal(asked, want) {
		t.Errorf("asked Stripe about %v, want %v", asked, want)
	}
	checkRequests(t, e.rec.Requests())
	byID := map[string]billing.SubscriptionDrift{}
	for _, d := range drifts {
		byID[d.SubscriptionID] = d
	}
	for _, c := range []struct {
		name  string
		sub   catalog.BillingSubscription
		diffs []string
		want  string
		err   bool
	}{
		{name: "in step", sub: inStep},
		{name: "past due, active in Stripe", sub: pastDue, diffs: []string{billing.DriftStatus}, want: catalog.SubActive},
		{name: "cancel-at-period-end differs", sub: flag, diffs: []string{billing.DriftCancelAtPeriodEnd}},
		{name: "canceled, still billed", sub: ended, diffs: []string{billing.DriftStillBilled}},
		{name: "missing in Stripe", sub: missing, diffs: []string{billing.DriftMissing}, want: catalog.SubCanceled},
		{name: "unreadable", sub: broken, err: true},
		{name: "suspended by the tenant", sub: tenantSuspended},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, ok := byID[c.sub.ID]
			if !ok {
				if len(c.diffs) > 0 || c.err {
					t.Fatalf("not reported")
				}
				return
			}
			if len(c.diffs) == 0 && !c.err {
				t.Fatalf("reported: %+v", d)
			}
			if c.err != (d.Error != "") || !slices.Equal(d.Differences, c.diffs) && !(c.err && len(d.Differences) == 0) || d.Want != c.want {
				t.Errorf("drift %+v; want differences %v, want %q, error %v", d, c.diffs, c.want, c.err)
			}
			if d.StripePeriodStart != nil || d.StripePeriodEnd != nil {
				t.Errorf("the fixture's period (ending before it starts) was taken: %v %v", d.StripePeriodStart, d.StripePeriodEnd)
			}
		})
	}
	if len(drifts) != 5 {
		t.Errorf("%d drifts, want 5: %+v", len(drifts), drifts)
	}

	// Repair: the past-due subscription becomes active (its keys' records
	// re-queued), audited as the admin who asked.
	d, err := e.bill.RepairSubscription(e.ctx, tn.who, pastDue.ID)
	if err != nil || !d.Has(billing.DriftStatus) {
		t.Fatalf("repair past due: %+v %v", d, err)
	}
	if got := e.sub(tn, pastDue.ID); got.Status != catalog.SubActive || got.StripeStatus != "active" || got.GraceUntil != nil {
		t.Errorf("after repair: %s (stripe %s, grace %v)", got.Status, got.StripeStatus, got.GraceUntil)
	}
	var audits int
	if err := e.db.QueryRow(e.ctx, `SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'billing.drift_repair'
		AND resource_id = $2 AND actor = $3`, tn.ID, pastDue.ID, tn.who.Name).Scan(&audits); err != nil {
		t.Fatal(err)
	}
	if audits != 1 {
		t.Errorf("%d drift repair audit entries", audits)
	}
	// The flag follows Stripe's.
	if _, err := e.bill.RepairSubscription(e.ctx, tn.who, flag.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.sub(tn, flag.ID); !got.CancelAtPeriodEnd || got.Status != catalog.SubActive {
		t.Errorf("flag after repair: %+v", got)
	}
	// Missing in Stripe: canceled in Tollgate.
	if _, err := e.bill.RepairSubscription(e.ctx, tn.who, missing.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.sub(tn, missing.ID); got.Status != catalog.SubCanceled {
		t.Errorf("missing after repair: %s", got.Status)
	}
	// Still billed: a job cancels the Stripe subscription (once, however
	// often Repair is asked).
	for range 2 {
		if _, err := e.bill.RepairSubscription(e.ctx, tn.who, ended.ID); err != nil {
			t.Fatal(err)
		}
	}
	var jobs int
	if err := e.db.QueryRow(e.ctx, `SELECT count(*) FROM billing_jobs WHERE tenant_id = $1 AND kind = $2 AND ref = $3`,
		tn.ID, billing.JobCancelStripeSubscription, tn.Account+"/sub_ended").Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if jobs != 1 {
		t.Errorf("%d cancel jobs, want 1", jobs)
	}
	e.rec.Intercept = nil
	e.runJobs()
	if got := e.rec.Find(http.MethodDelete, "/v1/subscriptions/sub_ended"); len(got) != 1 || got[0].Account != tn.Account {
		t.Errorf("cancel of the still-billed subscription: %+v", got)
	}
	// Nothing to repair: nothing changes.
	before := e.sub(tn, inStep.ID)
	if d, err := e.bill.RepairSubscription(e.ctx, tn.who, inStep.ID); err != nil || len(d.Differences) != 0 {
		t.Errorf("repair of one in step: %+v %v", d, err)
	}
	if after := e.sub(tn, inStep.ID); !after.UpdatedAt.Equal(before.UpdatedAt) || after.Status != before.Status {
		t.Errorf("repair of one in step changed it: %+v", after)
	}
	// Another tenant's subscription is not found; the other tenant's own
	// check sees it.
	if _, err := e.bill.RepairSubscription(e.ctx, tn.who, theirs.ID); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("repair of another tenant's subscription: %v", err)
	}
	if ds, err := e.bill.CheckSubscriptions(e.ctx, other.ID); err != nil || len(ds) != 1 || ds[0].SubscriptionID != theirs.ID {
		t.Errorf("other tenant's check: %+v %v", ds, err)
	}
	// A tenant without a connected account cannot be checked.
	lone := e.tenant("lone", false)
	if _, err := e.bill.CheckSubscriptions(e.ctx, lone.ID); !isUnavailable(err, billing.ReasonNotConnected) {
		t.Errorf("check without account: %v", err)
	}
}

// TestSubscriptionDriftPeriod: a Stripe period (older API shape, top
// level) other than Tollgate's is a drift, and Repair stores it, so that
// quotas and estimates count in Stripe's period.
func TestSubscriptionDriftPeriod(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn := e.tenant("period", true)
	plan := e.plan(tn, "Pro", &catalog.Price{AmountCents: 1900, Currency: "usd", Interval: "month"})
	e.runJobs()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 1, 0)
	no := false
	sub := e.subscribe(tn, e.developer(tn, "p"), plan.ID)
	e.billed(tn, sub.ID, catalog.BillingChange{Status: catalog.SubActive, StripeSubscriptionID: "sub_period",
		StripeStatus: "active", CurrentPeriodStart: &start, CurrentPeriodEnd: &end, CancelAtPeriodEnd: &no})
	next, nextEnd := end, end.AddDate(0, 1, 0)
	e.rec.Intercept = func(r stripetest.Request) (*http.Response, error) {
		if r.Path != "/v1/subscriptions/sub_period" {
			return nil, nil
		}
		body := `{"id":"sub_period","object":"subscription","status":"active","cancel_at_period_end":false,` +
			`"current_period_start":` + itoa(next.Unix()) + `,"current_period_end":` + itoa(nextEnd.Unix()) + `,"items":{"data":[]}}`
		return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), ProtoMajor: 1, ProtoMinor: 1}, nil
	}
	ds, err := e.bill.CheckSubscriptions(e.ctx, tn.ID)
	if err != nil || len(ds) != 1 || !slices.Equal(ds[0].Differences, []string{billing.DriftPeriod}) ||
		!ds[0].StripePeriodEnd.Equal(nextEnd) {
		t.Fatalf("check: %+v %v", ds, err)
	}
	if _, err := e.bill.RepairSubscription(e.ctx, tn.who, sub.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.sub(tn, sub.ID); !got.CurrentPeriodStart.Equal(next) || !got.CurrentPeriodEnd.Equal(nextEnd) {
		t.Errorf("period after repair: %v – %v", got.CurrentPeriodStart, got.CurrentPeriodEnd)
	}
	if ds, err := e.bill.CheckSubscriptions(e.ctx, tn.ID); err != nil || len(ds) != 0 {
		t.Errorf("after repair: %+v %v", ds, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
