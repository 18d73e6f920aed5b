// Package ctlmetrics holds the control plane's Prometheus metrics, served
// on the operator port (TOLLGATE_CONTROL_ADMIN_ADDR) at /metrics and never
// on the public one.
//
// Every metric is named tollgate_control_* (besides the Go runtime's go_*
// and process_*) and lives in a registry of its own: nothing is registered
// in the client library's global default registry. No label takes a value a
// tenant controls: HTTP requests are labelled by route pattern (the
// ServeMux pattern that matched, "GET /v1/apis/{id}", never the path), and
// nothing is labelled by tenant, API, key or subscription.
//
// The metrics come from four kinds of source:
//   - HTTP middleware (Instrument) around the control plane's handlers;
//   - observers the control plane's loops call as they work (Publisher for
//     services/publish, Usage for the usage aggregator);
//   - counters other packages keep, read at scrape time (WatchWebhooks,
//     WatchMeterReports; the Postgres and Redis pools);
//   - backlog gauges (outboxes, the usage stream, the config generation)
//     that Run refreshes every Interval with bounded queries, so that a
//     scrape never queries the database.
package ctlmetrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/usage"
)

// namespace prefixes every metric of the control plane.
const namespace = "tollgate_control"

// DefaultInterval is how often Run refreshes the backlog gauges.
const DefaultInterval = 15 * time.Second

// Options are the sources of the metrics; each nil source leaves its
// metrics out.
type Options struct {
	// DB is the control plane's pool: its statistics, and the database
	// Run reads the backlogs from.
	DB *pgxpool.Pool
	// Redis is the control plane's client: its pool statistics, and the
	// usage stream Run reads the aggregator's backlog from.
	Redis redis.UniversalClient
	// Keys names the usage stream (Keys.UsageStream).
	Keys proxycfg.Keys
	// UsageGroup is the usage aggregator's consumer group
	// (usage.DefaultGroup when empty).
	UsageGroup string
	// PostgresDown reports when the current Postgres outage began (ok
	// false while the database answers): store.Monitor.DownSince.
	PostgresDown func() (since time.Time, ok bool)
	// Interval is how often Run refreshes the backlog gauges; zero means
	// DefaultInterval.
	Interval time.Duration
	// Logger receives refresh failures (at debug level: the error counter
	// is what to alert on). If nil, slog.Default().
	Logger *slog.Logger
}

// Metrics is the control plane's metrics. Build it with New; serve it with
// Handler. The methods of a nil *Metrics do nothing (Instrument returns its
// handler), so wiring may leave metrics out.
type Metrics struct {
	reg     *prometheus.Registry
	opts    Options
	http    *httpMetrics
	pub     *PublisherMetrics
	usage   *UsageMetrics
	backlog *backlog
}

// New builds the metrics of opts and registers them, with the Go runtime
// and process collectors, in a registry of their own.
func New(opts Options) *Metrics {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.UsageGroup == "" {
		opts.UsageGroup = usage.DefaultGroup
	}
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg, opts: opts, http: newHTTPMetrics(), pub: newPublisherMetrics(), usage: newUsageMetrics(),
		backlog: newBacklog(opts)}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.http.register(reg)
	m.pub.register(reg)
	m.usage.register(reg)
	m.backlog.register(reg)
	if opts.DB != nil {
		reg.MustRegister(newPostgresPoolCollector(opts.DB))
	}
	if opts.Redis != nil {
		reg.MustRegister(newRedisPoolCollector(opts.Redis))
	}
	if opts.PostgresDown != nil {
		down := opts.PostgresDown
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "postgres_down_seconds",
			Help: "Seconds since Postgres stopped answering the control plane's health pings; 0 while it answers.",
		}, func() float64 {
			since, ok := down()
			if !ok {
				return 0
			}
			return time.Since(since).Seconds()
		}))
	}
	return m
}

// Registry is the registry the metrics live in (tests lint it; callers may
// register more collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

// Publisher is the config publisher's observer (publish.Options.Observer).
func (m *Metrics) Publisher() *PublisherMetrics { return m.pub }

// Usage is the usage aggregator's observer (usage.AggregatorOptions.Observer).
func (m *Metrics) Usage() *UsageMetrics { return m.usage }

// Run refreshes the backlog gauges at once and then every Interval until
// ctx ends. Each refresh is a handful of bounded queries with a timeout; a
// failed one counts in tollgate_control_backlog_refresh_errors_total and
// leaves the gauges as they were.
func (m *Metrics) Run(ctx context.Context) {
	if m == nil {
		return
	}
	t := time.NewTicker(m.opts.Interval)
	defer t.Stop()
	for {
		m.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh refreshes the backlog gauges once (Run calls it every Interval).
func (m *Metrics) Refresh(ctx context.Context) {
	if m == nil {
		return
	}
	m.backlog.refresh(ctx, m.opts.Logger)
}
