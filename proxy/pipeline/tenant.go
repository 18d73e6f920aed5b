package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/proxy/balance"
	"github.com/tollgate/tollgate/proxy/health"
	"github.com/tollgate/tollgate/proxy/jwtauth"
	"github.com/tollgate/tollgate/proxy/metrics"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/router"
)

// Tenant is one tenant's part of a runtime, built from its shard: its APIs
// by base path, its upstreams and balancers, their health checks, metrics
// and the endpoints its targets are reached by. It is never changed once
// composed into a runtime, and runtimes composed later share it until the
// tenant changes.
type Tenant struct {
	// ID, Slug and Domains name the tenant and its host names.
	ID, Slug string
	Domains  []string
	// Generation, CompiledAt and Capability are its shard's.
	Generation int64
	CompiledAt time.Time
	Capability int

	refuse     *problem.Problem // non-nil: every request to the tenant's hosts gets it
	apis       *router.Prefixes[*API]
	apiList    []*API
	upstreams  []health.Upstream
	pools      []*Upstream
	apiMetrics []*metrics.APIMetrics
	stats      map[targetKey]*balance.Stats // the balancers' counters, by target
	bodyLimits bool
	issuers    []string   // JWT issuers of the APIs, exact URLs
	endpoints  []Endpoint // distinct, in the order the APIs' endpoints index
	global     []int      // Runtime.endpoints index of each of endpoints, once composed
	composed   bool
}

// targetKey names a target across parts: the same URL in the same upstream
// of the same tenant is the same target.
type targetKey struct{ upstream, url string }

// BuildOptions are the worker's parts a tenant is wired to. Building only
// reads them (and get-or-creates in their registries: health flags, metric
// series, JWT issuers, which the worker prunes after a swap).
type BuildOptions struct {
	// Domain serves tenants at <slug>.<Domain>.
	Domain string
	// Logger receives ejection events and host names left out; nil
	// discards.
	Logger *slog.Logger
	// Health supplies the targets' health state; nil means always healthy.
	Health *health.Checker
	// JWT verifies tokens of APIs with auth "jwt"; nil refuses them (401).
	JWT *jwtauth.Verifier
	// Metrics, if set, resolves per-API and per-upstream metrics.
	Metrics *metrics.Metrics
	// OnEject, when set, is told of every outlier ejection (the tenant,
	// for how long), from the request path: it must be cheap.
	OnEject func(tenantID string, d time.Duration)
	// Previous is, for Build, the runtime the new one replaces (nil for
	// the first): each tenant's balancer counters carry over from its
	// part there (see BuildTenant). It is only read.
	Previous *Runtime
}

// ShardInfo is what a part records of its shard.
type ShardInfo struct {
	Generation int64
	CompiledAt time.Time
	Capability int
}

