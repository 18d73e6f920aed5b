package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/billing"
	"github.com/tollgate/tollgate/billing/metering"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/web/devportal"
	"github.com/tollgate/tollgate/web/portal"
)

// newBilling builds billing from TOLLGATE_STRIPE_*: off (nil Stripe client)
// without a secret key.
func newBilling(getenv func(string) string, db *pgxpool.Pool, secret []byte, allowPrivate bool, log *slog.Logger) (*billing.Service, error) {
	cfg, err := billing.ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	cat := catalog.New(db, secret, allowPrivate)
	return billing.New(cfg, db, cat, nil, log.With("component", "billing"))
}

// controlBilling is billing as the control plane runs it: the service
// (nil Stripe: off) and, when it is on, the metering runner serveControl
// runs. newControlBilling builds it.
type controlBilling struct {
	Service  *billing.Service
	Metering *metering.Runner
}

// newControlBilling builds billing from TOLLGATE_STRIPE_* (newBilling) and,
// when it is on, the metering runner (usage windows to Stripe meter
// events), so that the tenant portal's usage repair wakes the very runner
// that sends.
func newControlBilling(getenv func(string) string, db *pgxpool.Pool, secret []byte, allowPrivate bool, log *slog.Logger) (*controlBilling, error) {
	bill, err := newBilling(getenv, db, secret, allowPrivate, log)
	if err != nil {
		return nil, err
	}
	cb := &controlBilling{Service: bill}
	if bill.Enabled() {
		if cb.Metering, err = metering.New(metering.Options{DB: db, Client: bill.Stripe,
			Logger: log.With("component", "metering")}); err != nil {
			return nil, fmt.Errorf("metering: %w", err)
		}
	}
	return cb, nil
}

// portal is the tenant portal's billing page back end: billing, and the
// metering runner's producer for the usage repair; billing off for nil.
func (cb *controlBilling) portal() portal.Billing {
	if cb == nil || cb.Service == nil {
		return portal.Billing{}
	}
	b := portal.Billing{Service: cb.Service}
	if cb.Metering != nil {
		b.Usage, b.Window = cb.Metering.Producer(), metering.DefaultWindow
	}
	return b
}

// mountBilling adds billing's routes to the control plane's mux: the
// tenant's Stripe connection under /v1/billing/, the Stripe webhook, and
// the stable payment link of 402 answers, which sends the developer to the
// subscription's page in its tenant's portal (which opens Checkout or the
// Stripe Customer Portal).
func mountBilling(mux *http.ServeMux, d controlDeps) {
	api := &billing.API{Billing: d.Billing, Logger: d.Logger,
		Authenticate: func(r *http.Request) (audit.Actor, error) {
			key := d.DigestKey
			if len(key) == 0 {
				key = d.Secret
			}
			tok, err := tenancy.Authenticate(r.Context(), d.DB, key, bearer(r))
			if err != nil {
				return audit.Actor{}, err
			}
			return tok.Actor(), nil
		}}
	for _, rt := range api.Routes() {
		mux.Handle(rt.Pattern, rt.Handler)
	}
	mux.Handle("POST /webhooks/stripe", d.Billing.Webhook())
	mux.HandleFunc("GET /billing/subscriptions/{id}", func(w http.ResponseWriter, r *http.Request) {
		slug, err := subscriptionTenant(r.Context(), d.DB, r.PathValue("id"))
		if err != nil || d.DevPortal == nil {
			http.Error(w, "There is no such subscription.", http.StatusNotFound)
			return
		}
		t := tenancy.Tenant{Slug: slug}
		http.Redirect(w, r, d.DevPortal.PortalURL(t)+"/billing/"+r.PathValue("id"), http.StatusSeeOther)
	})
}

// subscriptionTenant returns the slug of the tenant owning a subscription.
func subscriptionTenant(ctx context.Context, db *pgxpool.Pool, id string) (string, error) {
	if !store.ValidID(id) {
		return "", errors.New("not an id")
	}
	var slug string
	err := db.QueryRow(ctx, `SELECT t.slug FROM subscriptions s JOIN tenants t ON t.id = s.tenant_id WHERE s.id = $1`, id).Scan(&slug)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", err
	}
	return slug, err
}

// bearer is the token of an Authorization: Bearer header.
func bearer(r *http.Request) string {
	const p = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) > len(p) && (h[:len(p)] == p || h[:len(p)] == "bearer ") {
		return h[len(p):]
	}
	return ""
}

// *billing.Service is the developer portals' Billing.
var _ devportal.Billing = (*billing.Service)(nil)
