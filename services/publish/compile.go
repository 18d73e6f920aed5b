package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// Compile builds the snapshot of everything the data plane needs from the
// database as tx sees it. tx should be REPEATABLE READ so that gen (read in
// the same transaction) describes exactly the data compiled.
func Compile(ctx context.Context, tx pgx.Tx, gen int64) (*proxycfg.Snapshot, error) {
	snap := &proxycfg.Snapshot{
		Schema:     proxycfg.SchemaVersion,
		Generation: gen,
		CompiledAt: time.Now().UTC(),
		Tenants:    []proxycfg.Tenant{},
	}
	idx := map[string]int{}
	rows, err := tx.Query(ctx, `SELECT id::text, slug FROM tenants ORDER BY slug`)
	if err != nil {
		return nil, fmt.Errorf("compile tenants: %w", err)
	}
	for rows.Next() {
		var t proxycfg.Tenant
		if err := rows.Scan(&t.ID, &t.Slug); err != nil {
			rows.Close()
			return nil, fmt.Errorf("compile tenants: %w", err)
		}
		t.Upstreams, t.APIs, t.Plans = []proxycfg.Upstream{}, []proxycfg.API{}, []proxycfg.Plan{}
		idx[t.ID] = len(snap.Tenants)
		snap.Tenants = append(snap.Tenants, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compile tenants: %w", err)
	}

	// Upstreams with their targets, in creation order.
	type upRef struct{ tenant, pos int }
	ups := map[string]upRef{}
	rows, err = tx.Query(ctx, `SELECT id::text, tenant_id::text, name, algorithm, health_check, dataplane
		FROM upstreams ORDER BY tenant_id, created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("compile upstreams: %w", err)
	}
	for rows.Next() {
		var u proxycfg.Upstream
		var tenantID string
		var hc, dp []byte
		if err := rows.Scan(&u.ID, &tenantID, &u.Name, &u.Algorithm, &hc, &dp); err != nil {
			rows.Close()
			return nil, fmt.Errorf("compile upstreams: %w", err)
		}
		if err := decodeDataplane(dp, &u); err != nil {
			rows.Close()
			return nil, fmt.Errorf("compile upstream %s: %w", u.ID, err)
		}
		if len(hc) > 0 && string(hc) != "null" {
			if err := json.Unmarshal(hc, &u.HealthCheck); err != nil {
				rows.Close()
				return nil, fmt.Errorf("compile upstream %s health check: %w", u.ID, err)
			}
		}
		u.Targets = []proxycfg.Target{}
		ti := idx[tenantID]
		ups[u.ID] = upRef{ti, len(snap.Tenants[ti].Upstreams)}
		snap.Tenants[ti].Upstreams = append(snap.Tenants[ti].Upstreams, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compile upstreams: %w", err)
	}
	rows, err = tx.Query(ctx, `SELECT upstream_id::text, url, weight FROM targets ORDER BY upstream_id, position`)
	if err != nil {
		return nil, fmt.Errorf("compile targets: %w", err)
	}
	for rows.Next() {
		var id string
		var tg proxycfg.Target
		if err := rows.Scan(&id, &tg.URL, &tg.Weight); err != nil {
			rows.Close()
			return nil, fmt.Errorf("compile targets: %w", err)
		}
		r := ups[id]
		u := &snap.Tenants[r.tenant].Upstreams[r.pos]
		u.Targets = append(u.Targets, tg)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compile targets: %w", err)
	}

	rows, err = tx.Query(ctx, `SELECT id::text, tenant_id::text, slug, name, base_path, upstream_id::text, auth,
		strip_base_path, timeout_ms, rate_limit_requests, rate_limit_per_seconds, rate_limit_burst, dataplane
		FROM apis ORDER BY tenant_id, created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("compile apis: %w", err)
	}
	for rows.Next() {
		var a proxycfg.API
		var tenantID string
		var dp []byte
		if err := rows.Scan(&a.ID, &tenantID, &a.Slug, &a.Name, &a.BasePath, &a.UpstreamID, &a.Auth,
			&a.StripBasePath, &a.TimeoutMS, &a.RateLimit.Requests, &a.RateLimit.PerSeconds, &a.RateLimit.Burst, &dp); err != nil {
			rows.Close()
			return nil, fmt.Errorf("compile apis: %w", err)
		}
		if err := decodeDataplane(dp, &a); err != nil {
			rows.Close()
			return nil, fmt.Errorf("compile api %s: %w", a.ID, err)
		}
		ti := idx[tenantID]
		snap.Tenants[ti].APIs = append(snap.Tenants[ti].APIs, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compile apis: %w", err)
	}
	if err := compileRoutes(ctx, tx, snap); err != nil {
		return nil, err
	}

	type planRef struct{ tenant, pos int }
	plans := map[string]planRef{}
	rows, err = tx.Query(ctx, `SELECT id::text, tenant_id::text, name, rate_limit_requests, rate_limit_per_seconds,
		quota_requests, quota_period, rate_limit_burst, rate_limit_scope, concurrency
		FROM plans ORDER BY tenant_id, created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("compile plans: %w", err)
	}
	for rows.Next() {
		var p proxycfg.Plan
		var tenantID string
		if err := rows.Scan(&p.ID, &tenantID, &p.Name, &p.RateLimit.Requests, &p.RateLimit.PerSeconds,
			&p.Quota.Requests, &p.Quota.Period, &p.RateLimit.Burst, &p.RateLimit.Scope, &p.Concurrency); err != nil {
			rows.Close()
			return nil, fmt.Errorf("compile plans: %w", err)
		}
		if p.RateLimit.Scope == proxycfg.ScopeKey {
			p.RateLimit.Scope = "" // the default; keeps snapshots of old plans unchanged
		}
		p.APIIDs = []string{}
		ti := idx[tenantID]
		plans[p.ID] = planRef{ti, len(snap.Tenants[ti].Plans)}
		snap.Tenants[ti].Plans = append(snap.Tenants[ti].Plans, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compile plans: %w", err)
	}
	rows, err = tx.Query(ctx, `SELECT pa.plan_id::text, pa.api_id::text FROM plan_apis pa
		JOIN apis a ON a.id = pa.api_id ORDER BY pa.plan_id, a.created_at, a.id`)
	if err != nil {
		return nil, fmt.Errorf("compile plan apis: %w", err)
	}
	for rows.Next() {
		var planID, apiID string
		if err := rows.Scan(&planID, &apiID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("compile plan apis: %w", err)
		}
		r := plans[planID]
		p := &snap.Tenants[r.tenant].Plans[r.pos]
		p.APIIDs = append(p.APIIDs, apiID)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compile plan apis: %w", err)
	}
	if err := compileDomains(ctx, tx, snap, idx); err != nil {
		return nil, err
	}
	pruneJWTPlans(snap)
	return snap, nil
}
