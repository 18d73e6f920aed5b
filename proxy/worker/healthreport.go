package worker

import (
	"context"
	"sync"

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
