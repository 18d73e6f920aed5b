// Package usage is the control plane's side of usage metering: the
// aggregator that folds the workers' usage stream into per-minute rollups in
// Postgres, exactly once, and the queries over those rollups (time series,
// top consumers, quota use) that the management API and the portals show.
package usage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/fault"
)

// Bucket sizes the API offers by name.
const (
	Minute = time.Minute
	Hour   = time.Hour
	Day    = 24 * time.Hour
)

// MaxPoints bounds the length of a series, so that a query cannot ask for
// millions of empty buckets.
const MaxPoints = 10_000

// Query selects rollups of one tenant. Empty id filters match everything;
// StatusClass 0 matches every class (else 1..5).
type Query struct {
	TenantID string
	// From (inclusive) and To (exclusive) bound the time range; From is
	// rounded down and To up to whole buckets (UTC).
	From, To time.Time
	// Bucket is the width of a point: a positive multiple of a minute that
	// divides a day, or a whole number of days; 0 means Minute.
	Bucket                           time.Duration
	APIID, ConsumerID, KeyID, PlanID string
	StatusClass                      int
	// KeyIDs, when not nil, limits the rollups to these keys (an app's
	// keys in the developer portal); an empty non-nil list matches nothing.
	KeyIDs []string
}

// Point is the usage of one time bucket.
type Point struct {
	// Start is the bucket's start (UTC).
	Start time.Time `json:"start"`
	// Requests counts every request; Status2xx, Status4xx and Status5xx the
	// requests of those classes (1xx and 3xx only count in Requests).
	Requests  int64 `json:"requests"`
	Status2xx int64 `json:"status_2xx"`
	Status4xx int64 `json:"status_4xx"`
	Status5xx int64 `json:"status_5xx"`
	// BytesIn and BytesOut are request and response body bytes.
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
	// LatencyAvgMS is the mean latency; LatencyP50MS and LatencyP99MS are
	// estimated from the per-minute histogram (linear within a bucket). All
	// are 0 for an empty bucket.
	LatencyAvgMS float64 `json:"latency_avg_ms"`
	LatencyP50MS float64 `json:"latency_p50_ms"`
	LatencyP99MS float64 `json:"latency_p99_ms"`
}

// ConsumerTotal is one consumer's traffic over a query's range.
type ConsumerTotal struct {
	ConsumerID string `json:"consumer_id"`
	// Name is the consumer's name, "" if it was deleted.
	Name     string `json:"name"`
	Requests int64  `json:"requests"`
	// Errors counts 4xx and 5xx answers.
	Errors int64 `json:"errors"`
}

// normalize validates q and aligns its range to buckets.
func (q *Query) normalize() error {
	v := &fault.ValidationError{}
	if q.Bucket == 0 {
		q.Bucket = Minute
	}
	switch {
	case q.Bucket < Minute || q.Bucket%Minute != 0:
		v.Add("bucket", "must be a positive whole number of minutes")
	case q.Bucket < Day && Day%q.Bucket != 0:
		v.Add("bucket", "must divide a day (or be whole days)")
	case q.Bucket > Day && q.Bucket%Day != 0:
		v.Add("bucket", "longer than a day must be whole days")
	}
	if q.StatusClass < 0 || q.StatusClass > 5 {
		v.Add("status_class", "must be 1 to 5 (or 0 for all)")
	}
	if q.From.IsZero() || q.To.IsZero() {
		v.Add("from", "from and to are required")
	} else if !q.To.After(q.From) {
		v.Add("to", "must be after from")
	}
	if err := v.Err(); err != nil {
		return err
	}
	q.From = q.From.UTC().Truncate(q.Bucket)
	if to := q.To.UTC().Truncate(q.Bucket); to.Before(q.To) {
		q.To = to.Add(q.Bucket)
	} else {
		q.To = to
	}
	if n := q.To.Sub(q.From) / q.Bucket; n > MaxPoints {
		v.Add("bucket", "the range holds %d buckets, more than %d; use a larger bucket", n, MaxPoints)
		return v.Err()
	}
	return nil
}

// where renders the filters of q as SQL over usage_minutes, with arguments
// from $1 on: tenant, from, to and the filters set.
func (q *Query) where() (string, []any) {
	sql := `tenant_id = $1 AND minute >= $2 AND minute < $3`
	args := []any{q.TenantID, q.From, q.To}
	add := func(col string, val any) {
		args = append(args, val)
		sql += fmt.Sprintf(" AND %s = $%d", col, len(args))
	}
	if q.APIID != "" {
		add("api_id", q.APIID)
	}
	if q.ConsumerID != "" {
		add("consumer_id", q.ConsumerID)
	}
	if q.KeyID != "" {
		add("key_id", q.KeyID)
	}
	if q.PlanID != "" {
		add("plan_id", q.PlanID)
	}
	if q.StatusClass != 0 {
		add("status_class", q.StatusClass)
	}
	if q.KeyIDs != nil {
		args = append(args, q.KeyIDs)
		sql += fmt.Sprintf(" AND key_id = ANY($%d::text[])", len(args))
	}
	return sql, args
}

