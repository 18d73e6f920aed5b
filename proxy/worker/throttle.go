package worker

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tollgate/tollgate/proxy/meter"
	"github.com/tollgate/tollgate/proxy/metrics"
	"github.com/tollgate/tollgate/proxy/ratelimit"
)

// throttling is the worker's rate limiting, quota, concurrency and
// metering machinery.
type throttling struct {
	id      string
	limiter *ratelimit.Redis
	quotas  *ratelimit.Quotas
	conc    *ratelimit.Concurrency
	peers   *ratelimit.Peers
	meter   *meter.Meter // nil when metering is off
}

// setupThrottling builds the limiters and the meter and wires them into
// the pipeline and the metrics registry.
func (w *Worker) setupThrottling() error {
	t := &w.thr
	t.id = string(w.idPrefix[:])
	logger := w.logger.With("component", "ratelimit")
	t.peers = ratelimit.NewPeers(w.opts.Redis, w.opts.Keys, t.id, 0, logger)
	t.peers.ReportTo(w.redis)
	t.limiter = ratelimit.New(ratelimit.Options{
		Redis: w.opts.Redis, Keys: w.opts.Keys, Timeout: w.opts.RateLimitTimeout,
		LeaseTarget: w.opts.RateLimitLeaseTarget, Peers: t.peers, Logger: logger, Outage: w.redis,
	})
	t.quotas = t.limiter.Quotas()
	t.conc = t.limiter.Concurrency()
	w.pipe.Limiter, w.pipe.Quotas, w.pipe.Concurrency = t.limiter, t.quotas, t.conc
	if !w.opts.DisableMetering {
		m, err := meter.New(meter.Options{Redis: w.opts.Redis, Keys: w.opts.Keys, WorkerID: t.id,
			Interval: w.opts.MeterInterval, Logger: w.logger.With("component", "meter"), Outage: w.redis})
		if err != nil {
			return err
		}
		t.meter = m
	}
	reg := w.metrics.Registry
	register(reg, prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "ratelimit_degraded_total",
		Help: "Rate-limit, quota and concurrency decisions taken without Redis (local share of the limit).",
	}, func() float64 { return float64(t.limiter.Degraded()) }))
	register(reg, prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "ratelimit_redis_calls_total",
		Help: "Redis script calls of the rate limiters (leases, quota and concurrency checks).",
	}, func() float64 { return float64(t.limiter.Calls()) }))
	register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metrics.Namespace, Name: "ratelimit_live_workers",
		Help: "Live proxy workers by their heartbeats; limits are divided by it while Redis is unreachable.",
	}, func() float64 { return float64(t.peers.Live()) }))
	if t.meter != nil {
		register(reg, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "usage_sent_requests_total",
			Help: "Requests shipped to the usage stream.",
		}, func() float64 { return float64(t.meter.Sent()) }))
		register(reg, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "usage_dropped_requests_total",
			Help: "Requests whose usage was dropped because Redis was unreachable for too long.",
		}, func() float64 { return float64(t.meter.Dropped()) }))
	}
	return nil
}

// register adds c to reg; a collector of the same name already there (two
// workers sharing one registry) is left as it is.
func register(reg *prometheus.Registry, c prometheus.Collector) {
	_ = reg.Register(c)
}

// runThrottling starts the heartbeat, the concurrency releaser and the
// meter's flushes on bg. The meter flushes a last time when bg ends, which
// Serve does after in-flight requests finished.
func (w *Worker) runThrottling(bg context.Context, loops *sync.WaitGroup) {
	t := &w.thr
	loops.Go(func() { _ = t.peers.Run(bg) })
	loops.Go(func() { _ = t.conc.Run(bg) })
	if t.meter != nil {
		loops.Go(func() { _ = t.meter.Run(bg) })
	}
}

// Degraded is the number of throttling decisions taken without Redis.
func (w *Worker) Degraded() int64 { return w.thr.limiter.Degraded() }

// FlushUsage ships the usage recorded so far to the stream now.
func (w *Worker) FlushUsage(ctx context.Context) error {
	if w.thr.meter == nil {
		return nil
	}
	return w.thr.meter.Flush(ctx)
}
