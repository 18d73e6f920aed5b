package devportal

import (
	"net/http"
	"time"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/fault"
)

// The signed-in developer's apps, subscriptions and keys. Every lookup is
// scoped to the host's tenant and the developer's consumer, so another
// developer's objects, or another tenant's, are not found (404).

// ---- apps ----

func (p *Portal) apiCreateApp(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	var in catalog.AppInput
	if err := apiDecode(w, r, &in); err != nil {
		return err
	}
	a, err := p.opts.Catalog.CreateApp(r.Context(), c.dev().Actor(), c.dev().ConsumerID, in)
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusCreated, a)
}

func (p *Portal) apiListApps(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	pg, err := apiPageParam(r)
	if err != nil {
		return err
	}
	list, next, err := p.opts.Catalog.ListApps(r.Context(), c.tenant.ID, c.dev().ConsumerID, pg)
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusOK, apiPageOf(list, next))
}

func (p *Portal) apiGetApp(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	a, err := p.opts.Catalog.GetApp(r.Context(), c.tenant.ID, c.dev().ConsumerID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusOK, a)
}

// apiAppPatch names the fields a PATCH changes; absent (or null) fields stay.
type apiAppPatch struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
}

func (p *Portal) apiUpdateApp(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	ctx := r.Context()
	var in apiAppPatch
	if err := apiDecode(w, r, &in); err != nil {
		return err
	}
	cur, err := p.opts.Catalog.GetApp(ctx, c.tenant.ID, c.dev().ConsumerID, r.PathValue("id"))
	if err != nil {
		return err
	}
	next := catalog.AppInput{Name: cur.Name, Description: cur.Description}
	if in.Name != nil {
		next.Name = *in.Name
	}
	if in.Description != nil {
		next.Description = *in.Description
	}
	a, err := p.opts.Catalog.UpdateApp(ctx, c.dev().Actor(), c.dev().ConsumerID, cur.ID, next)
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusOK, a)
}

