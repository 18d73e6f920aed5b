package billing

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	stripego "github.com/stripe/stripe-go/v76"

	"github.com/tollgate/tollgate/billing/stripe"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

// Checkout sessions live 24 hours; a session made within the same half day
// is handed out again (Stripe answers a repeated idempotency key with the
// first answer), so a page that asks on every view does not make a new one.
const checkoutWindow = 12 * time.Hour

// Checkout returns the URL of a Stripe Checkout session, on the tenant's
// connected account, that pays the payment_required subscription: in
// subscription mode, with the Prices of the plan's current version (the
// metered one without quantity), the app's Customer, client_reference_id =
// the Tollgate subscription id, and the platform fee. successURL and
// cancelURL are where Stripe sends the developer afterwards. Billing off,
// a tenant not connected or prices not synced yet give an
// *UnavailableError (errors.Is(err, ErrUnavailable)) whose Detail the
// portal shows next to checkout_url: null.
func (s *Service) Checkout(ctx context.Context, tenantID, subscriptionID, successURL, cancelURL string) (string, error) {
	tb, err := s.connectedAccount(ctx, s.DB, tenantID)
	if err != nil {
		return "", fmt.Errorf("checkout: %w", err)
	}
	v := &fault.ValidationError{}
	checkURL(v, "success_url", successURL)
	checkURL(v, "cancel_url", cancelURL)
	if err := v.Err(); err != nil {
		return "", err
	}
	sub, plan, app, err := s.Catalog.SubscriptionForCheckout(ctx, tenantID, "", subscriptionID)
	if err != nil {
		return "", fmt.Errorf("checkout: %w", err)
	}
	if sub.Status != catalog.SubPaymentRequired {
		return "", fault.Conflict("", "the subscription is %s; only a subscription waiting for payment goes through checkout", sub.Status)
	}
	if !plan.Priced() {
		return "", fault.Conflict("", "the plan is free")
	}
	pp, err := s.currentPlanPrice(ctx, plan, tenantID)
	if err != nil {
		return "", fmt.Errorf("checkout: %w", err)
	}
	acct := s.Stripe.Account(tb.AccountID)
	customer, err := s.appCustomer(ctx, acct, tenantID, app)
	if err != nil {
		return "", fmt.Errorf("checkout: %w", err)
	}
	p := &stripego.CheckoutSessionParams{
		Mode:              stripego.String(string(stripego.CheckoutSessionModeSubscription)),
		Customer:          stripego.String(customer),
		ClientReferenceID: stripego.String(sub.ID),
		SuccessURL:        stripego.String(successURL),
		CancelURL:         stripego.String(cancelURL),
		LineItems:         lineItems(pp),
		SubscriptionData:  &stripego.CheckoutSessionSubscriptionDataParams{Metadata: subMetadata(tenantID, sub.ID)},
	}
	p.Metadata = subMetadata(tenantID, sub.ID)
	if fee := s.feePercent(); fee != "" {
		// Sent as the exact decimal: stripe-go's float field would send
		// "5.0000", while Stripe documents at most two decimals.
		p.AddExtra("subscription_data[application_fee_percent]", fee)
	}
	key := stripe.IdempotencyKey("checkout", sub.ID, "v"+fmt.Sprint(pp.Version), timeBucket(s.now(), checkoutWindow),
		shortHash(successURL, cancelURL, fmt.Sprint(s.PlatformFeePercent), customer))
	cs, err := acct.CreateCheckoutSession(ctx, key, p)
	if err != nil {
		return "", fmt.Errorf("checkout: %w", err)
	}
	version := pp.Version
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := s.Catalog.ApplyBilling(ctx, tx, actor(tenantID), sub.ID, catalog.BillingChange{
			PlanVersion: &version, StripeCheckoutSessionID: cs.ID, Reason: "checkout"})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("checkout: %w", err)
	}
	return cs.URL, nil
}

// feePercent is the platform fee as Stripe's decimal string, "" for none.
func (s *Service) feePercent() string {
	if s.PlatformFeePercent <= 0 {
		return ""
	}
	return strconv.FormatFloat(math.Round(s.PlatformFeePercent*100)/100, 'f', -1, 64)
}

