package pipeline

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tollgate/tollgate/proxy/cowmap"
	"github.com/tollgate/tollgate/proxy/health"
	"github.com/tollgate/tollgate/proxy/metrics"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/router"
)

// DefaultTimeout bounds an upstream exchange of an API without TimeoutMS.
const DefaultTimeout = 30 * time.Second

// Runtime is the compiled configuration the pipeline serves: a map from
// host names to tenants (Tenant), each with its APIs by base path. It is
// never mutated once made: a change of some tenants makes a new Runtime
// (Composer.Compose) whose map shares every other tenant's part with the
// old one.
type Runtime struct {
	// Generation is the index sequence the runtime was composed at (for
	// a runtime built from a Snapshot, the snapshot's generation).
	Generation int64
	// CompiledAt is when the control plane compiled the newest of the
	// runtime's shards.
	CompiledAt time.Time
	// DigestVersion is the installation's digest key version.
	DigestVersion int
	hosts         router.Hosts[*Tenant]
	tenants       cowmap.Map[*Tenant]
	endpoints     []Endpoint
	bodyLimits    int // tenants with an API of its own body limit
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
	Metrics *metrics.APIMetrics
	plans   map[string]*Plan
	jwt     *jwtAuth
	limits  limits
	routes  *router.Routes // nil: every method and path
	// endpoints index Runtime.Endpoints per target (Targets' order):
	// first the tenant's own list, made global when the tenant is
	// composed into a runtime.
	endpoints []int
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

// Route returns the API served at host and path.
func (rt *Runtime) Route(host, path []byte) (*API, bool) {
	tn, ok := rt.hosts.Lookup(host)
	if !ok || tn.refuse != nil {
		return nil, false
	}
	return tn.apis.Lookup(path)
}

// Tenant returns the part of tenant id (nil when the runtime has none).
func (rt *Runtime) Tenant(id string) *Tenant {
	if rt == nil {
		return nil
	}
	t, _ := rt.tenants.Get(id)
	return t
}

// TenantCount is the number of tenants of the runtime.
func (rt *Runtime) TenantCount() int { return rt.tenants.Len() }

// EachTenant calls fn with every tenant's part, in no order.
func (rt *Runtime) EachTenant(fn func(*Tenant)) {
	if rt == nil {
		return
	}
	for _, t := range rt.tenants.All() {
		fn(t)
	}
}

// HasBodyLimits reports whether any API has its own body size limit.
func (rt *Runtime) HasBodyLimits() bool { return rt.bodyLimits > 0 }

// Endpoints lists the distinct ways of reaching the runtime's targets (see
// Endpoint); Decision.Endpoint indexes it. An index stays the same endpoint
// for as long as a tenant of the runtime uses it; a slot no tenant uses is
// the zero Endpoint.
func (rt *Runtime) Endpoints() []Endpoint { return rt.endpoints }

// The lists below walk every tenant: they are for a worker's periodic
// work (metrics, health reports) and for changes that need the whole
// picture (a health check or metric series to drop), not for every change.

// HealthUpstreams lists the upstreams the health checker should watch for
// this runtime.
func (rt *Runtime) HealthUpstreams() []health.Upstream {
	var out []health.Upstream
	rt.EachTenant(func(t *Tenant) { out = append(out, t.upstreams...) })
	return out
}

// Upstreams lists the runtime's upstreams.
func (rt *Runtime) Upstreams() []*Upstream {
	var out []*Upstream
	rt.EachTenant(func(t *Tenant) { out = append(out, t.pools...) })
	return out
}

// WarmJWT discovers the issuers of every JWT API ahead of traffic; failures
// are only logged by the verifier and retried on use.
func (rt *Runtime) WarmJWT(ctx context.Context) {
	rt.EachTenant(func(t *Tenant) { t.WarmJWT(ctx) })
}

// JWTIssuers lists the issuer URLs of the runtime's JWT APIs (with
// repeats), the ones a shared jwtauth.Verifier keeps after the swap
// (Verifier.Prune).
func (rt *Runtime) JWTIssuers() []string {
	var out []string
	rt.EachTenant(func(t *Tenant) { out = append(out, t.issuers...) })
	return out
}

// APIMetrics lists the metrics the runtime's APIs count into, so that the
// series of APIs no longer served can be pruned (metrics.Metrics.Retain).
func (rt *Runtime) APIMetrics() []*metrics.APIMetrics {
	var out []*metrics.APIMetrics
	rt.EachTenant(func(t *Tenant) { out = append(out, t.apiMetrics...) })
	return out
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

// EndpointsChanged reports whether rt's endpoints differ from prev's (a
// runtime composed from prev shares prev's list when its tenants' changes
// added and freed none), so that the engine keeps its clients when they
// did not.
func (rt *Runtime) EndpointsChanged(prev *Runtime) bool {
	if prev == nil {
		return true
	}
	a, b := rt.endpoints, prev.endpoints
	return len(a) != len(b) || (len(a) > 0 && &a[0] != &b[0])
}