// Series returns one Point per bucket of [q.From, q.To), oldest first,
// empty buckets included.
func Series(ctx context.Context, db *pgxpool.Pool, q Query) ([]Point, error) {
	if err := q.normalize(); err != nil {
		return nil, fmt.Errorf("usage series: %w", err)
	}
	where, args := q.where()
	args = append(args, q.Bucket)
	bin := fmt.Sprintf(`date_bin($%d::interval, minute, TIMESTAMPTZ '2000-01-01 00:00:00+00')`, len(args))
	rows, err := db.Query(ctx, `SELECT `+bin+` AS b, sum(requests)::bigint,
		coalesce(sum(requests) FILTER (WHERE status_class = 2), 0)::bigint,
		coalesce(sum(requests) FILTER (WHERE status_class = 4), 0)::bigint,
		coalesce(sum(requests) FILTER (WHERE status_class = 5), 0)::bigint,
		sum(bytes_in)::bigint, sum(bytes_out)::bigint, sum(latency_us)::bigint,
		usage_hist_sum(latency_hist)
		FROM usage_minutes WHERE `+where+` GROUP BY b ORDER BY b`, args...)
	if err != nil {
		return nil, fmt.Errorf("usage series: %w", err)
	}
	byStart := map[time.Time]Point{}
	for rows.Next() {
		var p Point
		var latUS int64
		var hist []int64
		if err := rows.Scan(&p.Start, &p.Requests, &p.Status2xx, &p.Status4xx, &p.Status5xx,
			&p.BytesIn, &p.BytesOut, &latUS, &hist); err != nil {
			rows.Close()
			return nil, fmt.Errorf("usage series: %w", err)
		}
		if p.Requests > 0 {
			p.LatencyAvgMS = float64(latUS) / float64(p.Requests) / 1000
			p.LatencyP50MS = Percentile(hist, 0.50)
			p.LatencyP99MS = Percentile(hist, 0.99)
		}
		byStart[p.Start.UTC()] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage series: %w", err)
	}
	out := make([]Point, 0, q.To.Sub(q.From)/q.Bucket)
	for t := q.From; t.Before(q.To); t = t.Add(q.Bucket) {
		p, ok := byStart[t]
		if !ok {
			p = Point{}
		}
		p.Start = t
		out = append(out, p)
	}
	return out, nil
}

// TopConsumers returns the n consumers with the most requests matching q
// (its Bucket is ignored), most first. Traffic without a consumer (auth
// "none") is left out.
func TopConsumers(ctx context.Context, db *pgxpool.Pool, q Query, n int) ([]ConsumerTotal, error) {
	if q.Bucket == 0 {
		q.Bucket = Minute
	}
	if err := q.normalize(); err != nil {
		return nil, fmt.Errorf("usage top consumers: %w", err)
	}
	if n <= 0 {
		return []ConsumerTotal{}, nil
	}
	where, args := q.where()
	args = append(args, n)
	rows, err := db.Query(ctx, `SELECT u.consumer_id, coalesce(c.name, ''), u.requests, u.errors FROM (
		SELECT consumer_id, sum(requests)::bigint AS requests,
			coalesce(sum(requests) FILTER (WHERE status_class >= 4), 0)::bigint AS errors
		FROM usage_minutes WHERE `+where+` AND consumer_id <> '' GROUP BY consumer_id) u
		LEFT JOIN consumers c ON c.id::text = u.consumer_id AND c.tenant_id = $1
		ORDER BY u.requests DESC, u.consumer_id LIMIT $`+fmt.Sprint(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("usage top consumers: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ConsumerTotal])
	if err != nil {
		return nil, fmt.Errorf("usage top consumers: %w", err)
	}
	if out == nil {
		out = []ConsumerTotal{}
	}
	return out, nil
}

// Percentile estimates the q-quantile (0 < q <= 1) in milliseconds from a
// histogram over proxycfg.LatencyBoundsMS, interpolating linearly within the
// bucket it falls in. The open last bucket answers its lower bound.
func Percentile(hist []int64, q float64) float64 {
	var total int64
	for _, c := range hist {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen float64
	for i, c := range hist {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			lo := 0.0
			if i > 0 {
				lo = proxycfg.LatencyBoundsMS[min(i-1, len(proxycfg.LatencyBoundsMS)-1)]
			}
			if i >= len(proxycfg.LatencyBoundsMS) {
				return lo
			}
			hi := proxycfg.LatencyBoundsMS[i]
			frac := math.Max(0, (rank-seen)/float64(c))
			return lo + (hi-lo)*frac
		}
		seen += float64(c)
	}
	return proxycfg.LatencyBoundsMS[len(proxycfg.LatencyBoundsMS)-1]
}

// ErrNoQuota reports that a key's plan has no quota.
var ErrNoQuota = errors.New("plan has no quota")
