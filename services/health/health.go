// Package health reads the proxy workers' live view of a tenant's upstream
// targets (proxycfg.Keys.TargetHealth) and aggregates it per target: on how
// many of the reporting workers it is healthy, whether outlier detection
// ejected it, its last probe error and when it was last reported. The
// portal and the management API show the same aggregate.
//
// Only the tenant's own hash is ever read, so a tenant never sees another's
// targets.
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// Aggregate states of a target.
const (
	// StatusHealthy: every reporting worker finds it healthy and not ejected.
	StatusHealthy = "healthy"
	// StatusDegraded: some reporting workers do, others do not.
	StatusDegraded = "degraded"
	// StatusDown: no reporting worker sends it traffic.
	StatusDown = "down"
	// StatusUnknown: no worker reported on it recently.
	StatusUnknown = "unknown"
)

// Target is the aggregate of the workers' fresh reports on one target.
type Target struct {
	// URL is the target's URL as configured.
	URL string `json:"url"`
	// Status is StatusHealthy, StatusDegraded, StatusDown or StatusUnknown.
	Status string `json:"status"`
	// Workers is how many workers reported on the target.
	Workers int `json:"workers"`
	// HealthyWorkers is how many of them find it healthy and not ejected.
	HealthyWorkers int `json:"healthy_workers"`
	// EjectedWorkers is how many of them ejected it (outlier detection).
	EjectedWorkers int `json:"ejected_workers"`
	// FailingWorkers is how many of them find it failing its active check.
	FailingWorkers int `json:"failing_workers"`
	// LastError is the most recent probe error of a worker that finds it
	// failing; "" if none does.
	LastError string `json:"last_error,omitempty"`
	// LastCheck is the most recent active probe of any worker (nil if
	// none probed it, e.g. no active check configured).
	LastCheck *time.Time `json:"last_check,omitempty"`
	// LastSeen is the most recent report of any worker (nil: none).
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// Reader reads live target health from Redis.
type Reader struct {
	// Redis is where the workers report.
	Redis redis.UniversalClient
	// Keys names the Redis keys.
	Keys proxycfg.Keys
	// StaleAfter is the age past which the report of a worker without a
	// live heartbeat (proxycfg.Keys.TargetHealthBeat) is ignored and
	// deleted; 0 means proxycfg.TargetHealthStale, three heartbeats. A
	// report whose worker's heartbeat lives is current however old: the
	// worker writes a report when the target's state changes, not on a
	// timer.
	StaleAfter time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// View is a tenant's fresh reports, by upstream id and target URL.
type View map[string]map[string][]proxycfg.TargetHealthReport

// Tenant reads the current reports of one tenant. A report's CheckedAt is
// moved to its worker's last heartbeat when that is later: the heartbeat
// vouches that the report still holds. Stale fields (dead workers) are
// skipped and deleted, malformed ones skipped.
func (r *Reader) Tenant(ctx context.Context, tenantID string) (View, error) {
	if r == nil || r.Redis == nil {
		return nil, fmt.Errorf("target health: no redis client")
	}
	key := r.Keys.TargetHealth(tenantID)
	raw, err := r.Redis.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("read target health: %w", err)
	}
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	stale := r.StaleAfter
	if stale <= 0 {
		stale = proxycfg.TargetHealthStale
	}
	type field struct {
		name, up, url, worker string
		rep                   proxycfg.TargetHealthReport
	}
	fields := make([]field, 0, len(raw))
	workers := map[string]*proxycfg.TargetHealthBeat{}
	for f, val := range raw {
		up, url, worker, err := proxycfg.ParseTargetHealthField(f)
		if err != nil {
			continue
		}
		var rep proxycfg.TargetHealthReport
		if err := json.Unmarshal([]byte(val), &rep); err != nil {
			continue
		}
		fields = append(fields, field{f, up, url, worker, rep})
		workers[worker] = nil
	}
	if err := r.beats(ctx, workers); err != nil {
		return nil, err
	}
	v := View{}
	var gone []string
	for _, f := range fields {
		rep := f.rep
		if b := workers[f.worker]; b != nil {
			if b.At.After(rep.CheckedAt) {
				rep.CheckedAt = b.At
			}
		} else if now.Sub(rep.CheckedAt) > stale {
			gone = append(gone, f.name)
			continue
		}
		if v[f.up] == nil {
			v[f.up] = map[string][]proxycfg.TargetHealthReport{}
		}
		v[f.up][f.url] = append(v[f.up][f.url], rep)
	}
	if len(gone) > 0 {
		// Best effort: a dead worker's view would otherwise stay until
		// no worker of the tenant reports any more.
		_ = r.Redis.HDel(ctx, key, gone...).Err()
	}
	return v, nil
}

// beats fills workers with the live heartbeats of its keys (nil: none).
// The heartbeats share a hash tag, so one MGET reads them on a Cluster.
func (r *Reader) beats(ctx context.Context, workers map[string]*proxycfg.TargetHealthBeat) error {
	if len(workers) == 0 {
		return nil
	}
	ids := make([]string, 0, len(workers))
	keys := make([]string, 0, len(workers))
	for w := range workers {
		ids = append(ids, w)
		keys = append(keys, r.Keys.TargetHealthBeat(w))
	}
	vals, err := r.Redis.MGet(ctx, keys...).Result()
	if err != nil {
		return fmt.Errorf("read target health heartbeats: %w", err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		var b proxycfg.TargetHealthBeat
		if json.Unmarshal([]byte(s), &b) == nil {
			workers[ids[i]] = &b
		}
	}
	return nil
}

// Upstream reads the health of one upstream's targets, in the order of
// targets (the configured URLs); reports on other URLs are ignored.
func (r *Reader) Upstream(ctx context.Context, tenantID, upstreamID string, targets []string) ([]Target, error) {
	v, err := r.Tenant(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return v.Targets(upstreamID, targets), nil
}

// Targets aggregates the reports on an upstream's targets, in the order of
// targets.
func (v View) Targets(upstreamID string, targets []string) []Target {
	out := make([]Target, 0, len(targets))
	for _, url := range targets {
		out = append(out, Aggregate(url, v[upstreamID][url]))
	}
	return out
}

// Aggregate sums up the workers' reports on one target.
func Aggregate(url string, reps []proxycfg.TargetHealthReport) Target {
	t := Target{URL: url, Workers: len(reps)}
	var errAt time.Time
	for _, rep := range reps {
		switch {
		case rep.Ejected:
			t.EjectedWorkers++
		case rep.Healthy:
			t.HealthyWorkers++
		}
		if !rep.Healthy {
			t.FailingWorkers++
			if rep.LastError != "" && (t.LastError == "" || rep.LastCheck.After(errAt)) {
				t.LastError, errAt = rep.LastError, rep.LastCheck
			}
		}
		if !rep.LastCheck.IsZero() && (t.LastCheck == nil || rep.LastCheck.After(*t.LastCheck)) {
			lc := rep.LastCheck
			t.LastCheck = &lc
		}
		if t.LastSeen == nil || rep.CheckedAt.After(*t.LastSeen) {
			ca := rep.CheckedAt
			t.LastSeen = &ca
		}
	}
	switch {
	case t.Workers == 0:
		t.Status = StatusUnknown
	case t.HealthyWorkers == t.Workers:
		t.Status = StatusHealthy
	case t.HealthyWorkers == 0:
		t.Status = StatusDown
	default:
		t.Status = StatusDegraded
	}
	return t
}
