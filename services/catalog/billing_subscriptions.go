package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
)

// The functions in this file are what billing (the only package that talks
// to Stripe) needs from the catalog: reading a subscription's Stripe side
// and changing it together with its status. They take the caller's
// transaction, so that a webhook's event id and its effects commit together,
// and every change of status or grace period re-queues the keys' records in
// that transaction.

// BillingSubscription is a subscription with its Stripe side.
type BillingSubscription struct {
	Subscription
	TenantID string
	// PlanVersion is the plan_prices version the subscription pays for
	// (set at Checkout); nil before.
	PlanVersion             *int
	StripeSubscriptionID    string
	StripeCheckoutSessionID string
	// StripeStatus is the Stripe subscription's status as last seen
	// ("active", "past_due", "unpaid", ...); "" before any.
	StripeStatus       string
	CurrentPeriodStart *time.Time
	CurrentPeriodEnd   *time.Time
	// GraceUntil ends a past-due subscription's grace period.
	GraceUntil        *time.Time
	CancelAtPeriodEnd bool
	// LastEventAt is the `created` of the newest Stripe event applied.
	LastEventAt *time.Time
}

const billingSubCols = `id, app_id, consumer_id, plan_id, status, created_at, updated_at, decided_at,
	tenant_id, plan_version, coalesce(stripe_subscription_id, ''), coalesce(stripe_checkout_session_id, ''),
	stripe_status, current_period_start, current_period_end, grace_until, cancel_at_period_end, last_event_at`

func scanBillingSub(row pgx.Row) (BillingSubscription, error) {
	var b BillingSubscription
	s := &b.Subscription
	err := row.Scan(&s.ID, &s.AppID, &s.ConsumerID, &s.PlanID, &s.Status, &s.CreatedAt, &s.UpdatedAt, &s.DecidedAt,
		&b.TenantID, &b.PlanVersion, &b.StripeSubscriptionID, &b.StripeCheckoutSessionID, &b.StripeStatus,
		&b.CurrentPeriodStart, &b.CurrentPeriodEnd, &b.GraceUntil, &b.CancelAtPeriodEnd, &b.LastEventAt)
	return b, err
}

// BillingQuerier is a pool or a transaction.
type BillingQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// GetBillingSubscription reads one of the tenant's subscriptions with its
// Stripe side; with a transaction and lock "FOR UPDATE" it also locks it.
func (s *Service) GetBillingSubscription(ctx context.Context, q BillingQuerier, tenantID, id, lock string) (BillingSubscription, error) {
	if !store.ValidID(tenantID) || !store.ValidID(id) {
		return BillingSubscription{}, fmt.Errorf("get billing subscription: %w", fault.ErrNotFound)
	}
	b, err := scanBillingSub(q.QueryRow(ctx, `SELECT `+billingSubCols+` FROM subscriptions
		WHERE tenant_id = $1 AND id = $2 `+lock, tenantID, id))
	if err != nil {
		return BillingSubscription{}, fmt.Errorf("get billing subscription: %w", notFound(err))
	}
	return b, nil
}

// FindBillingSubscription finds a subscription by its id without knowing
// the tenant (a webhook names it in client_reference_id or metadata) or, when
// id is "", by its Stripe subscription id; lock as in GetBillingSubscription.
// The caller checks that the tenant's connected account is the event's.
func (s *Service) FindBillingSubscription(ctx context.Context, q BillingQuerier, id, stripeSubscriptionID, lock string) (BillingSubscription, error) {
	var row pgx.Row
	switch {
	case id != "":
		if !store.ValidID(id) {
			return BillingSubscription{}, fmt.Errorf("find billing subscription: %w", fault.ErrNotFound)
		}
		row = q.QueryRow(ctx, `SELECT `+billingSubCols+` FROM subscriptions WHERE id = $1 `+lock, id)
	case stripeSubscriptionID != "":
		row = q.QueryRow(ctx, `SELECT `+billingSubCols+` FROM subscriptions WHERE stripe_subscription_id = $1 `+lock,
			stripeSubscriptionID)
	default:
		return BillingSubscription{}, fmt.Errorf("find billing subscription: %w", fault.ErrNotFound)
	}
	b, err := scanBillingSub(row)
	if err != nil {
		return BillingSubscription{}, fmt.Errorf("find billing subscription: %w", notFound(err))
	}
	return b, nil
}

