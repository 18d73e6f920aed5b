package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/store"
)

// The figures of a tenant's billing page: revenue, subscribers per plan and
// failed payments, read from what Stripe's webhooks recorded (invoices,
// subscriptions' states). Nothing here calls Stripe.

// Revenue is what a tenant was paid in one currency (minor unit), by the
// invoices recorded as paid, dated by their creation.
type Revenue struct {
	Currency string `json:"currency"`
	// Month is since the start of the calendar month (UTC); Last30Days
	// over the 30 days before now.
	Month      int64 `json:"month"`
	Last30Days int64 `json:"last_30_days"`
	// Invoices counts the paid invoices of either period.
	Invoices int64 `json:"invoices"`
}

// PlanSubscribers counts the subscriptions of one priced plan by status.
type PlanSubscribers struct {
	PlanID          string `json:"plan_id"`
	PlanName        string `json:"plan_name"`
	Active          int64  `json:"active"`
	PastDue         int64  `json:"past_due"`
	Suspended       int64  `json:"suspended"`
	PaymentRequired int64  `json:"payment_required"`
}

// FailedPayment is an invoice whose payment failed and that is not paid
// yet (open or uncollectible), with the state of its subscription.
type FailedPayment struct {
	Invoice
	AppID              string `json:"app_id"`
	AppName            string `json:"app_name"`
	ConsumerEmail      string `json:"consumer_email"`
	PlanName           string `json:"plan_name"`
	SubscriptionStatus string `json:"subscription_status"`
	// GraceUntil ends a past-due subscription's grace period: its keys get
	// 402 from then on.
	GraceUntil *time.Time `json:"grace_until"`
}

// MaxFailedPayments is the most failed payments Overview lists (the
// newest).
const MaxFailedPayments = 50

// Overview is a tenant's billing at a glance.
type Overview struct {
	AsOf    time.Time         `json:"as_of"`
	Revenue []Revenue         `json:"revenue"`
	Plans   []PlanSubscribers `json:"plans"`
	Failed  []FailedPayment   `json:"failed_payments"`
}

// Overview returns the tenant's revenue (per currency), subscribers per
// priced plan and unpaid failed payments, at the billing clock's now.
func (s *Service) Overview(ctx context.Context, tenantID string) (Overview, error) {
	now := s.now().UTC()
	o := Overview{AsOf: now, Revenue: []Revenue{}, Plans: []PlanSubscribers{}, Failed: []FailedPayment{}}
	if !store.ValidID(tenantID) {
		return o, nil
	}
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	days30 := now.Add(-30 * 24 * time.Hour)
	rows, err := s.DB.Query(ctx, `SELECT currency,
			coalesce(sum(amount_paid) FILTER (WHERE created >= $2), 0)::bigint,
			coalesce(sum(amount_paid) FILTER (WHERE created >= $3), 0)::bigint,
			count(*)
		FROM invoices
		WHERE tenant_id = $1 AND status = 'paid' AND created >= least($2::timestamptz, $3::timestamptz) AND created <= $4
		GROUP BY currency ORDER BY currency`, tenantID, month, days30, now)
	if err != nil {
		return Overview{}, fmt.Errorf("billing overview: revenue: %w", err)
	}
	o.Revenue, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Revenue, error) {
		var v Revenue
		err := r.Scan(&v.Currency, &v.Month, &v.Last30Days, &v.Invoices)
		return v, err
	})
	if err != nil {
		return Overview{}, fmt.Errorf("billing overview: revenue: %w", err)
	}
	rows, err = s.DB.Query(ctx, `SELECT p.id::text, p.name,
			count(s.id) FILTER (WHERE s.status = 'active'), count(s.id) FILTER (WHERE s.status = 'past_due'),
			count(s.id) FILTER (WHERE s.status = 'suspended'), count(s.id) FILTER (WHERE s.status = 'payment_required')
		FROM plans p LEFT JOIN subscriptions s ON s.plan_id = p.id AND s.tenant_id = p.tenant_id
		WHERE p.tenant_id = $1 AND (p.price_cents > 0 OR p.per_request_decimal > 0
			OR EXISTS (SELECT 1 FROM subscriptions b WHERE b.plan_id = p.id AND b.stripe_subscription_id IS NOT NULL))
		GROUP BY p.id, p.name ORDER BY p.name, p.id`, tenantID)
	if err != nil {
		return Overview{}, fmt.Errorf("billing overview: plans: %w", err)
	}
	o.Plans, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (PlanSubscribers, error) {
		var v PlanSubscribers
		err := r.Scan(&v.PlanID, &v.PlanName, &v.Active, &v.PastDue, &v.Suspended, &v.PaymentRequired)
		return v, err
	})
	if err != nil {
		return Overview{}, fmt.Errorf("billing overview: plans: %w", err)
	}
	rows, err = s.DB.Query(ctx, `SELECT i.stripe_invoice_id, coalesce(i.subscription_id::text, ''), i.status, i.currency,
			i.amount_due, i.amount_paid, i.period_start, i.period_end, i.hosted_invoice_url, i.created,
			coalesce(a.id::text, ''), coalesce(a.name, ''), coalesce(c.email, ''), coalesce(p.name, ''),
			coalesce(s.status, ''), s.grace_until
		FROM invoices i
		LEFT JOIN subscriptions s ON s.id = i.subscription_id AND s.tenant_id = i.tenant_id
		LEFT JOIN apps a ON a.id = s.app_id AND a.tenant_id = s.tenant_id
		LEFT JOIN consumers c ON c.id = s.consumer_id AND c.tenant_id = s.tenant_id
		LEFT JOIN plans p ON p.id = s.plan_id AND p.tenant_id = s.tenant_id
		WHERE i.tenant_id = $1 AND i.status IN ('open', 'uncollectible')
		ORDER BY i.created DESC, i.stripe_invoice_id LIMIT $2`, tenantID, MaxFailedPayments)
	if err != nil {
		return Overview{}, fmt.Errorf("billing overview: failed payments: %w", err)
	}
	o.Failed, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (FailedPayment, error) {
		var v FailedPayment
		var hosted string
		err := r.Scan(&v.ID, &v.SubscriptionID, &v.Status, &v.Currency, &v.AmountDue, &v.AmountPaid, &v.PeriodStart,
			&v.PeriodEnd, &hosted, &v.Created, &v.AppID, &v.AppName, &v.ConsumerEmail, &v.PlanName,
			&v.SubscriptionStatus, &v.GraceUntil)
		if hosted != "" {
			v.HostedInvoiceURL = &hosted
		}
		return v, err
	})
	if err != nil {
		return Overview{}, fmt.Errorf("billing overview: failed payments: %w", err)
	}
	if o.Revenue == nil {
		o.Revenue = []Revenue{}
	}
	if o.Plans == nil {
		o.Plans = []PlanSubscribers{}
	}
	if o.Failed == nil {
		o.Failed = []FailedPayment{}
	}
	return o, nil
}
