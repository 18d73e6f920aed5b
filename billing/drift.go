package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/billing/stripe"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

// The subscription half of the drift check: what Tollgate enforces for a
// billed subscription (its status, hence whether its keys work, and its
// billing period, hence its quota window) against what Stripe says of the
// Stripe subscription that bills it. Webhooks keep the two in step; a
// webhook endpoint that was down longer than Stripe retries, an event
// refused by mistake or a change made while the tenant's account was
// disconnected leaves them apart without anyone noticing. The usage half
// (served versus reported requests) is metering.Drift.

// What differs between a subscription in Tollgate and in Stripe
// (SubscriptionDrift.Differences).
const (
	// DriftStatus: Stripe's status maps to another Tollgate status than the
	// subscription has (see statusOf), one billing would have applied from
	// a webhook. Repair applies it.
	DriftStatus = "status"
	// DriftPeriod: Stripe's current billing period is not the one Tollgate
	// counts quotas and estimates in. Repair stores Stripe's.
	DriftPeriod = "period"
	// DriftCancelAtPeriodEnd: Stripe will (or will no longer) end the
	// subscription when the period ends. Repair stores Stripe's flag.
	DriftCancelAtPeriodEnd = "cancel_at_period_end"
	// DriftMissing: Stripe has no such subscription on the tenant's
	// account, yet Tollgate's is live: its keys work and nobody pays.
	// Repair cancels it in Tollgate.
	DriftMissing = "missing"
	// DriftStillBilled: Tollgate ended the subscription but Stripe still
	// bills it. Repair queues its cancellation in Stripe (the job the
	// webhook path queues for a checkout paid after the end).
	DriftStillBilled = "still_billed"
)

// MaxSubscriptionChecks bounds the subscriptions one CheckSubscriptions
// asks Stripe about (one read each): live ones first, then ended ones most
// recently changed. A tenant with more sees the first ones.
const MaxSubscriptionChecks = 1000

// subscriptionCheckConcurrency is how many Stripe reads a check has in
// flight: well under Stripe's read rate limit per account (100/s live, 25/s
// in test mode) at its usual latency.
const subscriptionCheckConcurrency = 8

// endedCheckWindow is how long after its last change an ended subscription
// is still checked for a Stripe subscription that goes on billing.
const endedCheckWindow = 90 * 24 * time.Hour

// SubscriptionDrift compares one billed subscription in Tollgate and in
// Stripe.
type SubscriptionDrift struct {
	SubscriptionID       string `json:"subscription_id"`
	AppID                string `json:"app_id"`
	ConsumerID           string `json:"consumer_id"`
	PlanID               string `json:"plan_id"`
	StripeSubscriptionID string `json:"stripe_subscription_id"`
	// Status is Tollgate's status; StoredStripeStatus the Stripe status the
	// last webhook reported.
	Status             string `json:"status"`
	StoredStripeStatus string `json:"stored_stripe_status"`
	// StripeStatus is the Stripe subscription's status as read now; "" when
	// it could not be read (Error) or Stripe has no such subscription
	// (DriftMissing).
	StripeStatus string `json:"stripe_status"`
	// Want is the Tollgate status Stripe's state calls for when it differs
	// (DriftStatus, DriftMissing); "" otherwise.
	Want string `json:"want,omitempty"`
	// The current period in Tollgate and in Stripe (Stripe's is nil when
	// its answer holds none that makes sense).
	PeriodStart       *time.Time `json:"period_start"`
	PeriodEnd         *time.Time `json:"period_end"`
	StripePeriodStart *time.Time `json:"stripe_period_start"`
	StripePeriodEnd   *time.Time `json:"stripe_period_end"`
	// CancelAtPeriodEnd in Tollgate and in Stripe.
	CancelAtPeriodEnd       bool `json:"cancel_at_period_end"`
	StripeCancelAtPeriodEnd bool `json:"stripe_cancel_at_period_end"`
	// Differences lists the Drift* constants that apply; empty when both
	// agree.
	Differences []string `json:"differences"`
	// Error says why Stripe could not be asked (a network failure, an
	// error answer); Differences is then empty.
	Error string `json:"error,omitempty"`
	// CheckedAt is when Stripe was asked.
	CheckedAt time.Time `json:"checked_at"`
}

// Has reports whether the drift includes difference d.
func (d SubscriptionDrift) Has(diff string) bool {
	for _, x := range d.Differences {
		if x == diff {
			return true
		}
	}
	return false
}

