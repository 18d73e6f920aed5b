package tenancy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/fault"
)

// Directory finds tenants by the host names they are served at, for the
// developer portals (which know their tenant only from the Host header).
type Directory struct {
	DB *pgxpool.Pool
}

// BySlug returns the tenant with this slug, or fault.ErrNotFound.
func (d Directory) BySlug(ctx context.Context, slug string) (Tenant, error) {
	return GetBySlug(ctx, d.DB, slug)
}

// ByID returns the tenant with this id, or fault.ErrNotFound.
func (d Directory) ByID(ctx context.Context, id string) (Tenant, error) {
	return Get(ctx, d.DB, id)
}

// ByPortalDomain returns the tenant whose verified custom portal domain is
// host, or fault.ErrNotFound.
func (d Directory) ByPortalDomain(ctx context.Context, host string) (Tenant, error) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" || len(host) > 253 {
		return Tenant{}, fault.ErrNotFound
	}
	var t Tenant
	err := d.DB.QueryRow(ctx, `SELECT t.id, t.name, t.slug, t.created_at FROM custom_domains c
		JOIN tenants t ON t.id = c.tenant_id
		WHERE lower(c.domain) = $1 AND c.purpose = 'portal' AND c.verified_at IS NOT NULL`, host).
		Scan(&t.ID, &t.Name, &t.Slug, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, fault.ErrNotFound
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant by portal domain: %w", err)
	}
	return t, nil
}