// BuildTenant compiles one tenant's validated configuration into its part.
// prev is the tenant's part in the live runtime (nil for none): its
// targets' balancer counters (in flight, latency, ejections) are shared
// with the new part's targets of the same upstream and URL, so that
// ejections and latency averages survive the tenant's changes. It starts
// nothing and changes no live state: a failed build leaves nothing behind.
func BuildTenant(tn *proxycfg.Tenant, info ShardInfo, prev *Tenant, opts BuildOptions) (*Tenant, error) {
	part := &Tenant{ID: tn.ID, Slug: tn.Slug, Domains: tn.Domains, Generation: info.Generation,
		CompiledAt: info.CompiledAt, Capability: info.Capability, stats: map[targetKey]*balance.Stats{}}
	var epoch *atomic.Uint64
	if opts.Health != nil {
		epoch = opts.Health.Epoch()
	}
	endpoints := map[Endpoint]int{}
	endpoint := func(e Endpoint) int {
		i, ok := endpoints[e]
		if !ok {
			i = len(part.endpoints)
			endpoints[e] = i
			part.endpoints = append(part.endpoints, e)
		}
		return i
	}
	plans := make(map[string]*Plan, len(tn.Plans))
	for _, p := range tn.Plans {
		pl := &Plan{ID: p.ID, RateLimit: p.RateLimit, Quota: p.Quota, Concurrency: p.Concurrency,
			Policy: renderPolicy(p.RateLimit, p.Quota), apis: make(map[string]struct{}, len(p.APIIDs))}
		for _, id := range p.APIIDs {
			pl.apis[id] = struct{}{}
		}
		plans[p.ID] = pl
	}
	pools := make(map[string]*Upstream, len(tn.Upstreams))
	for _, u := range tn.Upstreams {
		key := tn.ID + "/" + u.ID
		hu := health.Upstream{Key: key, Check: u.HealthCheck}
		members := make([]balance.Member, 0, len(u.Targets))
		targets := make([]*Target, 0, len(u.Targets))
		for _, tg := range u.Targets {
			t, err := newTarget(tg.URL)
			if err != nil {
				return nil, fmt.Errorf("tenant %q upstream %q: %w", tn.Slug, u.ID, err)
			}
			m := balance.Member{Weight: tg.Weight, Stats: part.targetStats(prev, targetKey{u.ID, tg.URL})}
			if opts.Health != nil {
				m.Up = opts.Health.State(key, tg.URL)
			}
			members = append(members, m)
			targets = append(targets, t)
			hu.Targets = append(hu.Targets, tg.URL)
		}
		part.upstreams = append(part.upstreams, hu)
		up := &Upstream{TenantSlug: tn.Slug, TenantID: tn.ID, ID: u.ID, Targets: targets, HashOn: u.HashOn, Retry: u.Retry}
		if opts.Metrics != nil {
			up.Metrics = opts.Metrics.Upstream(tn.Slug, u.ID)
		}
		if u.Retry.Attempts > 0 {
			pct, floor := u.Retry.BudgetPercent, u.Retry.MinPerSecond
			if pct == 0 {
				pct = 20
			}
			if floor == 0 {
				floor = 3
			}
			up.Budget = balance.NewBudget(pct, floor, nil)
		}
		bo := balance.Options{Algorithm: u.Algorithm, Epoch: epoch, Outlier: u.Outlier, MaxRequests: u.CircuitBreaker.MaxRequests}
		if u.HashOn != nil {
			bo.BoundedLoad = u.HashOn.BoundedLoad
		}
		logger, onEject := opts.Logger, opts.OnEject
		bo.OnEject = func(i int, d time.Duration) {
			if onEject != nil {
				onEject(tn.ID, d)
			}
			up.Metrics.Ejected(targets[i].URL)
			if logger != nil {
				logger.Warn("upstream target ejected", "tenant", tn.Slug, "upstream", up.ID,
					"target", targets[i].URL, "for", d)
			}
		}
		up.Pool = balance.NewPool(members, bo)
		pools[u.ID] = up
		part.pools = append(part.pools, up)
	}
	routes := make([]router.Route[*API], 0, len(tn.APIs))
	for _, a := range tn.APIs {
		p := pools[a.UpstreamID]
		if p == nil {
			return nil, fmt.Errorf("tenant %q api %q: unknown upstream %q", tn.Slug, a.ID, a.UpstreamID)
		}
		api := &API{TenantID: tn.ID, Config: a, Timeout: DefaultTimeout, Targets: p.Targets, Upstream: p, plans: plans,
			limits:         limits{subject: "api/" + a.ID},
			ConnectTimeout: time.Duration(a.ConnectTimeoutMS) * time.Millisecond,
			ReadTimeout:    time.Duration(a.ReadTimeoutMS) * time.Millisecond,
			MaxBodyBytes:   a.MaxBodyBytes,
			BaseSegments:   router.Segments(a.BasePath)}
		if a.TimeoutMS > 0 {
			api.Timeout = time.Duration(a.TimeoutMS) * time.Millisecond
		}
		if opts.Metrics != nil {
			api.Metrics = opts.Metrics.API(tn.Slug, a.Slug)
			part.apiMetrics = append(part.apiMetrics, api.Metrics)
		}
		part.bodyLimits = part.bodyLimits || a.MaxBodyBytes > 0
		api.endpoints = make([]int, len(p.Targets))
		for i, t := range p.Targets {
			api.endpoints[i] = endpoint(Endpoint{Scheme: t.Scheme, Host: t.Host,
				ConnectTimeout: api.ConnectTimeout, ReadTimeout: api.ReadTimeout})
		}
		if a.Auth == proxycfg.AuthJWT && a.JWT != nil && opts.JWT != nil {
			j, err := newJWTAuth(opts.JWT, tn.ID, a.JWT)
			if err != nil {
				return nil, fmt.Errorf("tenant %q api %q: %w", tn.Slug, a.ID, err)
			}
			api.jwt = j
			part.issuers = append(part.issuers, a.JWT.Issuer)
		}
		var err error
		if api.routes, err = router.CompileRoutes(a.Routes); err != nil {
			return nil, fmt.Errorf("tenant %q api %q: %w", tn.Slug, a.ID, err)
		}
		routes = append(routes, router.Route[*API]{BasePath: a.BasePath, Value: api})
		part.apiList = append(part.apiList, api)
	}
	apis, err := router.NewPrefixes(routes)
	if err != nil {
		return nil, fmt.Errorf("tenant %q: %w", tn.Slug, err)
	}
	part.apis = apis
	return part, nil
}

