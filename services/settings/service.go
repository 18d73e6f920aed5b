package settings

import (
	"context"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/limits"
)

// Service is a tenant's settings bound to their database, sealing key,
// limits and resolver, built once in cmd, so that the web packages reach
// them through interfaces of their own and never hold a database handle.
// Its methods are the package's functions of the same names unless their
// documentation says otherwise.
type Service struct {
	// DB is the control plane's database. Required.
	DB *pgxpool.Pool
	// Secret (TOLLGATE_SECRET) seals the IdPs' client secrets at rest.
	// Required for the OIDC methods.
	Secret []byte
	// Limits are the operator's per-tenant limits (limits.FromEnv), under
	// which AddDomain counts a tenant's domains; the tenant's own values
	// apply on top. If nil, limits.Defaults().
	Limits *limits.Limits
	// LookupTXT resolves the TXT records that verify custom domains. If
	// nil, net.DefaultResolver.LookupTXT.
	LookupTXT LookupTXT
}

// Get is the package's Get.
func (s *Service) Get(ctx context.Context, tenantID string) (Settings, error) {
	return Get(ctx, s.DB, tenantID)
}

// SaveBranding is the package's SaveBranding.
func (s *Service) SaveBranding(ctx context.Context, who audit.Actor, b Branding) (Branding, error) {
	return SaveBranding(ctx, s.DB, who, b)
}

// TenantOIDC is the package's TenantOIDC with s's secret.
func (s *Service) TenantOIDC(ctx context.Context, tenantID string) (o OIDC, ok bool, err error) {
	return TenantOIDC(ctx, s.DB, s.Secret, tenantID)
}

// SaveOIDC is the package's SaveOIDC with s's secret.
func (s *Service) SaveOIDC(ctx context.Context, who audit.Actor, o OIDC) error {
	return SaveOIDC(ctx, s.DB, s.Secret, who, o)
}

// GetPortal is the package's GetPortal.
func (s *Service) GetPortal(ctx context.Context, tenantID string) (Portal, error) {
	return GetPortal(ctx, s.DB, tenantID)
}

// SavePortal is the package's SavePortal.
func (s *Service) SavePortal(ctx context.Context, who audit.Actor, change func(*Portal) error) (Portal, error) {
	return SavePortal(ctx, s.DB, who, change)
}

// DeveloperOIDC is the package's DeveloperOIDC with s's secret.
func (s *Service) DeveloperOIDC(ctx context.Context, tenantID string) (o OIDC, ok bool, err error) {
	return DeveloperOIDC(ctx, s.DB, s.Secret, tenantID)
}

// SaveDeveloperOIDC is the package's SaveDeveloperOIDC with s's secret.
func (s *Service) SaveDeveloperOIDC(ctx context.Context, who audit.Actor, o OIDC) error {
	return SaveDeveloperOIDC(ctx, s.DB, s.Secret, who, o)
}

// PortalDomain is the package's PortalDomain.
func (s *Service) PortalDomain(ctx context.Context, host string) (tenantID string, ok bool, err error) {
	return PortalDomain(ctx, s.DB, host)
}

// ListDomains is the package's ListDomains.
func (s *Service) ListDomains(ctx context.Context, tenantID string) ([]Domain, error) {
	return ListDomains(ctx, s.DB, tenantID)
}

// AddDomain is the package's AddDomainLimited under s's limits: it claims
// domain for purpose (PurposeGateway or PurposePortal); platformDomains
// are the platform's own domains, which tenants cannot claim.
func (s *Service) AddDomain(ctx context.Context, who audit.Actor, domain, purpose string, platformDomains ...string) (Domain, error) {
	defaults := limits.Defaults()
	if s.Limits != nil {
		defaults = *s.Limits
	}
	return AddDomainLimited(ctx, s.DB, who, defaults, domain, purpose, platformDomains...)
}

// RemoveDomain is the package's RemoveDomain.
func (s *Service) RemoveDomain(ctx context.Context, who audit.Actor, id string) error {
	return RemoveDomain(ctx, s.DB, who, id)
}

// VerifyDomain is the package's VerifyDomain with s's resolver.
func (s *Service) VerifyDomain(ctx context.Context, who audit.Actor, id string) (Domain, error) {
	return VerifyDomain(ctx, s.DB, who, id, s.lookup())
}

// RecheckDomains is the package's RecheckDomains with s's resolver.
func (s *Service) RecheckDomains(ctx context.Context, olderThan time.Duration) (Rechecked, error) {
	return RecheckDomains(ctx, s.DB, s.lookup(), olderThan)
}

// PruneDomainClaims is the package's PruneDomainClaims.
func (s *Service) PruneDomainClaims(ctx context.Context, ttl time.Duration) (int64, error) {
	return PruneDomainClaims(ctx, s.DB, ttl)
}

func (s *Service) lookup() LookupTXT {
	if s.LookupTXT != nil {
		return s.LookupTXT
	}
	return net.DefaultResolver.LookupTXT
}
