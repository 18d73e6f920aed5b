package billing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	stripego "github.com/stripe/stripe-go/v76"

	"github.com/tollgate/tollgate/billing/stripe"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
)

// Grace period bounds (tenant_billing.grace_period_seconds).
const (
	DefaultGracePeriod = 3 * 24 * time.Hour
	MaxGracePeriod     = 30 * 24 * time.Hour
)

var accountRE = regexp.MustCompile(`^acct_[A-Za-z0-9]{1,64}$`)

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// Connection is a tenant's Stripe connection as the tenant sees it.
type Connection struct {
	// Enabled is whether the platform has billing on at all.
	Enabled bool `json:"enabled"`
	// Connected is whether the tenant has a usable connected account.
	Connected          bool       `json:"connected"`
	AccountID          *string    `json:"account_id"`
	GracePeriodSeconds int        `json:"grace_period_seconds"`
	Livemode           bool       `json:"livemode"`
	ConnectedAt        *time.Time `json:"connected_at"`
	// DeauthorizedAt is when the tenant disconnected Tollgate in Stripe.
	DeauthorizedAt *time.Time `json:"deauthorized_at"`
	// PlatformFeePercent is the platform's cut of each payment.
	PlatformFeePercent float64 `json:"platform_fee_percent"`
}

func (s *Service) view(tb *tenantBilling) Connection {
	c := Connection{Enabled: s.Enabled(), GracePeriodSeconds: int(DefaultGracePeriod / time.Second),
		PlatformFeePercent: s.PlatformFeePercent}
	if tb == nil {
		return c
	}
	c.Connected = tb.DeauthorizedAt == nil && c.Enabled
	c.AccountID = &tb.AccountID
	c.GracePeriodSeconds, c.Livemode = tb.GracePeriodSeconds, tb.Livemode
	at := tb.ConnectedAt
	c.ConnectedAt, c.DeauthorizedAt = &at, tb.DeauthorizedAt
	return c
}

// Connection returns the tenant's Stripe connection.
func (s *Service) Connection(ctx context.Context, tenantID string) (Connection, error) {
	tb, err := scanTenantBilling(s.DB.QueryRow(ctx, `SELECT `+tenantBillingCols+` FROM tenant_billing WHERE tenant_id = $1`, tenantID))
	if isNoRows(err) {
		return s.view(nil), nil
	} else if err != nil {
		return Connection{}, fmt.Errorf("get billing connection: %w", err)
	}
	return s.view(&tb), nil
}

// ConnectInput connects an existing Stripe account to the tenant
// (PUT /v1/billing/stripe).
type ConnectInput struct {
	AccountID string `json:"account_id"`
	// GracePeriodSeconds is how long a past-due subscription keeps
	// working; nil keeps the current one (default 259200, three days).
	GracePeriodSeconds *int `json:"grace_period_seconds"`
}

func errDisabled() error {
	return fault.Conflict("", "billing is not enabled on this platform (the operator has not set a Stripe key)")
}

// Connect connects the account to the tenant after checking with Stripe
// that it exists and is connected to the platform. Changing to another
// account is refused while subscriptions are billed on the current one;
// otherwise it forgets the old account's customers and prices and syncs the
// plans again on the new one.
func (s *Service) Connect(ctx context.Context, who audit.Actor, in ConnectInput) (Connection, error) {
	if !s.Enabled() {
		return Connection{}, errDisabled()
	}
	v := &fault.ValidationError{}
	if !accountRE.MatchString(in.AccountID) {
		v.Add("account_id", "must be a Stripe account id such as acct_1Nv0FGQ9RKHgCVdK")
	}
	if g := in.GracePeriodSeconds; g != nil && (*g < 0 || *g > int(MaxGracePeriod/time.Second)) {
		v.Add("grace_period_seconds", "must be between 0 and %d (30 days)", int(MaxGracePeriod/time.Second))
	}
	if err := v.Err(); err != nil {
		return Connection{}, err
	}
	acct, err := s.Stripe.Platform().GetAccount(ctx, in.AccountID)
	if err != nil {
		if stripe.Refused(err) {
			return Connection{}, fault.Invalid("account_id", "Stripe does not know this account as one connected to the platform")
		}
		return Connection{}, fmt.Errorf("connect billing: %w", err)
	}
	if acct.ID != in.AccountID {
		return Connection{}, fault.Invalid("account_id", "Stripe does not know this account as one connected to the platform")
	}
	return s.saveConnection(ctx, who, in.AccountID, in.GracePeriodSeconds, "billing.connect")
}

