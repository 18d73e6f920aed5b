package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/billing/metering"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/web/portal/view"
)

// The billing page (/billing): the tenant's Stripe connection, what it was
// paid, its subscribers per priced plan, failed payments, the drift check
// (usage served versus reported to Stripe, subscription states in Tollgate
// versus Stripe) with its repairs, and the state of the meter reports.
// Every member reads it; owners and admins change the connection and
// repair. Nothing here holds a rule of its own: the connection, the figures
// and the subscription check are billing's, the usage check metering's.

// Billing is what the billing page runs on (Options.Billing). Its zero
// value shows the page with billing off.
type Billing struct {
	// Service is billing; *billing.Service implements it. Nil hides
	// everything but a note that billing is not available.
	Service BillingService
	// Usage writes the meter reports the usage drift found missing: the
	// Producer of the control plane's metering runner
	// (metering.Runner.Producer), so that its Sender is woken. Nil hides
	// that repair (the producer's own sweep still catches up within a day).
	Usage UsageRepairer
	// Reports reads the meter reports for the usage drift and report
	// figures, and requeues refused ones; metering.Reports implements it.
	// Required with Service.
	Reports UsageReports
	// Window is the metering window, for the lag figures; 0 means
	// metering.DefaultWindow.
	Window time.Duration
}

// BillingService is the part of *billing.Service the page uses.
type BillingService interface {
	// Enabled reports whether the platform runs with a Stripe key.
	Enabled() bool
	Connection(ctx context.Context, tenantID string) (billing.Connection, error)
	Connect(ctx context.Context, who audit.Actor, in billing.ConnectInput) (billing.Connection, error)
	Onboard(ctx context.Context, who audit.Actor, in billing.OnboardInput) (billing.Onboarding, error)
	Overview(ctx context.Context, tenantID string) (billing.Overview, error)
	CheckSubscriptions(ctx context.Context, tenantID string) ([]billing.SubscriptionDrift, error)
	RepairSubscription(ctx context.Context, who audit.Actor, subscriptionID string) (billing.SubscriptionDrift, error)
}

// UsageRepairer writes the missing meter reports of a tenant's windows in
// [from, to); *metering.Producer implements it.
type UsageRepairer interface {
	Repair(ctx context.Context, tenantID string, from, to time.Time) (metering.Produced, error)
}

// billingLookback is how far back the page compares usage and reports:
// Stripe's window for meter events, so everything it shows can still be
// reported.
const billingLookback = 35 * 24 * time.Hour

// billingRange is the period of the usage drift and report figures.
func billingRange(now time.Time) (time.Time, time.Time) {
	return now.Add(-billingLookback).Truncate(time.Minute), now
}

func (p *Portal) billingOn() bool { return p.opts.Billing.Service != nil }

// billingConnectForm is the connection form filled from the stored
// connection.
func billingConnectForm(c billing.Connection) view.Form {
	f := blankForm()
	if c.AccountID != nil {
		f.Values.Set("account_id", *c.AccountID)
	}
	f.Values.Set("grace_hours", strconv.Itoa(c.GracePeriodSeconds/3600))
	return f
}

// billingForms are the page's forms after a failed post; nil ones are
// filled from the stored state.
type billingForms struct {
	connect *view.Form
}

func (p *Portal) billingPage(w http.ResponseWriter, r *http.Request, q *req) {
	p.renderBilling(w, r, q, billingForms{}, http.StatusOK)
}