func subMetadata(tenantID, subID string) map[string]string {
	return map[string]string{"tollgate_subscription_id": subID, "tollgate_tenant_id": tenantID}
}

// lineItems are the Checkout line items of a plan version: the flat price
// once, the metered price without quantity (Stripe bills what the meter
// counted).
func lineItems(pp PlanPrice) []*stripego.CheckoutSessionLineItemParams {
	var items []*stripego.CheckoutSessionLineItemParams
	if pp.FlatPriceID != "" {
		items = append(items, &stripego.CheckoutSessionLineItemParams{Price: stripego.String(pp.FlatPriceID),
			Quantity: stripego.Int64(1)})
	}
	if pp.MeteredPriceID != "" {
		items = append(items, &stripego.CheckoutSessionLineItemParams{Price: stripego.String(pp.MeteredPriceID)})
	}
	return items
}

// appCustomer returns the app's Stripe Customer on the account, creating it
// once: one Customer per app, so two apps never bill each other's usage.
func (s *Service) appCustomer(ctx context.Context, acct stripe.Account, tenantID string, app catalog.App) (string, error) {
	var id string
	err := s.DB.QueryRow(ctx, `SELECT stripe_customer_id FROM billing_customers WHERE tenant_id = $1 AND app_id = $2`,
		tenantID, app.ID).Scan(&id)
	if err == nil {
		return id, nil
	} else if !isNoRows(err) {
		return "", fmt.Errorf("read customer: %w", err)
	}
	cp := &stripego.CustomerParams{Name: stripego.String(app.Name)}
	cp.AddMetadata("tollgate_tenant_id", tenantID)
	cp.AddMetadata("tollgate_app_id", app.ID)
	cp.AddMetadata("tollgate_consumer_id", app.ConsumerID)
	// Concurrent first checkouts of one app send the same key and get the
	// same customer; the insert below keeps the first.
	c, err := acct.CreateCustomer(ctx, stripe.IdempotencyKey("customer", app.ID), cp)
	if err != nil {
		return "", err
	}
	err = s.DB.QueryRow(ctx, `INSERT INTO billing_customers (tenant_id, app_id, stripe_customer_id) VALUES ($1, $2, $3)
		ON CONFLICT (app_id) DO UPDATE SET app_id = EXCLUDED.app_id RETURNING stripe_customer_id`,
		tenantID, app.ID, c.ID).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("store customer: %w", err)
	}
	return id, nil
}

// Portal sessions are short-lived; one per minute per subscription and
// return URL.
const portalWindow = time.Minute

// CustomerPortal returns the URL of a fresh Stripe Customer Portal session,
// on the tenant's connected account, for the customer paying the
// subscription (its app's), returning to returnURL. It is what the stable
// billing link of a 402 answer (catalog.Service.BillingURL) redirects to,
// after the portal checked that the developer owns the subscription.
func (s *Service) CustomerPortal(ctx context.Context, tenantID, subscriptionID, returnURL string) (string, error) {
	tb, err := s.connectedAccount(ctx, s.DB, tenantID)
	if err != nil {
		return "", fmt.Errorf("customer portal: %w", err)
	}
	v := &fault.ValidationError{}
	checkURL(v, "return_url", returnURL)
	if err := v.Err(); err != nil {
		return "", err
	}
	sub, err := s.Catalog.GetBillingSubscription(ctx, s.DB, tenantID, subscriptionID, "")
	if err != nil {
		return "", fmt.Errorf("customer portal: %w", err)
	}
	var customer string
	err = s.DB.QueryRow(ctx, `SELECT stripe_customer_id FROM billing_customers WHERE tenant_id = $1 AND app_id = $2`,
		tenantID, sub.AppID).Scan(&customer)
	if isNoRows(err) {
		return "", fmt.Errorf("customer portal: %w", unavailable(ReasonNoCustomer))
	} else if err != nil {
		return "", fmt.Errorf("customer portal: %w", err)
	}
	p := &stripego.BillingPortalSessionParams{Customer: stripego.String(customer), ReturnURL: stripego.String(returnURL)}
	ps, err := s.Stripe.Account(tb.AccountID).CreatePortalSession(ctx, stripe.IdempotencyKey("portal", sub.ID,
		timeBucket(s.now(), portalWindow), shortHash(returnURL, customer)), p)
	if err != nil {
		return "", fmt.Errorf("customer portal: %w", err)
	}
	return ps.URL, nil
}

