package ctlmetrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PublisherMetrics are the config publisher's metrics on this replica; it
// is the publisher's observer (publish.Observer). Only the replica that
// holds the publisher lock publishes: tollgate_control_publisher_leader
// says which one. The lag and the outbox depth, the same for every
// replica, are backlog gauges (backlog.go).
type PublisherMetrics struct {
	compile    prometheus.Histogram
	publish    prometheus.Histogram
	bytes      prometheus.Gauge
	generation prometheus.Gauge
	keys       prometheus.Counter
	errors     prometheus.Counter
	leader     prometheus.Gauge
}

// snapshotBuckets span a small platform's compile to that of a large one
// (every tenant's gateway objects read and mapped in one transaction).
var snapshotBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

func newPublisherMetrics() *PublisherMetrics {
	return &PublisherMetrics{
		compile: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "publisher_compile_duration_seconds",
			Help:    "Time to compile a publish's tenant shards from the database (reads included).",
			Buckets: snapshotBuckets,
		}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "publisher_publish_duration_seconds",
			Help:    "Time to publish compiled shards: write them and the index to Redis, announce, record.",
			Buckets: snapshotBuckets,
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "publisher_snapshot_bytes",
			Help: "Bytes of the shards of the last publish of this replica (what every worker downloads and decodes for it).",
		}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "publisher_published_generation",
			Help: "Index sequence of the last publish of this replica (0 before its first).",
		}),
		keys: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "publisher_key_records_total",
			Help: "API key records this replica copied to Redis (from the key outbox, or all of them after Redis lost them).",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "publisher_errors_total",
			Help: "Failed publish rounds (compile, Redis or database errors); each is retried.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "publisher_leader",
			Help: "1 while this replica holds the publisher lock (publishes), else 0.",
		}),
	}
}

func (p *PublisherMetrics) register(reg prometheus.Registerer) {
	reg.MustRegister(p.compile, p.publish, p.bytes, p.generation, p.keys, p.errors, p.leader)
}

// SnapshotPublished records a published snapshot (publish.Observer).
func (p *PublisherMetrics) SnapshotPublished(generation int64, bytes int, compile, publish time.Duration) {
	p.compile.Observe(compile.Seconds())
	p.publish.Observe(publish.Seconds())
	p.bytes.Set(float64(bytes))
	p.generation.Set(float64(generation))
}

// KeysPublished counts key records copied to Redis (publish.Observer).
func (p *PublisherMetrics) KeysPublished(n int) { p.keys.Add(float64(n)) }

// SyncFailed counts a failed round (publish.Observer).
func (p *PublisherMetrics) SyncFailed() { p.errors.Inc() }

// Leading records whether this replica publishes (publish.Observer).
func (p *PublisherMetrics) Leading(on bool) {
	if on {
		p.leader.Set(1)
		return
	}
	p.leader.Set(0)
}
