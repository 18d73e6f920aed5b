package devportal

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/billing/rating"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/mgmtapi"
)

// Billing as its developer sees it, shared by the JSON API and the pages:
// paying a payment_required subscription through Stripe Checkout, managing
// a paid one in Stripe's Customer Portal, its invoices and the estimate of
// the next one. Every call first finds the subscription through the
// developer's consumer, so another developer's (or another portal's) is
// not found. Stripe is only reached through Options.Billing; nil means the
// platform runs without billing.

// billingDisabledDetail says why nothing can be paid on a platform without
// billing (the words of billing's own ReasonDisabled).
const billingDisabledDetail = "payments are not enabled on this platform, so paid plans cannot be bought yet"

// billingUnreachableDetail is shown when Stripe (or the database behind
// billing) failed; the error itself is logged.
const billingUnreachableDetail = "the payment provider could not be reached; try again in a minute"

// Billing actions (apiBillingView.Action).
const (
	billingActionCheckout = "checkout"
	billingActionPortal   = "customer_portal"
)

// unavailableDetail returns the developer-safe text of a
// billing.ErrUnavailable error, or of a conflict with the subscription's
// state (no longer waiting for payment, a plan that became free); "" for
// any other error.
func unavailableDetail(err error) string {
	var ue *billing.UnavailableError
	var ce *fault.ConflictError
	switch {
	case errors.As(err, &ue):
		return ue.Detail
	case errors.As(err, &ce):
		return ce.Message
	}
	return ""
}

// ownBillingSubscription returns the developer's subscription with its
// Stripe side; another developer's is fault.ErrNotFound.
func (p *Portal) ownBillingSubscription(ctx context.Context, tenantID, consumerID, id string) (catalog.BillingSubscription, error) {
	b, err := p.opts.Catalog.GetBillingSubscription(ctx, p.opts.Catalog.DB, tenantID, id, "")
	if err != nil {
		return catalog.BillingSubscription{}, err
	}
	if consumerID == "" || b.ConsumerID != consumerID {
		return catalog.BillingSubscription{}, fault.ErrNotFound
	}
	return b, nil
}

// appReturnURL is the app's page on the host the developer is on, with
// the query q ("" for none): where Stripe sends the developer back.
func (p *Portal) appReturnURL(r *http.Request, appID, q string) string {
	u := p.baseURL(r) + "/apps/" + appID
	if q != "" {
		u += "?" + q
	}
	return u
}

// startCheckout returns a Stripe Checkout URL for the developer's
// payment_required subscription, or "" and why there is none (billing
// off, the tenant not connected, prices not ready, Stripe unreachable).
// Checkout sessions are reused within billing's window, so asking again
// (every read of the subscription) does not make new ones.
func (p *Portal) startCheckout(r *http.Request, tenantID string, s catalog.Subscription) (string, string) {
	if p.opts.Billing == nil {
		return "", billingDisabledDetail
	}
	u, err := p.opts.Billing.Checkout(r.Context(), tenantID, s.ID,
		p.appReturnURL(r, s.AppID, "checkout=success"), p.appReturnURL(r, s.AppID, "checkout=canceled"))
	if err != nil {
		if d := unavailableDetail(err); d != "" {
			return "", d
		}
		if !errors.Is(err, context.Canceled) {
			p.log.Error("devportal: checkout", "tenant", tenantID, "subscription", s.ID, "err", err)
		}
		return "", billingUnreachableDetail
	}
	return u, ""
}

// billingTarget is where the developer goes to pay or manage a
// subscription: Checkout while it waits for payment, the Customer Portal
// otherwise (card, invoices, plan, cancel), both returning to the app's
// page. action is "" when there is nowhere to go, and detail says why.
func (p *Portal) billingTarget(r *http.Request, tenantID string, b catalog.BillingSubscription) (action, url, detail string) {
	switch {
	case p.opts.Billing == nil:
		return "", "", billingDisabledDetail
	case b.Status == catalog.SubPending:
		return "", "", "there is nothing to pay yet: the API provider has not approved the subscription"
	case b.Status == catalog.SubRejected:
		return "", "", "there is nothing to pay: the API provider did not approve the subscription"
	case b.Status == catalog.SubPaymentRequired:
		u, d := p.startCheckout(r, tenantID, b.Subscription)
		if u == "" {
			return "", "", d
		}
		return billingActionCheckout, u, ""
	}
	u, err := p.opts.Billing.CustomerPortal(r.Context(), tenantID, b.ID, p.appReturnURL(r, b.AppID, ""))
	if err != nil {
		if d := unavailableDetail(err); d != "" {
			if b.StripeSubscriptionID == "" {
				d = "this subscription is not paid through the payment provider, so there is no billing to manage"
			}
			return "", "", d
		}
		if !errors.Is(err, context.Canceled) {
			p.log.Error("devportal: customer portal", "tenant", tenantID, "subscription", b.ID, "err", err)
		}
		return "", "", billingUnreachableDetail
	}
	return billingActionPortal, u, ""
}

// developerCancelFrom are the states a developer may cancel from; a
// subscription the tenant suspended stays the tenant's to end.
var developerCancelFrom = []string{catalog.SubActive, catalog.SubPending, catalog.SubPaymentRequired, catalog.SubPastDue}

