package health

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/outage"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// DefaultReportPoll is how often a Reporter looks for state changes.
const DefaultReportPoll = 250 * time.Millisecond

// TargetReport is one served target's state on this worker.
type TargetReport struct {
	TenantID, UpstreamID, URL string
	// Status is the active check's state (Healthy true without a check).
	Status Status
	// Ejected reports passive outlier ejection.
	Ejected bool
}

// ReporterOptions configure a Reporter.
type ReporterOptions struct {
	// Redis receives the reports; required.
	Redis redis.UniversalClient
	// Keys names the Redis keys.
	Keys proxycfg.Keys
	// WorkerID names this worker in the hash fields; required.
	WorkerID string
	// Targets yields the state of every target the worker serves now.
	// It runs on the reporter's goroutine, never on the request path.
	Targets func(yield func(TargetReport))
	// Interval is how often the whole view is rewritten; 0 means
	// proxycfg.TargetHealthInterval.
	Interval time.Duration
	// Poll is how often Targets is read to publish changes early; 0
	// means DefaultReportPoll.
	Poll time.Duration
	// TTL is the hash key's TTL; 0 means proxycfg.TargetHealthTTL.
	TTL time.Duration
	// Logger receives publish failures; nil discards them.
	Logger *slog.Logger
	// Outage receives the outcome of every publish and logs Redis outages
	// once; nil means a tracker of its own that logs to Logger.
	Outage *outage.Tracker
}

// Reporter publishes a worker's view of its targets' health to Redis
// (proxycfg.Keys.TargetHealth) from a background loop.
type Reporter struct {
	opts ReporterOptions
	// written are the fields this worker holds, by tenant.
	written map[string]map[string]struct{}
	// last is the state last published, by tenant and field.
	last map[string]map[string]stateSig
}

type stateSig struct {
	healthy, ejected bool
	lastErr          string
}

// NewReporter makes a Reporter.
func NewReporter(opts ReporterOptions) (*Reporter, error) {
	if opts.Redis == nil {
		return nil, fmt.Errorf("health reporter: nil redis client")
	}
	if opts.WorkerID == "" || opts.Targets == nil {
		return nil, fmt.Errorf("health reporter: WorkerID and Targets are required")
	}
	if opts.Interval <= 0 {
		opts.Interval = proxycfg.TargetHealthInterval
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultReportPoll
	}
	if opts.TTL <= 0 {
		opts.TTL = proxycfg.TargetHealthTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Outage == nil {
		opts.Outage = outage.New(outage.Options{Name: "redis", Logger: opts.Logger})
	}
	return &Reporter{opts: opts, written: map[string]map[string]struct{}{}}, nil
}

// Run publishes every Interval and whenever a target's state changes,
// until ctx ends; then it deletes this worker's fields and returns nil.
func (r *Reporter) Run(ctx context.Context) error {
	tick := time.NewTicker(r.opts.Poll)
	defer tick.Stop()
	var lastPublish time.Time
	for {
		view := r.collect()
		if time.Since(lastPublish) >= r.opts.Interval || r.changed(view) {
			if err := r.publish(ctx, view); err != nil {
				if ctx.Err() == nil {
					r.opts.Outage.Fail("health-report", err)
				}
			} else {
				r.opts.Outage.OK()
				lastPublish = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			if err := r.publish(cctx, nil); err != nil {
				r.opts.Logger.Warn("target health not withdrawn", "err", err)
			}
			return nil
		case <-tick.C:
		}
	}
}

// Publish writes the current view once.
func (r *Reporter) Publish(ctx context.Context) error { return r.publish(ctx, r.collect()) }

// view is the state of the served targets, by tenant and field.
type view map[string]map[string]TargetReport

func (r *Reporter) collect() view {
	v := view{}
	r.opts.Targets(func(t TargetReport) {
		m := v[t.TenantID]
		if m == nil {
			m = map[string]TargetReport{}
			v[t.TenantID] = m
		}
		m[proxycfg.TargetHealthField(t.UpstreamID, t.URL, r.opts.WorkerID)] = t
	})
	return v
}

func sig(t TargetReport) stateSig {
	return stateSig{healthy: t.Status.Healthy, ejected: t.Ejected, lastErr: t.Status.LastError}
}

// changed reports whether v differs from the last published view.
func (r *Reporter) changed(v view) bool {
	if len(v) != len(r.last) {
		return true
	}
	for tenant, fields := range v {
		old := r.last[tenant]
		if len(old) != len(fields) {
			return true
		}
		for f, t := range fields {
			if s, ok := old[f]; !ok || s != sig(t) {
				return true
			}
		}
	}
	return false
}

// publish writes v (nil withdraws everything) in one pipeline: the
// fields of every tenant with the key's TTL refreshed, and deletions of
// this worker's fields that are gone.
func (r *Reporter) publish(ctx context.Context, v view) error {
	now := time.Now().UTC()
	pipe := r.opts.Redis.Pipeline()
	for tenant, fields := range v {
		key := r.opts.Keys.TargetHealth(tenant)
		args := make([]any, 0, 2*len(fields))
		for f, t := range fields {
			b, err := json.Marshal(proxycfg.TargetHealthReport{
				Healthy: t.Status.Healthy, Ejected: t.Ejected, LastCheck: t.Status.LastCheck.UTC(),
				LastError: t.Status.LastError, CheckedAt: now,
			})
			if err != nil {
				return fmt.Errorf("encode target health: %w", err)
			}
			args = append(args, f, b)
		}
		pipe.HSet(ctx, key, args...)
		pipe.PExpire(ctx, key, r.opts.TTL)
	}
	for tenant, fields := range r.written {
		var gone []string
		for f := range fields {
			if _, ok := v[tenant][f]; !ok {
				gone = append(gone, f)
			}
		}
		if len(gone) > 0 {
			pipe.HDel(ctx, r.opts.Keys.TargetHealth(tenant), gone...)
		}
	}
	if pipe.Len() == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("publish target health: %w", err)
	}
	r.written = map[string]map[string]struct{}{}
	r.last = map[string]map[string]stateSig{}
	for tenant, fields := range v {
		w, l := map[string]struct{}{}, map[string]stateSig{}
		for f, t := range fields {
			w[f], l[f] = struct{}{}, sig(t)
		}
		r.written[tenant], r.last[tenant] = w, l
	}
	return nil
}