// saveConnection stores the tenant's account (and grace period) in one
// transaction with its audit entry and, for a new account, the plan syncs.
func (s *Service) saveConnection(ctx context.Context, who audit.Actor, account string, grace *int, action string) (Connection, error) {
	var out tenantBilling
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		cur, err := scanTenantBilling(tx.QueryRow(ctx, `SELECT `+tenantBillingCols+` FROM tenant_billing
			WHERE tenant_id = $1 FOR UPDATE`, who.TenantID))
		exists := err == nil
		if err != nil && !isNoRows(err) {
			return fmt.Errorf("read tenant billing: %w", err)
		}
		g := int(DefaultGracePeriod / time.Second)
		if exists {
			g = cur.GracePeriodSeconds
		}
		if grace != nil {
			g = *grace
		}
		changed := !exists || cur.AccountID != account
		if exists && changed {
			var billed int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM subscriptions WHERE tenant_id = $1
				AND stripe_subscription_id IS NOT NULL AND status NOT IN ('canceled', 'rejected')`, who.TenantID).Scan(&billed); err != nil {
				return fmt.Errorf("count billed subscriptions: %w", err)
			}
			if billed > 0 {
				return fault.Conflict("account_id", "%d subscriptions are billed on %s; they must end before the tenant changes its Stripe account", billed, cur.AccountID)
			}
			// The old account's objects mean nothing on the new one.
			for _, q := range []string{`DELETE FROM billing_customers WHERE tenant_id = $1`,
				`DELETE FROM plan_prices WHERE tenant_id = $1`} {
				if _, err := tx.Exec(ctx, q, who.TenantID); err != nil {
					return fmt.Errorf("forget old account: %w", err)
				}
			}
		}
		out, err = scanTenantBilling(tx.QueryRow(ctx, `INSERT INTO tenant_billing (tenant_id, stripe_account_id,
				grace_period_seconds, livemode) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id) DO UPDATE SET stripe_account_id = $2, grace_period_seconds = $3, livemode = $4,
				connected_at = CASE WHEN tenant_billing.stripe_account_id <> $2 OR tenant_billing.deauthorized_at IS NOT NULL
					THEN now() ELSE tenant_billing.connected_at END,
				deauthorized_at = NULL,
				meter_id = CASE WHEN tenant_billing.stripe_account_id <> $2 THEN '' ELSE tenant_billing.meter_id END,
				meter_event_name = CASE WHEN tenant_billing.stripe_account_id <> $2 THEN '' ELSE tenant_billing.meter_event_name END,
				updated_at = now()
			RETURNING `+tenantBillingCols, who.TenantID, account, g, s.Stripe.Live()))
		if c, ok := store.UniqueViolation(err); ok && c == "tenant_billing_account_key" {
			return fault.Conflict("account_id", "this Stripe account is connected to another tenant")
		} else if err != nil {
			return fmt.Errorf("save tenant billing: %w", err)
		}
		if err := audit.Record(ctx, tx, who, action, "billing", who.TenantID, map[string]any{
			"account_id": account, "grace_period_seconds": g, "livemode": out.Livemode}); err != nil {
			return err
		}
		if changed || (exists && cur.DeauthorizedAt != nil) {
			return enqueueTenantPlans(ctx, tx, who.TenantID)
		}
		return nil
	})
	if err != nil {
		return Connection{}, fmt.Errorf("connect billing: %w", err)
	}
	return s.view(&out), nil
}

// enqueueTenantPlans queues a sync of each of the tenant's priced plans.
func enqueueTenantPlans(ctx context.Context, tx pgx.Tx, tenantID string) error {
	rows, err := tx.Query(ctx, `SELECT id::text FROM plans WHERE tenant_id = $1 AND price_cents IS NOT NULL`, tenantID)
	if err != nil {
		return fmt.Errorf("list plans to sync: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list plans to sync: %w", err)
	}
	for _, id := range ids {
		if err := catalog.EnqueuePlanSync(ctx, tx, tenantID, id); err != nil {
			return err
		}
	}
	return nil
}

// OnboardInput asks for a Stripe-hosted onboarding link
// (POST /v1/billing/stripe/onboarding).
type OnboardInput struct {
	// Type is the account type Tollgate creates when the tenant has none:
	// "express" (default) or "standard".
	Type string `json:"type"`
	// Country is the account's two-letter country; "" lets Stripe ask.
	Country string `json:"country"`
	// Email pre-fills the account's email.
	Email string `json:"email"`
	// ReturnURL is where Stripe sends the tenant after onboarding.
	ReturnURL string `json:"return_url"`
	// RefreshURL is where Stripe sends the tenant when the link expired;
	// it should ask for a new link.
	RefreshURL string `json:"refresh_url"`
}

// Onboarding is a Stripe-hosted onboarding link.
type Onboarding struct {
	AccountID string    `json:"account_id"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

func checkURL(v *fault.ValidationError, field, raw string) {
	u, err := url.Parse(raw)
	if raw == "" {
		v.Add(field, "is required")
	} else if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.Add(field, "must be an absolute http(s) URL")
	}
}

