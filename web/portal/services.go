package portal

import (
	"context"
	"time"

	"github.com/tollgate/tollgate/billing/metering"
	"github.com/tollgate/tollgate/services/accounts"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/health"
	"github.com/tollgate/tollgate/services/outbox"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/services/usage"
)

// What the portal needs of the control plane's domain, one interface per
// concern, so that the portal holds no database or Redis client of its own
// (DESIGN.md, "Folders"). cmd builds the services that implement them; the
// rules (validation, throttling, audit, the config publisher) are theirs.
// Only the catalog, which the portal uses almost whole, is taken as the
// service itself (Options.Catalog).

// Accounts signs people up and in: passwords, email confirmation, password
// reset, accepted invitations and single sign-on. *accounts.Service
// implements it.
type Accounts interface {
	Signup(ctx context.Context, in accounts.SignupInput) (tenancy.Tenant, accounts.User, error)
	Login(ctx context.Context, email, password, client string) (accounts.User, error)
	SSOLogin(ctx context.Context, id accounts.Identity, provisionTenant string) (accounts.User, error)
	NewVerification(ctx context.Context, u accounts.User) (string, error)
	VerifyEmail(ctx context.Context, tok, client string) (accounts.User, error)
	RequestReset(ctx context.Context, email, client string) (u accounts.User, tok string, ok bool, err error)
	ValidResetToken(ctx context.Context, tok string) (bool, error)
	ResetPassword(ctx context.Context, tok, password string) (accounts.User, error)
	LookupInvite(ctx context.Context, tok string) (accounts.Invite, error)
	AcceptInvite(ctx context.Context, tok, name, password string) (accounts.User, error)
}

// Sessions are the signed-in browsers' sessions. *accounts.Service
// implements it.
type Sessions interface {
	StartSession(ctx context.Context, u accounts.User) (accounts.Session, error)
	// LookupSession answers fault.ErrUnauthenticated for an unknown or
	// expired session.
	LookupSession(ctx context.Context, id string) (accounts.Session, error)
	EndSession(ctx context.Context, id string) error
	// PruneSessions drops expired sessions, old throttle records and used
	// tokens.
	PruneSessions(ctx context.Context) error
}

// Team is a tenant's users, their roles, the invitations to join and the
// email domains whose people may join through single sign-on.
// *accounts.Service implements it.
type Team interface {
	ListUsers(ctx context.Context, tenantID string) ([]accounts.User, error)
	SetRole(ctx context.Context, who audit.Actor, id, role string) error
	RemoveUser(ctx context.Context, who audit.Actor, id string) error
	ListInvites(ctx context.Context, tenantID string) ([]accounts.Invite, error)
	CreateInvite(ctx context.Context, who audit.Actor, email, role string) (accounts.Invite, string, error)
	RevokeInvite(ctx context.Context, who audit.Actor, id string) error
	SSODomains(ctx context.Context, tenantID string) ([]string, error)
	SaveSSODomains(ctx context.Context, who audit.Actor, list []string) ([]string, error)
}

// Tenants finds tenants. *tenancy.Service implements it.
type Tenants interface {
	Get(ctx context.Context, tenantID string) (tenancy.Tenant, error)
	GetBySlug(ctx context.Context, slug string) (tenancy.Tenant, error)
}

// Tokens are a tenant's admin API tokens (for /v1). *tenancy.Service
// implements it.
type Tokens interface {
	ListTokens(ctx context.Context, tenantID string, page store.Page) ([]tenancy.AdminToken, string, error)
	// CreateToken returns the token itself once.
	CreateToken(ctx context.Context, who audit.Actor, name string) (tenancy.AdminToken, string, error)
	RevokeToken(ctx context.Context, who audit.Actor, id string) error
}

// Settings are a tenant's identity provider and its developer portal's
// settings (with the developers' identity provider). *settings.Service
// implements it.
type Settings interface {
	Get(ctx context.Context, tenantID string) (settings.Settings, error)
	TenantOIDC(ctx context.Context, tenantID string) (o settings.OIDC, ok bool, err error)
	SaveOIDC(ctx context.Context, who audit.Actor, o settings.OIDC) error
	GetPortal(ctx context.Context, tenantID string) (settings.Portal, error)
	SavePortal(ctx context.Context, who audit.Actor, change func(*settings.Portal) error) (settings.Portal, error)
	SaveDeveloperOIDC(ctx context.Context, who audit.Actor, o settings.OIDC) error
}

