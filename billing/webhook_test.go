package billing_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/catalog"
)

// paidSub makes a connected tenant with a synced flat plan and a developer
// subscription made active by checkout.session.completed, billed by the
// Stripe subscription stripeSub.
func paidSub(e *env, slug, stripeSub string) (tenant, catalog.BillingSubscription) {
	e.t.Helper()
	tn := e.tenant(slug, true)
	plan := e.plan(tn, "Pro", &catalog.Price{AmountCents: 1900, Currency: "usd"})
	e.runJobs()
	dev := e.developer(tn, "dev-"+slug)
	sub := e.subscribe(tn, dev, plan.ID)
	if _, err := e.bill.Checkout(e.ctx, tn.ID, sub.ID, "https://x.test/ok", "https://x.test/no"); err != nil {
		e.t.Fatal(err)
	}
	if got := e.apply(event{ID: newEventID(), Type: "checkout.session.completed", Account: tn.Account,
		Created: time.Now().Add(-time.Hour), Object: checkoutCompleted(sub.ID, stripeSub, "cus_"+slug)}); got != "applied" {
		e.t.Fatalf("checkout.session.completed: %s", got)
	}
	b := e.sub(tn, sub.ID)
	if b.Status != catalog.SubActive {
		e.t.Fatalf("paid subscription is %s", b.Status)
	}
	return tn, b
}

// snapshot is what a webhook may change, to check that one changed nothing.
func (e *env) snapshot(tn tenant, subID string) string {
	e.t.Helper()
	b := e.sub(tn, subID)
	var invoices, audits, outbox int
	if err := e.db.QueryRow(e.ctx, `SELECT (SELECT count(*) FROM invoices), (SELECT count(*) FROM audit_log),
		(SELECT count(*) FROM key_outbox)`).Scan(&invoices, &audits, &outbox); err != nil {
		e.t.Fatal(err)
	}
	return fmt.Sprintf("%s %s %v %v %v %v inv=%d audit=%d outbox=%d", b.Status, b.StripeStatus, b.GraceUntil,
		b.CurrentPeriodEnd, b.LastEventAt, b.PlanID, invoices, audits, outbox)
}

func TestWebhookSignature(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn, sub := paidSub(e, "sig", "sub_sig1")
	failed := event{ID: newEventID(), Type: "invoice.payment_failed", Account: tn.Account,
		Object: invoiceObj("in_sig1", "sub_sig1", "open", 1900, 0)}
	before := e.snapshot(tn, sub.ID)
	tests := []struct {
		name    string
		payload []byte
		key     string
		at      time.Time
	}{
		{"wrong secret", failed.payload(), "whsec_someone_else", time.Now()},
		{"stale timestamp", failed.payload(), whsec, time.Now().Add(-301 * time.Second)},
		{"body changed after signing", bytes.Replace(failed.payload(), []byte(`"open"`), []byte(`"paid"`), 1), whsec, time.Now()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var status int
			if tc.name == "body changed after signing" {
				status = e.deliverTampered(failed.payload(), tc.payload)
			} else {
				status, _ = e.deliverSigned(tc.payload, tc.key, tc.at)
			}
			if status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", status)
			}
		})
	}
	// No signature at all.
	resp, err := http.Post(e.hook.URL, "application/json", bytes.NewReader(failed.payload()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unsigned: status %d", resp.StatusCode)
	}
	if after := e.snapshot(tn, sub.ID); after != before || e.countEvents(failed.ID) != 0 {
		t.Errorf("a rejected delivery changed state:\n%s\n%s", before, after)
	}
	if got := e.bill.Stats.BadSignature.Load(); got != 4 {
		t.Errorf("bad_signature = %d, want 4", got)
	}
	// The same event, signed properly, applies.
	if got := e.apply(failed); got != "applied" || e.sub(tn, sub.ID).Status != catalog.SubPastDue {
		t.Fatalf("proper delivery: %s", got)
	}
}