// cancelSubscription ends the developer's subscription. One that a Stripe
// subscription bills is canceled through billing, in Stripe first and at
// once (Stripe invoices the usage so far and credits the unused part of
// the flat price), so that nothing is billed for a subscription that no
// longer works; one suspended by Stripe for non-payment may be canceled
// too. Others (never paid, or billing unavailable for the tenant) are
// canceled in Tollgate only. Canceling a canceled subscription answers it
// again.
func (p *Portal) cancelSubscription(ctx context.Context, dev developers.Developer, tenantID, id string) (catalog.Subscription, error) {
	if p.opts.Billing != nil {
		b, err := p.ownBillingSubscription(ctx, tenantID, dev.ConsumerID, id)
		if err != nil {
			return catalog.Subscription{}, err
		}
		billedSuspension := b.Status == catalog.SubSuspended && (b.StripeStatus == "unpaid" || b.StripeStatus == "paused")
		if b.StripeSubscriptionID != "" && (billedSuspension || contains(developerCancelFrom, b.Status)) {
			out, err := p.opts.Billing.Cancel(ctx, tenantID, b.ID, false)
			if err == nil {
				return out.Subscription, nil
			}
			if !errors.Is(err, billing.ErrUnavailable) {
				return catalog.Subscription{}, err
			}
			// The tenant's account is gone (or billing turned off): Stripe
			// cannot be told from here; end it in Tollgate.
			p.log.Warn("devportal: cancel without Stripe", "tenant", tenantID, "subscription", b.ID, "err", err)
		}
	}
	return p.opts.Catalog.SetSubscriptionStatus(ctx, dev.Actor(), dev.ConsumerID, id, catalog.SubCanceled, developerCancelFrom...)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// ---- JSON API ----

// apiInvoices lists the invoices of one of the developer's subscriptions,
// newest first (none while billing is off).
func (p *Portal) apiInvoices(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	ctx := r.Context()
	s, err := p.opts.Catalog.GetSubscription(ctx, c.tenant.ID, c.dev().ConsumerID, r.PathValue("id"))
	if err != nil {
		return err
	}
	list := []billing.Invoice{}
	if p.opts.Billing != nil {
		if list, err = p.opts.Billing.Invoices(ctx, c.tenant.ID, s.ID); err != nil {
			return err
		}
	}
	return apiWriteJSON(w, http.StatusOK, apiItemsOf(list))
}

// apiEstimate answers the estimate of a subscription's next invoice: its
// price rated with the requests served so far in its billing period.
func (p *Portal) apiEstimate(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	ctx := r.Context()
	s, err := p.opts.Catalog.GetSubscription(ctx, c.tenant.ID, c.dev().ConsumerID, r.PathValue("id"))
	if err != nil {
		return err
	}
	if p.opts.Billing == nil {
		writeAPIProblem(w, mgmtapi.Problem{Type: mgmtapi.ProblemBase + "billing-unavailable", Title: "Billing unavailable",
			Status: http.StatusConflict, Detail: billingDisabledDetail})
		return nil
	}
	est, err := p.opts.Billing.Estimate(ctx, c.tenant.ID, s.ID)
	if err != nil {
		return err
	}
	if est.Lines == nil {
		est.Lines = []rating.Line{}
	}
	return apiWriteJSON(w, http.StatusOK, est)
}

// apiBillingView is where a subscription is paid or managed, and its
// billing state.
type apiBillingView struct {
	SubscriptionID string `json:"subscription_id"`
	Status         string `json:"status"`
	// Action is "checkout" (pay a payment_required subscription),
	// "customer_portal" (card, invoices, plan, cancel) or null when there
	// is nowhere to go (Detail says why).
	Action *string `json:"action"`
	// URL is a fresh Stripe URL for Action; it expires within minutes
	// (Customer Portal) or a day (Checkout), so ask again rather than
	// store it.
	URL    *string `json:"url"`
	Detail string  `json:"detail,omitempty"`
	// PageURL is the portal's stable link that opens URL for a signed-in
	// developer (what the gateway's 402 answers lead to).
	PageURL            string     `json:"page_url"`
	GraceUntil         *time.Time `json:"grace_until"`
	CurrentPeriodStart *time.Time `json:"current_period_start"`
	CurrentPeriodEnd   *time.Time `json:"current_period_end"`
	CancelAtPeriodEnd  bool       `json:"cancel_at_period_end"`
}

// apiBilling answers where the developer pays or manages a subscription.
func (p *Portal) apiBilling(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	b, err := p.ownBillingSubscription(r.Context(), c.tenant.ID, c.dev().ConsumerID, r.PathValue("id"))
	if err != nil {
		return err
	}
	v := apiBillingView{SubscriptionID: b.ID, Status: b.Status, PageURL: p.baseURL(r) + "/billing/" + b.ID,
		GraceUntil: b.GraceUntil, CurrentPeriodStart: b.CurrentPeriodStart, CurrentPeriodEnd: b.CurrentPeriodEnd,
		CancelAtPeriodEnd: b.CancelAtPeriodEnd}
	action, u, detail := p.billingTarget(r, c.tenant.ID, b)
	if action != "" {
		v.Action, v.URL = &action, &u
	}
	v.Detail = detail
	return apiWriteJSON(w, http.StatusOK, v)
}
