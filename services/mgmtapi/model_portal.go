package mgmtapi

import (
	"slices"
	"time"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/settings"
)

// PortalRequest is what PUT /v1/portal may name; the fields it names
// replace the current ones. The identity provider is set with PUT
// /v1/portal/oidc.
type PortalRequest struct {
	Enabled             bool     `json:"enabled"`
	Signup              string   `json:"signup" enum:"open,approval,invite"`
	DisplayName         string   `json:"display_name" doc:"the portal's name; empty: the tenant's name"`
	AccentColor         string   `json:"accent_color" pattern:"^#[0-9a-fA-F]{6}$" doc:"#rrggbb; empty: the default"`
	LogoURL             string   `json:"logo_url" format:"uri" doc:"an https image; empty: none"`
	SupportEmail        string   `json:"support_email" format:"email" doc:"shown to developers and the Reply-To of mails"`
	AllowedEmailDomains []string `json:"allowed_email_domains" doc:"when not empty, only addresses of these domains may sign up"`
}

func (PortalRequest) schemaDoc() string {
	return "The developer portal's settings a tenant changes with PUT /v1/portal."
}

// Portal is the developer portal's settings.
type Portal struct {
	Enabled             bool       `json:"enabled"`
	Signup              string     `json:"signup" enum:"open,approval,invite"`
	DisplayName         string     `json:"display_name"`
	AccentColor         string     `json:"accent_color"`
	LogoURL             string     `json:"logo_url"`
	SupportEmail        string     `json:"support_email"`
	AllowedEmailDomains []string   `json:"allowed_email_domains"`
	OIDC                PortalOIDC `json:"oidc"`
}

func (Portal) schemaDoc() string { return "A tenant's developer portal settings." }

// PortalOIDC is the developers' identity provider, without its secret.
type PortalOIDC struct {
	Issuer    string `json:"issuer"`
	ClientID  string `json:"client_id"`
	HasSecret bool   `json:"has_secret" doc:"a client secret is stored (it is never shown)"`
}

func (PortalOIDC) schemaDoc() string {
	return "The developers' OpenID Connect provider; empty issuer: none."
}

// PortalOIDCRequest sets the developers' identity provider.
type PortalOIDCRequest struct {
	Issuer       string `json:"issuer" doc:"empty issuer and client_id turn it off"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret" doc:"write-only; empty keeps the stored one"`
}

func (PortalOIDCRequest) schemaDoc() string { return "The developers' OpenID Connect provider to use." }

// Developer is a developer-portal account.
type Developer struct {
	ID            string    `json:"id" format:"uuid"`
	ConsumerID    string    `json:"consumer_id" format:"uuid" doc:"the consumer the developer appears as"`
	Email         string    `json:"email" format:"email"`
	Name          string    `json:"name"`
	Status        string    `json:"status" enum:"pending,active,rejected"`
	EmailVerified bool      `json:"email_verified"`
	CreatedAt     time.Time `json:"created_at"`
}

func (Developer) schemaDoc() string { return "A developer's account in the tenant's developer portal." }

// DeveloperInvite invites an address to sign up.
type DeveloperInvite struct {
	Email string `json:"email" format:"email" required:"true"`
}

func (DeveloperInvite) schemaDoc() string { return "The address to invite to the developer portal." }

// DeveloperInvited answers an invitation.
type DeveloperInvited struct {
	Email  string `json:"email" format:"email"`
	Status string `json:"status" enum:"invited"`
}

func (DeveloperInvited) schemaDoc() string {
	return "The invited address; the invitation mail is on its way."
}

// App is a developer's app: one per integration.
type App struct {
	ID          string    `json:"id" format:"uuid"`
	ConsumerID  string    `json:"consumer_id" format:"uuid"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func (App) schemaDoc() string {
	return "A developer's app: it groups the subscriptions and keys of one integration."
}

// Subscription is an app's subscription to a plan.
type Subscription struct {
	ID         string     `json:"id" format:"uuid"`
	AppID      string     `json:"app_id" format:"uuid"`
	ConsumerID string     `json:"consumer_id" format:"uuid"`
	PlanID     string     `json:"plan_id" format:"uuid"`
	Status     string     `json:"status" enum:"pending,active,payment_required,past_due,suspended,canceled,rejected" doc:"the status the developer sees"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	DecidedAt  *time.Time `json:"decided_at" doc:"when the tenant approved or rejected it"`
}

func (Subscription) schemaDoc() string { return "An app's subscription to a plan." }

func (r PortalRequest) apply(p *settings.Portal) {
	p.Enabled, p.Signup, p.DisplayName, p.AccentColor = r.Enabled, r.Signup, r.DisplayName, r.AccentColor
	p.LogoURL, p.SupportEmail, p.AllowedEmailDomains = r.LogoURL, r.SupportEmail, slices.Clone(r.AllowedEmailDomains)
	if p.AllowedEmailDomains == nil {
		p.AllowedEmailDomains = []string{}
	}
}

func portalRequestOf(p settings.Portal) PortalRequest {
	return PortalRequest{Enabled: p.Enabled, Signup: p.Signup, DisplayName: p.DisplayName, AccentColor: p.AccentColor,
		LogoURL: p.LogoURL, SupportEmail: p.SupportEmail, AllowedEmailDomains: slices.Clone(p.AllowedEmailDomains)}
}

func portalOf(p settings.Portal) Portal {
	if p.AllowedEmailDomains == nil {
		p.AllowedEmailDomains = []string{}
	}
	return Portal{Enabled: p.Enabled, Signup: p.Signup, DisplayName: p.DisplayName, AccentColor: p.AccentColor,
		LogoURL: p.LogoURL, SupportEmail: p.SupportEmail, AllowedEmailDomains: slices.Clone(p.AllowedEmailDomains),
		OIDC: PortalOIDC{Issuer: p.OIDC.Issuer, ClientID: p.OIDC.ClientID, HasSecret: p.OIDC.HasSecret}}
}

func developerOf(d developers.Developer) Developer {
	return Developer{ID: d.ID, ConsumerID: d.ConsumerID, Email: d.Email, Name: d.Name, Status: d.Status,
		EmailVerified: d.EmailVerified, CreatedAt: d.CreatedAt}
}

func appOf(a catalog.App) App {
	return App{ID: a.ID, ConsumerID: a.ConsumerID, Name: a.Name, Description: a.Description,
		CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

func subscriptionOf(s catalog.Subscription) Subscription {
	return Subscription{ID: s.ID, AppID: s.AppID, ConsumerID: s.ConsumerID, PlanID: s.PlanID, Status: s.Status,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, DecidedAt: clonePtr(s.DecidedAt)}
}