func (p *Portal) renderBilling(w http.ResponseWriter, r *http.Request, q *req, forms billingForms, status int) {
	ctx := r.Context()
	m := view.BillingPage{C: q.chrome("Billing", "billing"), Available: p.billingOn()}
	if !m.Available {
		p.renderStatus(w, r, status, view.Billing(m))
		return
	}
	svc := p.opts.Billing.Service
	conn, err := svc.Connection(ctx, q.tenant.ID)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	m.Enabled, m.Connected, m.Livemode = conn.Enabled, conn.Connected, conn.Livemode
	m.GraceHours, m.FeePercent = conn.GracePeriodSeconds/3600, conn.PlatformFeePercent
	if conn.AccountID != nil {
		m.AccountID = *conn.AccountID
	}
	m.ConnectedAt, m.DeauthorizedAt = conn.ConnectedAt, conn.DeauthorizedAt
	if forms.connect != nil {
		m.Connect = *forms.connect
	} else {
		m.Connect = billingConnectForm(conn)
	}
	switch r.URL.Query().Get("onboarding") {
	case "done":
		m.Notice = "Back from Stripe. Once Stripe has verified the account, your paid plans can be bought; until then Checkout may refuse payments."
	case "expired":
		m.Notice = "The Stripe onboarding link expired. Start the onboarding again to get a new one."
	}

	o, err := svc.Overview(ctx, q.tenant.ID)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	for _, rv := range o.Revenue {
		m.Revenue = append(m.Revenue, view.RevenueRow{Currency: strings.ToUpper(rv.Currency), Month: money(rv.Month, rv.Currency),
			Last30Days: money(rv.Last30Days, rv.Currency), Invoices: rv.Invoices})
	}
	for _, pl := range o.Plans {
		m.Plans = append(m.Plans, view.PlanSubscribersRow{ID: pl.PlanID, Name: pl.PlanName, Active: pl.Active, PastDue: pl.PastDue,
			Suspended: pl.Suspended, PaymentRequired: pl.PaymentRequired})
	}
	for _, fp := range o.Failed {
		row := view.FailedPaymentRow{InvoiceID: fp.ID, SubscriptionID: fp.SubscriptionID, App: fp.AppName, Email: fp.ConsumerEmail,
			Plan: fp.PlanName, Amount: money(fp.AmountDue, fp.Currency), Status: fp.Status, Created: fp.Created,
			SubscriptionStatus: fp.SubscriptionStatus, GraceUntil: fp.GraceUntil}
		if fp.HostedInvoiceURL != nil {
			row.URL = *fp.HostedInvoiceURL
		}
		if fp.GraceUntil != nil && !o.AsOf.Before(*fp.GraceUntil) {
			row.GraceOver = true
		}
		m.Failed = append(m.Failed, row)
	}

	labels := subscriptionLabels{p: p, ctx: ctx, tenantID: q.tenant.ID}
	from, to := billingRange(time.Now())
	m.From, m.To = from, to
	usage, err := p.opts.Billing.Reports.Drift(ctx, q.tenant.ID, from, to)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	for _, d := range usage {
		row := view.UsageDriftRow{SubscriptionID: d.SubscriptionID, Served: d.Served, Sent: d.Sent, Pending: d.Pending,
			Refused: d.Refused, Expired: d.Expired, Unreported: d.Unreported, Reason: d.Reason, LastError: d.LastError,
			OldestPending: d.OldestPending}
		row.Label, row.ConsumerID = labels.of(d.SubscriptionID)
		m.UsageDrift = append(m.UsageDrift, row)
		m.Refused += d.Refused
		if d.Unreported > 0 && d.Reason == "" {
			m.Missing += d.Unreported
		}
	}
	m.UsageRepair = p.opts.Billing.Usage != nil
	window := p.opts.Billing.Window
	if window <= 0 {
		window = metering.DefaultWindow
	}
	st, err := p.opts.Billing.Reports.ReportStats(ctx, q.tenant.ID, from, to, window)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	m.Reports = view.ReportStats{Pending: st.Pending, Sent: st.Sent, Refused: st.Refused, Expired: st.Expired,
		PendingRequests: st.PendingRequests, SentRequests: st.SentRequests, RefusedRequests: st.RefusedRequests,
		ExpiredRequests: st.ExpiredRequests, LagCount: st.Lag.Count, LagP50: st.Lag.P50, LagP99: st.Lag.P99, LagMax: st.Lag.Max}
	if !st.OldestPending.IsZero() {
		t := st.OldestPending
		m.Reports.OldestPending = &t
	}

	// Asking Stripe costs a read per billed subscription: only on demand.
	if r.URL.Query().Get("check") == "subscriptions" {
		m.Checked = true
		drifts, err := svc.CheckSubscriptions(ctx, q.tenant.ID)
		switch {
		case billingRefusal(err) != "":
			m.CheckError = capitalize(billingRefusal(err)) + "."
		case err != nil:
			p.log.Error("portal: check subscriptions", "tenant", q.tenant.Slug, "err", err)
			m.CheckError = "The check failed. Try again in a minute."
		}
		for _, d := range drifts {
			row := view.SubscriptionDriftRow{SubscriptionID: d.SubscriptionID, ConsumerID: d.ConsumerID,
				StripeSubscriptionID: d.StripeSubscriptionID, Status: d.Status, StripeStatus: d.StripeStatus, Want: d.Want,
				Differences: d.Differences, Error: d.Error, PeriodEnd: d.PeriodEnd, StripePeriodEnd: d.StripePeriodEnd,
				CancelAtPeriodEnd: d.CancelAtPeriodEnd, StripeCancelAtPeriodEnd: d.StripeCancelAtPeriodEnd}
			row.Label, _ = labels.of(d.SubscriptionID)
			m.SubscriptionDrift = append(m.SubscriptionDrift, row)
		}
	}
	p.renderStatus(w, r, status, view.Billing(m))
}

