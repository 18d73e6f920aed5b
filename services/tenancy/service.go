package tenancy

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/store"
)

// Service is tenancy bound to its database and digest key, built once in
// cmd, so that the web packages reach tenants and admin tokens through
// interfaces of their own and never hold a database handle. Its methods
// are the package's functions of the same names; their documentation is
// there.
type Service struct {
	// DB is the control plane's database. Required.
	DB *pgxpool.Pool
	// DigestKey keys the digests of admin tokens: the installation's
	// digest key (secrets.ControlDigestKey). Required for Create,
	// CreateToken and Authenticate.
	DigestKey []byte
}

// Create is the package's Create with s's digest key.
func (s *Service) Create(ctx context.Context, name, slug string) (Tenant, string, error) {
	return Create(ctx, s.DB, s.DigestKey, name, slug)
}

// Get is the package's Get.
func (s *Service) Get(ctx context.Context, tenantID string) (Tenant, error) {
	return Get(ctx, s.DB, tenantID)
}

// GetBySlug is the package's GetBySlug.
func (s *Service) GetBySlug(ctx context.Context, slug string) (Tenant, error) {
	return GetBySlug(ctx, s.DB, slug)
}

// ByPortalDomain is Directory's ByPortalDomain on s's database.
func (s *Service) ByPortalDomain(ctx context.Context, host string) (Tenant, error) {
	return Directory{DB: s.DB}.ByPortalDomain(ctx, host)
}

// Authenticate is the package's Authenticate with s's digest key.
func (s *Service) Authenticate(ctx context.Context, tok string) (AdminToken, error) {
	return Authenticate(ctx, s.DB, s.DigestKey, tok)
}

// CreateToken is the package's CreateToken with s's digest key.
func (s *Service) CreateToken(ctx context.Context, who audit.Actor, name string) (AdminToken, string, error) {
	return CreateToken(ctx, s.DB, s.DigestKey, who, name)
}

// ListTokens is the package's ListTokens.
func (s *Service) ListTokens(ctx context.Context, tenantID string, page store.Page) ([]AdminToken, string, error) {
	return ListTokens(ctx, s.DB, tenantID, page)
}

// GetToken is the package's GetToken.
func (s *Service) GetToken(ctx context.Context, tenantID, id string) (AdminToken, error) {
	return GetToken(ctx, s.DB, tenantID, id)
}

// RevokeToken is the package's RevokeToken.
func (s *Service) RevokeToken(ctx context.Context, who audit.Actor, id string) error {
	return RevokeToken(ctx, s.DB, who, id)
}
