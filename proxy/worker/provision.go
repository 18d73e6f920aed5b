package worker

import (
	"slices"
	"time"

	"github.com/tollgate/tollgate/proxy/configsync"
	"github.com/tollgate/tollgate/proxy/health"
	"github.com/tollgate/tollgate/proxy/metrics"
	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/worker/engine"
)

// provisioned serves the live config: the pipeline's compiled config and
// the engine's clients for its targets, made together and swapped in whole
// by configsync, so that a request reads both from one Load.
type provisioned struct {
	pipe       *pipeline.Runtime
	transports *engine.Transports
}

// pipeline is rt's pipeline runtime; nil before the first config.
func (rt *provisioned) pipeline() *pipeline.Runtime {
	if rt == nil {
		return nil
	}
	return rt.pipe
}

// apply provisions a config update (configsync.Options.Apply): it builds
// the parts of the tenants that changed and composes them with the live
// runtime's parts of every other tenant. It dials nothing and changes no
// live state: a tenant whose part fails to build is returned in failed and
// its live part stays; the pipeline parts only read the live ones (to carry
// the balancers' counters over), and the engine's clients are the live
// ones, or, when the set of endpoints changed, new values sharing the live
// runtime's clients of the endpoints both have (their warm connections
// survive the change). The registries the build get-or-creates entries in
// (health flags, metric series, JWT issuers) are pruned to the live config
// after the swap (swapped).
func (w *Worker) apply(cur *provisioned, u *configsync.Update) (*provisioned, map[string]error) {
	var failed map[string]error
	fail := func(id string, err error) {
		if failed == nil {
			failed = map[string]error{}
		}
		failed[id] = err
	}
	var digestKey []byte
	if len(w.opts.DigestKey) == 0 {
		k, err := proxycfg.DigestKey(w.opts.Secret, u.DigestVersion)
		if err != nil {
			// configsync reads only the known versions; keep the key.
			w.logger.Error("config digest version not applied", "err", err)
		} else {
			digestKey = k
		}
	}
	livePipe, liveTransports := cur.pipeline(), (*engine.Transports)(nil)
	if cur != nil {
		liveTransports = cur.transports
	}
	pu := pipeline.Update{Generation: u.Seq, DigestVersion: u.DigestVersion}
	for _, s := range u.Shards {
		info := pipeline.ShardInfo{Generation: s.Generation, CompiledAt: s.CompiledAt, Capability: s.Capability}
		part, err := w.composer.BuildTenant(&s.Tenant, info, livePipe.Tenant(s.Tenant.ID))
		if err != nil {
			fail(s.Tenant.ID, err)
			continue
		}
		pu.Changes = append(pu.Changes, pipeline.Change{ID: s.Tenant.ID, Part: part})
	}
	for _, r := range u.Refused {
		t := r.TooNew
		pu.Changes = append(pu.Changes, pipeline.Change{ID: t.TenantID, Part: pipeline.RefuseTenant(t.TenantID, t.Slug,
			t.Domains, pipeline.ShardInfo{Generation: r.Generation, Capability: t.Need}, pipeline.WorkerTooOld)})
	}
	for _, id := range u.Removed {
		pu.Changes = append(pu.Changes, pipeline.Change{ID: id})
	}
	next := w.composer.Compose(livePipe, pu)
	rt := &provisioned{pipe: next, transports: liveTransports}
	if liveTransports == nil || next.EndpointsChanged(livePipe) {
		rt.transports = w.engine.NewTransports(next.Endpoints(), liveTransports)
	}
	if digestKey != nil {
		// The installation's digest key (the same for every config of
		// it), set as the provisioning's last step: configsync swaps in
		// every runtime apply returns, at once, so no request of this
		// runtime is checked with another key.
		w.keys.SetKey(digestKey)
	}
	return rt, failed
}