// money formats an amount in a currency's minor unit: "19.00 USD".
func money(minor int64, currency string) string {
	cur := strings.ToUpper(currency)
	switch cur {
	case "JPY", "KRW", "VND", "CLP", "ISK", "UGX":
		return strconv.FormatInt(minor, 10) + " " + cur
	}
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, minor/100, minor%100, cur)
}

// subscriptionLabels names subscriptions for people ("App of Ann
// (ann@example.com)"), looking each up once.
type subscriptionLabels struct {
	p        *Portal
	ctx      context.Context
	tenantID string
	m        map[string][2]string
}

// of returns the label and the consumer of a subscription (its short id
// and "" when it cannot be read).
func (l *subscriptionLabels) of(id string) (label, consumerID string) {
	if v, ok := l.m[id]; ok {
		return v[0], v[1]
	}
	label = shortSubID(id)
	if b, err := l.p.cat.GetSubscription(l.ctx, l.tenantID, "", id); err == nil {
		consumerID = b.ConsumerID
		name := ""
		if a, err := l.p.cat.GetApp(l.ctx, l.tenantID, b.ConsumerID, b.AppID); err == nil {
			name = a.Name
		}
		if c, err := l.p.cat.GetConsumer(l.ctx, l.tenantID, b.ConsumerID); err == nil {
			if name == "" {
				name = c.Name
			}
			name += " (" + c.Email + ")"
		}
		if name != "" {
			label = name
		}
	}
	if l.m == nil {
		l.m = map[string][2]string{}
	}
	l.m[id] = [2]string{label, consumerID}
	return label, consumerID
}

// billingRefusal is the user-safe reason of an error billing refused with
// (billing unavailable, a conflict, invalid input); "" for other errors.
func billingRefusal(err error) string {
	var ue *billing.UnavailableError
	var ve *fault.ValidationError
	if errors.As(err, &ue) {
		return ue.Detail
	}
	if reason, ok := refusal(err); ok {
		return reason
	}
	if errors.As(err, &ve) && len(ve.Errors) > 0 {
		parts := make([]string, 0, len(ve.Errors))
		for _, fe := range ve.Errors {
			parts = append(parts, strings.ReplaceAll(fe.Field, "_", " ")+" "+fe.Message)
		}
		return strings.Join(parts, "; ")
	}
	return ""
}

func shortSubID(id string) string {
	if len(id) >= 8 {
		return id[:8]
	}
	return id
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// billingConnect connects an existing Stripe account by id, with the
// grace period of past-due subscriptions.
func (p *Portal) billingConnect(w http.ResponseWriter, r *http.Request, q *req) {
	if !p.billingOn() {
		p.redirect(w, r, "/billing", "")
		return
	}
	f := readForm(w, r)
	in := billing.ConnectInput{AccountID: strings.TrimSpace(f.Get("account_id"))}
	if h := strings.TrimSpace(f.Get("grace_hours")); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n < 0 || n > int(billing.MaxGracePeriod/time.Hour) {
			f.Errors["grace_hours"] = fmt.Sprintf("Enter whole hours from 0 to %d (30 days).", int(billing.MaxGracePeriod/time.Hour))
			p.renderBilling(w, r, q, billingForms{connect: &f}, http.StatusUnprocessableEntity)
			return
		}
		sec := n * 3600
		in.GracePeriodSeconds = &sec
	}
	c, err := p.opts.Billing.Service.Connect(r.Context(), q.user.Actor(), in)
	if err != nil {
		if applyError(&f, err, "account_id", "grace_period_seconds") {
			if e := f.Errors["grace_period_seconds"]; e != "" {
				f.Errors["grace_hours"] = e
			}
			p.renderBilling(w, r, q, billingForms{connect: &f}, http.StatusUnprocessableEntity)
			return
		}
		p.log.Error("portal: connect stripe", "tenant", q.tenant.Slug, "err", err)
		f.Message = "Stripe could not be reached to check the account. Try again in a minute."
		p.renderBilling(w, r, q, billingForms{connect: &f}, http.StatusBadGateway)
		return
	}
	p.redirect(w, r, "/billing", "Stripe account "+*c.AccountID+" connected. Your priced plans are being set up on it.")
}

