package worker

import (
	"context"
	"sync"
	"time"

	"github.com/tollgate/tollgate/proxy/health"
	"github.com/tollgate/tollgate/proxy/pipeline"
)

// runHealthReport starts the loop that publishes this worker's view of its
// targets' health (active checks and outlier ejection) to Redis, where the
// control plane shows it (proxycfg.Keys.TargetHealth). It stays off the
// request path: it reads the live runtime's atomics from its own goroutine.
func (w *Worker) runHealthReport(bg context.Context, loops *sync.WaitGroup) {
	r, err := health.NewReporter(health.ReporterOptions{
		Redis:         w.opts.Redis,
		Keys:          w.opts.Keys,
		WorkerID:      w.thr.id,
		Targets:       w.healthReports,
		Dirty:         w.dirty.take,
		TenantTargets: w.tenantReports,
		Logger:        w.logger.With("component", "health-report"),
		Outage:        w.redis,
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
		reportUpstream(w.health, u, yield)
	}
}

// tenantReports yields the state of the targets of the given tenants of
// the live config.
func (w *Worker) tenantReports(ids []string, yield func(health.TargetReport)) {
	rt := w.sync.Load()
	if rt == nil {
		return
	}
	for _, id := range ids {
		if tn := rt.pipe.Tenant(id); tn != nil {
			for _, u := range tn.Upstreams() {
				reportUpstream(w.health, u, yield)
			}
		}
	}
}

// reportUpstream yields the state of u's targets.
func reportUpstream(hc *health.Checker, u *pipeline.Upstream, yield func(health.TargetReport)) {
	key := u.TenantID + "/" + u.ID
	for i, t := range u.Targets {
		st, ok := hc.Status(key, t.URL)
		if !ok {
			st = health.Status{Healthy: true}
		}
		yield(health.TargetReport{TenantID: u.TenantID, UpstreamID: u.ID, URL: t.URL, Status: st,
			Ejected: u.Pool.Ejected(i)})
	}
}

// healthDirt is what the health reporter must read again since it last
// asked: the tenants whose targets' state may have changed (a health flip
// or first probe, an ejection, a new config of the tenant), and the
// ejections still to end (an ejection ends by time alone: its tenant is
// dirty again once it has). Its methods are safe for concurrent use.
type healthDirt struct {
	mu       sync.Mutex
	all      bool
	tenants  map[string]struct{}
	ejecting map[string]int64 // tenant → when its last ejection ends (unix ns)
}

// mark makes a tenant dirty.
func (d *healthDirt) mark(tenant string) {
	d.mu.Lock()
	d.add(tenant)
	d.mu.Unlock()
}

// add makes a tenant dirty (d is locked).
func (d *healthDirt) add(tenant string) {
	if d.tenants == nil {
		d.tenants = map[string]struct{}{}
	}
	d.tenants[tenant] = struct{}{}
}

// markAll makes every tenant dirty.
func (d *healthDirt) markAll() {
	d.mu.Lock()
	d.all = true
	d.mu.Unlock()
}

// ejected records an outlier ejection of one of tenant's targets for dur.
func (d *healthDirt) ejected(tenant string, dur time.Duration) {
	until := time.Now().Add(dur).UnixNano()
	d.mu.Lock()
	if d.ejecting == nil {
		d.ejecting = map[string]int64{}
	}
	d.add(tenant)
	d.ejecting[tenant] = max(d.ejecting[tenant], until)
	d.mu.Unlock()
}

// take returns what is dirty and starts over (health.ReporterOptions.Dirty).
func (d *healthDirt) take() (tenants []string, all bool) {
	// An ejection counts as ended a poll after its time, so that the
	// reader sees it ended.
	now := time.Now().Add(-health.DefaultReportPoll).UnixNano()
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, until := range d.ejecting {
		if until <= now {
			d.add(id)
			delete(d.ejecting, id)
		}
	}
	all = d.all
	for id := range d.tenants {
		tenants = append(tenants, id)
	}
	d.all = false
	clear(d.tenants)
	return tenants, all
}
