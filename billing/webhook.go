package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

// MaxWebhookBody caps a webhook's body; Stripe's events are far smaller.
const MaxWebhookBody = 1 << 20

// Outcomes of a webhook event, stored in stripe_events.outcome.
const (
	// OutcomeApplied: the event changed Tollgate's state (or confirmed it).
	OutcomeApplied = "applied"
	// OutcomeStale: older than the newest event applied to its subscription.
	OutcomeStale = "stale"
	// OutcomeWrongAccount: its account is not the connected account of the
	// tenant that owns the object it names.
	OutcomeWrongAccount = "wrong-account"
	// OutcomeWrongMode: a live event for a test key or the reverse.
	OutcomeWrongMode = "wrong-mode"
	// OutcomeUnknownObject: it names nothing Tollgate knows.
	OutcomeUnknownObject = "unknown-object"
	// OutcomeIgnored: a type billing does not handle.
	OutcomeIgnored = "ignored"
)

// WebhookStats counts webhook deliveries since start, for metrics. Read it
// with Snapshot.
type WebhookStats struct {
	Received      atomic.Int64
	BadSignature  atomic.Int64
	Duplicate     atomic.Int64
	Applied       atomic.Int64
	Stale         atomic.Int64
	WrongAccount  atomic.Int64
	WrongMode     atomic.Int64
	UnknownObject atomic.Int64
	Ignored       atomic.Int64
	Failed        atomic.Int64
}

// Snapshot returns the counters by name (received, bad_signature,
// duplicate, applied, stale, wrong_account, wrong_mode, unknown_object,
// ignored, failed).
func (w *WebhookStats) Snapshot() map[string]int64 {
	return map[string]int64{"received": w.Received.Load(), "bad_signature": w.BadSignature.Load(),
		"duplicate": w.Duplicate.Load(), "applied": w.Applied.Load(), "stale": w.Stale.Load(),
		"wrong_account": w.WrongAccount.Load(), "wrong_mode": w.WrongMode.Load(),
		"unknown_object": w.UnknownObject.Load(), "ignored": w.Ignored.Load(), "failed": w.Failed.Load()}
}

func (w *WebhookStats) count(outcome string) {
	switch outcome {
	case OutcomeApplied:
		w.Applied.Add(1)
	case OutcomeStale:
		w.Stale.Add(1)
	case OutcomeWrongAccount:
		w.WrongAccount.Add(1)
	case OutcomeWrongMode:
		w.WrongMode.Add(1)
	case OutcomeUnknownObject:
		w.UnknownObject.Add(1)
	case OutcomeIgnored:
		w.Ignored.Add(1)
	}
}

// Webhook returns the handler of POST /webhooks/stripe. It verifies the
// signature against the raw body with stripe-go's webhook code (default
// 300 s tolerance; events of other API versions are accepted and read by
// billing's own decoders), then applies the event in one transaction with
// the insert of its id into stripe_events: a replay finds the id and
// changes nothing. A bad or stale signature answers 400 and changes
// nothing; an event billing ignores answers 200, so Stripe does not retry
// it for days; a database failure answers 500, so Stripe retries.
func (s *Service) Webhook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if !s.Enabled() || s.WebhookSecret == "" {
			http.Error(w, "billing is not enabled", http.StatusServiceUnavailable)
			return
		}
		s.Stats.Received.Add(1)
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
		if err != nil {
			s.Stats.BadSignature.Add(1)
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), s.WebhookSecret,
			webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
		if err != nil {
			s.Stats.BadSignature.Add(1)
			// Say which check failed, never the expected signature.
			msg := "invalid signature"
			if errors.Is(err, webhook.ErrTooOld) {
				msg = "signature timestamp outside the tolerance"
			} else if errors.Is(err, webhook.ErrNotSigned) {
				msg = "missing Stripe-Signature header"
			}
			http.Error(w, msg, http.StatusBadRequest)
			return
		}
		outcome, dup, err := s.ApplyEvent(r.Context(), ev)
		if err != nil {
			s.Stats.Failed.Add(1)
			s.log().Error("billing: webhook failed", "event", ev.ID, "type", ev.Type, "err", err)
			http.Error(w, "could not apply the event; retry", http.StatusInternalServerError)
			return
		}
		if dup {
			s.Stats.Duplicate.Add(1)
		} else {
			s.Stats.count(outcome)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"received": true, "outcome": outcome, "duplicate": dup})
	})
}

