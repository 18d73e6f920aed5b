package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/outage"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// DefaultReportPoll is how often a Reporter looks for state changes.
const DefaultReportPoll = 250 * time.Millisecond

// maxPipeline bounds the commands of one pipeline of a full rewrite.
const maxPipeline = 1000

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
	// WorkerID names this worker in the hash fields and its heartbeat;
	// required.
	WorkerID string
	// Targets yields the state of every target the worker serves now.
	// It runs on the reporter's goroutine, never on the request path.
	Targets func(yield func(TargetReport))
	// Heartbeat is how often the heartbeat that vouches for this worker's
	// reports is written; 0 means proxycfg.TargetHealthHeartbeat.
	// Readers take the reports as stale three heartbeats after the last.
	Heartbeat time.Duration
	// Refresh is how often the whole view is rewritten although nothing
	// changed (which also refreshes the hashes' TTL); 0 means
	// proxycfg.TargetHealthRefresh.
	Refresh time.Duration
	// Poll is how often Targets is read to publish changes; 0 means
	// DefaultReportPoll.
	Poll time.Duration
	// Dirty, with TenantTargets, makes a poll read only the targets that
	// may have changed: it returns the tenants whose targets may have
	// changed since it was last called (a health flip or first probe, an
	// ejection or its end, a new config of the tenant), or all to read
	// every target. A poll with nothing dirty reads nothing, and one
	// change of one tenant reads that tenant's targets only, so that a
	// worker's cost does not grow with the platform. The heartbeat and the
	// full rewrite read every target all the same. Nil: every poll reads
	// every target.
	Dirty func() (tenants []string, all bool)
	// TenantTargets yields the state of the targets of the given tenants
	// (required with Dirty).
	TenantTargets func(tenants []string, yield func(TargetReport))
	// TTL is the hash keys' TTL; 0 means proxycfg.TargetHealthTTL. It
	// should exceed Refresh.
	TTL time.Duration
	// Logger receives publish failures; nil discards them.
	Logger *slog.Logger
	// Outage receives the outcome of every publish and logs Redis outages
	// once; nil means a tracker of its own that logs to Logger.
	Outage *outage.Tracker
}

// Reporter publishes a worker's view of its targets' health to Redis
// (proxycfg.Keys.TargetHealth) from a background loop: a target's report
// when its state changes, and a heartbeat (proxycfg.Keys.TargetHealthBeat)
// that vouches for all of them; see the contract in proxycfg/health.go.
// A worker with nothing changing writes one heartbeat per Heartbeat,
// whatever the number of its targets.
type Reporter struct {
	opts ReporterOptions
	// cur is the view read at this poll (reused between polls).
	cur map[targetKey]TargetReport
	// pub is what Redis holds of this worker's view.
	pub map[string]map[targetKey]stateSig // by tenant
	// needFull asks for a rewrite of the whole view (Redis lost it).
	needFull bool
	// beaten reports that a heartbeat was written: one found missing
	// after that was lost.
	beaten bool
	// published says a publish of the whole view succeeded.
	published bool
}

// targetKey names a target of a tenant's upstream without building the
// hash field, so that reading the view allocates nothing.
type targetKey struct{ tenant, upstream, url string }

// stateSig is what of a target's state is worth a write: a flip, a first
// probe (a report of "never probed" becomes one of a working check), and
// the error text of a failing target.
type stateSig struct {
	healthy, ejected, probed bool
	lastErr                  string
}

