package worker

import (
	"context"
	"sync"
	"time"

	"github.com/tollgate/tollgate/proxy/health"
)

// runHealthReport starts the loop that publishes this worker's view of its
// targets' health (active checks and outlier ejection) to Redis, where the
// control plane shows it (proxycfg.Keys.TargetHealth). It stays off the
// request path: it reads the live runtime's atomics from its own goroutine.
func (w *Worker) runHealthReport(bg context.Context, loops *sync.WaitGroup) {
	r, err := health.NewReporter(health.ReporterOptions{
		Redis:    w.opts.Redis,
		Keys:     w.opts.Keys,
		WorkerID: w.thr.id,
		Targets:  w.healthReports,
		Version:  w.healthVersion,
		Logger:   w.logger.With("component", "health-report"),
		Outage:   w.redis,
	})
	if err != nil {
		w.logger.Error("target health reporting off", "err", err)
		return
	}
	loops.Go(func() { _ = r.Run(bg) })
}

// healthReports yields the state of every target of the live config.
func (w *Worker) healthReports(yield func(health.TargetReport)) {
	rt := w.sync.Load()
	if rt == nil {
		return
	}
	for _, u := range rt.pipe.Upstreams() {
		key := u.TenantID + "/" + u.ID
		for i, t := range u.Targets {
			st, ok := w.health.Status(key, t.URL)
			if !ok {
				st = health.Status{Healthy: true}
			}
			yield(health.TargetReport{TenantID: u.TenantID, UpstreamID: u.ID, URL: t.URL, Status: st,
				Ejected: u.Pool.Ejected(i)})
		}
	}
}

// ejected records an outlier ejection for healthVersion.
func (w *Worker) ejected(d time.Duration) {
	w.ejections.Add(1)
	until := time.Now().Add(d).UnixNano()
	for {
		cur := w.ejectedUntil.Load()
		if until <= cur || w.ejectedUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// healthVersion moves whenever what healthReports yields may have changed:
// a health flip or first probe, an ejection, a new config, and at every
// poll while an ejection may be ending (an ejection ends by time alone).
// An idle worker's reporter thus reads no target between heartbeats.
func (w *Worker) healthVersion() uint64 {
	v := w.health.Reports() + uint64(w.Generation()) + w.ejections.Load()
	now := time.Now().UnixNano()
	if until := w.ejectedUntil.Load(); until != 0 && now < until+int64(2*health.DefaultReportPoll) {
		v += uint64(now/int64(health.DefaultReportPoll)) + 1
	}
	return v
}
