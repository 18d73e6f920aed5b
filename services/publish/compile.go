package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// Querier is what both a pool and a transaction offer for reads; the
// compiler only reads.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

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
// decodes and keeps. Operators cap it per tenant (limit config_bytes).
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

// scope narrows the compiler's queries to one tenant, or none when tenantID
// is "". col is the tenant column of the query's table.
type scope struct{ tenantID string }

func (s scope) where(col string) (string, []any) {
	if s.tenantID == "" {
		return "", nil
	}
	return " WHERE " + col + " = $1", []any{s.tenantID}
}

// compileTenants compiles every tenant, or only tenantID when it is not "".
func compileTenants(ctx context.Context, q Querier, tenantID string) ([]proxycfg.Tenant, error) {
	sc := scope{tenantID}
	tenants := []proxycfg.Tenant{}
	idx := map[string]int{}
	cond, args := sc.where("id")
	rows, err := q.Query(ctx, `SELECT id::text, slug FROM tenants`+cond+` ORDER BY slug`, args...)
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
		idx[t.ID] = len(tenants)
		tenants = append(tenants, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compile tenants: %w", err)
	}
	if len(tenants) == 0 {
		return tenants, nil
	}

	// Upstreams with their targets, in creation order.
	type upRef struct{ tenant, pos int }
	ups := map[string]upRef{}
	cond, args = sc.where("tenant_id")
	rows, err = q.Query(ctx, `SELECT id::text, tenant_id::text, name, algorithm, health_check, dataplane
		FROM upstreams`+cond+` ORDER BY tenant_id, created_at, id`, args...)
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
		ups[u.ID] = upRef{ti, len(tenants[ti].Upstreams)}
		tenants[ti].Upstreams = append(tenants[ti].Upstreams, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compile upstreams: %w", err)
	}
	cond, args = sc.where("u.tenant_id")
	rows, err = q.Query(ctx, `SELECT t.upstream_id::text, t.url, t.weight FROM targets t
		JOIN upstreams u ON u.id = t.upstream_id`+cond+` ORDER BY t.upstream_id, t.position`, args...)
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
		r, ok := ups[id]
		if !ok {
			continue
		}
		u := &tenants[r.tenant].Upstreams[r.pos]
		u.Targets = append(u.Targets, tg)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compile targets: %w", err)
	}

	cond, args = sc.where("tenant_id")
	rows, err = q.Query(ctx, `SELECT id::text, tenant_id::text, slug, name, base_path, upstream_id::text, auth,
		strip_base_path, timeout_ms, rate_limit_requests, rate_limit_per_seconds, rate_limit_burst, dataplane
		FROM apis`+cond+` ORDER BY tenant_id, created_at, id`, args...)
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
		tenants[ti].APIs = append(tenants[ti].APIs, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compile apis: %w", err)
	}
	if err := compileRoutes(ctx, q, sc, tenants); err != nil {
		return nil, err
	}

	type planRef struct{ tenant, pos int }
	plans := map[string]planRef{}
	cond, args = sc.where("tenant_id")
	rows, err = q.Query(ctx, `SELECT id::text, tenant_id::text, name, rate_limit_requests, rate_limit_per_seconds,
		quota_requests, quota_period, rate_limit_burst, rate_limit_scope, concurrency
		FROM plans`+cond+` ORDER BY tenant_id, created_at, id`, args...)
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
		plans[p.ID] = planRef{ti, len(tenants[ti].Plans)}
		tenants[ti].Plans = append(tenants[ti].Plans, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compile plans: %w", err)
	}
	cond, args = sc.where("pa.tenant_id")
	rows, err = q.Query(ctx, `SELECT pa.plan_id::text, pa.api_id::text FROM plan_apis pa
		JOIN apis a ON a.id = pa.api_id`+cond+` ORDER BY pa.plan_id, a.created_at, a.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("compile plan apis: %w", err)
	}
	for rows.Next() {
		var planID, apiID string
		if err := rows.Scan(&planID, &apiID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("compile plan apis: %w", err)
		}
		r, ok := plans[planID]
		if !ok {
			continue
		}
		p := &tenants[r.tenant].Plans[r.pos]
		p.APIIDs = append(p.APIIDs, apiID)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compile plan apis: %w", err)
	}
	if err := compileDomains(ctx, q, sc, tenants, idx); err != nil {
		return nil, err
	}
	pruneJWTPlans(tenants)
	return tenants, nil
}
