package metering

import (
	"context"
	"fmt"
	"math/big"
	"time"

	"github.com/tollgate/tollgate/billing/rating"
	"github.com/tollgate/tollgate/services/store"
)

// DriftGrace is how far behind now Drift stops looking: windows that
// recent may not be reported yet (settle delay, producer interval, send).
const DriftGrace = 2 * time.Minute

// StalePending is how long a row may stay pending before Drift shows it
// (Stripe down, or a row failing again and again: see its LastError).
const StalePending = 5 * time.Minute

// Reasons a subscription's served usage is not reported (DriftRow.Reason).
const (
	ReasonNoAccount    = "the tenant has no connected Stripe account"
	ReasonDeauthorized = "the tenant's Stripe account was disconnected from Tollgate"
	ReasonNoCustomer   = "the app has no Stripe customer (the subscription has not been through Checkout)"
	ReasonNoMeter      = "the plan's metered price is not synced to Stripe (no meter)"
)

// DriftRow compares, for one subscription, the requests the gateway served
// with what was reported to Stripe, over the windows starting in a period.
// All counts are requests.
type DriftRow struct {
	TenantID       string `json:"tenant_id"`
	SubscriptionID string `json:"subscription_id"`
	// Served is what the keys of the subscription were served (see
	// rating.Billable).
	Served int64 `json:"served"`
	// Sent was accepted by Stripe; Pending waits for the Sender; Refused was
	// refused by Stripe (LastError says why); Expired was too old for
	// Stripe when it was found.
	Sent    int64 `json:"sent"`
	Pending int64 `json:"pending"`
	Refused int64 `json:"refused"`
	Expired int64 `json:"expired"`
	// Unreported is Served less every report (any status): above 0 it was
	// never written (Reason says why, or the producer has not reached it:
	// Repair), below 0 more was reported than served.
	Unreported int64 `json:"unreported"`
	// Reason is why the subscription's usage cannot be reported ("" when it
	// can).
	Reason string `json:"reason,omitempty"`
	// LastError is Stripe's answer to the newest refused or failing row.
	LastError string `json:"last_error,omitempty"`
	// OldestPending is when the oldest pending row was written.
	OldestPending *time.Time `json:"oldest_pending,omitempty"`
}