// NewReporter makes a Reporter.
func NewReporter(opts ReporterOptions) (*Reporter, error) {
	if opts.Redis == nil {
		return nil, fmt.Errorf("health reporter: nil redis client")
	}
	if opts.WorkerID == "" || opts.Targets == nil {
		return nil, fmt.Errorf("health reporter: WorkerID and Targets are required")
	}
	if opts.Dirty != nil && opts.TenantTargets == nil {
		return nil, fmt.Errorf("health reporter: Dirty needs TenantTargets")
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = proxycfg.TargetHealthHeartbeat
	}
	if opts.Refresh <= 0 {
		opts.Refresh = proxycfg.TargetHealthRefresh
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
	return &Reporter{opts: opts, cur: map[targetKey]TargetReport{}, pub: map[string]map[targetKey]stateSig{}}, nil
}

// Run publishes changes every Poll, the heartbeat every Heartbeat and the
// whole view every Refresh, until ctx ends; then it withdraws this
// worker's fields and heartbeat and returns nil.
func (r *Reporter) Run(ctx context.Context) error {
	tick := time.NewTicker(r.opts.Poll)
	defer tick.Stop()
	var lastBeat, lastFull time.Time
	for {
		now := time.Now()
		beat := now.Sub(lastBeat) >= r.opts.Heartbeat
		full := now.Sub(lastFull) >= r.opts.Refresh || r.needFull
		// Dirty is read before the targets: a change while they are read
		// is dirty again at the next poll.
		var dirty []string
		all := r.opts.Dirty == nil || !r.published
		if !all {
			dirty, all = r.opts.Dirty()
		}
		var err error
		tried := true // a poll that asks Redis nothing says nothing of it
		switch {
		case beat || full || all:
			err = r.publish(ctx, full, beat, nil)
		case len(dirty) > 0:
			if err = r.publish(ctx, false, false, dirty); err != nil {
				r.needFull = true // what was dirty is read again, with the rest
			}
		default:
			tried = false
		}
		if err == nil && beat {
			// The heartbeat goes after the reports it vouches for.
			err = r.beat(ctx)
		}
		if err != nil {
			if ctx.Err() == nil {
				r.opts.Outage.Fail("health-report", err)
			}
		} else {
			if tried {
				r.opts.Outage.OK()
			}
			if beat {
				lastBeat = now
			}
			if full {
				lastFull = now
			}
		}
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			if err := r.withdraw(cctx); err != nil {
				r.opts.Logger.Warn("target health not withdrawn", "err", err)
			}
			return nil
		case <-tick.C:
		}
	}
}

// Publish writes the whole current view and the heartbeat once.
func (r *Reporter) Publish(ctx context.Context) error {
	if err := r.publish(ctx, true, true, nil); err != nil {
		return err
	}
	return r.beat(ctx)
}

// collect reads the served targets' state into r.cur: every target, or
// those of tenants.
func (r *Reporter) collect(tenants []string) {
	clear(r.cur)
	add := func(t TargetReport) {
		r.cur[targetKey{t.TenantID, t.UpstreamID, t.URL}] = t
	}
	if tenants == nil {
		r.opts.Targets(add)
	} else {
		r.opts.TenantTargets(tenants, add)
	}
}

func sig(t TargetReport) stateSig {
	return stateSig{healthy: t.Status.Healthy, ejected: t.Ejected, probed: !t.Status.LastCheck.IsZero(),
		lastErr: t.Status.LastError}
}

// publish writes what changed since the last publish: of every target, or
// (tenants not nil) of those tenants' targets only.
func (r *Reporter) publish(ctx context.Context, full, beat bool, tenants []string) error {
	if err := r.write(ctx, full, beat, tenants); err != nil {
		return err
	}
	if tenants == nil {
		r.published = true
	}
	return nil
}