// Domains are a tenant's custom domains and their verification.
// *settings.Service implements it.
type Domains interface {
	ListDomains(ctx context.Context, tenantID string) ([]settings.Domain, error)
	// AddDomain claims domain for purpose under the operator's limits;
	// platformDomains cannot be claimed.
	AddDomain(ctx context.Context, who audit.Actor, domain, purpose string, platformDomains ...string) (settings.Domain, error)
	RemoveDomain(ctx context.Context, who audit.Actor, id string) error
	// VerifyDomain looks up the domain's TXT record.
	VerifyDomain(ctx context.Context, who audit.Actor, id string) (settings.Domain, error)
}

// AuditLog reads a tenant's audit log, newest first. *audit.Service
// implements it.
type AuditLog interface {
	List(ctx context.Context, tenantID string, page store.Page) ([]audit.Entry, string, error)
}

// Usage reads the traffic figures of the dashboard. usage.Reader
// implements it.
type Usage interface {
	Series(ctx context.Context, q usage.Query) ([]usage.Point, error)
	TopConsumers(ctx context.Context, q usage.Query, n int) ([]usage.ConsumerTotal, error)
}

// Health reads the live health of a tenant's targets as the proxy workers
// report it. *health.Reader implements it.
type Health interface {
	Tenant(ctx context.Context, tenantID string) (health.View, error)
}

// ConfigStatus reads what became of a tenant's gateway config changes: the
// generation the proxy workers serve, the newest change if it was refused
// and why, and the workers too old for the config. *outbox.StatusReader
// implements it (GET /v1/config/status reads the same).
type ConfigStatus interface {
	ConfigStatus(ctx context.Context, tenantID string) (outbox.ConfigStatus, error)
}

// Developers are the developer portal's accounts as the tenant manages
// them: the approval queue and invitations. *developers.Service implements
// it, with the rules the developer portal and /v1 follow too.
type Developers interface {
	Get(ctx context.Context, tenantID, id string) (developers.Developer, error)
	List(ctx context.Context, tenantID, status string, page store.Page) ([]developers.Developer, string, error)
	PendingCounts(ctx context.Context, tenantID string) (devs, subs int, err error)
	Decide(ctx context.Context, who audit.Actor, t tenancy.Tenant, id string, approve bool) (developers.Developer, error)
	DecideSubscription(ctx context.Context, who audit.Actor, t tenancy.Tenant, id string, approve bool) (catalog.Subscription, error)
	Invite(ctx context.Context, who audit.Actor, t tenancy.Tenant, email string) error
}

// UsageReports are the meter reports of the billing page: usage served
// versus reported to Stripe, the reports' states, and the requeue of
// refused ones. metering.Reports implements it.
type UsageReports interface {
	Drift(ctx context.Context, tenantID string, from, to time.Time) ([]metering.DriftRow, error)
	ReportStats(ctx context.Context, tenantID string, from, to time.Time, window time.Duration) (metering.Stats, error)
	Requeue(ctx context.Context, tenantID string, from, to time.Time) (int64, error)
}

// The services cmd builds implement the interfaces.
var (
	_ Accounts     = (*accounts.Service)(nil)
	_ Sessions     = (*accounts.Service)(nil)
	_ Team         = (*accounts.Service)(nil)
	_ Tenants      = (*tenancy.Service)(nil)
	_ Tokens       = (*tenancy.Service)(nil)
	_ Settings     = (*settings.Service)(nil)
	_ Domains      = (*settings.Service)(nil)
	_ AuditLog     = (*audit.Service)(nil)
	_ Usage        = usage.Reader{}
	_ Health       = (*health.Reader)(nil)
	_ ConfigStatus = (*outbox.StatusReader)(nil)
	_ Developers   = (*developers.Service)(nil)
	_ UsageReports = metering.Reports{}
)