// Drift compares served and reported usage per subscription of a tenant
// over the windows starting in [from, to) (to is capped at now less
// DriftGrace; with a Window longer than a minute, pass whole windows) and
// returns the subscriptions with a difference: unreported or
// over-reported requests, refused or expired reports, or reports pending
// for longer than StalePending. Subscriptions of plans without a
// per-request price are left out unless they have reports in the period.
// The other half of the drift check (subscription states in Tollgate and
// Stripe) is billing's; a page shows both.
func Drift(ctx context.Context, q rating.Querier, tenantID string, from, to time.Time) ([]DriftRow, error) {
	if !store.ValidID(tenantID) {
		return nil, nil
	}
	now := time.Now()
	if limit := now.Add(-DriftGrace); to.After(limit) {
		to = limit
	}
	if !to.After(from) {
		return []DriftRow{}, nil
	}
	rows, err := q.Query(ctx, `WITH served AS (
			SELECT k.subscription_id AS sub, sum(um.requests)::bigint AS n
			FROM keys k JOIN usage_minutes um ON um.tenant_id = k.tenant_id AND um.key_id = k.id::text
			WHERE k.tenant_id = $1 AND k.subscription_id IS NOT NULL
				AND um.minute >= $2 AND um.minute < $3 AND um.status_class = ANY($4)
			GROUP BY 1
		), reps AS (
			SELECT subscription_id AS sub,
				coalesce(sum(value) FILTER (WHERE status = 'sent'), 0)::bigint AS sent,
				coalesce(sum(value) FILTER (WHERE status = 'pending'), 0)::bigint AS pending,
				coalesce(sum(value) FILTER (WHERE status = 'refused'), 0)::bigint AS refused,
				coalesce(sum(value) FILTER (WHERE status = 'expired'), 0)::bigint AS expired,
				min(created_at) FILTER (WHERE status = 'pending') AS oldest_pending,
				(array_agg(last_error ORDER BY id DESC) FILTER (WHERE status IN ('refused', 'pending') AND last_error <> ''))[1] AS last_error
			FROM meter_reports
			WHERE tenant_id = $1 AND window_start >= $2 AND window_start < $3
			GROUP BY 1
		)
		SELECT s.id::text, coalesce(sv.n, 0), coalesce(r.sent, 0), coalesce(r.pending, 0), coalesce(r.refused, 0),
			coalesce(r.expired, 0), r.oldest_pending, coalesce(r.last_error, ''), r.sub IS NOT NULL,
			tb.tenant_id IS NOT NULL, tb.deauthorized_at IS NOT NULL, bc.app_id IS NOT NULL,
			coalesce(pp.meter_event_name, ''), pp.price, p.per_request_decimal::text
		FROM subscriptions s
		JOIN plans p ON p.id = s.plan_id AND p.tenant_id = s.tenant_id
		LEFT JOIN served sv ON sv.sub = s.id
		LEFT JOIN reps r ON r.sub = s.id
		LEFT JOIN tenant_billing tb ON tb.tenant_id = s.tenant_id
		LEFT JOIN billing_customers bc ON bc.app_id = s.app_id AND bc.tenant_id = s.tenant_id
		LEFT JOIN LATERAL (SELECT meter_event_name, price FROM plan_prices
			WHERE plan_id = s.plan_id AND synced_at IS NOT NULL
			AND (s.plan_version IS NULL OR version = s.plan_version)
			ORDER BY version DESC LIMIT 1) pp ON true
		WHERE s.tenant_id = $1 AND (sv.sub IS NOT NULL OR r.sub IS NOT NULL)
		ORDER BY s.created_at, s.id`, tenantID, from, to, rating.BillableClasses())
	if err != nil {
		return nil, fmt.Errorf("drift: %w", err)
	}
	defer rows.Close()
	out := []DriftRow{}
	for rows.Next() {
		d := DriftRow{TenantID: tenantID}
		var (
			hasReports, hasAccount, deauthorized, hasCustomer bool
			event                                             string
			price                                             []byte
			planPerRequest                                    *string
		)
		if err := rows.Scan(&d.SubscriptionID, &d.Served, &d.Sent, &d.Pending, &d.Refused, &d.Expired, &d.OldestPending,
			&d.LastError, &hasReports, &hasAccount, &deauthorized, &hasCustomer, &event, &price, &planPerRequest); err != nil {
			return nil, fmt.Errorf("drift: %w", err)
		}
		// Should this subscription's usage be metered? Its synced price
		// version says so; without one, the plan's current price.
		wants := price != nil && metered(price)
		if price == nil && planPerRequest != nil {
			if r, ok := new(big.Rat).SetString(*planPerRequest); ok && r.Sign() > 0 {
				wants = true
			}
		}
		if !wants && !hasReports {
			continue
		}
		switch {
		case !wants:
		case !hasAccount:
			d.Reason = ReasonNoAccount
		case deauthorized:
			d.Reason = ReasonDeauthorized
		case !hasCustomer:
			d.Reason = ReasonNoCustomer
		case event == "" || price == nil:
			d.Reason = ReasonNoMeter
		}
		d.Unreported = d.Served - d.Sent - d.Pending - d.Refused - d.Expired
		stale := d.OldestPending != nil && now.Sub(*d.OldestPending) > StalePending
		if d.Unreported != 0 || d.Refused > 0 || d.Expired > 0 || stale {
			out = append(out, d)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("drift: %w", err)
	}
	return out, nil
}

// Requeue puts the refused reports of a tenant whose windows start in
// [from, to) back to pending, to be sent again under the same identifiers
// once the cause is fixed (a meter or customer created, an account
// reconnected). Stripe may answer a request it refused in the last 24
// hours with the same refusal (its idempotency keys replay results). It
// returns the number of rows requeued; a window too old for Stripe is
// expired by the Sender instead of sent.
func Requeue(ctx context.Context, q rating.Querier, tenantID string, from, to time.Time) (int64, error) {
	if !store.ValidID(tenantID) {
		return 0, nil
	}
	tag, err := q.Exec(ctx, `UPDATE meter_reports SET status = 'pending'
		WHERE tenant_id = $1 AND status = 'refused' AND window_start >= $2 AND window_start < $3`, tenantID, from, to)
	if err != nil {
		return 0, fmt.Errorf("requeue meter reports: %w", err)
	}
	return tag.RowsAffected(), nil
}
