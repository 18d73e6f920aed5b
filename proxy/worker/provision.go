package worker

import (
	"time"

	"github.com/tollgate/tollgate/proxy/metrics"
	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/worker/engine"
)

// provisioned serves one snapshot: the pipeline's compiled config and the
// engine's clients for its targets, made together and swapped in whole by
// configsync, so that a request reads both from one Load.
type provisioned struct {
	pipe       *pipeline.Runtime
	transports *engine.Transports
}

// pipeline is rt's pipeline runtime; nil before the first snapshot.
func (rt *provisioned) pipeline() *pipeline.Runtime {
	if rt == nil {
		return nil
	}
	return rt.pipe
}

// build provisions snap. It dials nothing and changes no live
// state, so a snapshot that fails to build leaves nothing to clean up: the
// pipeline runtime only reads the live one (to carry the balancers'
// counters over), and the engine's clients are new values, or the live
// runtime's clients of the same endpoints, shared (their warm connections
// survive the reload). The registries the build get-or-creates entries in
// (health flags, metric series, JWT issuers) are pruned to the live config
// after each swap (swapped).
func (w *Worker) build(snap *proxycfg.Snapshot) (*provisioned, error) {
	var digestKey []byte
	if len(w.opts.DigestKey) == 0 {
		k, err := proxycfg.DigestKey(w.opts.Secret, snap.DigestVersion)
		if err != nil {
			return nil, err
		}
		digestKey = k
	}
	prev := w.sync.Load()
	var prevPipe *pipeline.Runtime
	var prevTransports *engine.Transports
	if prev != nil {
		prevPipe, prevTransports = prev.pipe, prev.transports
	}
	pr, err := pipeline.Build(snap, pipeline.BuildOptions{
		Domain:   w.opts.Domain,
		Health:   w.health,
		JWT:      w.jwt,
		Metrics:  w.metrics,
		Logger:   w.logger.With("component", "balance"),
		Previous: prevPipe,
	})
	if err != nil {
		return nil, err
	}
	rt := &provisioned{pipe: pr, transports: w.engine.NewTransports(pr.Endpoints(), prevTransports)}
	if digestKey != nil {
		// The installation's digest key (the same for every snapshot of
		// it), set as the build's last step: configsync swaps in every
		// runtime that builds, at once, so no request of this runtime is
		// checked with another key, and a snapshot that fails to build
		// never changes it.
		w.keys.SetKey(digestKey)
	}
	return rt, nil
}

// swapped runs after cur went live in place of old: health checks, metric
// series and JWT issuers follow the live config, and old's clients that cur
// did not carry over close their idle connections (requests of old still in
// flight finish on theirs).
func (w *Worker) swapped(old, cur *provisioned) {
	w.health.Sync(w.bg, cur.pipe.HealthUpstreams())
	w.metrics.ConfigSwapped()
	if w.ownMetrics {
		ups := cur.pipe.Upstreams()
		um := make([]*metrics.UpstreamMetrics, 0, len(ups))
		for _, u := range ups {
			um = append(um, u.Metrics)
		}
		w.metrics.Retain(append(cur.pipe.APIMetrics(), w.unrouted), um)
	}
	if n := w.jwt.Prune(cur.pipe.JWTIssuers()); n > 0 {
		w.logger.Info("jwt issuers of removed apis dropped", "issuers", n)
	}
	go cur.pipe.WarmJWT(w.bg)
	if old != nil {
		old.transports.Retire(cur.transports)
	}
}

// configAge is the time since the live snapshot was compiled.
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
	for _, u := range rt.pipe.Upstreams() {
		for i, t := range u.Targets {
			yield(u.TenantSlug, u.ID, t.URL, u.Pool.Available(i))
		}
	}
}
