package ctlmetrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// UsageMetrics are the usage aggregator's metrics on this replica; it is
// the aggregator's observer (usage.AggregatorObserver). The stream's
// backlog, the same for every replica, is a backlog gauge (backlog.go).
type UsageMetrics struct {
	batches prometheus.Counter
	entries prometheus.Counter
	rows    prometheus.Counter
	errors  prometheus.Counter
	newest  prometheus.GaugeFunc
	// newestMS is the newest entry's time in Unix milliseconds.
	newestMS *atomic.Int64
}

func newUsageMetrics() *UsageMetrics {
	newestMS := new(atomic.Int64)
	return &UsageMetrics{
		newestMS: newestMS,
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "usage_batches_total",
			Help: "Batches of usage stream entries this replica folded into Postgres and acknowledged.",
		}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "usage_entries_total",
			Help: "Usage stream entries this replica folded and acknowledged (redeliveries included).",
		}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "usage_rows_total",
			Help: "Usage rows (per minute, API, key and status class) this replica applied to the rollups.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "usage_errors_total",
			Help: "Failed aggregator rounds (Redis or Postgres errors); each is retried with backoff.",
		}),
		newest: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "usage_last_entry_timestamp_seconds",
			Help: "When the newest usage entry this replica folded was added to the stream (Unix seconds, 0 " +
				"before the first); time() minus this is the lag of the newest entry processed.",
		}, func() float64 { return float64(newestMS.Load()) / 1000 }),
	}
}

func (u *UsageMetrics) register(reg prometheus.Registerer) {
	reg.MustRegister(u.batches, u.entries, u.rows, u.errors, u.newest)
}

// Committed records a folded batch (usage.AggregatorObserver).
func (u *UsageMetrics) Committed(entries, rows int, newest time.Time) {
	u.batches.Inc()
	u.entries.Add(float64(entries))
	u.rows.Add(float64(rows))
	// Claimed and redelivered batches may be older than the last one:
	// the gauge only moves forward.
	ms := newest.UnixMilli()
	for cur := u.newestMS.Load(); ms > cur && !u.newestMS.CompareAndSwap(cur, ms); cur = u.newestMS.Load() {
	}
}

// Failed counts a failed round (usage.AggregatorObserver).
func (u *UsageMetrics) Failed() { u.errors.Inc() }