// BillingChange is what billing learned about a subscription from Stripe
// (or decided at Checkout). Nil and empty fields keep what is stored.
type BillingChange struct {
	// Status is the new Tollgate status ("" keeps it). Billing moves a
	// subscription only between payment_required, active, past_due and
	// suspended-for-non-payment, and to canceled: it never revives a
	// canceled or rejected one, never decides a pending one, and leaves a
	// subscription the tenant suspended suspended (it may still end it).
	Status string
	// GraceUntil is where a move to past_due ends the grace period. A
	// subscription already past due keeps its grace period (a second failed
	// payment does not extend it); any other status clears it.
	GraceUntil *time.Time
	// PlanID moves the subscription (and its keys) to another plan of the
	// tenant, keeping its id, so quotas counted per subscription go on.
	PlanID      string
	PlanVersion *int

	StripeSubscriptionID    string
	StripeCheckoutSessionID string
	StripeStatus            string
	CurrentPeriodStart      *time.Time
	CurrentPeriodEnd        *time.Time
	CancelAtPeriodEnd       *bool
	// EventAt is the `created` of the event applied; last_event_at keeps
	// the newest. Billing skips events older than LastEventAt itself.
	EventAt *time.Time
	// Reason goes into the audit entry (e.g. the Stripe event type and id).
	Reason string
}

// billingOwned reports whether billing may change the status of b.
func billingOwned(b BillingSubscription, to string) bool {
	switch b.Status {
	case SubCanceled, SubRejected, SubPending:
		return false
	case SubSuspended:
		// Billing suspends only when Stripe says unpaid or paused; a
		// suspension by the tenant stays until the tenant lifts it, but
		// Stripe may end the subscription.
		return b.StripeStatus == "unpaid" || b.StripeStatus == "paused" || to == SubCanceled
	}
	return true
}