// CheckSubscriptions asks Stripe, on the tenant's connected account, about
// every subscription of the tenant that a Stripe subscription bills (at most
// MaxSubscriptionChecks, a few at a time) and returns those whose state
// differs from Tollgate's, or that could not be read (Error). Live
// subscriptions are checked, and ended ones changed in the last 90 days
// whose last known Stripe status is not an ended one (Stripe may still
// bill them). Billing off or a tenant not connected is an
// *UnavailableError. Each read is a GET, so a check changes nothing.
func (s *Service) CheckSubscriptions(ctx context.Context, tenantID string) ([]SubscriptionDrift, error) {
	tb, err := s.connectedAccount(ctx, s.DB, tenantID)
	if err != nil {
		return nil, fmt.Errorf("check subscriptions: %w", err)
	}
	rows, err := s.DB.Query(ctx, `SELECT id::text FROM subscriptions
		WHERE tenant_id = $1 AND stripe_subscription_id IS NOT NULL
			AND (status NOT IN ('canceled', 'rejected')
				OR (updated_at > $2 AND stripe_status NOT IN ('canceled', 'incomplete_expired')))
		ORDER BY status IN ('canceled', 'rejected'), updated_at DESC, id
		LIMIT $3`, tenantID, s.now().Add(-endedCheckWindow), MaxSubscriptionChecks)
	if err != nil {
		return nil, fmt.Errorf("check subscriptions: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("check subscriptions: %w", err)
	}
	acct := s.Stripe.Account(tb.AccountID)
	results := make([]SubscriptionDrift, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, subscriptionCheckConcurrency)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			sub, err := s.Catalog.GetBillingSubscription(ctx, s.DB, tenantID, id, "")
			if err != nil {
				errs[i] = err
				return
			}
			results[i] = s.checkOne(ctx, acct, sub)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("check subscriptions: %w", err)
	}
	out := []SubscriptionDrift{}
	for i := range ids {
		if errs[i] != nil {
			if errors.Is(errs[i], fault.ErrNotFound) {
				continue // deleted since the list was read
			}
			return nil, fmt.Errorf("check subscriptions: %w", errs[i])
		}
		if d := results[i]; len(d.Differences) > 0 || d.Error != "" {
			out = append(out, d)
		}
	}
	return out, nil
}

// checkOne reads the Stripe subscription of sub and compares; a failed
// read is the drift's Error.
func (s *Service) checkOne(ctx context.Context, acct stripe.Account, sub catalog.BillingSubscription) SubscriptionDrift {
	obj, err := s.stripeSubscription(ctx, acct, sub.StripeSubscriptionID)
	d := compareSubscription(sub, obj)
	d.CheckedAt = s.now().UTC()
	if err != nil {
		d.Differences, d.Want = nil, ""
		d.Error = err.Error()
	}
	return d
}

// stripeSubscription reads a subscription of the account and decodes it
// with the webhook's decoder (which reads the period of either API
// version's shape); nil, nil when Stripe has no such subscription.
func (s *Service) stripeSubscription(ctx context.Context, acct stripe.Account, id string) (*subscriptionObject, error) {
	ssub, err := acct.GetSubscription(ctx, id)
	if stripe.NotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var o subscriptionObject
	if ssub.LastResponse != nil && len(ssub.LastResponse.RawJSON) > 0 {
		if err := json.Unmarshal(ssub.LastResponse.RawJSON, &o); err != nil {
			return nil, fmt.Errorf("decode stripe subscription %s: %w", id, err)
		}
		return &o, nil
	}
	o = subscriptionObject{ID: ssub.ID, Status: string(ssub.Status), CancelAtPeriodEnd: ssub.CancelAtPeriodEnd,
		CurrentPeriodStart: ssub.CurrentPeriodStart, CurrentPeriodEnd: ssub.CurrentPeriodEnd}
	return &o, nil
}

// compareSubscription compares sub with Stripe's subscription obj (nil:
// Stripe has none) by the rules the webhooks apply, so that what Repair
// applies is what the missed webhook would have.
func compareSubscription(sub catalog.BillingSubscription, obj *subscriptionObject) SubscriptionDrift {
	d := SubscriptionDrift{SubscriptionID: sub.ID, AppID: sub.AppID, ConsumerID: sub.ConsumerID, PlanID: sub.PlanID,
		StripeSubscriptionID: sub.StripeSubscriptionID, Status: sub.Status, StoredStripeStatus: sub.StripeStatus,
		PeriodStart: sub.CurrentPeriodStart, PeriodEnd: sub.CurrentPeriodEnd, CancelAtPeriodEnd: sub.CancelAtPeriodEnd,
		Differences: []string{}}
	ended := sub.Status == catalog.SubCanceled || sub.Status == catalog.SubRejected
	if obj == nil {
		if !ended {
			d.Differences, d.Want = append(d.Differences, DriftMissing), catalog.SubCanceled
		}
		return d
	}
	d.StripeStatus, d.StripeCancelAtPeriodEnd = obj.Status, obj.CancelAtPeriodEnd
	if start, end := obj.period(); start != nil && end != nil && end.After(*start) {
		d.StripePeriodStart, d.StripePeriodEnd = start, end
	}
	want := statusOf(obj.Status)
	if ended {
		if want != "" && want != catalog.SubCanceled {
			d.Differences = append(d.Differences, DriftStillBilled)
		}
		return d
	}
	if want != "" && want != sub.Status && billingMoves(sub, want) {
		d.Differences, d.Want = append(d.Differences, DriftStatus), want
	}
	if d.StripePeriodEnd != nil && (!closeTo(sub.CurrentPeriodStart, d.StripePeriodStart) || !closeTo(sub.CurrentPeriodEnd, d.StripePeriodEnd)) {
		d.Differences = append(d.Differences, DriftPeriod)
	}
	if obj.CancelAtPeriodEnd != sub.CancelAtPeriodEnd {
		d.Differences = append(d.Differences, DriftCancelAtPeriodEnd)
	}
	return d
}

