package publish

import (
	"slices"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/catalog"
)

// The mapping from the catalog's stored model to the contract (proxycfg):
// the one place where a field of an upstream, API or plan becomes what the
// workers enforce. Every field is copied by name; values that the contract
// spells differently (an omitted health check, the default rate-limit
// scope) are converted here. Nothing of the catalog's model is shared
// with the snapshot: the contract owns its types, and changing either side
// shows up here.

// tenantOf maps one tenant's gateway objects.
func tenantOf(g catalog.Gateway) proxycfg.Tenant {
	t := proxycfg.Tenant{
		ID:        g.TenantID,
		Slug:      g.TenantSlug,
		Upstreams: make([]proxycfg.Upstream, 0, len(g.Upstreams)),
		APIs:      make([]proxycfg.API, 0, len(g.APIs)),
		Plans:     make([]proxycfg.Plan, 0, len(g.Plans)),
	}
	for _, u := range g.Upstreams {
		t.Upstreams = append(t.Upstreams, upstreamOf(u))
	}
	for _, a := range g.APIs {
		t.APIs = append(t.APIs, apiOf(a, g.Routes[a.ID]))
	}
	for _, p := range g.Plans {
		t.Plans = append(t.Plans, planOf(p))
	}
	pruneJWTPlans(&t)
	return t
}

func upstreamOf(u catalog.Upstream) proxycfg.Upstream {
	out := proxycfg.Upstream{
		ID:          u.ID,
		Name:        u.Name,
		Algorithm:   u.Algorithm,
		Targets:     make([]proxycfg.Target, 0, len(u.Targets)),
		HealthCheck: healthCheckOf(u.HealthCheck),
	}
	for _, t := range u.Targets {
		out.Targets = append(out.Targets, targetOf(t))
	}
	if h := u.HashOn; h != nil {
		out.HashOn = &proxycfg.HashOn{Source: h.Source, Name: h.Name, BoundedLoad: h.BoundedLoad}
	}
	if o := u.Outlier; o != nil {
		out.Outlier = proxycfg.Outlier{Consecutive5xx: o.Consecutive5xx, ConsecutiveErrors: o.ConsecutiveErrors,
			BaseEjectionMS: o.BaseEjectionMS, MaxEjectionMS: o.MaxEjectionMS, MaxEjectionPercent: o.MaxEjectionPercent}
	}
	if r := u.Retry; r != nil {
		out.Retry = proxycfg.Retry{Attempts: r.Attempts, BudgetPercent: r.BudgetPercent, MinPerSecond: r.MinPerSecond}
	}
	if c := u.CircuitBreaker; c != nil {
		out.CircuitBreaker = proxycfg.CircuitBreaker{MaxRequests: c.MaxRequests}
	}
	return out
}

// targetOf maps a target; a stored target always has its weight, an
// omitted one means 1.
func targetOf(t catalog.Target) proxycfg.Target {
	w := 1
	if t.Weight != nil {
		w = *t.Weight
	}
	return proxycfg.Target{URL: t.URL, Weight: w}
}

// healthCheckOf maps an upstream's active health check; none is the zero
// check (every target taken as healthy).
func healthCheckOf(hc *catalog.HealthCheck) proxycfg.HealthCheck {
	if hc == nil {
		return proxycfg.HealthCheck{}
	}
	return proxycfg.HealthCheck{Path: hc.Path, IntervalMS: hc.IntervalMS, TimeoutMS: hc.TimeoutMS,
		HealthyThreshold: hc.HealthyThreshold, UnhealthyThreshold: hc.UnhealthyThreshold, ExpectedStatus: hc.ExpectedStatus}
}

// apiOf maps an API with the routes imported from its document. A route that
// fails proxycfg.ValidateRoute (stored by an older version) is left out
// rather than making the tenant's whole config unpublishable.
func apiOf(a catalog.API, routes []catalog.Route) proxycfg.API {
	out := proxycfg.API{
		ID:               a.ID,
		Slug:             a.Slug,
		Name:             a.Name,
		BasePath:         a.BasePath,
		UpstreamID:       a.UpstreamID,
		Auth:             a.Auth,
		StripBasePath:    a.StripBasePath,
		TimeoutMS:        a.TimeoutMS,
		ConnectTimeoutMS: a.ConnectTimeoutMS,
		ReadTimeoutMS:    a.ReadTimeoutMS,
		MaxBodyBytes:     a.MaxBodyBytes,
		Host:             a.Host,
		JWT:              jwtOf(a.JWT),
		// An API's ceiling counts every caller together: it has no scope.
		RateLimit: proxycfg.RateLimit{Requests: a.RateLimit.Requests, PerSeconds: a.RateLimit.PerSeconds, Burst: a.RateLimit.Burst},
	}
	for _, r := range routes {
		cr := proxycfg.Route{Method: r.Method, Path: r.Path}
		if proxycfg.ValidateRoute(cr) != nil {
			continue
		}
		out.Routes = append(out.Routes, cr)
	}
	return out
}

// jwtOf copies an API's JWT settings (deeply: pruneJWTPlans edits the copy).
func jwtOf(j *proxycfg.JWT) *proxycfg.JWT {
	if j == nil {
		return nil
	}
	out := &proxycfg.JWT{Issuer: j.Issuer, Audiences: slices.Clone(j.Audiences), Claim: j.Claim,
		Algorithms: slices.Clone(j.Algorithms), PlanID: j.PlanID, Subjects: slices.Clone(j.Subjects),
		Scopes: slices.Clone(j.Scopes)}
	for _, rs := range j.RouteScopes {
		out.RouteScopes = append(out.RouteScopes, proxycfg.RouteScopes{PathPrefix: rs.PathPrefix,
			Methods: slices.Clone(rs.Methods), Scopes: slices.Clone(rs.Scopes)})
	}
	return out
}

// planOf maps a plan. The default scope (key) is left out, so that plans
// stored before scopes existed compile as they did.
func planOf(p catalog.Plan) proxycfg.Plan {
	scope := p.RateLimit.Scope
	if scope == catalog.ScopeKey {
		scope = ""
	}
	ids := slices.Clone(p.APIIDs)
	if ids == nil {
		ids = []string{}
	}
	return proxycfg.Plan{
		ID:          p.ID,
		Name:        p.Name,
		RateLimit:   proxycfg.RateLimit{Requests: p.RateLimit.Requests, PerSeconds: p.RateLimit.PerSeconds, Burst: p.RateLimit.Burst, Scope: scope},
		Quota:       proxycfg.Quota{Requests: p.Quota.Requests, Period: p.Quota.Period},
		APIIDs:      ids,
		Concurrency: p.Concurrency,
	}
}

// pruneJWTPlans drops JWT plan references to plans that no longer exist
// (a plan deleted after the API named it), so that one stale reference
// cannot make the config invalid: callers mapped to a deleted plan are
// refused (403) instead.
func pruneJWTPlans(t *proxycfg.Tenant) {
	plans := make(map[string]bool, len(t.Plans))
	for _, p := range t.Plans {
		plans[p.ID] = true
	}
	for ai := range t.APIs {
		j := t.APIs[ai].JWT
		if j == nil {
			continue
		}
		if j.PlanID != "" && !plans[j.PlanID] {
			j.PlanID = ""
		}
		kept := j.Subjects[:0]
		for _, s := range j.Subjects {
			if plans[s.PlanID] {
				kept = append(kept, s)
			}
		}
		j.Subjects = kept
	}
}
