package rating

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Billable reports whether requests answered with the status class (the
// status divided by 100, as in usage_minutes.status_class) count as served,
// and so are billed:
//
//   - 1xx, 2xx, 3xx count: the upstream answered (101 is a WebSocket the
//     gateway upgraded, 304 a cache revalidation it passed on).
//   - 4xx does not: the gateway's own refusals (401 no or bad key, 402
//     payment required, 403 no access, 429 over the rate or quota) are
//     metered under the caller's key with class 4 and must never be
//     billed. The per-minute rollup cannot tell them from an upstream's
//     own 4xx, so those are not billed either (the cautious side).
//   - 5xx does not: neither the gateway's 502/503/504 nor an upstream
//     failure is something a developer should pay for.
func Billable(class int) bool { return class >= 1 && class <= 3 }

// BillableClasses returns the status classes Billable accepts, for SQL
// (status_class = ANY($n)).
func BillableClasses() []int16 { return []int16{1, 2, 3} }

// Querier is what the functions of this package read with: a pool, a
// connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Served returns the requests served (see Billable) under the keys of a
// subscription in the minutes [from, to): every key the subscription ever
// had, revoked and rotated ones included.
func Served(ctx context.Context, q Querier, tenantID, subscriptionID string, from, to time.Time) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT coalesce(sum(um.requests), 0)::bigint
		FROM keys k JOIN usage_minutes um ON um.tenant_id = k.tenant_id AND um.key_id = k.id::text
		WHERE k.tenant_id = $1 AND k.subscription_id = $2 AND um.minute >= $3 AND um.minute < $4
			AND um.status_class = ANY($5)`,
		tenantID, subscriptionID, from, to, BillableClasses()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("served requests: %w", err)
	}
	return n, nil
}
