package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/proxy/balance"
	"github.com/tollgate/tollgate/proxy/health"
	"github.com/tollgate/tollgate/proxy/jwtauth"
	"github.com/tollgate/tollgate/proxy/metrics"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/router"
)

// DefaultTimeout bounds an upstream exchange of an API without TimeoutMS.
const DefaultTimeout = 30 * time.Second

// Runtime is one snapshot compiled for serving. It is never mutated after
// Build returns it.
type Runtime struct {
	// Generation is the snapshot's generation.
	Generation int64
	// CompiledAt is when the control plane compiled the snapshot.
	CompiledAt time.Time
	// DigestVersion is the snapshot's digest key version.
	DigestVersion int
	routes        *router.Table[*API]
	upstreams     []health.Upstream
	pools         []*Upstream
	apiMetrics    []*metrics.APIMetrics
	endpoints     []Endpoint
	stats         map[targetKey]*balance.Stats // the balancers' counters, by target
	bodyLimits    bool
	issuers       []string // JWT issuers of the APIs, exact URLs
}

// targetKey names a target across runtimes: the same URL in the same
// upstream of the same tenant is the same target.
type targetKey struct{ tenant, upstream, url string }

// API is one API as the pipeline serves it.
type API struct {
	// TenantID is the owning tenant.
	TenantID string
	// Config is the API's compiled configuration.
	Config proxycfg.API
	// Timeout bounds the upstream exchange.
	Timeout time.Duration
	// Targets are the upstream's targets, indexed like the pool's members.
	Targets []*Target
	// Upstream balances the API's traffic.
	Upstream *Upstream
	// ConnectTimeout bounds connecting to a target (0: engine default);
	// ReadTimeout bounds reading the response (0: Timeout only).
	ConnectTimeout, ReadTimeout time.Duration
	// MaxBodyBytes caps the request body (0: engine default).
	MaxBodyBytes int64
	// BaseSegments is the number of segments of the base path: the engine
	// forwards the client's path in normal form (router.CleanPath) less
	// that many segments when Config.StripBasePath (router.StripSegments).
	BaseSegments int
	// Metrics are the API's per-request metrics (nil without metrics).
	Metrics   *metrics.APIMetrics
	plans     map[string]*Plan
	jwt       *jwtAuth
	limits    limits
	routes    *router.Routes // nil: every method and path
	endpoints []int          // Runtime.endpoints index per target (Targets' order)
}

// Target is one upstream target.
type Target struct {
	// URL is the target URL as configured.
	URL string
	// Scheme is "http" or "https".
	Scheme string
	// Host is host:port (port made explicit), the address to dial.
	Host string
	// Authority is the host as written in the URL, sent as the Host header.
	Authority string
	// Path is the target URL's path without trailing slash, prefixed to
	// every forwarded path ("" for none).
	Path string
}

// Plan is one plan as the pipeline enforces it.
type Plan struct {
	// ID is the plan's id.
	ID string
	// RateLimit is the plan's rate limit; Requests 0 means unlimited.
	RateLimit proxycfg.RateLimit
	// Quota is the plan's quota; Requests 0 means unlimited.
	Quota proxycfg.Quota
	// Concurrency is the most requests in flight per subject; 0 is off.
	Concurrency int64
	// Policy is the pre-rendered RateLimit-Policy header value.
	Policy []byte
	apis   map[string]struct{}
}

// Allows reports whether the plan includes the API.
func (p *Plan) Allows(apiID string) bool {
	_, ok := p.apis[apiID]
	return ok
}

// BuildOptions are the worker's parts a Runtime is wired to. Build only
// reads them (and get-or-creates in their registries: health flags, metric
// series, JWT issuers, which the worker prunes after each swap).
type BuildOptions struct {
	// Domain serves tenants at <slug>.<Domain>.
	Domain string
	// Logger receives ejection events; nil discards.
	Logger *slog.Logger
	// Health supplies the targets' health state; nil means always healthy.
	Health *health.Checker
	// JWT verifies tokens of APIs with auth "jwt"; nil refuses them (401).
	JWT *jwtauth.Verifier
	// Metrics, if set, resolves per-API and per-upstream metrics.
	Metrics *metrics.Metrics
	// Previous is the runtime this one replaces, nil for the first. Its
	// targets' balancer counters (in flight, latency, ejections) are
	// shared with the new runtime's targets of the same tenant, upstream
	// and URL, so that ejections and latency averages survive reloads.
	// It is only read.
	Previous *Runtime
}

