package mgmtapi

import "time"

// The /v1 routes of billing (served by billing/, mounted beside this API by
// the control plane) and their bodies, for the document. billing imports
// this package (for problems), so these types cannot be billing's own; they
// mirror billing.Connection, ConnectInput, OnboardInput and Onboarding.

// BillingConnection is the tenant's Stripe connection.
type BillingConnection struct {
	Enabled            bool       `json:"enabled" doc:"billing is on for the platform"`
	Connected          bool       `json:"connected" doc:"the tenant has a usable connected account"`
	AccountID          *string    `json:"account_id"`
	GracePeriodSeconds int        `json:"grace_period_seconds" doc:"how long a past-due subscription keeps working"`
	Livemode           bool       `json:"livemode"`
	ConnectedAt        *time.Time `json:"connected_at"`
	DeauthorizedAt     *time.Time `json:"deauthorized_at" doc:"when the tenant disconnected Tollgate in Stripe"`
	PlatformFeePercent float64    `json:"platform_fee_percent" doc:"the platform's cut of each payment"`
}

func (BillingConnection) schemaDoc() string {
	return "The tenant's Stripe connection (Stripe Connect)."
}

// BillingConnectRequest connects an existing Stripe account.
type BillingConnectRequest struct {
	AccountID          string `json:"account_id" required:"true" doc:"the tenant's connected account, acct_…"`
	GracePeriodSeconds *int   `json:"grace_period_seconds" min:"0" max:"2592000" default:"259200" doc:"null keeps the current one"`
}

func (BillingConnectRequest) schemaDoc() string {
	return "An existing Stripe account to connect, and the grace period of failed payments."
}

// BillingOnboardRequest starts Stripe's onboarding.
type BillingOnboardRequest struct {
	Type       string `json:"type" enum:"express,standard" default:"express" doc:"the account type created when the tenant has none"`
	Country    string `json:"country" doc:"two-letter country; empty lets Stripe ask"`
	Email      string `json:"email" format:"email"`
	ReturnURL  string `json:"return_url" format:"uri" required:"true" doc:"where Stripe sends the tenant after onboarding"`
	RefreshURL string `json:"refresh_url" format:"uri" required:"true" doc:"where Stripe sends the tenant when the link expired"`
}

func (BillingOnboardRequest) schemaDoc() string {
	return "Where Stripe's onboarding returns to, and the account to create when the tenant has none."
}

// BillingOnboarding is a Stripe-hosted onboarding link.
type BillingOnboarding struct {
	AccountID string    `json:"account_id"`
	URL       string    `json:"url" format:"uri"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (BillingOnboarding) schemaDoc() string { return "A Stripe-hosted onboarding link." }