// PlanChange is the outcome of ChangePlan.
type PlanChange struct {
	// Subscription is the Tollgate subscription after the change.
	Subscription catalog.BillingSubscription
	// Immediate is true for an upgrade (in effect now, prorated) and false
	// for a downgrade (in effect at CurrentPeriodEnd, when Stripe's
	// customer.subscription.updated moves the Tollgate subscription).
	Immediate bool
	// EffectiveAt is when the new plan applies.
	EffectiveAt time.Time
}

// ChangePlan moves a paid subscription to another priced plan of the
// tenant, keeping its Tollgate id (so quotas, counted per subscription, are
// not reset) and its Stripe subscription. An upgrade (a higher flat amount,
// or the same and a higher per-request price) replaces the Stripe items at
// once with prorations invoiced now, and moves the Tollgate subscription
// now. A downgrade is scheduled for the end of the period with a
// subscription schedule; the Tollgate subscription follows when Stripe
// starts the new phase (its webhook names the new prices).
func (s *Service) ChangePlan(ctx context.Context, tenantID, subscriptionID, newPlanID string) (PlanChange, error) {
	tb, err := s.connectedAccount(ctx, s.DB, tenantID)
	if err != nil {
		return PlanChange{}, fmt.Errorf("change plan: %w", err)
	}
	sub, oldPlan, _, err := s.Catalog.SubscriptionForCheckout(ctx, tenantID, "", subscriptionID)
	if err != nil {
		return PlanChange{}, fmt.Errorf("change plan: %w", err)
	}
	if sub.StripeSubscriptionID == "" || (sub.Status != catalog.SubActive && sub.Status != catalog.SubPastDue) {
		return PlanChange{}, fault.Conflict("plan_id", "only an active, paid subscription can change plan; this one is %s", sub.Status)
	}
	newPlan, err := s.Catalog.GetPlan(ctx, tenantID, newPlanID)
	if err != nil {
		return PlanChange{}, fmt.Errorf("change plan: %w", err)
	}
	if newPlan.ID == oldPlan.ID {
		return PlanChange{Subscription: sub, Immediate: true, EffectiveAt: s.now()}, nil
	}
	if !newPlan.Priced() {
		return PlanChange{}, fault.Invalid("plan_id", "a paid subscription can only move to another paid plan; cancel it to go free")
	}
	if oldPlan.Price != nil && !strings.EqualFold(oldPlan.Price.Currency, newPlan.Price.Currency) {
		return PlanChange{}, fault.Invalid("plan_id", "the new plan is priced in another currency")
	}
	pp, err := s.currentPlanPrice(ctx, newPlan, tenantID)
	if err != nil {
		return PlanChange{}, fmt.Errorf("change plan: %w", err)
	}
	acct := s.Stripe.Account(tb.AccountID)
	ssub, err := acct.GetSubscription(ctx, sub.StripeSubscriptionID)
	if err != nil {
		return PlanChange{}, fmt.Errorf("change plan: %w", err)
	}
	version := pp.Version
	key := func(purpose string) string {
		return stripe.IdempotencyKey(purpose, sub.ID, newPlan.ID, "v"+fmt.Sprint(version))
	}
	if isDowngrade(oldPlan.Price, newPlan.Price) {
		return s.scheduleDowngrade(ctx, acct, sub, ssub, pp, key)
	}
	// Upgrade: swap every item for the new version's prices at once.
	var items []*stripego.SubscriptionItemsParams
	if ssub.Items != nil {
		for _, it := range ssub.Items.Data {
			items = append(items, &stripego.SubscriptionItemsParams{ID: stripego.String(it.ID), Deleted: stripego.Bool(true)})
		}
	}
	for _, li := range lineItems(pp) {
		items = append(items, &stripego.SubscriptionItemsParams{Price: li.Price, Quantity: li.Quantity})
	}
	up := &stripego.SubscriptionParams{Items: items, ProrationBehavior: stripego.String("always_invoice"),
		Metadata: subMetadata(tenantID, sub.ID)}
	if _, err := acct.UpdateSubscription(ctx, key("upgrade"), sub.StripeSubscriptionID, up); err != nil {
		return PlanChange{}, fmt.Errorf("change plan: %w", err)
	}
	var out catalog.BillingSubscription
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		out, err = s.Catalog.ApplyBilling(ctx, tx, actor(tenantID), sub.ID, catalog.BillingChange{
			PlanID: newPlan.ID, PlanVersion: &version, Reason: "upgrade"})
		return err
	})
	if err != nil {
		return PlanChange{}, fmt.Errorf("change plan: %w", err)
	}
	return PlanChange{Subscription: out, Immediate: true, EffectiveAt: s.now()}, nil
}

