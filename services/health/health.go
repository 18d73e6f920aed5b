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
	// StaleAfter is the age past which a worker's report is ignored (and
	// deleted); 0 means proxycfg.TargetHealthTTL.
	StaleAfter time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// View is a tenant's fresh reports, by upstream id and target URL.
type View map[string]map[string][]proxycfg.TargetHealthReport

// Tenant reads the fresh reports of one tenant. Stale fields (dead
// workers) are skipped and deleted, malformed ones skipped.
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
		stale = proxycfg.TargetHealthTTL
	}
	v := View{}
	var gone []string
	for f, val := range raw {
		up, url, _, err := proxycfg.ParseTargetHealthField(f)
		if err != nil {
			continue
		}
		var rep proxycfg.TargetHealthReport
		if err := json.Unmarshal([]byte(val), &rep); err != nil {
			continue
		}
		if now.Sub(rep.CheckedAt) > stale {
			gone = append(gone, f)
			continue
		}
		if v[up] == nil {
			v[up] = map[string][]proxycfg.TargetHealthReport{}
		}
		v[up][url] = append(v[up][url], rep)
	}
	if len(gone) > 0 {
		// Best effort: a dead worker's view would otherwise stay until
		// no worker of the tenant reports any more.
		_ = r.Redis.HDel(ctx, key, gone...).Err()
	}
	return v, nil
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
