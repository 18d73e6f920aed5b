package catalog

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/outbox"
)

// A worker decides what to do with a key from its record alone (it never
// asks Postgres), so the record carries the effective state of the key, its
// consumer and its subscription together. Every change of any of the three
// re-queues the records of the keys it touches, in the transaction of the
// change.

// keyState is what the record of a key depends on besides the key itself.
type keyState struct {
	ConsumerStatus string
	// SubscriptionStatus is "" for keys without a subscription.
	SubscriptionStatus string
	// GraceUntil (unix seconds) ends a past-due subscription's grace
	// period; BillingURL is where its developer fixes the payment. Both are
	// set by billing.
	GraceUntil int64
	BillingURL string
	// PeriodStart and PeriodEnd (unix) are the subscription's billing
	// period, in which its quota counts (0: calendar periods).
	PeriodStart, PeriodEnd int64
}

// effectiveRecord composes the record workers enforce.
func effectiveRecord(k keyRow, st keyState) proxycfg.KeyRecord {
	rec := proxycfg.KeyRecord{ID: k.ID, TenantID: k.TenantID, ConsumerID: k.ConsumerID, PlanID: k.PlanID,
		Status: k.Status}
	if k.SubscriptionID != nil {
		rec.SubscriptionID = *k.SubscriptionID
	}
	if k.ExpiresAt != nil {
		rec.ExpiresAt = k.ExpiresAt.Unix()
	}
	rec.PeriodStart, rec.PeriodEnd = st.PeriodStart, st.PeriodEnd
	if k.Status != proxycfg.KeyActive {
		rec.Status = proxycfg.KeyRevoked
		return rec
	}
	if st.ConsumerStatus == ConsumerSuspended {
		rec.Status = proxycfg.KeySuspended
		return rec
	}
	switch st.SubscriptionStatus {
	case "", SubActive:
	case SubPastDue:
		// Billing sets the grace period (GraceUntil) with the status.
		rec.Status = proxycfg.KeyPastDue
		rec.GraceUntil = st.GraceUntil
		rec.BillingURL = st.BillingURL
	case SubSuspended:
		// Suspended for non-payment: 402 with the link to pay.
		rec.Status = proxycfg.KeyPastDue
		rec.BillingURL = st.BillingURL
	case SubCanceled:
		rec.Status = proxycfg.KeyCanceled
	default:
		// pending, payment_required, rejected: a key should not exist, and
		// if one does it must not work.
		rec.Status = proxycfg.KeyCanceled
	}
	return rec
}

// keyStateOf reads the consumer's and subscription's state of k in tx.
func (s *Service) keyStateOf(ctx context.Context, tx pgx.Tx, k keyRow) (keyState, error) {
	var st keyState
	var grace, ps, pe *time.Time
	var slug string
	err := tx.QueryRow(ctx, `SELECT c.status, coalesce(s.status, ''), s.grace_until, t.slug,
			s.current_period_start, s.current_period_end
		FROM consumers c JOIN tenants t ON t.id = c.tenant_id
		LEFT JOIN subscriptions s ON s.tenant_id = c.tenant_id AND s.id = $3
		WHERE c.tenant_id = $1 AND c.id = $2`, k.TenantID, k.ConsumerID, k.SubscriptionID).
		Scan(&st.ConsumerStatus, &st.SubscriptionStatus, &grace, &slug, &ps, &pe)
	if err != nil {
		return keyState{}, fmt.Errorf("read key state: %w", err)
	}
	s.billingState(&st, grace, ps, pe, slug, k.SubscriptionID)
	return st, nil
}

// billingState fills the grace period and payment link of a key's state.
func (s *Service) billingState(st *keyState, grace, periodStart, periodEnd *time.Time, slug string, subID *string) {
	if grace != nil {
		st.GraceUntil = grace.Unix()
	}
	if periodStart != nil && periodEnd != nil && periodEnd.After(*periodStart) {
		st.PeriodStart, st.PeriodEnd = periodStart.Unix(), periodEnd.Unix()
	}
	if subID != nil && s.BillingURL != "" {
		st.BillingURL = strings.NewReplacer("{slug}", slug, "{subscription}", *subID).Replace(s.BillingURL)
	}
}

// enqueueKey queues the effective record of k for the workers.
func (s *Service) enqueueKey(ctx context.Context, tx pgx.Tx, k keyRow) error {
	st, err := s.keyStateOf(ctx, tx, k)
	if err != nil {
		return err
	}
	return outbox.EnqueueKey(ctx, tx, k.Digest, effectiveRecord(k, st))
}

// requeueKeys re-queues the records of the tenant's active keys that match
// cond (an SQL condition on the keys table aliased k, with arguments from
// $2), after a change of their consumer or subscription. It returns how many
// keys it re-queued.
func (s *Service) requeueKeys(ctx context.Context, tx pgx.Tx, tenantID, cond string, args ...any) (int, error) {
	rows, err := tx.Query(ctx, `SELECT k.id, k.tenant_id, k.consumer_id, k.plan_id, k.digest, k.prefix, k.status,
			k.created_at, k.revoked_at, k.subscription_id, k.app_id, k.expires_at, k.replaced_by,
			c.status, coalesce(s.status, ''), s.grace_until, t.slug, s.current_period_start, s.current_period_end
		FROM keys k JOIN consumers c ON c.id = k.consumer_id JOIN tenants t ON t.id = k.tenant_id
		LEFT JOIN subscriptions s ON s.id = k.subscription_id
		WHERE k.tenant_id = $1 AND k.status = 'active' AND (k.expires_at IS NULL OR k.expires_at > now()) AND `+cond,
		append([]any{tenantID}, args...)...)
	if err != nil {
		return 0, fmt.Errorf("find keys to re-queue: %w", err)
	}
	type item struct {
		k  keyRow
		st keyState
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (item, error) {
		var it item
		k := &it.k
		var grace, ps, pe *time.Time
		var slug string
		err := r.Scan(&k.ID, &k.TenantID, &k.ConsumerID, &k.PlanID, &k.Digest, &k.Prefix, &k.Status, &k.CreatedAt,
			&k.RevokedAt, &k.SubscriptionID, &k.AppID, &k.ExpiresAt, &k.ReplacedBy,
			&it.st.ConsumerStatus, &it.st.SubscriptionStatus, &grace, &slug, &ps, &pe)
		s.billingState(&it.st, grace, ps, pe, slug, k.SubscriptionID)
		return it, err
	})
	if err != nil {
		return 0, fmt.Errorf("find keys to re-queue: %w", err)
	}
	for _, it := range items {
		if err := outbox.EnqueueKey(ctx, tx, it.k.Digest, effectiveRecord(it.k, it.st)); err != nil {
			return 0, err
		}
	}
	return len(items), nil
}
