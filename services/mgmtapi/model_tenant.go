package mgmtapi

import (
	"time"

	"github.com/tollgate/tollgate/services/tenancy"
)

// TenantRequest creates a tenant (POST /v1/tenants, operator token).
type TenantRequest struct {
	Name string `json:"name" maxLength:"200" required:"true"`
	Slug string `json:"slug" required:"true" pattern:"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" doc:"a lowercase DNS label: the tenant is served at <slug>.<proxy domain>; some names are reserved"`
}

func (TenantRequest) schemaDoc() string { return "A new tenant's name and slug." }

// Tenant is a company that puts its APIs behind Tollgate.
type Tenant struct {
	ID        string    `json:"id" format:"uuid"`
	Name      string    `json:"name"`
	Slug      string    `json:"slug"`
	CreatedAt time.Time `json:"created_at"`
}

func (Tenant) schemaDoc() string { return "A tenant: a company that puts its APIs behind Tollgate." }

// TenantCreated answers POST /v1/tenants; the admin token is shown once.
type TenantCreated struct {
	Tenant     Tenant  `json:"tenant"`
	AdminToken *string `json:"admin_token" doc:"the tenant's first admin token; shown only here, null in a replay of this answer (Idempotency-Key)"`
}

func (TenantCreated) schemaDoc() string {
	return "A new tenant and its first admin token, shown only in this answer."
}

func (t TenantCreated) withoutSecret() any {
	t.AdminToken = nil
	return t
}

// AdminTokenRequest creates an admin token.
type AdminTokenRequest struct {
	Name string `json:"name" maxLength:"200" required:"true" doc:"what the token is for"`
}

func (AdminTokenRequest) schemaDoc() string { return "A new admin token's name." }

// AdminToken describes an admin token; the token itself is shown once.
type AdminToken struct {
	ID        string     `json:"id" format:"uuid"`
	TenantID  string     `json:"tenant_id" format:"uuid"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix" doc:"the token's first characters, to recognise it"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

func (AdminToken) schemaDoc() string {
	return "A tenant admin token: the bearer token of /v1. The token itself is only shown when it is created."
}

// AdminTokenCreated is a new admin token with the token itself.
type AdminTokenCreated struct {
	AdminToken
	Token *string `json:"token" doc:"the admin token; shown only here, null in a replay of this answer (Idempotency-Key)"`
}

func (AdminTokenCreated) schemaDoc() string {
	return "A new admin token, with the token itself: it is shown only in this answer."
}

func (t AdminTokenCreated) withoutSecret() any {
	t.Token = nil
	return t
}

func tenantOf(t tenancy.Tenant) Tenant {
	return Tenant{ID: t.ID, Name: t.Name, Slug: t.Slug, CreatedAt: t.CreatedAt}
}

func adminTokenOf(t tenancy.AdminToken) AdminToken {
	return AdminToken{ID: t.ID, TenantID: t.TenantID, Name: t.Name, Prefix: t.Prefix, CreatedAt: t.CreatedAt,
		RevokedAt: clonePtr(t.RevokedAt)}
}
