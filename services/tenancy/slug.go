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

// GetBySlug returns the tenant with this slug (case-insensitive), e.g. to find
// the identity provider of the workspace someone signs in to.
func GetBySlug(ctx context.Context, db *pgxpool.Pool, slug string) (Tenant, error) {
	slug = strings.ToLower(strings.TrimSpace(slug))
	if !slugRE.MatchString(slug) {
		return Tenant{}, fault.ErrNotFound
	}
	var t Tenant
	err := db.QueryRow(ctx, `SELECT id, name, slug, created_at FROM tenants WHERE slug = $1`, slug).
		Scan(&t.ID, &t.Name, &t.Slug, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, fault.ErrNotFound
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("get tenant by slug: %w", err)
	}
	return t, nil
}
