package usage

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/store"
)

// KeyTotal is one key's traffic in a window: what the developer portal
// shows per app and key.
type KeyTotal struct {
	KeyID    string `json:"key_id"`
	Requests int64  `json:"requests"`
	// Errors counts 4xx and 5xx answers.
	Errors       int64   `json:"errors"`
	LatencyP50MS float64 `json:"latency_p50_ms"`
	LatencyP99MS float64 `json:"latency_p99_ms"`
}

// ByKey returns the traffic of each key of one consumer of the tenant
// between from and to (minute rollups), keys with traffic only.
func ByKey(ctx context.Context, db *pgxpool.Pool, tenantID, consumerID string, from, to time.Time) ([]KeyTotal, error) {
	if !store.ValidID(consumerID) {
		return []KeyTotal{}, nil
	}
	rows, err := db.Query(ctx, `SELECT key_id, sum(requests)::bigint,
			coalesce(sum(requests) FILTER (WHERE status_class >= 4), 0)::bigint, usage_hist_sum(latency_hist)
		FROM usage_minutes WHERE tenant_id = $1 AND consumer_id = $2 AND minute >= $3 AND minute < $4 AND key_id <> ''
		GROUP BY key_id ORDER BY key_id`, tenantID, consumerID, from.UTC(), to.UTC())
	if err != nil {
		return nil, fmt.Errorf("usage by key: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (KeyTotal, error) {
		var k KeyTotal
		var hist []int64
		if err := r.Scan(&k.KeyID, &k.Requests, &k.Errors, &hist); err != nil {
			return k, err
		}
		k.LatencyP50MS, k.LatencyP99MS = Percentile(hist, 0.5), Percentile(hist, 0.99)
		return k, nil
	})
	if err != nil {
		return nil, fmt.Errorf("usage by key: %w", err)
	}
	if out == nil {
		out = []KeyTotal{}
	}
	return out, nil
}
