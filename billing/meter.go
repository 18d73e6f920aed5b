package billing

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/store"
)

// MeterEventName is the event name of the Billing Meter billing creates on
// each connected account (one meter per account, shared by the metered
// prices of all the tenant's plans). Meter events for a subscription go to
// the name in its MeterTarget, which is this for every meter created so far.
const MeterEventName = "tollgate_requests"

// Querier is what the lookups below need: a pool or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrNotMetered means a subscription has nothing to report to a meter: its
// plan version has no metered price, its tenant has no connected account,
// or it has not been through Checkout (no Stripe customer).
var ErrNotMetered = errors.New("billing: subscription is not metered")

// MeterTarget is where the metered usage of one subscription goes.
type MeterTarget struct {
	// Account is the tenant's connected account (Stripe-Account).
	Account string
	// Customer is the Stripe customer of the subscription's app.
	Customer string
	// EventName is the meter's event name on that account.
	EventName string
	// MeterID is the meter's id on that account.
	MeterID string
}

// SubscriptionMeterTarget returns where the subscription's metered usage
// goes, or ErrNotMetered. The customer is the app's (billing_customers:
// one per app, so two apps never bill each other's usage); the meter is
// the one of the plan version the subscription pays for (or the plan's
// newest synced version when the subscription has none recorded).
func SubscriptionMeterTarget(ctx context.Context, q Querier, tenantID, subscriptionID string) (MeterTarget, error) {
	if !store.ValidID(tenantID) || !store.ValidID(subscriptionID) {
		return MeterTarget{}, ErrNotMetered
	}
	var t MeterTarget
	err := q.QueryRow(ctx, `SELECT tb.stripe_account_id, bc.stripe_customer_id, pp.meter_event_name, pp.meter_id
		FROM subscriptions s
		JOIN tenant_billing tb ON tb.tenant_id = s.tenant_id AND tb.deauthorized_at IS NULL
		JOIN billing_customers bc ON bc.app_id = s.app_id AND bc.tenant_id = s.tenant_id
		JOIN LATERAL (SELECT meter_event_name, meter_id FROM plan_prices
			WHERE plan_id = s.plan_id AND synced_at IS NOT NULL
			AND (s.plan_version IS NULL OR version = s.plan_version)
			ORDER BY version DESC LIMIT 1) pp ON true
		WHERE s.tenant_id = $1 AND s.id = $2 AND pp.meter_event_name <> ''`, tenantID, subscriptionID).
		Scan(&t.Account, &t.Customer, &t.EventName, &t.MeterID)
	if errors.Is(err, pgx.ErrNoRows) {
		return MeterTarget{}, ErrNotMetered
	} else if err != nil {
		return MeterTarget{}, fmt.Errorf("meter target: %w", err)
	}
	return t, nil
}

// SubscriptionCustomer returns the Stripe customer that pays for the
// subscription (its app's customer on the tenant's connected account), or
// ErrNotMetered when there is none yet.
func SubscriptionCustomer(ctx context.Context, q Querier, tenantID, subscriptionID string) (string, error) {
	if !store.ValidID(tenantID) || !store.ValidID(subscriptionID) {
		return "", ErrNotMetered
	}
	var cus string
	err := q.QueryRow(ctx, `SELECT bc.stripe_customer_id FROM subscriptions s
		JOIN billing_customers bc ON bc.app_id = s.app_id AND bc.tenant_id = s.tenant_id
		WHERE s.tenant_id = $1 AND s.id = $2`, tenantID, subscriptionID).Scan(&cus)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotMetered
	} else if err != nil {
		return "", fmt.Errorf("subscription customer: %w", err)
	}
	return cus, nil
}