// scheduleDowngrade puts the new prices in a second phase of a subscription
// schedule that starts when the current period ends.
func (s *Service) scheduleDowngrade(ctx context.Context, acct stripe.Account, sub catalog.BillingSubscription,
	ssub *stripego.Subscription, pp PlanPrice, key func(string) string) (PlanChange, error) {
	scheduleID := ""
	if ssub.Schedule != nil {
		scheduleID = ssub.Schedule.ID
	}
	var sched *stripego.SubscriptionSchedule
	var err error
	if scheduleID == "" {
		sched, err = acct.CreateSubscriptionSchedule(ctx, stripe.IdempotencyKey("schedule", sub.ID, ssub.ID),
			&stripego.SubscriptionScheduleParams{FromSubscription: stripego.String(ssub.ID)})
		if err != nil {
			return PlanChange{}, fmt.Errorf("change plan: %w", err)
		}
		scheduleID = sched.ID
	}
	// The current phase keeps the current prices until the period ends.
	var current []*stripego.SubscriptionSchedulePhaseItemParams
	if ssub.Items != nil {
		for _, it := range ssub.Items.Data {
			if it.Price == nil {
				continue
			}
			item := &stripego.SubscriptionSchedulePhaseItemParams{Price: stripego.String(it.Price.ID)}
			if it.Price.Recurring == nil || it.Price.Recurring.UsageType != stripego.PriceRecurringUsageTypeMetered {
				item.Quantity = stripego.Int64(max(it.Quantity, 1))
			}
			current = append(current, item)
		}
	}
	start, end := periodOf(sub, ssub, s.now())
	var next []*stripego.SubscriptionSchedulePhaseItemParams
	for _, li := range lineItems(pp) {
		next = append(next, &stripego.SubscriptionSchedulePhaseItemParams{Price: li.Price, Quantity: li.Quantity})
	}
	phase := func(items []*stripego.SubscriptionSchedulePhaseItemParams) *stripego.SubscriptionSchedulePhaseParams {
		return &stripego.SubscriptionSchedulePhaseParams{Items: items, Metadata: subMetadata(sub.TenantID, sub.ID)}
	}
	p1, p2 := phase(current), phase(next)
	p1.StartDate, p1.EndDate = stripego.Int64(start.Unix()), stripego.Int64(end.Unix())
	p2.Iterations = stripego.Int64(1)
	up := &stripego.SubscriptionScheduleParams{EndBehavior: stripego.String("release"),
		Phases: []*stripego.SubscriptionSchedulePhaseParams{p1, p2}}
	if fee := s.feePercent(); fee != "" {
		up.AddExtra("phases[0][application_fee_percent]", fee)
		up.AddExtra("phases[1][application_fee_percent]", fee)
	}
	if _, err := acct.UpdateSubscriptionSchedule(ctx, key("downgrade"), scheduleID, up); err != nil {
		return PlanChange{}, fmt.Errorf("change plan: %w", err)
	}
	return PlanChange{Subscription: sub, Immediate: false, EffectiveAt: end}, nil
}

// periodOf is the subscription's current period: as stored from webhooks,
// else as Stripe's answer has it (older API versions), else a month from
// now.
func periodOf(sub catalog.BillingSubscription, ssub *stripego.Subscription, now time.Time) (time.Time, time.Time) {
	if sub.CurrentPeriodStart != nil && sub.CurrentPeriodEnd != nil && sub.CurrentPeriodEnd.After(now) {
		return *sub.CurrentPeriodStart, *sub.CurrentPeriodEnd
	}
	if ssub.CurrentPeriodEnd > now.Unix() {
		return time.Unix(ssub.CurrentPeriodStart, 0), time.Unix(ssub.CurrentPeriodEnd, 0)
	}
	return now, now.AddDate(0, 1, 0)
}

