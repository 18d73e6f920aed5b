// Package pipeline is the engine-independent request pipeline of the proxy:
// tenant by host, API by longest base path, credential, key record, plan
// access, rate limit and target choice. It works on plain bytes and returns a
// Decision, so that any HTTP engine (fasthttp today, net/http for HTTP/2 and
// TLS later) can serve traffic over the same logic.
//
// A Runtime is the compiled, immutable form of one snapshot; it is built in
// full and then swapped in, never mutated.
package pipeline

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/proxy/balance"
	"github.com/tollgate/tollgate/proxy/health"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/router"
)

// DefaultTimeout bounds an upstream exchange of an API without TimeoutMS.
const DefaultTimeout = 30 * time.Second

// Runtime is one snapshot compiled for serving.
type Runtime struct {
	// Generation is the snapshot's generation.
	Generation int64
	routes     *router.Table[*API]
	upstreams  []health.Upstream
	targets    []*Target
}

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
	pool    *balance.Pool
	plans   map[string]*Plan
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
	// Handle is the engine's transport for this target, set by
	// BuildOptions.Attach.
	Handle any
}

// Plan is one plan as the pipeline enforces it.
type Plan struct {
	// ID is the plan's id.
	ID string
	// RateLimit is the plan's rate limit; Requests 0 means unlimited.
	RateLimit proxycfg.RateLimit
	// Policy is the pre-rendered RateLimit-Policy header value.
	Policy []byte
	apis   map[string]struct{}
}

// Allows reports whether the plan includes the API.
func (p *Plan) Allows(apiID string) bool {
	_, ok := p.apis[apiID]
	return ok
}

// BuildOptions are the worker's parts a Runtime is wired to.
type BuildOptions struct {
	// Domain serves tenants at <slug>.<Domain>.
	Domain string
	// Health supplies the targets' health state; nil means always healthy.
	Health *health.Checker
	// Attach, if set, is called for every target to set its Handle.
	Attach func(*Target)
}

// Build compiles a validated snapshot. It does not start anything; after the
// swap the caller syncs the health checker with HealthUpstreams.
func Build(snap *proxycfg.Snapshot, opts BuildOptions) (*Runtime, error) {
	if err := snap.Validate(); err != nil {
		return nil, fmt.Errorf("invalid snapshot: %w", err)
	}
	rt := &Runtime{Generation: snap.Generation}
	var epoch *atomic.Uint64
	if opts.Health != nil {
		epoch = opts.Health.Epoch()
	}
	tenants := make([]router.Tenant[*API], 0, len(snap.Tenants))
	for ti := range snap.Tenants {
		tn := &snap.Tenants[ti]
		plans := make(map[string]*Plan, len(tn.Plans))
		for _, p := range tn.Plans {
			pl := &Plan{ID: p.ID, RateLimit: p.RateLimit, apis: make(map[string]struct{}, len(p.APIIDs))}
			for _, id := range p.APIIDs {
				pl.apis[id] = struct{}{}
			}
			if p.RateLimit.Requests > 0 {
				pl.Policy = []byte(`"default";q=` + strconv.FormatInt(p.RateLimit.Requests, 10) +
					`;w=` + strconv.FormatInt(p.RateLimit.PerSeconds, 10))
			}
			plans[p.ID] = pl
		}
		type pool struct {
			targets []*Target
			pool    *balance.Pool
		}
		pools := make(map[string]pool, len(tn.Upstreams))
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
				if opts.Attach != nil {
					opts.Attach(t)
				}
				m := balance.Member{Weight: tg.Weight}
				if opts.Health != nil {
					m.Up = opts.Health.State(key, tg.URL)
				}
				members = append(members, m)
				targets = append(targets, t)
				rt.targets = append(rt.targets, t)
				hu.Targets = append(hu.Targets, tg.URL)
			}
			rt.upstreams = append(rt.upstreams, hu)
			pools[u.ID] = pool{targets: targets, pool: balance.New(u.Algorithm, members, epoch)}
		}
		routes := make([]router.Route[*API], 0, len(tn.APIs))
		for _, a := range tn.APIs {
			p := pools[a.UpstreamID]
			api := &API{TenantID: tn.ID, Config: a, Timeout: DefaultTimeout, Targets: p.targets, pool: p.pool, plans: plans}
			if a.TimeoutMS > 0 {
				api.Timeout = time.Duration(a.TimeoutMS) * time.Millisecond
			}
			routes = append(routes, router.Route[*API]{BasePath: a.BasePath, Value: api})
		}
		tenants = append(tenants, router.Tenant[*API]{Slug: tn.Slug, Domains: tn.Domains, Routes: routes})
	}
	table, err := router.Build(opts.Domain, tenants)
	if err != nil {
		return nil, fmt.Errorf("build routes: %w", err)
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

// EachTarget calls fn for every target of every API's upstream.
func (rt *Runtime) EachTarget(fn func(*Target)) {
	for _, t := range rt.targets {
		fn(t)
	}
}