// write writes what changed since the last publish: targets that are
// new, flipped (healthy, ejected) or probed for the first time, and with
// beat also those whose error text alone changed; with full, every target. Fields of targets no longer
// served are deleted. Nothing changed, nothing is written.
func (r *Reporter) write(ctx context.Context, full, beat bool, tenants []string) error {
	r.collect(tenants)
	now := time.Now().UTC()
	write := map[string][]any{} // tenant → field, value, …
	var written []targetKey
	for k, t := range r.cur {
		s := sig(t)
		old, ok := r.pub[k.tenant][k]
		switch {
		case full, !ok, old.healthy != s.healthy, old.ejected != s.ejected, old.probed != s.probed:
		case old.lastErr != s.lastErr && beat:
		default:
			continue
		}
		b, err := json.Marshal(proxycfg.TargetHealthReport{
			Healthy: t.Status.Healthy, Ejected: t.Ejected, LastCheck: t.Status.LastCheck.UTC(),
			LastError: t.Status.LastError, CheckedAt: now,
		})
		if err != nil {
			return fmt.Errorf("encode target health: %w", err)
		}
		write[k.tenant] = append(write[k.tenant], r.field(k), b)
		written = append(written, k)
	}
	gone := map[string][]string{}
	var removed []targetKey
	goneOf := func(m map[targetKey]stateSig) {
		for k := range m {
			if _, ok := r.cur[k]; !ok {
				gone[k.tenant] = append(gone[k.tenant], r.field(k))
				removed = append(removed, k)
			}
		}
	}
	if tenants == nil {
		for _, m := range r.pub {
			goneOf(m)
		}
	} else {
		for _, id := range tenants {
			goneOf(r.pub[id])
		}
	}
	if len(write) == 0 && len(gone) == 0 {
		return nil
	}
	// One pipeline per maxPipeline commands: on a Cluster, go-redis
	// splits a pipeline by node; every command touches one key.
	pipe := r.opts.Redis.Pipeline()
	flush := func(force bool) error {
		if pipe.Len() == 0 || (!force && pipe.Len() < maxPipeline) {
			return nil
		}
		_, err := pipe.Exec(ctx)
		pipe = r.opts.Redis.Pipeline()
		if err != nil {
			return fmt.Errorf("publish target health: %w", err)
		}
		return nil
	}
	for tenant, args := range write {
		key := r.opts.Keys.TargetHealth(tenant)
		pipe.HSet(ctx, key, args...)
		pipe.PExpire(ctx, key, r.opts.TTL)
		if err := flush(false); err != nil {
			return err
		}
	}
	for tenant, fields := range gone {
		pipe.HDel(ctx, r.opts.Keys.TargetHealth(tenant), fields...)
		if err := flush(false); err != nil {
			return err
		}
	}
	if err := flush(true); err != nil {
		return err
	}
	for _, k := range written {
		m := r.pub[k.tenant]
		if m == nil {
			m = map[targetKey]stateSig{}
			r.pub[k.tenant] = m
		}
		m[k] = sig(r.cur[k])
	}
	for _, k := range removed {
		delete(r.pub[k.tenant], k)
		if len(r.pub[k.tenant]) == 0 {
			delete(r.pub, k.tenant)
		}
	}
	if full {
		r.needFull = false
	}
	return nil
}

// beat writes the heartbeat. Finding it gone (Redis restarted or failed
// over and lost data) asks for a rewrite of the whole view: the fields
// this worker believes written may be gone too.
func (r *Reporter) beat(ctx context.Context) error {
	b, err := json.Marshal(proxycfg.TargetHealthBeat{At: time.Now().UTC(), IntervalMS: r.opts.Heartbeat.Milliseconds()})
	if err != nil {
		return fmt.Errorf("encode heartbeat: %w", err)
	}
	key := r.opts.Keys.TargetHealthBeat(r.opts.WorkerID)
	pipe := r.opts.Redis.Pipeline()
	existed := pipe.Exists(ctx, key)
	pipe.Set(ctx, key, b, 3*r.opts.Heartbeat)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("target health heartbeat: %w", err)
	}
	if existed.Val() == 0 && r.beaten {
		r.needFull = true
	}
	r.beaten = true
	return nil
}

// withdraw deletes this worker's fields and heartbeat.
func (r *Reporter) withdraw(ctx context.Context) error {
	gone := map[string][]string{}
	for _, m := range r.pub {
		for k := range m {
			gone[k.tenant] = append(gone[k.tenant], r.field(k))
		}
	}
	pipe := r.opts.Redis.Pipeline()
	for tenant, fields := range gone {
		pipe.HDel(ctx, r.opts.Keys.TargetHealth(tenant), fields...)
	}
	pipe.Del(ctx, r.opts.Keys.TargetHealthBeat(r.opts.WorkerID))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("withdraw target health: %w", err)
	}
	clear(r.pub)
	r.beaten = false
	return nil
}

func (r *Reporter) field(k targetKey) string {
	return proxycfg.TargetHealthField(k.upstream, k.url, r.opts.WorkerID)
}
