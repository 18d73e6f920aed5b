// Package billing charges for plans through Stripe Connect. The platform
// holds one Stripe key; each tenant connects its own account (Express or
// Standard, or an existing one by id), and every object below lives on that
// account, reached with the Stripe-Account header through the one client in
// billing/stripe:
//
//   - plans become Products and Prices (a flat recurring price, a metered
//     price on the account's Billing Meter, or both), written by a job runner
//     from the billing_jobs outbox (plans.go, jobs.go);
//   - a developer pays a priced plan through Checkout, with one Customer per
//     app (checkout.go), and manages it in the Customer Portal;
//   - Stripe's webhooks move subscriptions between active, past_due,
//     suspended and canceled, each event applied exactly once, in order per
//     subscription, only from the account that owns the object (webhook.go).
//
// Workers never call Stripe or Postgres: what billing decides reaches them as
// key records, through the catalog (catalog.Service.ApplyBilling).
//
// Dunning: a failed payment makes a subscription past_due with grace_until =
// now + the tenant's grace period. Tollgate keeps it past_due after the grace
// period ends: workers compare the key record's GraceUntil with their clock
// and answer 402 from then on, so no job has to run at the deadline, and an
// invoice.paid makes it active (and its keys work) again at once. Stripe's
// own dunning decides when it becomes unpaid (suspended here) or canceled.
package billing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/billing/stripe"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
)

// Config is the operator's billing configuration (DESIGN.md "Billing").
type Config struct {
	// SecretKey is the platform's Stripe key (TOLLGATE_STRIPE_SECRET_KEY);
	// "" turns billing off.
	SecretKey string
	// WebhookSecret verifies POST /webhooks/stripe
	// (TOLLGATE_STRIPE_WEBHOOK_SECRET); "" refuses every webhook.
	WebhookSecret string
	// APIURL is Stripe's API base URL (TOLLGATE_STRIPE_API_URL); "" is
	// Stripe's. Tests point it at stripe-mock.
	APIURL string
	// PlatformFeePercent is the platform's cut of each subscription payment
	// (TOLLGATE_STRIPE_PLATFORM_FEE_PERCENT, 0 to 100, at most two
	// decimals); 0 takes none.
	PlatformFeePercent float64
}

// Enabled reports whether billing is on.
func (c Config) Enabled() bool { return c.SecretKey != "" }

// ConfigFromEnv reads Config from the TOLLGATE_STRIPE_* variables through
// getenv (os.Getenv).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{SecretKey: getenv("TOLLGATE_STRIPE_SECRET_KEY"), WebhookSecret: getenv("TOLLGATE_STRIPE_WEBHOOK_SECRET"),
		APIURL: getenv("TOLLGATE_STRIPE_API_URL")}
	if v := strings.TrimSpace(getenv("TOLLGATE_STRIPE_PLATFORM_FEE_PERCENT")); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 100 || math.Abs(f*100-math.Round(f*100)) > 1e-9 {
			return Config{}, fmt.Errorf("TOLLGATE_STRIPE_PLATFORM_FEE_PERCENT: want a number from 0 to 100 with at most two decimals, got %q", v)
		}
		c.PlatformFeePercent = f
	}
	if c.SecretKey != "" && !strings.HasPrefix(c.SecretKey, "sk_") && !strings.HasPrefix(c.SecretKey, "rk_") {
		return Config{}, errors.New("TOLLGATE_STRIPE_SECRET_KEY: not a Stripe secret or restricted key (sk_… or rk_…)")
	}
	return c, nil
}

// Service is billing for every tenant. The zero value is not usable; build
// it with New. A Service with a nil Stripe is billing turned off: Checkout
// and the portal answer ErrUnavailable, the webhook answers 503.
type Service struct {
	// DB is the control plane's database.
	DB *pgxpool.Pool
	// Catalog changes subscriptions and their keys' records.
	Catalog *catalog.Service
	// Stripe is the client; nil turns billing off.
	Stripe *stripe.Client
	// WebhookSecret verifies webhooks ("" refuses all).
	WebhookSecret string
	// PlatformFeePercent is the application fee of Checkout subscriptions.
	PlatformFeePercent float64
	// Logger receives errors; never secrets. If nil, nothing is logged.
	Logger *slog.Logger
	// Now is the clock (grace periods). If nil, time.Now.
	Now func() time.Time
	// Stats counts webhook deliveries, for metrics.
	Stats WebhookStats
}

