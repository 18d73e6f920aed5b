package rating

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
)

// InvoiceEstimate is a developer's next invoice as far as Tollgate can tell:
// the subscription's price rated (Rate) with the requests served so far in
// the current billing period.
type InvoiceEstimate struct {
	SubscriptionID string `json:"subscription_id"`
	PlanID         string `json:"plan_id"`
	// PlanVersion is the plan price version rated (plan_prices.version); 0
	// when the subscription has none yet and the plan's current price was
	// used.
	PlanVersion int `json:"plan_version"`
	// PeriodStart and PeriodEnd bound the billing period [start, end).
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
	// StripePeriod is true when the period is the subscription's Stripe
	// billing period (rolled forward by the price's interval if Stripe's
	// renewal has not arrived yet), false for the calendar period of the
	// price's interval (UTC) used before the first one is known.
	StripePeriod bool `json:"stripe_period"`
	// AsOf is when the served requests were counted.
	AsOf time.Time `json:"as_of"`
	Quote
}

// Estimate rates the requests a subscription has been served in its
// current billing period (at now) with the price it pays. The period is
// the subscription's current_period_start/end from Stripe when known, else
// the calendar period of the price's interval (UTC). Served requests are
// counted by minute start in [PeriodStart, PeriodEnd), the rule by which
// Stripe assigns the meter events (timestamped at their window's start) to
// a period. A subscription of another tenant is fault.ErrNotFound.
func Estimate(ctx context.Context, q Querier, tenantID, subscriptionID string, now time.Time) (InvoiceEstimate, error) {
	if !store.ValidID(tenantID) || !store.ValidID(subscriptionID) {
		return InvoiceEstimate{}, fault.ErrNotFound
	}
	est := InvoiceEstimate{SubscriptionID: subscriptionID, AsOf: now.UTC()}
	price, version, periodStart, periodEnd, err := subscriptionPrice(ctx, q, tenantID, subscriptionID, &est.PlanID)
	if err != nil {
		return InvoiceEstimate{}, err
	}
	est.PlanVersion = version
	var p catalog.Price
	if price != nil {
		p = *price
	}
	if periodStart != nil && periodEnd != nil && periodEnd.After(*periodStart) {
		est.PeriodStart, est.PeriodEnd = rollForward(periodStart.UTC(), periodEnd.UTC(), interval(p), now.UTC())
		est.StripePeriod = true
	} else {
		est.PeriodStart, est.PeriodEnd = CalendarPeriod(interval(p), now)
	}
	served, err := Served(ctx, q, tenantID, subscriptionID, est.PeriodStart, est.PeriodEnd)
	if err != nil {
		return InvoiceEstimate{}, fmt.Errorf("estimate: %w", err)
	}
	quote, err := Rate(p, served)
	if err != nil {
		return InvoiceEstimate{}, fmt.Errorf("estimate: %w", err)
	}
	if price == nil {
		quote.Currency = ""
	}
	est.Quote = quote
	return est, nil
}

// subscriptionPrice returns the price a subscription pays: its plan
// version's (plan_prices.version = plan_version), else the plan's newest
// synced version (the rule billing uses for its meter target), else the
// plan's current catalog price (nil for a free plan, version 0).
func subscriptionPrice(ctx context.Context, q Querier, tenantID, subscriptionID string, planID *string) (
	price *catalog.Price, version int, start, end *time.Time, err error) {
	var (
		raw          []byte
		ver          *int
		cents        *int64
		cur, perReq  *string
		planInterval string
		included     int64
	)
	err = q.QueryRow(ctx, `SELECT s.plan_id::text, s.current_period_start, s.current_period_end, pp.version, pp.price,
			p.price_cents, p.currency, p.price_interval, p.per_request_decimal::text, p.included_requests
		FROM subscriptions s
		JOIN plans p ON p.id = s.plan_id AND p.tenant_id = s.tenant_id
		LEFT JOIN LATERAL (SELECT version, price FROM plan_prices
			WHERE plan_id = s.plan_id AND (version = s.plan_version OR (s.plan_version IS NULL AND synced_at IS NOT NULL))
			ORDER BY version DESC LIMIT 1) pp ON true
		WHERE s.tenant_id = $1 AND s.id = $2`, tenantID, subscriptionID).
		Scan(planID, &start, &end, &ver, &raw, &cents, &cur, &planInterval, &perReq, &included)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, nil, nil, fault.ErrNotFound
	}
	if err != nil {
		return nil, 0, nil, nil, fmt.Errorf("subscription price: %w", err)
	}
	if ver != nil {
		var p catalog.Price
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, 0, nil, nil, fmt.Errorf("subscription price: plan version %d: %w", *ver, err)
		}
		return &p, *ver, start, end, nil
	}
	if cents == nil || cur == nil {
		return nil, 0, start, end, nil
	}
	p := &catalog.Price{AmountCents: *cents, Currency: *cur, Interval: planInterval, IncludedRequests: included}
	if perReq != nil {
		p.PerRequestDecimal = *perReq
	}
	return p, 0, start, end, nil
}

// CalendarPeriod returns the calendar period of a price interval (day,
// week from Monday, month or year; anything else is month) containing t,
// in UTC.
func CalendarPeriod(interval string, t time.Time) (start, end time.Time) {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch interval {
	case "day":
		return day, day.AddDate(0, 0, 1)
	case "week":
		start = day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
		return start, start.AddDate(0, 0, 7)
	case "year":
		start = time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(1, 0, 0)
	default:
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	}
}

// rollForward moves the period [start, end) on by whole intervals until it
// contains now: Stripe renews at the end, and the webhook with the new
// period may not have arrived yet. A period that already contains now, or
// lies in the future, is returned as it is.
func rollForward(start, end time.Time, interval string, now time.Time) (time.Time, time.Time) {
	for i := 0; !now.Before(end) && i < 10_000; i++ {
		start = end
		switch interval {
		case "day":
			end = end.AddDate(0, 0, 1)
		case "week":
			end = end.AddDate(0, 0, 7)
		case "year":
			end = end.AddDate(1, 0, 0)
		default:
			end = end.AddDate(0, 1, 0)
		}
	}
	return start, end
}