// billingOnboard starts (or resumes) Stripe's hosted onboarding of a new
// connected account and sends the admin there.
func (p *Portal) billingOnboard(w http.ResponseWriter, r *http.Request, q *req) {
	if !p.billingOn() {
		p.redirect(w, r, "/billing", "")
		return
	}
	f := readForm(w, r)
	typ := f.Get("type")
	if typ != "standard" {
		typ = "express"
	}
	o, err := p.opts.Billing.Service.Onboard(r.Context(), q.user.Actor(), billing.OnboardInput{Type: typ, Email: q.user.Email,
		ReturnURL:  p.absURL("/billing", map[string][]string{"onboarding": {"done"}}),
		RefreshURL: p.absURL("/billing", map[string][]string{"onboarding": {"expired"}})})
	if err != nil {
		if reason := billingRefusal(err); reason != "" {
			p.redirect(w, r, "/billing", "Stripe onboarding could not start: "+reason+".")
			return
		}
		p.log.Error("portal: stripe onboarding", "tenant", q.tenant.Slug, "err", err)
		p.redirect(w, r, "/billing", "Stripe could not be reached to start the onboarding. Try again in a minute.")
		return
	}
	http.Redirect(w, r, o.URL, http.StatusSeeOther)
}

// billingUsageRepair writes the meter reports the drift found missing
// over the page's period; the sender sends them within seconds.
func (p *Portal) billingUsageRepair(w http.ResponseWriter, r *http.Request, q *req) {
	if !p.billingOn() || p.opts.Billing.Usage == nil {
		p.redirect(w, r, "/billing", "Usage reports cannot be repaired here: metering is not running.")
		return
	}
	from, to := billingRange(time.Now())
	res, err := p.opts.Billing.Usage.Repair(r.Context(), q.tenant.ID, from, to)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	msg := fmt.Sprintf("Usage reports repaired: %d written (%d requests)", res.Reports, res.Requests)
	if res.Expired > 0 {
		msg += fmt.Sprintf(", %d too old for Stripe (marked expired)", res.Expired)
	}
	p.log.Info("portal: usage reports repaired", "tenant", q.tenant.Slug, "by", q.user.Email, "reports", res.Reports,
		"requests", res.Requests, "expired", res.Expired)
	p.redirect(w, r, "/billing#usage-drift", msg+".")
}

// billingUsageRequeue puts refused meter reports back to pending, to be
// sent again once their cause (a missing meter or customer, a disconnected
// account) is fixed.
func (p *Portal) billingUsageRequeue(w http.ResponseWriter, r *http.Request, q *req) {
	if !p.billingOn() {
		p.redirect(w, r, "/billing", "")
		return
	}
	from, to := billingRange(time.Now())
	n, err := p.opts.Billing.Reports.Requeue(r.Context(), q.tenant.ID, from, to)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	p.log.Info("portal: refused usage reports requeued", "tenant", q.tenant.Slug, "by", q.user.Email, "reports", n)
	p.redirect(w, r, "/billing#usage-drift", fmt.Sprintf("%d refused usage reports will be sent again.", n))
}

// billingSubscriptionRepair applies Stripe's state of one subscription to
// Tollgate's (or cancels in Stripe one Tollgate ended).
func (p *Portal) billingSubscriptionRepair(w http.ResponseWriter, r *http.Request, q *req) {
	if !p.billingOn() {
		p.redirect(w, r, "/billing", "")
		return
	}
	d, err := p.opts.Billing.Service.RepairSubscription(r.Context(), q.user.Actor(), r.PathValue("id"))
	switch {
	case errors.Is(err, fault.ErrNotFound):
		p.renderStatus(w, r, http.StatusNotFound, view.ErrorPage(q.chrome("Not found", "billing"), http.StatusNotFound,
			"There is no such subscription."))
		return
	case billingRefusal(err) != "":
		p.redirect(w, r, "/billing?check=subscriptions#subscription-drift", "Not repaired: "+billingRefusal(err)+".")
		return
	case err != nil:
		p.log.Error("portal: repair subscription", "tenant", q.tenant.Slug, "err", err)
		p.redirect(w, r, "/billing?check=subscriptions#subscription-drift",
			"Not repaired: Stripe could not be reached. Try again in a minute.")
		return
	}
	msg := "Subscription " + shortSubID(d.SubscriptionID) + " already matches Stripe."
	switch {
	case d.Has(billing.DriftStillBilled):
		msg = "Subscription " + shortSubID(d.SubscriptionID) + ": its Stripe subscription will be canceled within seconds."
	case d.Has(billing.DriftMissing):
		msg = "Subscription " + shortSubID(d.SubscriptionID) + " canceled: Stripe has no subscription for it."
	case len(d.Differences) > 0:
		msg = "Subscription " + shortSubID(d.SubscriptionID) + " now follows Stripe (" + strings.Join(d.Differences, ", ") + ")."
		if d.Want != "" {
			msg = "Subscription " + shortSubID(d.SubscriptionID) + " is now " + d.Want + ", as in Stripe."
		}
	}
	p.redirect(w, r, "/billing?check=subscriptions#subscription-drift", msg)
}
