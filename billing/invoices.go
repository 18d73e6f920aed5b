package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/billing/rating"
	"github.com/tollgate/tollgate/services/store"
)

// What a developer sees of a subscription's billing: its invoices, as
// Stripe's webhooks recorded them, and the estimate of the next one, rated
// by the same code as the meter events.

// Invoice is a Stripe invoice of a subscription, as recorded from
// invoice.paid and invoice.payment_failed events. Amounts are in the
// currency's minor unit.
type Invoice struct {
	ID             string `json:"id"`
	SubscriptionID string `json:"subscription_id"`
	// Status is Stripe's: paid, open (a payment failed), uncollectible,
	// void.
	Status     string `json:"status"`
	Currency   string `json:"currency"`
	AmountDue  int64  `json:"amount_due"`
	AmountPaid int64  `json:"amount_paid"`
	// PeriodStart and PeriodEnd bound the service period billed (nil when
	// the invoice named none).
	PeriodStart *time.Time `json:"period_start"`
	PeriodEnd   *time.Time `json:"period_end"`
	// HostedInvoiceURL is Stripe's page of the invoice (view, pay,
	// download); nil when Stripe sent none.
	HostedInvoiceURL *string   `json:"hosted_invoice_url"`
	Created          time.Time `json:"created"`
}

// MaxInvoices is the most invoices Invoices returns (the newest).
const MaxInvoices = 100

const invoiceCols = `stripe_invoice_id, coalesce(subscription_id::text, ''), status, currency, amount_due, amount_paid,
	period_start, period_end, hosted_invoice_url, created`

func scanInvoice(row pgx.Row) (Invoice, error) {
	var in Invoice
	var hosted string
	err := row.Scan(&in.ID, &in.SubscriptionID, &in.Status, &in.Currency, &in.AmountDue, &in.AmountPaid,
		&in.PeriodStart, &in.PeriodEnd, &hosted, &in.Created)
	if hosted != "" {
		in.HostedInvoiceURL = &hosted
	}
	return in, err
}

// Invoices returns the invoices of one of the tenant's subscriptions,
// newest first (at most MaxInvoices). The caller checks that the
// subscription is the developer's; an unknown id has none.
func (s *Service) Invoices(ctx context.Context, tenantID, subscriptionID string) ([]Invoice, error) {
	if !store.ValidID(tenantID) || !store.ValidID(subscriptionID) {
		return []Invoice{}, nil
	}
	rows, err := s.DB.Query(ctx, `SELECT `+invoiceCols+` FROM invoices
		WHERE tenant_id = $1 AND subscription_id = $2 ORDER BY created DESC, stripe_invoice_id LIMIT $3`,
		tenantID, subscriptionID, MaxInvoices)
	if err != nil {
		return nil, fmt.Errorf("list invoices: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Invoice, error) { return scanInvoice(r) })
	if err != nil {
		return nil, fmt.Errorf("list invoices: %w", err)
	}
	if out == nil {
		out = []Invoice{}
	}
	return out, nil
}

// Estimate is the next invoice of one of the tenant's subscriptions as far
// as Tollgate can tell at the billing clock's now: rating.Estimate, the
// rating of the meter events, over its current billing period. Another
// tenant's subscription is fault.ErrNotFound.
func (s *Service) Estimate(ctx context.Context, tenantID, subscriptionID string) (rating.InvoiceEstimate, error) {
	return rating.Estimate(ctx, s.DB, tenantID, subscriptionID, s.now())
}