func (p *Portal) apiDeleteApp(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	if err := p.opts.Catalog.DeleteApp(r.Context(), c.dev().Actor(), c.dev().ConsumerID, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- subscriptions ----

// apiSubscriptionView is a subscription as its developer sees it. Key and
// CheckoutURL are always present (null when empty): Key holds the first
// key, shown once, in the answer that activated the subscription;
// CheckoutURL is where a payment_required subscription is paid.
type apiSubscriptionView struct {
	ID          string         `json:"id"`
	AppID       string         `json:"app_id"`
	PlanID      string         `json:"plan_id"`
	Status      string         `json:"status"`
	Key         *apiNewKeyView `json:"key"`
	CheckoutURL *string        `json:"checkout_url"`
	Detail      string         `json:"detail,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
	DecidedAt   *time.Time     `json:"decided_at"`
}

// apiStatusDetail explains a subscription's state to its developer.
var apiStatusDetail = map[string]string{
	catalog.SubPending: "the subscription waits for the API provider's approval; you will get a mail when it is decided",
	catalog.SubPaymentRequired: "this plan is paid: open checkout_url to pay; the subscription becomes active, " +
		"and keys can be made, once the payment provider confirms the payment",
	catalog.SubPastDue:   "the last payment failed; keys keep working for a grace period, then stop until it is paid",
	catalog.SubSuspended: "the subscription is suspended; its keys do not work",
	catalog.SubCanceled:  "the subscription has ended; its keys do not work",
	catalog.SubRejected:  "the API provider did not approve the subscription",
}

// apiCheckoutURL is where the developer pays a payment_required
// subscription: a Stripe Checkout session on the tenant's account that
// returns to the app's page (?checkout=success or canceled). When there is
// none it answers nil and the detail that says why (billing off, the
// tenant not connected, prices not ready, Stripe unreachable): the
// subscription itself exists either way, so no error is returned.
func (p *Portal) apiCheckoutURL(r *http.Request, c *apiCall, s catalog.Subscription) (*string, string) {
	u, detail := p.startCheckout(r, c.tenant.ID, s)
	if u == "" {
		return nil, detail
	}
	return &u, ""
}

func (p *Portal) apiViewSubscription(r *http.Request, c *apiCall, s catalog.Subscription) apiSubscriptionView {
	v := apiSubscriptionView{ID: s.ID, AppID: s.AppID, PlanID: s.PlanID, Status: s.Status, Detail: apiStatusDetail[s.Status],
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, DecidedAt: s.DecidedAt}
	if s.Status == catalog.SubPaymentRequired {
		u, detail := p.apiCheckoutURL(r, c, s)
		v.CheckoutURL = u
		if u == nil {
			v.Detail = "this plan is paid and cannot be paid yet: " + detail
		}
	}
	return v
}

func (p *Portal) apiViewSubscriptions(r *http.Request, c *apiCall, list []catalog.Subscription) []apiSubscriptionView {
	out := make([]apiSubscriptionView, 0, len(list))
	for _, s := range list {
		out = append(out, p.apiViewSubscription(r, c, s))
	}
	return out
}

type apiSubscribeInput struct {
	PlanID string `json:"plan_id"`
}

// apiSubscribe puts one of the developer's apps on a public plan: active
// with a first key (free), pending (approval) or payment_required (priced).
func (p *Portal) apiSubscribe(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	ctx := r.Context()
	var in apiSubscribeInput
	if err := apiDecode(w, r, &in); err != nil {
		return err
	}
	if in.PlanID == "" {
		return fault.Invalid("plan_id", "is required")
	}
	out, err := p.opts.Developers.Subscribe(ctx, c.dev(), r.PathValue("id"), in.PlanID)
	if err != nil {
		return err
	}
	v := p.apiViewSubscription(r, c, out.Subscription)
	if out.Key != nil {
		k := apiViewNewKey(*out.Key, out.Secret)
		v.Key = &k
	}
	return apiWriteJSON(w, http.StatusCreated, v)
}

func (p *Portal) apiListSubscriptionsOf(w http.ResponseWriter, r *http.Request, c *apiCall, f catalog.SubscriptionFilter) error {
	ctx := r.Context()
	pg, err := apiPageParam(r)
	if err != nil {
		return err
	}
	f.ConsumerID = c.dev().ConsumerID
	f.Status = r.URL.Query().Get("status")
	list, next, err := p.opts.Catalog.ListSubscriptions(ctx, c.tenant.ID, f, pg)
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusOK, apiPageOf(p.apiViewSubscriptions(r, c, list), next))
}

// apiListSubscriptions lists the developer's subscriptions, of one app
// (app_id) or status when asked.
func (p *Portal) apiListSubscriptions(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	return p.apiListSubscriptionsOf(w, r, c, catalog.SubscriptionFilter{AppID: r.URL.Query().Get("app_id")})
}

func (p *Portal) apiListAppSubscriptions(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	a, err := p.opts.Catalog.GetApp(r.Context(), c.tenant.ID, c.dev().ConsumerID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return p.apiListSubscriptionsOf(w, r, c, catalog.SubscriptionFilter{AppID: a.ID})
}

func (p *Portal) apiGetSubscription(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	ctx := r.Context()
	s, err := p.opts.Catalog.GetSubscription(ctx, c.tenant.ID, c.dev().ConsumerID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusOK, p.apiViewSubscription(r, c, s))
}

// apiCancelSubscription ends a subscription at once (its keys stop working
// on every worker; a paid one is canceled in Stripe first, see
// cancelSubscription); canceling a canceled one answers it again.
func (p *Portal) apiCancelSubscription(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	s, err := p.cancelSubscription(r.Context(), c.dev(), c.tenant.ID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusOK, p.apiViewSubscription(r, c, s))
}

// ---- keys ----

// apiNewKeyView is a key as issued: the only answer that holds the key itself.
type apiNewKeyView struct {
	ID             string     `json:"id"`
	Key            string     `json:"key"`
	Prefix         string     `json:"prefix"`
	SubscriptionID *string    `json:"subscription_id"`
	AppID          *string    `json:"app_id"`
	PlanID         string     `json:"plan_id"`
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      *time.Time `json:"expires_at"`
}

func apiViewNewKey(k catalog.Key, secret string) apiNewKeyView {
	return apiNewKeyView{ID: k.ID, Key: secret, Prefix: k.Prefix, SubscriptionID: k.SubscriptionID, AppID: k.AppID,
		PlanID: k.PlanID, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt}
}

// Key states as developers see them: Status of a key is computed from its
// stored state and the end of its rotation overlap.
const (
	apiKeyActive  = "active"
	apiKeyExpired = "expired"
	apiKeyRevoked = "revoked"
)

// apiKeyView is a key without its secret.
type apiKeyView struct {
	ID     string `json:"id"`
	Prefix string `json:"prefix"`
	// Status is active, expired (a rotated key past its overlap) or revoked.
	Status         string     `json:"status"`
	SubscriptionID *string    `json:"subscription_id"`
	AppID          *string    `json:"app_id"`
	PlanID         string     `json:"plan_id"`
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      *time.Time `json:"expires_at"`
	RevokedAt      *time.Time `json:"revoked_at"`
	ReplacedBy     *string    `json:"replaced_by"`
}

func apiKeyStatus(k catalog.Key, now time.Time) string {
	switch {
	case k.Status != proxycfg.KeyActive:
		return apiKeyRevoked
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return apiKeyExpired
	}
	return apiKeyActive
}

func apiViewKey(k catalog.Key, now time.Time) apiKeyView {
	return apiKeyView{ID: k.ID, Prefix: k.Prefix, Status: apiKeyStatus(k, now), SubscriptionID: k.SubscriptionID,
		AppID: k.AppID, PlanID: k.PlanID, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt,
		ReplacedBy: k.ReplacedBy}
}

// apiCreateKey issues another key of an active subscription (409 else).
func (p *Portal) apiCreateKey(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	ctx := r.Context()
	if err := developers.CanSubscribe(c.dev()); err != nil {
		// Only a subscription of the developer's tells anything.
		if _, gerr := p.opts.Catalog.GetSubscription(ctx, c.tenant.ID, c.dev().ConsumerID, r.PathValue("id")); gerr != nil {
			return gerr
		}
		return err
	}
	k, secret, err := p.opts.Catalog.CreateSubscriptionKey(ctx, c.dev().Actor(), c.dev().ConsumerID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusCreated, apiViewNewKey(k, secret))
}

func (p *Portal) apiListKeys(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	keys, err := p.opts.Catalog.ListSubscriptionKeys(r.Context(), c.tenant.ID, c.dev().ConsumerID, r.PathValue("id"))
	if err != nil {
		return err
	}
	now := time.Now()
	out := make([]apiKeyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, apiViewKey(k, now))
	}
	return apiWriteJSON(w, http.StatusOK, apiItemsOf(out))
}

func (p *Portal) apiGetKey(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	k, err := p.opts.Catalog.GetConsumerKey(r.Context(), c.tenant.ID, c.dev().ConsumerID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusOK, apiViewKey(k, time.Now()))
}

// apiRotateInput is the body of POST /api/keys/{id}/rotate. GraceSeconds is
// how long the old key keeps working (0, the default, ends it at once).
type apiRotateInput struct {
	GraceSeconds int64 `json:"grace_seconds"`
}

// apiRotatedKeyView is the new key of a rotation and when the old one stops.
type apiRotatedKeyView struct {
	apiNewKeyView
	PreviousKeyID        string    `json:"previous_key_id"`
	PreviousKeyExpiresAt time.Time `json:"previous_key_expires_at"`
}

func (p *Portal) apiRotateKey(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	var in apiRotateInput
	if err := apiDecode(w, r, &in); err != nil {
		return err
	}
	maxGrace := int64(catalog.MaxRotationOverlap / time.Second)
	if in.GraceSeconds < 0 || in.GraceSeconds > maxGrace {
		return fault.Invalid("grace_seconds", "must be between 0 and %d (30 days)", maxGrace)
	}
	id := r.PathValue("id")
	out, err := p.opts.Catalog.RotateKey(r.Context(), c.dev().Actor(), c.dev().ConsumerID, id,
		time.Duration(in.GraceSeconds)*time.Second)
	if err != nil {
		return err
	}
	return apiWriteJSON(w, http.StatusCreated, apiRotatedKeyView{apiNewKeyView: apiViewNewKey(out.Key, out.Secret),
		PreviousKeyID: id, PreviousKeyExpiresAt: out.PreviousExpiresAt})
}

func (p *Portal) apiRevokeKey(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	if err := p.opts.Catalog.RevokeConsumerKey(r.Context(), c.dev().Actor(), c.dev().ConsumerID, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