// ApplyEvent applies a verified event exactly once and returns its outcome;
// duplicate is true when the event had been received before (nothing
// changed now; outcome is the first delivery's).
func (s *Service) ApplyEvent(ctx context.Context, ev stripego.Event) (outcome string, duplicate bool, err error) {
	if ev.ID == "" {
		return "", false, fmt.Errorf("event without id")
	}
	created := time.Unix(ev.Created, 0).UTC()
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		// The primary key serialises concurrent deliveries: the second
		// insert waits for the first transaction and then conflicts.
		tag, err := tx.Exec(ctx, `INSERT INTO stripe_events (id, account, type, created, outcome)
			VALUES ($1, $2, $3, $4, '') ON CONFLICT (id) DO NOTHING`, ev.ID, ev.Account, string(ev.Type), created)
		if err != nil {
			return fmt.Errorf("record event: %w", err)
		}
		if tag.RowsAffected() == 0 {
			duplicate = true
			return tx.QueryRow(ctx, `SELECT outcome FROM stripe_events WHERE id = $1`, ev.ID).Scan(&outcome)
		}
		if ev.Livemode != s.Stripe.Live() {
			outcome = OutcomeWrongMode
		} else if outcome, err = s.applyEvent(ctx, tx, ev, created); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE stripe_events SET outcome = $2 WHERE id = $1`, ev.ID, outcome)
		return err
	})
	if err != nil {
		return "", false, fmt.Errorf("apply stripe event %s: %w", ev.ID, err)
	}
	return outcome, duplicate, nil
}

func (s *Service) applyEvent(ctx context.Context, tx pgx.Tx, ev stripego.Event, created time.Time) (string, error) {
	if ev.Data == nil {
		return OutcomeIgnored, nil
	}
	raw := ev.Data.Raw
	switch ev.Type {
	case stripego.EventTypeCheckoutSessionCompleted, stripego.EventTypeCheckoutSessionAsyncPaymentSucceeded:
		var o checkoutSession
		if err := json.Unmarshal(raw, &o); err != nil {
			return "", fmt.Errorf("decode checkout session: %w", err)
		}
		return s.onCheckoutCompleted(ctx, tx, ev, created, o)
	case stripego.EventTypeCustomerSubscriptionCreated, stripego.EventTypeCustomerSubscriptionUpdated,
		stripego.EventTypeCustomerSubscriptionDeleted, stripego.EventTypeCustomerSubscriptionPaused,
		stripego.EventTypeCustomerSubscriptionResumed:
		var o subscriptionObject
		if err := json.Unmarshal(raw, &o); err != nil {
			return "", fmt.Errorf("decode subscription: %w", err)
		}
		return s.onSubscription(ctx, tx, ev, created, o)
	case stripego.EventTypeInvoicePaid, stripego.EventTypeInvoicePaymentFailed:
		var o invoiceObject
		if err := json.Unmarshal(raw, &o); err != nil {
			return "", fmt.Errorf("decode invoice: %w", err)
		}
		return s.onInvoice(ctx, tx, ev, created, o)
	case stripego.EventTypeAccountApplicationDeauthorized:
		return s.onDeauthorized(ctx, tx, ev)
	}
	return OutcomeIgnored, nil
}

// target finds and locks the Tollgate subscription an event names (by
// Tollgate id, else by Stripe subscription id) and checks the event's
// account against the owning tenant's. outcome is "" when the event may be
// applied to sub.
func (s *Service) target(ctx context.Context, tx pgx.Tx, ev stripego.Event, created time.Time,
	tollgateID, stripeSubID string) (sub catalog.BillingSubscription, tb tenantBilling, outcome string, err error) {
	sub, err = s.Catalog.FindBillingSubscription(ctx, tx, tollgateID, "", "FOR UPDATE")
	if errors.Is(err, fault.ErrNotFound) || tollgateID == "" {
		sub, err = s.Catalog.FindBillingSubscription(ctx, tx, "", stripeSubID, "FOR UPDATE")
	}
	if errors.Is(err, fault.ErrNotFound) {
		return sub, tb, OutcomeUnknownObject, nil
	} else if err != nil {
		return sub, tb, "", err
	}
	tb, err = scanTenantBilling(tx.QueryRow(ctx, `SELECT `+tenantBillingCols+` FROM tenant_billing WHERE tenant_id = $1`,
		sub.TenantID))
	if isNoRows(err) {
		return sub, tb, OutcomeWrongAccount, nil
	} else if err != nil {
		return sub, tb, "", fmt.Errorf("read tenant billing: %w", err)
	}
	// Tollgate's objects live on connected accounts: an event of the
	// platform itself, or of another account, names someone else's object.
	if ev.Account == "" || ev.Account != tb.AccountID {
		return sub, tb, OutcomeWrongAccount, nil
	}
	// A Stripe subscription other than the one on record claims it.
	if stripeSubID != "" && sub.StripeSubscriptionID != "" && sub.StripeSubscriptionID != stripeSubID {
		return sub, tb, OutcomeUnknownObject, nil
	}
	if sub.LastEventAt != nil && created.Before(*sub.LastEventAt) {
		return sub, tb, OutcomeStale, nil
	}
	return sub, tb, "", nil
}

func (s *Service) grace(tb tenantBilling) *time.Time {
	g := s.now().Add(time.Duration(tb.GracePeriodSeconds) * time.Second).UTC()
	return &g
}

func reason(ev stripego.Event) string { return string(ev.Type) + " " + ev.ID }

func who(sub catalog.BillingSubscription) audit.Actor {
	return audit.Actor{TenantID: sub.TenantID, Name: "stripe"}
}

func (s *Service) onCheckoutCompleted(ctx context.Context, tx pgx.Tx, ev stripego.Event, created time.Time, o checkoutSession) (string, error) {
	if o.Mode != "" && o.Mode != "subscription" {
		return OutcomeIgnored, nil
	}
	id := o.ClientReferenceID
	if id == "" {
		id = o.Metadata["tollgate_subscription_id"]
	}
	sub, _, outcome, err := s.target(ctx, tx, ev, created, id, string(o.Subscription))
	if err != nil || outcome != "" {
		return outcome, err
	}
	if (sub.Status == catalog.SubCanceled || sub.Status == catalog.SubRejected) && o.Subscription != "" &&
		sub.StripeSubscriptionID == "" {
		// Paid in a checkout left open after the subscription ended in
		// Tollgate: Stripe must not go on billing it.
		if _, err := tx.Exec(ctx, `INSERT INTO billing_jobs (tenant_id, kind, ref) VALUES ($1, $2, $3)`,
			sub.TenantID, JobCancelStripeSubscription, ev.Account+"/"+string(o.Subscription)); err != nil {
			return "", fmt.Errorf("queue cancel: %w", err)
		}
	}
	ch := catalog.BillingChange{StripeSubscriptionID: string(o.Subscription), StripeCheckoutSessionID: o.ID,
		EventAt: &created, Reason: reason(ev)}
	paid := o.PaymentStatus == "paid" || o.PaymentStatus == "no_payment_required"
	if paid && sub.Status == catalog.SubPaymentRequired {
		ch.Status = catalog.SubActive
	}
	if _, err := s.Catalog.ApplyBilling(ctx, tx, who(sub), sub.ID, ch); err != nil {
		return "", err
	}
	return OutcomeApplied, nil
}

// statusOf maps a Stripe subscription status to Tollgate's.
func statusOf(stripeStatus string) string {
	switch stripeStatus {
	case "active", "trialing":
		return catalog.SubActive
	case "past_due":
		return catalog.SubPastDue
	case "unpaid", "paused":
		return catalog.SubSuspended
	case "canceled", "incomplete_expired":
		return catalog.SubCanceled
	case "incomplete":
		return catalog.SubPaymentRequired
	}
	return ""
}

func (s *Service) onSubscription(ctx context.Context, tx pgx.Tx, ev stripego.Event, created time.Time, o subscriptionObject) (string, error) {
	sub, tb, outcome, err := s.target(ctx, tx, ev, created, o.Metadata["tollgate_subscription_id"], o.ID)
	if err != nil || outcome != "" {
		return outcome, err
	}
	stripeStatus := o.Status
	if ev.Type == stripego.EventTypeCustomerSubscriptionDeleted {
		stripeStatus = "canceled"
	}
	start, end := o.period()
	ch := catalog.BillingChange{Status: statusOf(stripeStatus), StripeSubscriptionID: o.ID, StripeStatus: stripeStatus,
		CurrentPeriodStart: start, CurrentPeriodEnd: end, CancelAtPeriodEnd: &o.CancelAtPeriodEnd,
		EventAt: &created, Reason: reason(ev)}
	if ch.Status == catalog.SubPastDue {
		ch.GraceUntil = s.grace(tb)
	}
	// A payment_required subscription becomes incomplete first in
	// Stripe; that is no news.
	if ch.Status == catalog.SubPaymentRequired && sub.Status != catalog.SubPaymentRequired {
		ch.Status = ""
	}
	// The items name the plan: a switch in the Customer Portal, or a
	// downgrade whose phase began, moves the Tollgate subscription.
	if ids := o.priceIDs(); len(ids) > 0 && ev.Type != stripego.EventTypeCustomerSubscriptionDeleted {
		var planID string
		var version int
		err := tx.QueryRow(ctx, `SELECT plan_id::text, version FROM plan_prices WHERE tenant_id = $1
			AND (flat_price_id = ANY($2) OR metered_price_id = ANY($2)) ORDER BY version DESC LIMIT 1`,
			sub.TenantID, ids).Scan(&planID, &version)
		if err == nil && (planID != sub.PlanID || sub.PlanVersion == nil || *sub.PlanVersion != version) {
			ch.PlanID, ch.PlanVersion = planID, &version
		} else if err != nil && !isNoRows(err) {
			return "", fmt.Errorf("find plan of prices: %w", err)
		}
	}
	if _, err := s.Catalog.ApplyBilling(ctx, tx, who(sub), sub.ID, ch); err != nil {
		return "", err
	}
	return OutcomeApplied, nil
}

func (s *Service) onInvoice(ctx context.Context, tx pgx.Tx, ev stripego.Event, created time.Time, o invoiceObject) (string, error) {
	stripeSub, tollgateID := o.subscription()
	if stripeSub == "" && tollgateID == "" {
		return OutcomeUnknownObject, nil // a one-off invoice
	}
	sub, tb, outcome, err := s.target(ctx, tx, ev, created, tollgateID, stripeSub)
	if err != nil || outcome != "" {
		return outcome, err
	}
	ch := catalog.BillingChange{StripeSubscriptionID: stripeSub, EventAt: &created, Reason: reason(ev)}
	switch ev.Type {
	case stripego.EventTypeInvoicePaid:
		// Paid: the keys work again at once.
		ch.Status = catalog.SubActive
	case stripego.EventTypeInvoicePaymentFailed:
		ch.Status, ch.GraceUntil = catalog.SubPastDue, s.grace(tb)
		if sub.Status == catalog.SubPaymentRequired {
			// The first payment of a checkout failed: nothing worked yet,
			// so nothing is past due.
			ch.Status, ch.GraceUntil = "", nil
		}
	}
	if _, err := s.Catalog.ApplyBilling(ctx, tx, who(sub), sub.ID, ch); err != nil {
		return "", err
	}
	start, end := o.period()
	status := o.Status
	if status == "" {
		status = map[stripego.EventType]string{stripego.EventTypeInvoicePaid: "paid",
			stripego.EventTypeInvoicePaymentFailed: "open"}[ev.Type]
	}
	invCreated := time.Unix(o.Created, 0).UTC()
	if o.Created == 0 {
		invCreated = created
	}
	if _, err := tx.Exec(ctx, `INSERT INTO invoices (stripe_invoice_id, tenant_id, subscription_id, status, currency,
			amount_due, amount_paid, period_start, period_end, hosted_invoice_url, created)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (stripe_invoice_id) DO UPDATE SET status = $4, amount_due = $6, amount_paid = $7,
			hosted_invoice_url = $10, updated_at = now()
		WHERE invoices.tenant_id = $2`,
		o.ID, sub.TenantID, sub.ID, status, o.Currency, o.AmountDue, o.AmountPaid, start, end, o.HostedInvoiceURL,
		invCreated); err != nil {
		return "", fmt.Errorf("store invoice: %w", err)
	}
	return OutcomeApplied, nil
}

func (s *Service) onDeauthorized(ctx context.Context, tx pgx.Tx, ev stripego.Event) (string, error) {
	if ev.Account == "" {
		return OutcomeWrongAccount, nil
	}
	var tenantID string
	err := tx.QueryRow(ctx, `UPDATE tenant_billing SET deauthorized_at = coalesce(deauthorized_at, now()), updated_at = now()
		WHERE stripe_account_id = $1 RETURNING tenant_id::text`, ev.Account).Scan(&tenantID)
	if isNoRows(err) {
		return OutcomeUnknownObject, nil
	} else if err != nil {
		return "", fmt.Errorf("deauthorize: %w", err)
	}
	if err := audit.Record(ctx, tx, audit.Actor{TenantID: tenantID, Name: "stripe"}, "billing.deauthorized", "billing",
		tenantID, map[string]any{"account_id": ev.Account, "event": ev.ID}); err != nil {
		return "", err
	}
	return OutcomeApplied, nil
}
