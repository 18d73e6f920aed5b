package ctlmetrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// BacklogCap bounds the row counts of the backlog gauges: a count stops
// at BacklogCap, so a refresh reads at most that many index entries per
// outbox however far behind it is (an alert fires long before).
const BacklogCap = 100_000

// refreshTimeout bounds one refresh's queries.
const refreshTimeout = 5 * time.Second

// backlog holds the gauges Run refreshes: the work the control plane's
// loops have not done yet, as the database and the usage stream show it
// (the same on every replica).
type backlog struct {
	db    *pgxpool.Pool
	rdb   redis.UniversalClient
	opts  Options
	nowFn func() time.Time

	generation, published, behind, publishLag prometheus.Gauge
	keyOutbox, keyLag                         prometheus.Gauge
	billingJobs                               prometheus.Gauge
	meterPending, meterLag                    prometheus.Gauge
	usageLag, usageEntries, usagePending      prometheus.Gauge
	errors                                    *prometheus.CounterVec
	refreshed                                 prometheus.Gauge
}

func newBacklog(opts Options) *backlog {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	}
	capped := fmt.Sprintf(" (counted up to %d)", BacklogCap)
	return &backlog{db: opts.DB, rdb: opts.Redis, opts: opts, nowFn: time.Now,
		generation: g("config_generation", "Gateway config changes recorded in the database, all tenants together (config_change_seq)."),
		published:  g("config_published_generation", "Index sequence of the newest publish to Redis (config_state.published_generation)."),
		behind:     g("publisher_generations_behind", "Tenants with a config change not yet handled by the publisher"+capped+"."),
		publishLag: g("publisher_lag_seconds", "Age of the oldest unpublished tenant config change (config_changes); 0 when "+
			"everything is published. A tenant changed again before a publish counts from its latest change."),
		keyOutbox:   g("key_outbox_unpublished", "API key records waiting in the key outbox for the publisher"+capped+"."),
		keyLag:      g("key_outbox_lag_seconds", "Age of the oldest unpublished key record; 0 when none waits."),
		billingJobs: g("billing_jobs_due", "Stripe jobs (plan products and prices) due and not done"+capped+"."),
		meterPending: g("meter_reports_pending", "Meter reports (metered usage for Stripe) waiting to be sent"+
			capped+"."),
		meterLag: g("meter_reports_lag_seconds", "Age of the oldest pending meter report; 0 when none waits."),
		usageLag: g("usage_lag_seconds", "Age of the oldest usage entry in the stream not yet folded into Postgres "+
			"(processed entries are deleted); 0 when the aggregator has caught up."),
		usageEntries: g("usage_stream_entries", "Usage entries in the stream: not yet delivered to an aggregator, or "+
			"delivered and not yet acknowledged."),
		usagePending: g("usage_pending_entries", "Usage entries delivered to an aggregator of the consumer group and not "+
			"yet acknowledged."),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "backlog_refresh_errors_total",
			Help: "Failed refreshes of the backlog gauges, by source (postgres, redis); the gauges keep their last values.",
		}, []string{"source"}),
		refreshed: g("backlog_refresh_timestamp_seconds", "When the backlog gauges were last refreshed "+
			"without error (Unix seconds)."),
	}
}

func (b *backlog) register(reg prometheus.Registerer) {
	if b.db != nil {
		reg.MustRegister(b.generation, b.published, b.behind, b.publishLag, b.keyOutbox, b.keyLag, b.billingJobs,
			b.meterPending, b.meterLag)
		b.errors.WithLabelValues("postgres")
	}
	if b.rdb != nil {
		reg.MustRegister(b.usageLag, b.usageEntries, b.usagePending)
		b.errors.WithLabelValues("redis")
	}
	reg.MustRegister(b.errors, b.refreshed)
}

// refresh reads every backlog once.
func (b *backlog) refresh(ctx context.Context, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	ok := true
	if b.db != nil {
		if err := b.refreshPostgres(ctx); err != nil && ctx.Err() == nil {
			b.errors.WithLabelValues("postgres").Inc()
			log.Debug("metrics: postgres backlogs", "err", err)
			ok = false
		}
	}
	if b.rdb != nil {
		if err := b.refreshRedis(ctx); err != nil && ctx.Err() == nil {
			b.errors.WithLabelValues("redis").Inc()
			log.Debug("metrics: usage stream backlog", "err", err)
			ok = false
		}
	}
	if ok && ctx.Err() == nil {
		b.refreshed.Set(float64(b.nowFn().UnixMilli()) / 1000)
	}
}

