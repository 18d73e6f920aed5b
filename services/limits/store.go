package limits

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
)

// Querier is what both a pool and a transaction offer for reads.
type Querier = store.Querier

// ConfigSizer measures the tenant's compiled config in bytes as q sees it
// (publish.TenantConfigBytes, passed in by cmd): limits cannot compile by
// itself, since the compiler reads the catalog, which checks limits.
type ConfigSizer func(ctx context.Context, q Querier, tenantID string) (int64, error)

// lockClass is the first key of the tenants' limits locks (the second is
// the hash of the tenant id): "tlim".
const lockClass int32 = 0x746c696d

// Lock takes the tenant's limits lock until tx ends. Every change that is
// checked against a limit takes it before it counts, so that concurrent
// changes of one tenant are checked one after the other and never both
// take the last unit; other tenants are not held up (the lock is per
// tenant; a hash collision only serialises two tenants' checked writes).
// Take it before any row lock, so that lock order stays the same everywhere.
func Lock(ctx context.Context, tx pgx.Tx, tenantID string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockClass, tenantID); err != nil {
		return fmt.Errorf("take limits lock: %w", err)
	}
	return nil
}

// GetOverride returns the tenant's own limit values (empty when it has none).
func GetOverride(ctx context.Context, q Querier, tenantID string) (Override, error) {
	var raw []byte
	err := q.QueryRow(ctx, `SELECT overrides FROM tenant_limits WHERE tenant_id = $1`, tenantID).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return Override{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tenant limits: %w", err)
	}
	o := Override{}
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, fmt.Errorf("decode tenant limits: %w", err)
	}
	// A limit removed from a later version is ignored, not an error.
	for n := range o {
		if _, ok := Lookup(n); !ok {
			delete(o, n)
		}
	}
	return o, nil
}

// For returns the tenant's limits: defaults with the tenant's override.
func For(ctx context.Context, q Querier, defaults Limits, tenantID string) (Limits, error) {
	o, err := GetOverride(ctx, q, tenantID)
	if err != nil {
		return Limits{}, err
	}
	return defaults.With(o), nil
}

// Begin locks the tenant's limits in tx (Lock) and returns them.
func Begin(ctx context.Context, tx pgx.Tx, defaults Limits, tenantID string) (Limits, error) {
	if err := Lock(ctx, tx, tenantID); err != nil {
		return Limits{}, err
	}
	return For(ctx, tx, defaults, tenantID)
}

// SetOverride replaces the tenant's own limit values with o (an empty o
// returns the tenant to the defaults). It records the change in the
// tenant's audit log as the operator's. Lowering a limit below the tenant's
// usage removes nothing: changes that would grow past it are refused until
// the tenant is back under it.
func SetOverride(ctx context.Context, db *pgxpool.Pool, tenantID string, o Override) error {
	if !store.ValidID(tenantID) {
		return fault.ErrNotFound
	}
	if err := o.Validate(); err != nil {
		return err
	}
	if o == nil {
		o = Override{}
	}
	raw, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("encode tenant limits: %w", err)
	}
	err = store.InTx(ctx, db, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)`, tenantID).Scan(&exists); err != nil {
			return fmt.Errorf("find tenant: %w", err)
		}
		if !exists {
			return fault.ErrNotFound
		}
		if err := Lock(ctx, tx, tenantID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tenant_limits (tenant_id, overrides) VALUES ($1, $2)
			ON CONFLICT (tenant_id) DO UPDATE SET overrides = $2, updated_at = now()`, tenantID, raw); err != nil {
			return fmt.Errorf("store tenant limits: %w", err)
		}
		return audit.Record(ctx, tx, audit.Actor{TenantID: tenantID, Name: audit.Operator}, "tenant.limits", "tenant", tenantID, o)
	})
	if err != nil {
		return fmt.Errorf("set tenant limits: %w", err)
	}
	return nil
}

// countSQL counts, for each tenant-wide count limit, what it limits; $1 is
// the tenant.
var countSQL = map[Name]string{
	APIs:      `SELECT count(*) FROM apis WHERE tenant_id = $1`,
	Routes:    `SELECT count(*) FROM api_routes WHERE tenant_id = $1`,
	Upstreams: `SELECT count(*) FROM upstreams WHERE tenant_id = $1`,
	Targets: `SELECT count(*) FROM targets t JOIN upstreams u ON u.id = t.upstream_id
		WHERE u.tenant_id = $1`,
	Plans:     `SELECT count(*) FROM plans WHERE tenant_id = $1`,
	Consumers: `SELECT count(*) FROM consumers WHERE tenant_id = $1`,
	Keys: `SELECT count(*) FROM keys WHERE tenant_id = $1 AND status = 'active'
		AND (expires_at IS NULL OR expires_at > now())`,
	Domains: `SELECT count(*) FROM custom_domains WHERE tenant_id = $1`,
}