// isDowngrade reports whether moving from old to next costs less: a lower
// flat amount, or the same and a lower per-request price.
func isDowngrade(old, next *catalog.Price) bool {
	if old == nil || next == nil {
		return false
	}
	if old.AmountCents != next.AmountCents {
		return next.AmountCents < old.AmountCents
	}
	ro, rn := old.PerRequest(), next.PerRequest()
	if ro == nil {
		return false
	}
	if rn == nil {
		rn = new(big.Rat)
	}
	return rn.Cmp(ro) < 0
}

// Cancel ends a subscription for its developer (or the tenant): a paid one
// is canceled in Stripe first (at once, with the usage so far invoiced, or
// at the end of the period when atPeriodEnd), so that billing never goes
// on for a subscription Tollgate ended. At once, the Tollgate subscription
// is canceled in the same call; at period end it stays active until
// Stripe's customer.subscription.deleted. A subscription never paid (no
// Stripe subscription) is canceled in Tollgate only.
func (s *Service) Cancel(ctx context.Context, tenantID, subscriptionID string, atPeriodEnd bool) (catalog.BillingSubscription, error) {
	sub, err := s.Catalog.GetBillingSubscription(ctx, s.DB, tenantID, subscriptionID, "")
	if err != nil {
		return catalog.BillingSubscription{}, fmt.Errorf("cancel: %w", err)
	}
	if sub.Status == catalog.SubCanceled || sub.Status == catalog.SubRejected {
		return sub, nil
	}
	if sub.StripeSubscriptionID == "" {
		c, err := s.Catalog.SetSubscriptionStatus(ctx, actor(tenantID), "", sub.ID, catalog.SubCanceled)
		if err != nil {
			return catalog.BillingSubscription{}, fmt.Errorf("cancel: %w", err)
		}
		sub.Subscription = c
		return sub, nil
	}
	{
		tb, err := s.connectedAccount(ctx, s.DB, tenantID)
		if err != nil {
			return catalog.BillingSubscription{}, fmt.Errorf("cancel: %w", err)
		}
		acct := s.Stripe.Account(tb.AccountID)
		if atPeriodEnd {
			up := &stripego.SubscriptionParams{CancelAtPeriodEnd: stripego.Bool(true)}
			if _, err := acct.UpdateSubscription(ctx, stripe.IdempotencyKey("cancel-at-period-end", sub.ID),
				sub.StripeSubscriptionID, up); err != nil {
				return catalog.BillingSubscription{}, fmt.Errorf("cancel: %w", err)
			}
			yes := true
			var out catalog.BillingSubscription
			err = s.inTx(ctx, func(tx pgx.Tx) error {
				out, err = s.Catalog.ApplyBilling(ctx, tx, actor(tenantID), sub.ID, catalog.BillingChange{
					CancelAtPeriodEnd: &yes, Reason: "cancel at period end"})
				return err
			})
			if err != nil {
				return catalog.BillingSubscription{}, fmt.Errorf("cancel: %w", err)
			}
			return out, nil
		}
		cp := &stripego.SubscriptionCancelParams{InvoiceNow: stripego.Bool(true), Prorate: stripego.Bool(true)}
		if _, err := acct.CancelSubscription(ctx, stripe.IdempotencyKey("cancel", sub.ID), sub.StripeSubscriptionID, cp); err != nil && !stripe.NotFound(err) {
			return catalog.BillingSubscription{}, fmt.Errorf("cancel: %w", err)
		}
	}
	var out catalog.BillingSubscription
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		out, err = s.Catalog.ApplyBilling(ctx, tx, actor(tenantID), sub.ID, catalog.BillingChange{
			Status: catalog.SubCanceled, Reason: "canceled"})
		return err
	})
	if err != nil {
		return catalog.BillingSubscription{}, fmt.Errorf("cancel: %w", err)
	}
	return out, nil
}