// Onboard creates a connected account for the tenant when it has none (and
// connects it) and returns a link to Stripe's onboarding of that account.
func (s *Service) Onboard(ctx context.Context, who audit.Actor, in OnboardInput) (Onboarding, error) {
	if !s.Enabled() {
		return Onboarding{}, errDisabled()
	}
	v := &fault.ValidationError{}
	if in.Type == "" {
		in.Type = "express"
	}
	if in.Type != "express" && in.Type != "standard" {
		v.Add("type", "must be express or standard")
	}
	if in.Country != "" && !regexp.MustCompile(`^[A-Z]{2}$`).MatchString(in.Country) {
		v.Add("country", "must be a two-letter ISO country code such as US")
	}
	checkURL(v, "return_url", in.ReturnURL)
	checkURL(v, "refresh_url", in.RefreshURL)
	if err := v.Err(); err != nil {
		return Onboarding{}, err
	}
	cur, err := s.Connection(ctx, who.TenantID)
	if err != nil {
		return Onboarding{}, err
	}
	account := ""
	if cur.AccountID != nil {
		account = *cur.AccountID
	}
	if account == "" {
		p := &stripego.AccountParams{Type: stripego.String(in.Type)}
		if in.Country != "" {
			p.Country = stripego.String(in.Country)
		}
		if in.Email != "" {
			p.Email = stripego.String(in.Email)
		}
		p.AddMetadata("tollgate_tenant_id", who.TenantID)
		// One account per tenant: a retry (or a double click) within
		// Stripe's idempotency window gets the same account.
		acct, err := s.Stripe.Platform().CreateAccount(ctx, stripe.IdempotencyKey("account", who.TenantID, in.Type), p)
		if err != nil {
			return Onboarding{}, fmt.Errorf("onboard: %w", err)
		}
		if _, err := s.saveConnection(ctx, who, acct.ID, nil, "billing.onboard"); err != nil {
			return Onboarding{}, err
		}
		account = acct.ID
	}
	lp := &stripego.AccountLinkParams{Account: stripego.String(account), Type: stripego.String("account_onboarding"),
		ReturnURL: stripego.String(in.ReturnURL), RefreshURL: stripego.String(in.RefreshURL)}
	// Links are single-use and short-lived: a new one each minute.
	link, err := s.Stripe.Platform().CreateAccountLink(ctx, stripe.IdempotencyKey("account-link", account,
		timeBucket(s.now(), time.Minute), shortHash(in.ReturnURL, in.RefreshURL)), lp)
	if err != nil {
		return Onboarding{}, fmt.Errorf("onboard: %w", err)
	}
	return Onboarding{AccountID: account, URL: link.URL, ExpiresAt: time.Unix(link.ExpiresAt, 0).UTC()}, nil
}