// RefuseTenant makes a part that answers every request to the tenant's
// host names with p: the part of a tenant whose shard this worker cannot
// enforce (and that it has no older shard of).
func RefuseTenant(id, slug string, domains []string, info ShardInfo, p *problem.Problem) *Tenant {
	return &Tenant{ID: id, Slug: slug, Domains: domains, Generation: info.Generation, CompiledAt: info.CompiledAt,
		Capability: info.Capability, refuse: p, apis: &router.Prefixes[*API]{}, stats: map[targetKey]*balance.Stats{}}
}

// Refused reports whether the part refuses every request (RefuseTenant).
func (t *Tenant) Refused() bool { return t.refuse != nil }

// HealthUpstreams lists the tenant's upstreams for the health checker.
func (t *Tenant) HealthUpstreams() []health.Upstream { return t.upstreams }

// Upstreams lists the tenant's upstreams.
func (t *Tenant) Upstreams() []*Upstream { return t.pools }

// APIMetrics lists the metrics the tenant's APIs count into.
func (t *Tenant) APIMetrics() []*metrics.APIMetrics { return t.apiMetrics }

// JWTIssuers lists the issuer URLs of the tenant's JWT APIs.
func (t *Tenant) JWTIssuers() []string { return t.issuers }

// WarmJWT discovers the issuers of the tenant's JWT APIs ahead of traffic.
func (t *Tenant) WarmJWT(ctx context.Context) {
	for _, api := range t.apiList {
		if api.jwt != nil {
			_ = api.jwt.policy.Warm(ctx)
		}
	}
}

// targetStats returns the balancer counters of target k: prev's when it
// had the target, else new ones.
func (t *Tenant) targetStats(prev *Tenant, k targetKey) *balance.Stats {
	if s := t.stats[k]; s != nil {
		return s // the same URL twice in one upstream
	}
	var s *balance.Stats
	if prev != nil {
		s = prev.stats[k]
	}
	if s == nil {
		s = new(balance.Stats)
	}
	t.stats[k] = s
	return s
}

// WorkerTooOld answers the requests to a tenant whose config needs a newer
// worker than this one (RefuseTenant): it must not be served with
// restrictions this worker cannot read.
var WorkerTooOld = problem.New("unavailable", 503, "Service Unavailable",
	"This gateway worker is too old for the API provider's current configuration and does not serve it; retry later, when an up-to-date worker answers.")
