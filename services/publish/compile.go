package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/store"
)

// Querier is what both a pool and a transaction offer for reads; the
// compiler only reads.
type Querier = store.Querier

// Compile builds the snapshot of everything the data plane needs from the
// database as tx sees it. tx should be REPEATABLE READ so that gen (read in
// the same transaction) describes exactly the data compiled.
func Compile(ctx context.Context, tx pgx.Tx, gen int64) (*proxycfg.Snapshot, error) {
	tenants, err := compileTenants(ctx, tx, "")
	if err != nil {
		return nil, err
	}
	var digest int
	if err := tx.QueryRow(ctx, `SELECT digest_version FROM secret_versions`).Scan(&digest); err != nil {
		return nil, fmt.Errorf("read digest key version: %w", err)
	}
	return &proxycfg.Snapshot{
		Schema:        proxycfg.SchemaVersion,
		Generation:    gen,
		CompiledAt:    time.Now().UTC(),
		DigestVersion: digest,
		Tenants:       tenants,
	}, nil
}

// CompileTenant builds one tenant's part of the snapshot, exactly as Compile
// would, from the database as q sees it (inside a transaction that changes
// the tenant, its uncommitted state). ok is false when there is no such
// tenant.
func CompileTenant(ctx context.Context, q Querier, tenantID string) (t proxycfg.Tenant, ok bool, err error) {
	tenants, err := compileTenants(ctx, q, tenantID)
	if err != nil || len(tenants) == 0 {
		return proxycfg.Tenant{}, false, err
	}
	return tenants[0], true, nil
}

// TenantConfigBytes returns the size of the tenant's compiled config: its
// share of the snapshot (and of its shard) that every worker downloads,
// decodes and keeps. Operators cap it per tenant (limit config_bytes); cmd
// passes it to the catalog and the limits as their limits.ConfigSizer.
func TenantConfigBytes(ctx context.Context, q Querier, tenantID string) (int64, error) {
	t, ok, err := CompileTenant(ctx, q, tenantID)
	if err != nil || !ok {
		return 0, err
	}
	raw, err := json.Marshal(t)
	if err != nil {
		return 0, fmt.Errorf("marshal tenant config: %w", err)
	}
	return int64(len(raw)), nil
}

// compileTenants compiles every tenant, or only tenantID when it is not "":
// it reads the gateway objects through the catalog (catalog.ReadGateways),
// maps them to the contract (contract.go) and adds the verified custom
// domains.
func compileTenants(ctx context.Context, q Querier, tenantID string) ([]proxycfg.Tenant, error) {
	gws, err := catalog.ReadGateways(ctx, q, tenantID)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	tenants := make([]proxycfg.Tenant, len(gws))
	idx := make(map[string]int, len(gws))
	for i, g := range gws {
		tenants[i] = tenantOf(g)
		idx[g.TenantID] = i
	}
	if len(tenants) == 0 {
		return tenants, nil
	}
	if err := compileDomains(ctx, q, tenantID, tenants, idx); err != nil {
		return nil, err
	}
	return tenants, nil
}