// ApplyBilling changes the subscription tenantID/id as ch says, in tx,
// re-queueing its keys' records when its status, grace period, plan or
// billing period changes (so every worker enforces the new state after commit), and
// records an audit entry by who for every status or plan change. It
// returns the subscription as it is now; a status billing may not set
// (see BillingChange.Status) is left as it was, without error.
func (s *Service) ApplyBilling(ctx context.Context, tx pgx.Tx, who audit.Actor, id string, ch BillingChange) (BillingSubscription, error) {
	cur, err := s.GetBillingSubscription(ctx, tx, who.TenantID, id, "FOR UPDATE")
	if err != nil {
		return BillingSubscription{}, fmt.Errorf("apply billing: %w", err)
	}
	status := cur.Status
	if ch.Status != "" && ch.Status != cur.Status && billingOwned(cur, ch.Status) {
		status = ch.Status
	}
	grace := cur.GraceUntil
	switch {
	case status != SubPastDue:
		grace = nil
	case cur.Status == SubPastDue && cur.GraceUntil != nil:
		// Keep the grace period that started with the first failure.
	case ch.GraceUntil != nil:
		g := ch.GraceUntil.Truncate(time.Second)
		grace = &g
	default:
		now := time.Now().Truncate(time.Second)
		grace = &now
	}
	planID := cur.PlanID
	if ch.PlanID != "" && ch.PlanID != cur.PlanID {
		if _, err := getPlan(ctx, tx, who.TenantID, ch.PlanID, false); err != nil {
			return BillingSubscription{}, fmt.Errorf("apply billing: plan: %w", err)
		}
		planID = ch.PlanID
	}
	str := func(v, keep string) string {
		if v == "" {
			return keep
		}
		return v
	}
	t := func(v, keep *time.Time) *time.Time {
		if v == nil {
			return keep
		}
		return v
	}
	cancelAtEnd := cur.CancelAtPeriodEnd
	if ch.CancelAtPeriodEnd != nil {
		cancelAtEnd = *ch.CancelAtPeriodEnd
	}
	version := cur.PlanVersion
	if ch.PlanVersion != nil {
		version = ch.PlanVersion
	}
	lastEvent := cur.LastEventAt
	if ch.EventAt != nil && (lastEvent == nil || ch.EventAt.After(*lastEvent)) {
		lastEvent = ch.EventAt
	}
	var stripeSub *string
	if v := str(ch.StripeSubscriptionID, cur.StripeSubscriptionID); v != "" {
		stripeSub = &v
	}
	var session *string
	if v := str(ch.StripeCheckoutSessionID, cur.StripeCheckoutSessionID); v != "" {
		session = &v
	}
	next, err := scanBillingSub(tx.QueryRow(ctx, `UPDATE subscriptions SET status = $3, grace_until = $4, plan_id = $5,
			plan_version = $6, stripe_subscription_id = $7, stripe_checkout_session_id = $8, stripe_status = $9,
			current_period_start = $10, current_period_end = $11, cancel_at_period_end = $12, last_event_at = $13,
			updated_at = CASE WHEN status <> $3 OR plan_id <> $5 THEN now() ELSE updated_at END
		WHERE tenant_id = $1 AND id = $2 RETURNING `+billingSubCols,
		who.TenantID, id, status, grace, planID, version, stripeSub, session, str(ch.StripeStatus, cur.StripeStatus),
		t(ch.CurrentPeriodStart, cur.CurrentPeriodStart), t(ch.CurrentPeriodEnd, cur.CurrentPeriodEnd),
		cancelAtEnd, lastEvent))
	if c, ok := store.UniqueViolation(err); ok && c == "subscriptions_live_key" {
		return BillingSubscription{}, fmt.Errorf("apply billing: %w",
			fault.Conflict("plan_id", "the app already has a live subscription to this plan"))
	} else if c, ok := store.UniqueViolation(err); ok && c == "subscriptions_stripe_key" {
		return BillingSubscription{}, fmt.Errorf("apply billing: %w",
			fault.Conflict("stripe_subscription_id", "another subscription is billed by this Stripe subscription"))
	} else if err != nil {
		return BillingSubscription{}, fmt.Errorf("apply billing: update subscription: %w", err)
	}
	if planID != cur.PlanID {
		// Keys carry their plan; they follow the subscription's.
		if _, err := tx.Exec(ctx, `UPDATE keys SET plan_id = $3 WHERE tenant_id = $1 AND subscription_id = $2`,
			who.TenantID, id, planID); err != nil {
			return BillingSubscription{}, fmt.Errorf("apply billing: move keys: %w", err)
		}
	}
	// Key records carry the status, the grace period, the plan and the
	// billing period (the quota's window).
	if status != cur.Status || !sameTime(grace, cur.GraceUntil) || planID != cur.PlanID ||
		!sameTime(next.CurrentPeriodStart, cur.CurrentPeriodStart) || !sameTime(next.CurrentPeriodEnd, cur.CurrentPeriodEnd) {
		if _, err := s.requeueKeys(ctx, tx, who.TenantID, `k.subscription_id = $2`, id); err != nil {
			return BillingSubscription{}, fmt.Errorf("apply billing: %w", err)
		}
	}
	if status != cur.Status || planID != cur.PlanID {
		data := map[string]any{"from": cur.Status, "to": status, "app_id": cur.AppID, "plan_id": planID, "reason": ch.Reason}
		if planID != cur.PlanID {
			data["from_plan_id"] = cur.PlanID
		}
		if grace != nil {
			data["grace_until"] = *grace
		}
		action := "subscription." + status
		if status == cur.Status {
			action = "subscription.plan_change"
		}
		if err := audit.Record(ctx, tx, who, action, "subscription", id, data); err != nil {
			return BillingSubscription{}, err
		}
	}
	return next, nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// ErrNotBillable is returned by SubscriptionForCheckout for a subscription
// that does not wait for payment.
var ErrNotBillable = errors.New("subscription does not wait for payment")

// SubscriptionForCheckout returns the consumer's subscription (any
// consumer's when consumerID is "") with its Stripe side, its plan and its
// app, for billing to start a Checkout or a Customer Portal session.
func (s *Service) SubscriptionForCheckout(ctx context.Context, tenantID, consumerID, id string) (BillingSubscription, Plan, App, error) {
	b, err := s.GetBillingSubscription(ctx, s.DB, tenantID, id, "")
	if err != nil {
		return BillingSubscription{}, Plan{}, App{}, err
	}
	if consumerID != "" && b.ConsumerID != consumerID {
		return BillingSubscription{}, Plan{}, App{}, fmt.Errorf("get billing subscription: %w", fault.ErrNotFound)
	}
	p, err := getPlan(ctx, s.DB, tenantID, b.PlanID, false)
	if err != nil {
		return BillingSubscription{}, Plan{}, App{}, fmt.Errorf("subscription plan: %w", err)
	}
	a, err := getApp(ctx, s.DB, tenantID, "", b.AppID, "")
	if err != nil {
		return BillingSubscription{}, Plan{}, App{}, fmt.Errorf("subscription app: %w", err)
	}
	return b, p, a, nil
}

// GetPlanTx reads one of the tenant's plans in tx (FOR UPDATE when lock).
func (s *Service) GetPlanTx(ctx context.Context, tx pgx.Tx, tenantID, id string, lock bool) (Plan, error) {
	p, err := getPlan(ctx, tx, tenantID, id, lock)
	if err != nil {
		return Plan{}, fmt.Errorf("get plan: %w", err)
	}
	return p, nil
}

// PricedPlanRef names a priced plan of a tenant.
type PricedPlanRef struct {
	TenantID string
	PlanID   string
}

// ListPricedPlans returns the priced plans of the tenants that have a
// connected Stripe account (for billing's sync sweeper), at most limit,
// after the plan id after ("" from the start), by plan id.
func (s *Service) ListPricedPlans(ctx context.Context, after string, limit int) ([]PricedPlanRef, error) {
	if after == "" {
		after = "00000000-0000-0000-0000-000000000000"
	}
	rows, err := s.DB.Query(ctx, `SELECT p.tenant_id::text, p.id::text FROM plans p
		JOIN tenant_billing tb ON tb.tenant_id = p.tenant_id AND tb.deauthorized_at IS NULL
		WHERE p.price_cents IS NOT NULL AND (p.price_cents > 0 OR p.per_request_decimal > 0) AND p.id > $1::uuid
		ORDER BY p.id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list priced plans: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PricedPlanRef, error) {
		var p PricedPlanRef
		err := r.Scan(&p.TenantID, &p.PlanID)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("list priced plans: %w", err)
	}
	return list, nil
}
