package devportal

import (
	"context"
	"errors"
	"net/http"

	"github.com/tollgate/tollgate/billing/rating"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/web/devportal/view"
)

// The billing parts of the app pages, and GET /billing/{sub}: the stable
// link (also where the gateway's 402 answers lead, through the control
// plane's /billing/subscriptions/{id}) that sends a signed-in developer to
// Stripe Checkout or the Customer Portal with a fresh session.

// billingPage sends the developer to pay or manage one of their
// subscriptions: 303 to Stripe Checkout while it waits for payment, to the
// Customer Portal otherwise, both returning to the app's page. Signed out,
// the member wrapper sends them to sign in and back here; another
// developer's subscription is the 404 page; when there is nowhere to go a
// page says why.
func (pg *pages) billingPage(w http.ResponseWriter, r *http.Request, q *pageReq) {
	b, err := pg.p.ownBillingSubscription(r.Context(), q.tenant.ID, q.dev().ConsumerID, r.PathValue("sub"))
	if err != nil {
		pg.fail(w, r, q, err)
		return
	}
	action, u, detail := pg.p.billingTarget(r, q.tenant.ID, b)
	if action != "" {
		http.Redirect(w, r, u, http.StatusSeeOther)
		return
	}
	status := http.StatusConflict
	if detail == billingUnreachableDetail {
		status = http.StatusBadGateway
	}
	m := view.MessagePage{Chrome: q.chrome(r, "Billing", "apps"), Heading: "Billing is not available for this subscription",
		Text: []string{capitalize(detail) + "."}, Href: "/apps/" + b.AppID, Action: "Back to the app"}
	if detail == billingUnreachableDetail {
		m.Heading = "The payment provider could not be reached"
	}
	pg.render(w, r, status, view.Message(m))
}

// subBilling fills the billing parts of a live subscription's view: the
// payment link or why there is none, the grace period of a past-due one,
// the estimate of the next invoice and the past invoices of a paid one.
// A failure to read the estimate or the invoices is logged and leaves them
// out rather than failing the page.
func (pg *pages) subBilling(ctx context.Context, q *pageReq, sv *view.SubView, s catalog.Subscription, plan catalog.Plan) error {
	sv.Paid = plan.Priced()
	b := pg.p.opts.Billing
	if b == nil {
		if s.Status == catalog.SubPaymentRequired {
			sv.PaymentNote = capitalize(billingDisabledDetail) + "."
		}
		return nil
	}
	bs, err := pg.p.ownBillingSubscription(ctx, q.tenant.ID, q.dev().ConsumerID, s.ID)
	if err != nil {
		return err
	}
	sv.GraceUntil, sv.PeriodEnd, sv.CancelAtPeriodEnd = bs.GraceUntil, bs.CurrentPeriodEnd, bs.CancelAtPeriodEnd
	sv.Billed = bs.StripeSubscriptionID != ""
	sv.BillingHref = "/billing/" + s.ID
	if s.Status == catalog.SubPaymentRequired {
		// Say now why it cannot be paid, when the tenant cannot take
		// payments at all; other reasons show on /billing/{id}.
		conn, err := b.Connection(ctx, q.tenant.ID)
		if err != nil {
			return err
		}
		if !conn.Connected {
			sv.PaymentNote = "The API provider has not connected a payment account yet, so this plan cannot be paid yet."
		}
	}
	if !sv.Paid || (s.Status != catalog.SubActive && s.Status != catalog.SubPastDue && s.Status != catalog.SubSuspended) {
		return nil
	}
	if est, err := b.Estimate(ctx, q.tenant.ID, s.ID); err == nil {
		sv.Estimate = pageEstimate(est)
	} else if !errors.Is(err, context.Canceled) {
		pg.p.log.Warn("devportal: invoice estimate", "subscription", s.ID, "err", err)
	}
	invs, err := b.Invoices(ctx, q.tenant.ID, s.ID)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			pg.p.log.Warn("devportal: invoices", "subscription", s.ID, "err", err)
		}
		return nil
	}
	for _, in := range invs {
		row := view.InvoiceRow{ID: in.ID, Status: in.Status, Created: in.Created, PeriodStart: in.PeriodStart,
			PeriodEnd: in.PeriodEnd, Amount: pagePrice(in.AmountDue, in.Currency)}
		if in.Status == "paid" {
			row.Amount = pagePrice(in.AmountPaid, in.Currency)
		}
		if in.HostedInvoiceURL != nil {
			row.URL = *in.HostedInvoiceURL
		}
		sv.Invoices = append(sv.Invoices, row)
	}
	return nil
}

// pageEstimate describes an estimate for the app page.
func pageEstimate(est rating.InvoiceEstimate) *view.Estimate {
	v := &view.Estimate{PeriodStart: est.PeriodStart, PeriodEnd: est.PeriodEnd, AsOf: est.AsOf,
		Served: est.Served, Total: pagePrice(est.Total, est.Currency)}
	if est.Currency == "" {
		v.Total = "Free"
	}
	for _, l := range est.Lines {
		v.Lines = append(v.Lines, view.EstimateLine{Description: l.Description, Quantity: l.Quantity,
			Amount: pagePrice(l.Amount, est.Currency)})
	}
	return v
}

// pageCheckoutNote is the banner of the app page Stripe Checkout returns
// to (?checkout=success or canceled).
func pageCheckoutNote(r *http.Request) string {
	switch r.URL.Query().Get("checkout") {
	case "success":
		return "Thank you: the payment provider is confirming your payment. The subscription becomes active within a few " +
			"seconds of its confirmation; reload this page to see it, then make a key."
	case "canceled":
		return "Checkout was canceled and nothing was charged. Complete the payment whenever you are ready."
	}
	return ""
}

// pagePaidCancelNote is the flash after a paid subscription was canceled.
const pagePaidCancelNote = " The payment provider invoices the usage so far and credits the unused part of the period."