// Build compiles a validated snapshot. It starts nothing and changes no
// live state: a failed build leaves nothing behind. After the swap the
// caller syncs the health checker with HealthUpstreams.
func Build(snap *proxycfg.Snapshot, opts BuildOptions) (*Runtime, error) {
	if err := snap.Validate(); err != nil {
		return nil, fmt.Errorf("invalid snapshot: %w", err)
	}
	rt := &Runtime{Generation: snap.Generation, CompiledAt: snap.CompiledAt, DigestVersion: snap.DigestVersion,
		stats: map[targetKey]*balance.Stats{}}
	var epoch *atomic.Uint64
	if opts.Health != nil {
		epoch = opts.Health.Epoch()
	}
	endpoints := map[Endpoint]int{}
	endpoint := func(e Endpoint) int {
		i, ok := endpoints[e]
		if !ok {
			i = len(rt.endpoints)
			endpoints[e] = i
			rt.endpoints = append(rt.endpoints, e)
		}
		return i
	}
	tenants := make([]router.Tenant[*API], 0, len(snap.Tenants))
	for ti := range snap.Tenants {
		tn := &snap.Tenants[ti]
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
				m := balance.Member{Weight: tg.Weight, Stats: rt.targetStats(opts.Previous, targetKey{tn.ID, u.ID, tg.URL})}
				if opts.Health != nil {
					m.Up = opts.Health.State(key, tg.URL)
				}
				members = append(members, m)
				targets = append(targets, t)
				hu.Targets = append(hu.Targets, tg.URL)
			}
			rt.upstreams = append(rt.upstreams, hu)
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
			bo.OnEject = func(i int, d time.Duration) {
				up.Metrics.Ejected(targets[i].URL)
				if opts.Logger != nil {
					opts.Logger.Warn("upstream target ejected", "tenant", tn.Slug, "upstream", up.ID,
						"target", targets[i].URL, "for", d)
				}
			}
			up.Pool = balance.NewPool(members, bo)
			pools[u.ID] = up
			rt.pools = append(rt.pools, up)
		}
		routes := make([]router.Route[*API], 0, len(tn.APIs))
		for _, a := range tn.APIs {
			p := pools[a.UpstreamID]
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
				rt.apiMetrics = append(rt.apiMetrics, api.Metrics)
			}
			rt.bodyLimits = rt.bodyLimits || a.MaxBodyBytes > 0
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
				rt.issuers = append(rt.issuers, a.JWT.Issuer)
			}
			var err error
			if api.routes, err = router.CompileRoutes(a.Routes); err != nil {
				return nil, fmt.Errorf("tenant %q api %q: %w", tn.Slug, a.ID, err)
			}
			routes = append(routes, router.Route[*API]{BasePath: a.BasePath, Value: api})
		}
		tenants = append(tenants, router.Tenant[*API]{Slug: tn.Slug, Domains: tn.Domains, Routes: routes})
	}
	table, err := router.Build(opts.Domain, tenants)
	if err != nil {
		return nil, fmt.Errorf("build routes: %w", err)
	}
	if opts.Logger != nil {
		for _, e := range table.Skipped() {
			opts.Logger.Warn("tenant host name not served", "err", e)
		}
	}
	rt.routes = table
	return rt, nil
}

// HealthUpstreams lists the upstreams the health checker should watch for
// this runtime.
func (rt *Runtime) HealthUpstreams() []health.Upstream { return rt.upstreams }

// Route returns the API served at host and path.
func (rt *Runtime) Route(host, path []byte) (*API, bool) {
	api, ok, _ := rt.routes.Lookup(host, path)
	return api, ok
}

func newTarget(raw string) (*Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = strings.TrimSuffix(host, ":") + ":" + port
	}
	return &Target{URL: raw, Scheme: u.Scheme, Host: host, Authority: u.Host, Path: strings.TrimRight(u.EscapedPath(), "/")}, nil
}

// HasBodyLimits reports whether any API has its own body size limit.
func (rt *Runtime) HasBodyLimits() bool { return rt.bodyLimits }

// Upstreams lists the runtime's upstreams.
func (rt *Runtime) Upstreams() []*Upstream { return rt.pools }

// WarmJWT discovers the issuers of every JWT API ahead of traffic; failures
// are only logged by the verifier and retried on use.
func (rt *Runtime) WarmJWT(ctx context.Context) {
	rt.routes.Each(func(api *API) {
		if api.jwt != nil {
			_ = api.jwt.policy.Warm(ctx)
		}
	})
}

// JWTIssuers lists the issuer URLs of the runtime's JWT APIs (with
// repeats), the ones a shared jwtauth.Verifier keeps after the swap
// (Verifier.Prune).
func (rt *Runtime) JWTIssuers() []string { return rt.issuers }

// targetStats returns the balancer counters of target k: the previous
// runtime's when it had the target, else new ones.
func (rt *Runtime) targetStats(prev *Runtime, k targetKey) *balance.Stats {
	if s := rt.stats[k]; s != nil {
		return s // the same URL twice in one upstream
	}
	var s *balance.Stats
	if prev != nil {
		s = prev.stats[k]
	}
	if s == nil {
		s = new(balance.Stats)
	}
	rt.stats[k] = s
	return s
}

// Endpoints lists the distinct ways of reaching the runtime's targets (see
// Endpoint); Decision.Endpoint indexes it.
func (rt *Runtime) Endpoints() []Endpoint { return rt.endpoints }

// APIMetrics lists the metrics the runtime's APIs count into, so that the
// series of APIs no longer served can be pruned (metrics.Metrics.Retain).
func (rt *Runtime) APIMetrics() []*metrics.APIMetrics { return rt.apiMetrics }