// swapped runs after cur went live in place of old, with the update that
// made it: health checks, metric series and JWT issuers follow the live
// config, and old's clients that cur did not carry over close their idle
// connections (requests of old still in flight finish on theirs). What it
// does is in proportion to the tenants that changed, except where a
// tenant's change drops something another tenant might share (a health
// check, a metric series, a JWT issuer): then the registry is pruned to
// the whole live config.
func (w *Worker) swapped(old, cur *provisioned, u *configsync.Update) {
	w.metrics.ConfigSwapped()
	var healthChanged, dropped, issuersDropped bool
	var added []*pipeline.Tenant
	changed := make([]string, 0, len(u.Shards)+len(u.Refused)+len(u.Removed))
	for _, s := range u.Shards {
		changed = append(changed, s.Tenant.ID)
	}
	for _, r := range u.Refused {
		changed = append(changed, r.TooNew.TenantID)
	}
	changed = append(changed, u.Removed...)
	if old == nil || u.FromDisk {
		w.dirty.markAll()
	}
	for _, id := range changed {
		w.dirty.mark(id) // its targets, for the health reporter
		was, now := old.pipeline().Tenant(id), cur.pipe.Tenant(id)
		if was == now {
			continue // not rebuilt (its build failed)
		}
		if now != nil {
			added = append(added, now)
		}
		if !sameHealth(partHealth(was), partHealth(now)) {
			healthChanged = true
		}
		if was != nil {
			dropped = dropped || lostMetrics(was, now)
			issuersDropped = issuersDropped || lost(was.JWTIssuers(), partIssuers(now))
		}
	}
	if healthChanged || old == nil {
		w.health.Sync(w.bg, cur.pipe.HealthUpstreams())
	}
	if w.ownMetrics && (dropped || old == nil) {
		ups := cur.pipe.Upstreams()
		um := make([]*metrics.UpstreamMetrics, 0, len(ups))
		for _, up := range ups {
			um = append(um, up.Metrics)
		}
		w.metrics.Retain(append(cur.pipe.APIMetrics(), w.unrouted), um)
	}
	if issuersDropped {
		if n := w.jwt.Prune(cur.pipe.JWTIssuers()); n > 0 {
			w.logger.Info("jwt issuers of removed apis dropped", "issuers", n)
		}
	}
	if len(added) > 0 {
		go func() {
			for _, t := range added {
				t.WarmJWT(w.bg)
			}
		}()
	}
	if old != nil && old.transports != cur.transports {
		old.transports.Retire(cur.transports)
	}
}

// partHealth is a part's health checks (none for nil).
func partHealth(t *pipeline.Tenant) []health.Upstream {
	if t == nil {
		return nil
	}
	return t.HealthUpstreams()
}

func partIssuers(t *pipeline.Tenant) []string {
	if t == nil {
		return nil
	}
	return t.JWTIssuers()
}

// sameHealth reports whether two lists of health checks are the same.
func sameHealth(a, b []health.Upstream) bool {
	return slices.EqualFunc(a, b, func(x, y health.Upstream) bool {
		return x.Key == y.Key && x.Check == y.Check && slices.Equal(x.Targets, y.Targets)
	})
}

// lostMetrics reports whether was counted into a metric series that now
// does not.
func lostMetrics(was, now *pipeline.Tenant) bool {
	// By series (tenant and API or upstream labels), not by pointer:
	// every build of a tenant makes new values over the same series, so
	// comparing pointers found a loss at every change and made every
	// change walk the whole platform's series (metrics.Retain).
	var apis, ups [][2]string
	if now != nil {
		for _, a := range now.APIMetrics() {
			apis = append(apis, a.Key())
		}
		for _, u := range now.Upstreams() {
			ups = append(ups, u.Metrics.Key())
		}
	}
	for _, a := range was.APIMetrics() {
		if !slices.Contains(apis, a.Key()) {
			return true
		}
	}
	for _, u := range was.Upstreams() {
		if !slices.Contains(ups, u.Metrics.Key()) {
			return true
		}
	}
	return false
}

// lost reports whether a has an element b does not.
func lost[E comparable](a, b []E) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// configAge is the time since the newest shard of the live config was
// compiled.
func (w *Worker) configAge() time.Duration {
	rt := w.sync.Load()
	if rt == nil || rt.pipe.CompiledAt.IsZero() {
		return 0
	}
	return time.Since(rt.pipe.CompiledAt)
}

// targetStates lists every target of the live config for metrics.
func (w *Worker) targetStates(yield func(tenant, upstream, target string, up bool)) {
	rt := w.sync.Load()
	if rt == nil {
		return
	}
	rt.pipe.EachTenant(func(t *pipeline.Tenant) {
		for _, u := range t.Upstreams() {
			for i, tg := range u.Targets {
				yield(u.TenantSlug, u.ID, tg.URL, u.Pool.Available(i))
			}
		}
	})
}