// usageSQL measures the per-object limits and the health-check interval:
// the fullest object's count, and the shortest interval in use (0: none).
var usageSQL = map[Name]string{
	TargetsPerUpstream: `SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM targets t
		JOIN upstreams u ON u.id = t.upstream_id WHERE u.tenant_id = $1 GROUP BY t.upstream_id) c`,
	AppsPerDeveloper: `SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM apps
		WHERE tenant_id = $1 GROUP BY consumer_id) c`,
	SubscriptionsPerApp: `SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM subscriptions
		WHERE tenant_id = $1 AND status NOT IN ('canceled', 'rejected') GROUP BY app_id) c`,
	KeysPerSubscription: `SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM keys
		WHERE tenant_id = $1 AND subscription_id IS NOT NULL AND status = 'active'
		AND (expires_at IS NULL OR expires_at > now()) GROUP BY subscription_id) c`,
	MinHealthIntervalMS: `SELECT coalesce(min((health_check->>'interval_ms')::bigint), 0) FROM upstreams
		WHERE tenant_id = $1 AND jsonb_typeof(health_check) = 'object'`,
}

// Count returns how many of what the tenant-wide count limit n limits the
// tenant holds, as q sees it.
func Count(ctx context.Context, q Querier, tenantID string, n Name) (int64, error) {
	sql, ok := countSQL[n]
	if !ok {
		return 0, fmt.Errorf("limits: %q is not a tenant-wide count", n)
	}
	var c int64
	if err := q.QueryRow(ctx, sql, tenantID).Scan(&c); err != nil {
		return 0, fmt.Errorf("count %s: %w", n, err)
	}
	return c, nil
}

// Usage is what a tenant uses of each limit: counts for the count limits,
// the fullest object's count for the per-object limits, the shortest
// health-check interval in use (0: none) and the compiled config's size.
type Usage map[Name]int64

// Measure returns the tenant's usage of every limit; config_bytes is
// measured with size, and left out when size is nil.
func Measure(ctx context.Context, q Querier, tenantID string, size ConfigSizer) (Usage, error) {
	u := Usage{}
	for _, d := range defs {
		var err error
		switch {
		case d.Name == ConfigBytes:
			if size == nil {
				continue
			}
			u[d.Name], err = size(ctx, q, tenantID)
		case countSQL[d.Name] != "":
			u[d.Name], err = Count(ctx, q, tenantID, d.Name)
		default:
			var v int64
			err = q.QueryRow(ctx, usageSQL[d.Name], tenantID).Scan(&v)
			u[d.Name] = v
		}
		if err != nil {
			return nil, fmt.Errorf("measure %s: %w", d.Name, err)
		}
	}
	return u, nil
}

// Report is a tenant's limits with its usage, for the management API and
// the tenant portal.
type Report struct {
	TenantID string `json:"tenant_id"`
	// Limits are the tenant's limits (defaults with its override).
	Limits Limits `json:"limits"`
	// Usage is what the tenant uses of each.
	Usage Usage `json:"usage"`
	// Override are the limits set for this tenant alone; the rest are the
	// operator's defaults.
	Override Override `json:"overrides"`
	// MeasuredAt is when Usage was measured.
	MeasuredAt time.Time `json:"measured_at"`
}

// Get returns the tenant's report, with the compiled config's size measured
// by size (left out when nil). A tenant that does not exist is
// fault.ErrNotFound.
func Get(ctx context.Context, db *pgxpool.Pool, defaults Limits, tenantID string, size ConfigSizer) (Report, error) {
	if !store.ValidID(tenantID) {
		return Report{}, fault.ErrNotFound
	}
	r := Report{TenantID: tenantID}
	// One snapshot of the tenant's objects, so that usage adds up.
	err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)`, tenantID).Scan(&exists); err != nil {
			return fmt.Errorf("find tenant: %w", err)
		}
		if !exists {
			return fault.ErrNotFound
		}
		var err error
		if r.Override, err = GetOverride(ctx, tx, tenantID); err != nil {
			return err
		}
		r.Limits = defaults.With(r.Override)
		r.Usage, err = Measure(ctx, tx, tenantID, size)
		r.MeasuredAt = time.Now().UTC()
		return err
	})
	if err != nil {
		return Report{}, fmt.Errorf("tenant limits: %w", err)
	}
	return r, nil
}