// New builds the Service of cfg: billing off (Stripe nil) when cfg has no
// secret key. client, when not nil, replaces the one cfg would build (tests
// pass one with a recording transport).
func New(cfg Config, db *pgxpool.Pool, cat *catalog.Service, client *stripe.Client, log *slog.Logger) (*Service, error) {
	s := &Service{DB: db, Catalog: cat, Stripe: client, WebhookSecret: cfg.WebhookSecret,
		PlatformFeePercent: cfg.PlatformFeePercent, Logger: log}
	if s.Stripe == nil && cfg.Enabled() {
		c, err := stripe.New(stripe.Config{SecretKey: cfg.SecretKey, URL: cfg.APIURL})
		if err != nil {
			return nil, fmt.Errorf("billing: %w", err)
		}
		s.Stripe = c
	}
	return s, nil
}

// Enabled reports whether billing is on.
func (s *Service) Enabled() bool { return s != nil && s.Stripe != nil }

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// actor is who billing's own changes are recorded as in the audit log.
func actor(tenantID string) audit.Actor { return audit.Actor{TenantID: tenantID, Name: "billing"} }

// ErrUnavailable matches every UnavailableError with errors.Is.
var ErrUnavailable = errors.New("billing unavailable")

// Reasons of UnavailableError.
const (
	// ReasonDisabled: the platform runs without a Stripe key.
	ReasonDisabled = "billing-disabled"
	// ReasonNotConnected: the tenant has not connected a Stripe account
	// (or disconnected it).
	ReasonNotConnected = "billing-not-connected"
	// ReasonPricesNotReady: the plan's Stripe prices are still being
	// created; asking again in a minute works.
	ReasonPricesNotReady = "prices-not-ready"
	// ReasonNoCustomer: the subscription has never been through Checkout.
	ReasonNoCustomer = "no-customer"
)

// UnavailableError means billing cannot serve this request now, for a
// reason the developer may be told: the portal answers checkout_url: null
// with Detail.
type UnavailableError struct {
	// Reason is one of the Reason constants.
	Reason string
	// Detail is safe to show to the developer.
	Detail string
}

func (e *UnavailableError) Error() string {
	return "billing unavailable: " + e.Reason + ": " + e.Detail
}

// Is makes errors.Is(err, ErrUnavailable) match.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

func unavailable(reason string) error {
	d := map[string]string{
		ReasonDisabled:       "payments are not enabled on this platform, so paid plans cannot be bought yet",
		ReasonNotConnected:   "the API provider has not connected a Stripe account yet, so this plan cannot be paid yet",
		ReasonPricesNotReady: "the plan's prices are being set up with the payment provider; try again in a minute",
		ReasonNoCustomer:     "this subscription has no payment account yet; pay for it through checkout first",
	}[reason]
	return &UnavailableError{Reason: reason, Detail: d}
}

// tenantBilling is a tenant's Stripe connection.
type tenantBilling struct {
	TenantID           string
	AccountID          string
	GracePeriodSeconds int
	Livemode           bool
	ConnectedAt        time.Time
	DeauthorizedAt     *time.Time
	UpdatedAt          time.Time
	MeterID            string
	MeterEventName     string
}

const tenantBillingCols = `tenant_id, stripe_account_id, grace_period_seconds, livemode, connected_at, deauthorized_at,
	updated_at, meter_id, meter_event_name`

func scanTenantBilling(row interface{ Scan(...any) error }) (tenantBilling, error) {
	var t tenantBilling
	err := row.Scan(&t.TenantID, &t.AccountID, &t.GracePeriodSeconds, &t.Livemode, &t.ConnectedAt, &t.DeauthorizedAt,
		&t.UpdatedAt, &t.MeterID, &t.MeterEventName)
	return t, err
}

// connectedAccount returns the tenant's usable connection or an
// UnavailableError.
func (s *Service) connectedAccount(ctx context.Context, q Querier, tenantID string) (tenantBilling, error) {
	if !s.Enabled() {
		return tenantBilling{}, unavailable(ReasonDisabled)
	}
	tb, err := scanTenantBilling(q.QueryRow(ctx, `SELECT `+tenantBillingCols+` FROM tenant_billing WHERE tenant_id = $1`, tenantID))
	if err != nil {
		if isNoRows(err) {
			return tenantBilling{}, unavailable(ReasonNotConnected)
		}
		return tenantBilling{}, fmt.Errorf("read tenant billing: %w", err)
	}
	if tb.DeauthorizedAt != nil {
		return tenantBilling{}, unavailable(ReasonNotConnected)
	}
	return tb, nil
}