// deliverTampered signs signed and sends body.
func (e *env) deliverTampered(signed, body []byte) int {
	e.t.Helper()
	sp := signedHeader(signed, whsec, time.Now())
	req, _ := http.NewRequest(http.MethodPost, e.hook.URL, bytes.NewReader(body))
	req.Header.Set("Stripe-Signature", sp)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestWebhookReplay delivers one event ten times at once: one change, one
// stripe_events row, the rest answered as duplicates.
func TestWebhookReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn, sub := paidSub(e, "replay", "sub_replay1")
	ev := event{ID: newEventID(), Type: "invoice.payment_failed", Account: tn.Account,
		Object: invoiceObj("in_replay1", "sub_replay1", "open", 1900, 0)}
	var auditBefore int
	_ = e.db.QueryRow(e.ctx, `SELECT count(*) FROM audit_log WHERE resource_id = $1`, sub.ID).Scan(&auditBefore)
	var wg sync.WaitGroup
	statuses := make([]int, 10)
	dups := make([]bool, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, out := e.deliver(ev)
			statuses[i] = s
			dups[i], _ = out["duplicate"].(bool)
		}()
	}
	wg.Wait()
	nDup := 0
	for i := range 10 {
		if statuses[i] != http.StatusOK {
			t.Errorf("delivery %d: status %d", i, statuses[i])
		}
		if dups[i] {
			nDup++
		}
	}
	if nDup != 9 || e.countEvents(ev.ID) != 1 {
		t.Errorf("duplicates %d (want 9), stripe_events rows %d (want 1)", nDup, e.countEvents(ev.ID))
	}
	var auditAfter int
	_ = e.db.QueryRow(e.ctx, `SELECT count(*) FROM audit_log WHERE resource_id = $1`, sub.ID).Scan(&auditAfter)
	if auditAfter != auditBefore+1 {
		t.Errorf("audit entries: %d → %d, want one change", auditBefore, auditAfter)
	}
	if b := e.sub(tn, sub.ID); b.Status != catalog.SubPastDue {
		t.Errorf("status %s", b.Status)
	}
	if got := e.bill.Stats.Duplicate.Load(); got != 9 {
		t.Errorf("stats duplicate = %d", got)
	}
}

// TestWebhookOutOfOrder: an older customer.subscription.updated arriving
// after a newer one changes nothing and is recorded as stale.
func TestWebhookOutOfOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn, sub := paidSub(e, "order", "sub_order1")
	now := time.Now().Truncate(time.Second)
	newer := event{ID: newEventID(), Type: "customer.subscription.updated", Account: tn.Account, Created: now,
		Object: subscriptionObj(sub.ID, "sub_order1", "active", now, now.AddDate(0, 1, 0))}
	older := event{ID: newEventID(), Type: "customer.subscription.updated", Account: tn.Account, Created: now.Add(-10 * time.Minute),
		Object: subscriptionObj(sub.ID, "sub_order1", "past_due", now.AddDate(0, -1, 0), now)}
	if got := e.apply(newer); got != "applied" {
		t.Fatalf("newer: %s", got)
	}
	before := e.snapshot(tn, sub.ID)
	if got := e.apply(older); got != "stale" {
		t.Fatalf("older: %s, want stale", got)
	}
	if after := e.snapshot(tn, sub.ID); after != before {
		t.Errorf("a stale event changed state:\n%s\n%s", before, after)
	}
	if e.eventOutcome(older.ID) != "stale" {
		t.Errorf("recorded outcome %q", e.eventOutcome(older.ID))
	}
	// Same second as the newest is not older: applied.
	same := event{ID: newEventID(), Type: "customer.subscription.updated", Account: tn.Account, Created: now,
		Object: subscriptionObj(sub.ID, "sub_order1", "past_due", now, now.AddDate(0, 1, 0))}
	if got := e.apply(same); got != "applied" || e.sub(tn, sub.ID).Status != catalog.SubPastDue {
		t.Errorf("same-second event: %s", got)
	}
}