// billingMoves reports whether billing would move sub to status from a
// webhook: never a pending subscription, never into payment_required (an
// incomplete Stripe subscription is no news), and a subscription the
// tenant suspended only to canceled (catalog.ApplyBilling's rules).
func billingMoves(sub catalog.BillingSubscription, status string) bool {
	switch {
	case sub.Status == catalog.SubPending, status == catalog.SubPaymentRequired:
		return false
	case sub.Status == catalog.SubSuspended:
		return sub.StripeStatus == "unpaid" || sub.StripeStatus == "paused" || status == catalog.SubCanceled
	}
	return true
}

// closeTo reports whether a stored time is b to the second.
func closeTo(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	d := a.Sub(*b)
	return d < time.Second && d > -time.Second
}

// RepairSubscription reads the subscription's Stripe subscription again
// and applies Stripe's state to Tollgate's, through catalog.ApplyBilling as
// a webhook would (keys re-queued, audited), in one transaction with an
// audit entry "billing.drift_repair" by who: the status Stripe's calls for
// (a past-due one starts its grace period now), Stripe's period and
// cancel-at-period-end flag; a live subscription Stripe does not have is
// canceled; an ended one Stripe still bills gets its Stripe subscription
// canceled by a billing job. It returns the comparison made before the
// repair (no differences: nothing was changed). Another tenant's
// subscription is fault.ErrNotFound.
func (s *Service) RepairSubscription(ctx context.Context, who audit.Actor, subscriptionID string) (SubscriptionDrift, error) {
	tb, err := s.connectedAccount(ctx, s.DB, who.TenantID)
	if err != nil {
		return SubscriptionDrift{}, fmt.Errorf("repair subscription: %w", err)
	}
	sub, err := s.Catalog.GetBillingSubscription(ctx, s.DB, who.TenantID, subscriptionID, "")
	if err != nil {
		return SubscriptionDrift{}, fmt.Errorf("repair subscription: %w", err)
	}
	if sub.StripeSubscriptionID == "" {
		return SubscriptionDrift{}, fault.Conflict("", "the subscription is not billed through Stripe")
	}
	obj, err := s.stripeSubscription(ctx, s.Stripe.Account(tb.AccountID), sub.StripeSubscriptionID)
	if err != nil {
		return SubscriptionDrift{}, fmt.Errorf("repair subscription: %w", err)
	}
	var d SubscriptionDrift
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		// Compare again under the row lock: a webhook may have arrived.
		cur, err := s.Catalog.GetBillingSubscription(ctx, tx, who.TenantID, sub.ID, "FOR UPDATE")
		if err != nil {
			return err
		}
		d = compareSubscription(cur, obj)
		d.CheckedAt = s.now().UTC()
		if len(d.Differences) == 0 || cur.StripeSubscriptionID != sub.StripeSubscriptionID {
			return nil
		}
		if d.Has(DriftStillBilled) {
			ref := tb.AccountID + "/" + cur.StripeSubscriptionID
			if _, err := tx.Exec(ctx, `INSERT INTO billing_jobs (tenant_id, kind, ref)
				SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM billing_jobs
					WHERE tenant_id = $1 AND kind = $2 AND ref = $3 AND done_at IS NULL)`,
				who.TenantID, JobCancelStripeSubscription, ref); err != nil {
				return fmt.Errorf("queue cancel: %w", err)
			}
		} else {
			ch := catalog.BillingChange{Status: d.Want, Reason: "drift repair: " + strings.Join(d.Differences, ", ")}
			if obj != nil {
				ch.StripeStatus, ch.CancelAtPeriodEnd = obj.Status, &obj.CancelAtPeriodEnd
				ch.CurrentPeriodStart, ch.CurrentPeriodEnd = d.StripePeriodStart, d.StripePeriodEnd
			}
			if ch.Status == catalog.SubPastDue {
				ch.GraceUntil = s.grace(tb)
			}
			if _, err := s.Catalog.ApplyBilling(ctx, tx, who, cur.ID, ch); err != nil {
				return err
			}
		}
		return audit.Record(ctx, tx, who, "billing.drift_repair", "subscription", cur.ID, map[string]any{
			"differences": d.Differences, "status": cur.Status, "want": d.Want, "stripe_status": d.StripeStatus,
			"stripe_subscription_id": cur.StripeSubscriptionID})
	})
	if err != nil {
		return SubscriptionDrift{}, fmt.Errorf("repair subscription: %w", err)
	}
	return d, nil
}
