package publish

import (
	"context"
	"fmt"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// compileDomains adds each tenant's verified custom domains to its
// Tenant.Domains, oldest first (of every tenant when tenantID is "").
// Unverified domains are left out: a host name is served only once its
// tenant proved it owns it (settings.VerifyDomain), and a verified host name
// belongs to one tenant at most (custom_domains_verified_key).
//
// The domains are settings', which has no read for this yet; until it has
// (one taking a Querier, like catalog.ReadGateways), the compiler reads the
// table itself.
func compileDomains(ctx context.Context, q Querier, tenantID string, tenants []proxycfg.Tenant, idx map[string]int) error {
	cond, args := " WHERE true", []any(nil)
	if tenantID != "" {
		cond, args = " WHERE tenant_id = $1", []any{tenantID}
	}
	rows, err := q.Query(ctx, `SELECT tenant_id::text, lower(domain) FROM custom_domains`+cond+`
		AND verified_at IS NOT NULL AND purpose = 'gateway' ORDER BY tenant_id, verified_at, id`, args...)
	if err != nil {
		return fmt.Errorf("compile domains: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tid, domain string
		if err := rows.Scan(&tid, &domain); err != nil {
			return fmt.Errorf("compile domains: %w", err)
		}
		ti, ok := idx[tid]
		if !ok {
			continue
		}
		tenants[ti].Domains = append(tenants[ti].Domains, domain)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("compile domains: %w", err)
	}
	return nil
}