// TestWebhookWrongAccount: events naming a subscription from another
// account (another tenant's, the platform's own) change nothing.
func TestWebhookWrongAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn, sub := paidSub(e, "owner", "sub_owner1")
	other := e.tenant("intruder", true)
	before := e.snapshot(tn, sub.ID)
	for _, tc := range []struct {
		name    string
		account string
	}{{"another tenant's account", other.Account}, {"an unknown account", "acct_nobody"}, {"the platform", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			for _, ev := range []event{
				{ID: newEventID(), Type: "invoice.payment_failed", Account: tc.account,
					Object: invoiceObj("in_wrong", "sub_owner1", "open", 1900, 0)},
				{ID: newEventID(), Type: "customer.subscription.deleted", Account: tc.account,
					Object: subscriptionObj(sub.ID, "sub_owner1", "canceled", time.Now(), time.Now())},
				{ID: newEventID(), Type: "checkout.session.completed", Account: tc.account,
					Object: checkoutCompleted(sub.ID, "sub_owner1", "cus_x")},
			} {
				if got := e.apply(ev); got != "wrong-account" {
					t.Errorf("%s: outcome %s, want wrong-account", ev.Type, got)
				}
			}
		})
	}
	if after := e.snapshot(tn, sub.ID); after != before {
		t.Errorf("wrong-account events changed state:\n%s\n%s", before, after)
	}
}

// TestWebhookIgnored: unknown types, unknown objects and the other mode
// answer 200 and change nothing.
func TestWebhookIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn, sub := paidSub(e, "ignored", "sub_ign1")
	before := e.snapshot(tn, sub.ID)
	for _, tc := range []struct {
		ev   event
		want string
	}{
		{event{ID: newEventID(), Type: "charge.succeeded", Account: tn.Account, Object: map[string]any{"id": "ch_1"}}, "ignored"},
		{event{ID: newEventID(), Type: "customer.updated", Account: tn.Account, Object: map[string]any{"id": "cus_1"}}, "ignored"},
		{event{ID: newEventID(), Type: "invoice.paid", Account: tn.Account,
			Object: invoiceObj("in_other", "sub_unknown", "paid", 1, 1)}, "unknown-object"},
		{event{ID: newEventID(), Type: "invoice.payment_failed", Account: tn.Account, Live: true,
			Object: invoiceObj("in_live", "sub_ign1", "open", 1900, 0)}, "wrong-mode"},
	} {
		if got := e.apply(tc.ev); got != tc.want {
			t.Errorf("%s: outcome %s, want %s", tc.ev.Type, got, tc.want)
		}
	}
	if after := e.snapshot(tn, sub.ID); after != before {
		t.Errorf("ignored events changed state:\n%s\n%s", before, after)
	}
}

// TestWebhookSubscriptionShapes reads the billing period from the old
// top-level fields (API 2023-10-16, stripe-go's) and the newer item fields,
// and maps Stripe's statuses.
func TestWebhookSubscriptionShapes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn, sub := paidSub(e, "shapes", "sub_shapes1")
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 1, 0)
	old := subscriptionObj(sub.ID, "sub_shapes1", "past_due", time.Time{}, time.Time{})
	old["current_period_start"], old["current_period_end"] = start.Unix(), end.Unix()
	if got := e.apply(event{ID: newEventID(), Type: "customer.subscription.updated", Account: tn.Account,
		APIVersion: "2023-10-16", Object: old}); got != "applied" {
		t.Fatal(got)
	}
	b := e.sub(tn, sub.ID)
	if b.CurrentPeriodStart == nil || !b.CurrentPeriodStart.Equal(start) || !b.CurrentPeriodEnd.Equal(end) ||
		b.Status != catalog.SubPastDue || b.StripeStatus != "past_due" || b.GraceUntil == nil {
		t.Fatalf("old shape: %+v", b)
	}
	for _, tc := range []struct{ stripe, want string }{
		{"active", catalog.SubActive}, {"unpaid", catalog.SubSuspended}, {"trialing", catalog.SubActive},
		{"paused", catalog.SubSuspended}, {"active", catalog.SubActive}, {"incomplete", catalog.SubActive},
		{"incomplete_expired", catalog.SubCanceled},
	} {
		s2, e2 := start.AddDate(0, 1, 0), end.AddDate(0, 1, 0)
		if got := e.apply(event{ID: newEventID(), Type: "customer.subscription.updated", Account: tn.Account,
			Object: subscriptionObj(sub.ID, "sub_shapes1", tc.stripe, s2, e2, "price_whatever")}); got != "applied" {
			t.Fatal(got)
		}
		b := e.sub(tn, sub.ID)
		if b.Status != tc.want || !b.CurrentPeriodEnd.Equal(e2) {
			t.Errorf("stripe %s: status %s (want %s), period end %v", tc.stripe, b.Status, tc.want, b.CurrentPeriodEnd)
		}
	}
}