// backlogQuery reads every database backlog in one statement. Each count
// reads a partial index (key_outbox_unpublished_idx, billing_jobs_due_idx,
// meter_reports_pending_idx) and stops at $1 rows; each age reads the
// first row of one. The publisher's backlog and lag read the tenants with
// an unhandled change (config_changes_pending_idx).
const backlogQuery = `SELECT (SELECT last_value FROM config_change_seq), s.published_generation,
	(SELECT count(*) FROM (SELECT 1 FROM config_changes WHERE generation > published_generation LIMIT $1) p),
	coalesce((SELECT extract(epoch FROM now() - c.changed_at) FROM config_changes c
		WHERE c.generation > c.published_generation ORDER BY c.changed_at LIMIT 1), 0)::float8,
	(SELECT count(*) FROM (SELECT 1 FROM key_outbox WHERE published_at IS NULL LIMIT $1) k),
	coalesce((SELECT extract(epoch FROM now() - k.created_at) FROM key_outbox k
		WHERE k.published_at IS NULL ORDER BY k.id LIMIT 1), 0)::float8,
	(SELECT count(*) FROM (SELECT 1 FROM billing_jobs WHERE done_at IS NULL AND run_at <= now() LIMIT $1) j),
	(SELECT count(*) FROM (SELECT 1 FROM meter_reports WHERE status = 'pending' LIMIT $1) m),
	coalesce((SELECT extract(epoch FROM now() - m.created_at) FROM meter_reports m
		WHERE m.status = 'pending' ORDER BY m.id LIMIT 1), 0)::float8
FROM config_state s`

func (b *backlog) refreshPostgres(ctx context.Context) error {
	var gen, published, behind, keys, jobs, meters int64
	var publishLag, keyLag, meterLag float64
	if err := b.db.QueryRow(ctx, backlogQuery, BacklogCap).Scan(&gen, &published, &behind, &publishLag, &keys, &keyLag,
		&jobs, &meters, &meterLag); err != nil {
		return fmt.Errorf("read backlogs: %w", err)
	}
	b.generation.Set(float64(gen))
	b.published.Set(float64(published))
	b.behind.Set(float64(behind))
	b.publishLag.Set(max(publishLag, 0))
	b.keyOutbox.Set(float64(keys))
	b.keyLag.Set(max(keyLag, 0))
	b.billingJobs.Set(float64(jobs))
	b.meterPending.Set(float64(meters))
	b.meterLag.Set(max(meterLag, 0))
	return nil
}

// refreshRedis reads the usage stream's backlog. The aggregator deletes
// each entry once it is folded and acknowledged, so the stream's first
// entry is the oldest one not yet processed; its age is measured on
// Redis's clock, which stamped its id.
func (b *backlog) refreshRedis(ctx context.Context) error {
	stream := b.opts.Keys.UsageStream()
	n, err := b.rdb.XLen(ctx, stream).Result()
	if err != nil {
		return fmt.Errorf("length of the usage stream: %w", err)
	}
	lag := 0.0
	if n > 0 {
		first, err := b.rdb.XRangeN(ctx, stream, "-", "+", 1).Result()
		if err != nil {
			return fmt.Errorf("first usage entry: %w", err)
		}
		now, err := b.rdb.Time(ctx).Result()
		if err != nil {
			return fmt.Errorf("redis time: %w", err)
		}
		if len(first) > 0 {
			if at, ok := streamIDTime(first[0].ID); ok {
				lag = max(now.Sub(at).Seconds(), 0)
			}
		}
	}
	pending := int64(0)
	p, err := b.rdb.XPending(ctx, stream, b.opts.UsageGroup).Result()
	switch {
	case err == nil:
		pending = p.Count
	case isNoGroup(err):
		// No aggregator has created the group yet: nothing is pending.
	default:
		return fmt.Errorf("pending usage entries: %w", err)
	}
	b.usageEntries.Set(float64(n))
	b.usageLag.Set(lag)
	b.usagePending.Set(float64(pending))
	return nil
}

// streamIDTime is when Redis added the entry with this id (its
// milliseconds part).
func streamIDTime(id string) (time.Time, bool) {
	ms, _, _ := strings.Cut(id, "-")
	var n int64
	if _, err := fmt.Sscan(ms, &n); err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(n), true
}

func isNoGroup(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "NOGROUP")
}
