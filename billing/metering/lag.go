package metering

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tollgate/tollgate/billing/rating"
)

// LagFigures summarise meter-event lags: the time from a usage window's end
// to Stripe's acceptance of its report.
type LagFigures struct {
	// Count is the number of lags measured.
	Count int64 `json:"count"`
	// P50, P99 and Max are over the most recent lags (at most the
	// recorder's size) or the rows of the period asked for.
	P50 time.Duration `json:"p50"`
	P99 time.Duration `json:"p99"`
	Max time.Duration `json:"max"`
}

// String writes the figures for a log line.
func (f LagFigures) String() string {
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", f.Count, f.P50.Round(time.Millisecond),
		f.P99.Round(time.Millisecond), f.Max.Round(time.Millisecond))
}

// LagRecorder keeps the most recent meter-event lags of a Sender (first
// reports of a window only: later sequences carry late usage).
type LagRecorder struct {
	mu    sync.Mutex
	ring  []time.Duration
	next  int
	count int64
}

// DefaultLagSamples is the size of a LagRecorder made with size 0.
const DefaultLagSamples = 10_000

// NewLagRecorder returns a recorder of the last size lags (0 means
// DefaultLagSamples).
func NewLagRecorder(size int) *LagRecorder {
	if size <= 0 {
		size = DefaultLagSamples
	}
	return &LagRecorder{ring: make([]time.Duration, 0, size)}
}

// Record adds one lag.
func (r *LagRecorder) Record(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, d)
		return
	}
	r.ring[r.next] = d
	r.next = (r.next + 1) % len(r.ring)
}

// Figures returns the count of lags recorded and the percentiles of the
// recent ones.
func (r *LagRecorder) Figures() LagFigures {
	r.mu.Lock()
	s := slices.Clone(r.ring)
	n := r.count
	r.mu.Unlock()
	f := LagFigures{Count: n}
	if len(s) == 0 {
		return f
	}
	slices.Sort(s)
	f.P50, f.P99, f.Max = percentile(s, 0.50), percentile(s, 0.99), s[len(s)-1]
	return f
}

// percentile returns the nearest-rank percentile of sorted s.
func percentile(s []time.Duration, p float64) time.Duration {
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Stats is the state of the meter reports of a tenant (or all tenants)
// whose windows start in a period: what a billing page shows beside Drift.
type Stats struct {
	// Rows and requests per status.
	Pending, Sent, Refused, Expired  int64
	PendingRequests, SentRequests    int64
	RefusedRequests, ExpiredRequests int64
	// OldestPending is when the oldest pending row was written (zero when
	// none is pending).
	OldestPending time.Time
	// Lag is over the first reports (seq 0) of windows sent in the period:
	// window end to sent_at.
	Lag LagFigures
}

// ReportStats returns the Stats of the reports of tenantID ("" for all
// tenants) whose windows start in [from, to); window is the producer's
// window length (for the lag).
func ReportStats(ctx context.Context, q rating.Querier, tenantID string, from, to time.Time, window time.Duration) (Stats, error) {
	var tenant any
	if tenantID != "" {
		tenant = tenantID
	}
	if window <= 0 {
		window = DefaultWindow
	}
	var st Stats
	var oldest *time.Time
	var p50, p99, mx *float64
	err := q.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'sent'),
			count(*) FILTER (WHERE status = 'refused'), count(*) FILTER (WHERE status = 'expired'),
			coalesce(sum(value) FILTER (WHERE status = 'pending'), 0)::bigint,
			coalesce(sum(value) FILTER (WHERE status = 'sent'), 0)::bigint,
			coalesce(sum(value) FILTER (WHERE status = 'refused'), 0)::bigint,
			coalesce(sum(value) FILTER (WHERE status = 'expired'), 0)::bigint,
			min(created_at) FILTER (WHERE status = 'pending'),
			count(sent_at) FILTER (WHERE status = 'sent' AND seq = 0),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - window_start - $4::interval))
				FILTER (WHERE status = 'sent' AND seq = 0),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - window_start - $4::interval))
				FILTER (WHERE status = 'sent' AND seq = 0),
			max(extract(epoch FROM sent_at - window_start - $4::interval)) FILTER (WHERE status = 'sent' AND seq = 0)
		FROM meter_reports
		WHERE ($1::uuid IS NULL OR tenant_id = $1) AND window_start >= $2 AND window_start < $3`,
		tenant, from, to, window).Scan(&st.Pending, &st.Sent, &st.Refused, &st.Expired,
		&st.PendingRequests, &st.SentRequests, &st.RefusedRequests, &st.ExpiredRequests, &oldest,
		&st.Lag.Count, &p50, &p99, &mx)
	if err != nil {
		return Stats{}, fmt.Errorf("meter report stats: %w", err)
	}
	if oldest != nil {
		st.OldestPending = *oldest
	}
	sec := func(f *float64) time.Duration {
		if f == nil {
			return 0
		}
		return time.Duration(*f * float64(time.Second))
	}
	st.Lag.P50, st.Lag.P99, st.Lag.Max = sec(p50), sec(p99), sec(mx)
	return st, nil
}