// TestTenantSuspensionOutlivesInvoices: a subscription the tenant
// suspended stays suspended when an invoice is paid.
func TestTenantSuspensionOutlivesInvoices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn, sub := paidSub(e, "susp", "sub_susp1")
	if _, err := e.cat.SetSubscriptionStatus(e.ctx, tn.who, "", sub.ID, catalog.SubSuspended); err != nil {
		t.Fatal(err)
	}
	if got := e.apply(event{ID: newEventID(), Type: "invoice.paid", Account: tn.Account,
		Object: invoiceObj("in_susp1", "sub_susp1", "paid", 1900, 1900)}); got != "applied" {
		t.Fatal(got)
	}
	if b := e.sub(tn, sub.ID); b.Status != catalog.SubSuspended {
		t.Errorf("invoice.paid lifted the tenant's suspension: %s", b.Status)
	}
}

func TestDeauthorized(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn, sub := paidSub(e, "deauth", "sub_deauth1")
	if got := e.apply(event{ID: newEventID(), Type: "account.application.deauthorized", Account: tn.Account,
		Object: map[string]any{"id": "ca_1", "object": "application"}}); got != "applied" {
		t.Fatal(got)
	}
	c, err := e.bill.Connection(e.ctx, tn.ID)
	if err != nil || c.Connected || c.DeauthorizedAt == nil {
		t.Fatalf("connection after deauthorization: %+v %v", c, err)
	}
	// Checkout now says why it cannot.
	dev := e.developer(tn, "late")
	plan := e.sub(tn, sub.ID).PlanID
	s2 := e.subscribe(tn, dev, plan)
	if _, err := e.bill.Checkout(e.ctx, tn.ID, s2.ID, "https://x.test/ok", "https://x.test/no"); !isUnavailable(err, "billing-not-connected") {
		t.Fatalf("checkout after deauthorization: %v", err)
	}
}

// TestCheckoutAfterCancel: a checkout paid after the subscription ended
// in Tollgate does not revive it, and its Stripe subscription is canceled.
func TestCheckoutAfterCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tn := e.tenant("late-pay", true)
	plan := e.plan(tn, "Pro", &catalog.Price{AmountCents: 1900, Currency: "usd"})
	e.runJobs()
	dev := e.developer(tn, "lou")
	sub := e.subscribe(tn, dev, plan.ID)
	if _, err := e.bill.Checkout(e.ctx, tn.ID, sub.ID, "https://x.test/ok", "https://x.test/no"); err != nil {
		t.Fatal(err)
	}
	if c, err := e.bill.Cancel(e.ctx, tn.ID, sub.ID, false); err != nil || c.Status != catalog.SubCanceled {
		t.Fatalf("cancel before paying: %+v %v", c, err)
	}
	if got := e.apply(event{ID: newEventID(), Type: "checkout.session.completed", Account: tn.Account,
		Object: checkoutCompleted(sub.ID, "sub_latepay", "cus_latepay")}); got != "applied" {
		t.Fatal(got)
	}
	if b := e.sub(tn, sub.ID); b.Status != catalog.SubCanceled {
		t.Fatalf("a late checkout revived the subscription: %s", b.Status)
	}
	e.runJobs()
	if got := e.rec.Find(http.MethodDelete, "/v1/subscriptions/sub_latepay"); len(got) != 1 || got[0].Account != tn.Account {
		t.Fatalf("orphan Stripe subscription not canceled: %+v", got)
	}
}
