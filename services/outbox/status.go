package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/store"
)

// Statuses of a tenant's config.
const (
	// StatusOK: the tenant's newest handled change is what the workers
	// serve (or on its way to them).
	StatusOK = "ok"
	// StatusError: the tenant's newest handled change was refused (it
	// fails validation, or is over the config_bytes limit); the workers
	// keep serving the tenant's last good shard.
	StatusError = "error"
)

// ConfigStatus is what became of a tenant's config changes: which
// generation the workers serve, whether the newest change was refused and
// why, and how many workers cannot serve it.
type ConfigStatus struct {
	TenantID string
	// Generation is the tenant's newest recorded change (0: none).
	Generation int64
	// PublishedGeneration is the generation of the tenant's shard in
	// Redis, which the workers serve (0: none yet).
	PublishedGeneration int64
	// Status is StatusOK or StatusError; Error says why (user-visible
	// text, naming the object at fault) and ErrorGeneration which change.
	Status          string
	Error           string
	ErrorGeneration int64
	// PublishedAt is when the published shard was written (zero: never).
	PublishedAt time.Time
	// Capability is the capability version the published shard needs.
	Capability int
	// Workers are the proxy workers heartbeating now; WorkersTooOld those
	// of them that speak less than Capability and so do not serve the
	// shard (they serve the tenant's last shard they can, or refuse its
	// traffic).
	Workers, WorkersTooOld int
}

// StatusReader reads tenants' config status; its Redis (nil: workers are
// not counted) holds the workers' heartbeats.
type StatusReader struct {
	DB    store.Querier
	Redis redis.UniversalClient
	Keys  proxycfg.Keys
}

// ConfigStatus reads the config status of a tenant.
func (r *StatusReader) ConfigStatus(ctx context.Context, tenantID string) (ConfigStatus, error) {
	return ReadStatus(ctx, r.DB, r.Redis, r.Keys, tenantID)
}

// ReadStatus reads the config status of a tenant from the database (what
// the publisher recorded) and, with rdb, the workers' heartbeats.
func ReadStatus(ctx context.Context, q store.Querier, rdb redis.UniversalClient, keys proxycfg.Keys, tenantID string) (ConfigStatus, error) {
	st := ConfigStatus{TenantID: tenantID, Status: StatusOK}
	if !store.ValidID(tenantID) {
		return st, nil
	}
	var errText *string
	var errGen *int64
	var published *time.Time
	err := q.QueryRow(ctx, `SELECT coalesce(c.generation, 0), coalesce(s.generation, 0), coalesce(s.capability, 0),
			s.published_at, s.error, s.error_generation
		FROM (SELECT $1::uuid AS tenant_id) t
		LEFT JOIN config_changes c ON c.tenant_id = t.tenant_id
		LEFT JOIN config_shards s ON s.tenant_id = t.tenant_id`, tenantID).
		Scan(&st.Generation, &st.PublishedGeneration, &st.Capability, &published, &errText, &errGen)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("read config status: %w", err)
	}
	if published != nil {
		st.PublishedAt = *published
	}
	if errText != nil && errGen != nil && *errGen > st.PublishedGeneration {
		st.Status, st.Error, st.ErrorGeneration = StatusError, *errText, *errGen
	}
	if rdb == nil {
		return st, nil
	}
	fleet, err := Fleet(ctx, rdb, keys)
	if err != nil {
		return st, err
	}
	st.Workers = len(fleet)
	for _, w := range fleet {
		if st.Capability > 0 && w.Capability < st.Capability {
			st.WorkersTooOld++
		}
	}
	return st, nil
}

// WorkerBeat is a live worker's config heartbeat.
type WorkerBeat struct {
	ID string
	proxycfg.ConfigWorkerBeat
}

// Fleet reads the config heartbeats of the live workers (the registry's
// workers whose heartbeat has not expired), and drops stopped workers from
// the registry.
func Fleet(ctx context.Context, rdb redis.UniversalClient, keys proxycfg.Keys) ([]WorkerBeat, error) {
	ids, err := rdb.HKeys(ctx, keys.ConfigWorkers()).Result()
	if err != nil {
		return nil, fmt.Errorf("read worker registry: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	beatKeys := make([]string, len(ids))
	for i, id := range ids {
		beatKeys[i] = keys.ConfigWorkerBeat(id)
	}
	vals, err := rdb.MGet(ctx, beatKeys...).Result()
	if err != nil {
		return nil, fmt.Errorf("read worker heartbeats: %w", err)
	}
	var out []WorkerBeat
	var gone []string
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			gone = append(gone, ids[i])
			continue
		}
		var b proxycfg.ConfigWorkerBeat
		if err := json.NewDecoder(strings.NewReader(s)).Decode(&b); err != nil {
			continue
		}
		out = append(out, WorkerBeat{ID: ids[i], ConfigWorkerBeat: b})
	}
	if len(gone) > 0 {
		_ = rdb.HDel(ctx, keys.ConfigWorkers(), gone...).Err()
	}
	return out, nil
}
