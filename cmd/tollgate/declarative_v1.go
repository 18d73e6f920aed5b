package main

// The format's objects to and from the /v1 client's types: live objects
// become specs (ids resolved to names), specs become request bodies (names
// resolved to ids).

import (
	"encoding/json"
	"slices"

	"github.com/tollgate/tollgate/services/mgmtapi/v1client"
)

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// names maps the tenant's object ids to names and back: the objects /v1
// answered, and those an apply has created since.
type names struct {
	upstreamID, upstreamName map[string]string // name -> id, id -> name
	apiID, apiSlug           map[string]string // slug -> id, id -> slug
	planID, planName         map[string]string // name -> id, id -> name
}

func newNames() *names {
	return &names{upstreamID: map[string]string{}, upstreamName: map[string]string{}, apiID: map[string]string{},
		apiSlug: map[string]string{}, planID: map[string]string{}, planName: map[string]string{}}
}

func (n *names) addUpstream(id, name string) { n.upstreamID[name], n.upstreamName[id] = id, name }
func (n *names) addAPI(id, slug string)      { n.apiID[slug], n.apiSlug[id] = id, slug }
func (n *names) addPlan(id, name string)     { n.planID[name], n.planName[id] = id, name }

// nameOr is m[id], or the id itself when the id is unknown.
func nameOr(m map[string]string, id string) string {
	if n, ok := m[id]; ok {
		return n
	}
	return id
}

func upstreamSpecOf(u v1client.Upstream) upstreamSpec {
	s := upstreamSpec{Name: u.Name, Algorithm: string(u.Algorithm)}
	for _, t := range u.Targets {
		s.Targets = append(s.Targets, targetSpec{URL: t.Url, Weight: t.Weight})
	}
	if h := u.HealthCheck; h != nil {
		s.HealthCheck = &healthCheckSpec{Path: deref(h.Path), IntervalMS: deref(h.IntervalMs), TimeoutMS: deref(h.TimeoutMs),
			HealthyThreshold: deref(h.HealthyThreshold), UnhealthyThreshold: deref(h.UnhealthyThreshold),
			ExpectedStatus: deref(h.ExpectedStatus)}
	}
	if h := u.HashOn; h != nil {
		s.HashOn = &hashOnSpec{Source: string(deref(h.Source)), Name: deref(h.Name), BoundedLoad: deref(h.BoundedLoad)}
	}
	if o := u.Outlier; o != nil {
		s.Outlier = &outlierSpec{Consecutive5xx: deref(o.Consecutive5xx), ConsecutiveErrors: deref(o.ConsecutiveErrors),
			BaseEjectionMS: deref(o.BaseEjectionMs), MaxEjectionMS: deref(o.MaxEjectionMs), MaxEjectionPercent: deref(o.MaxEjectionPercent)}
	}
	if r := u.Retry; r != nil {
		s.Retry = &retrySpec{Attempts: deref(r.Attempts), BudgetPercent: deref(r.BudgetPercent), MinPerSecond: deref(r.MinPerSecond)}
	}
	if c := u.CircuitBreaker; c != nil {
		s.CircuitBreaker = &circuitBreakerSpec{MaxRequests: deref(c.MaxRequests)}
	}
	return s.filled()
}

func rateLimitSpecOf(r v1client.RateLimit) *rateLimitSpec {
	return &rateLimitSpec{Requests: deref(r.Requests), PerSeconds: deref(r.PerSeconds), Burst: deref(r.Burst),
		Scope: string(deref(r.Scope))}
}

func apiSpecOf(a v1client.API, n *names) apiSpec {
	s := apiSpec{Name: a.Name, Slug: a.Slug, BasePath: a.BasePath, Upstream: nameOr(n.upstreamName, a.UpstreamId),
		Auth: string(a.Auth), StripBasePath: ptr(a.StripBasePath), TimeoutMS: a.TimeoutMs, RateLimit: rateLimitSpecOf(a.RateLimit),
		Published: a.Published, MaxBodyBytes: deref(a.MaxBodyBytes), Host: deref(a.Host),
		ConnectTimeoutMS: deref(a.ConnectTimeoutMs), ReadTimeoutMS: deref(a.ReadTimeoutMs)}
	if j := a.Jwt; j != nil {
		js := &jwtSpec{Issuer: deref(j.Issuer), Audiences: deref(j.Audiences), Claim: deref(j.Claim),
			Scopes: deref(j.Scopes)}
		for _, alg := range deref(j.Algorithms) {
			js.Algorithms = append(js.Algorithms, string(alg))
		}
		if id := deref(j.PlanId); id != "" {
			js.Plan = nameOr(n.planName, id)
		}
		for _, sub := range deref(j.Subjects) {
			ss := jwtSubjectSpec{Value: deref(sub.Value), ConsumerID: deref(sub.ConsumerId)}
			if id := deref(sub.PlanId); id != "" {
				ss.Plan = nameOr(n.planName, id)
			}
			js.Subjects = append(js.Subjects, ss)
		}
		for _, rs := range deref(j.RouteScopes) {
			js.RouteScopes = append(js.RouteScopes, routeScopesSpec{PathPrefix: deref(rs.PathPrefix),
				Methods: deref(rs.Methods), Scopes: deref(rs.Scopes)})
		}
		s.JWT = js
	}
	return s.filled()
}

func planSpecOf(p v1client.Plan, n *names) planSpec {
	s := planSpec{Name: p.Name, RateLimit: rateLimitSpecOf(p.RateLimit),
		Quota:       &quotaSpec{Requests: deref(p.Quota.Requests), Period: string(deref(p.Quota.Period))},
		Concurrency: p.Concurrency, Public: p.Public, ApprovalRequired: p.ApprovalRequired}
	for _, id := range p.ApiIds {
		s.APIs = append(s.APIs, nameOr(n.apiSlug, id))
	}
	if pr := p.Price; pr != nil {
		amount := deref(pr.Amount)
		if pr.Amount == nil {
			amount = deref(pr.AmountCents)
		}
		s.Price = &priceSpec{Amount: amount, Currency: deref(pr.Currency), Interval: string(deref(pr.Interval)),
			PerRequestDecimal: deref(pr.PerRequestDecimal), IncludedRequests: deref(pr.IncludedRequests)}
	}
	return s.filled()
}

func portalSpecOf(p v1client.Portal) portalSpec {
	return portalSpec{Enabled: p.Enabled, Signup: string(p.Signup), DisplayName: p.DisplayName, AccentColor: p.AccentColor,
		LogoURL: p.LogoUrl, SupportEmail: p.SupportEmail, AllowedEmailDomains: p.AllowedEmailDomains}.filled()
}

// request is the body that creates u (every field set).
func (u upstreamSpec) request() v1client.UpstreamRequest {
	f := u.filled()
	targets := make([]v1client.Target, len(f.Targets))
	for i, t := range f.Targets {
		targets[i] = v1client.Target{Url: t.URL, Weight: t.Weight}
	}
	r := v1client.UpstreamRequest{Name: ptr(f.Name), Algorithm: ptr(v1client.UpstreamRequestAlgorithm(f.Algorithm)), Targets: &targets}
	if h := f.HealthCheck; h != nil {
		r.HealthCheck = &v1client.HealthCheck{Path: ptr(h.Path), IntervalMs: ptr(h.IntervalMS), TimeoutMs: ptr(h.TimeoutMS),
			HealthyThreshold: ptr(h.HealthyThreshold), UnhealthyThreshold: ptr(h.UnhealthyThreshold), ExpectedStatus: ptr(h.ExpectedStatus)}
	}
	if h := f.HashOn; h != nil {
		r.HashOn = &v1client.HashOn{Source: ptr(v1client.HashOnSource(h.Source)), Name: ptr(h.Name), BoundedLoad: ptr(h.BoundedLoad)}
	}
	if o := f.Outlier; o != nil {
		r.Outlier = &v1client.Outlier{Consecutive5xx: ptr(o.Consecutive5xx), ConsecutiveErrors: ptr(o.ConsecutiveErrors),
			BaseEjectionMs: ptr(o.BaseEjectionMS), MaxEjectionMs: ptr(o.MaxEjectionMS), MaxEjectionPercent: ptr(o.MaxEjectionPercent)}
	}
	if rt := f.Retry; rt != nil {
		r.Retry = &v1client.Retry{Attempts: ptr(rt.Attempts), BudgetPercent: ptr(rt.BudgetPercent), MinPerSecond: ptr(rt.MinPerSecond)}
	}
	if c := f.CircuitBreaker; c != nil {
		r.CircuitBreaker = &v1client.CircuitBreaker{MaxRequests: ptr(c.MaxRequests)}
	}
	return r
}

func (r rateLimitSpec) request(withScope bool) *v1client.RateLimit {
	out := &v1client.RateLimit{Requests: ptr(r.Requests), PerSeconds: ptr(r.PerSeconds), Burst: ptr(r.Burst)}
	if withScope {
		out.Scope = ptr(v1client.RateLimitScope(r.Scope))
	}
	return out
}

// request is the body that creates a, with its upstream and plans named by
// id. A plan the tenant does not have yet is left out and listed in
// pending: the API is changed again once the plans exist.
func (a apiSpec) request(n *names) (req v1client.APIRequest, pending bool) {
	f := a.filled()
	req = v1client.APIRequest{Name: ptr(f.Name), Slug: ptr(f.Slug), BasePath: ptr(f.BasePath),
		UpstreamId: ptr(n.upstreamID[f.Upstream]), Auth: ptr(v1client.APIRequestAuth(f.Auth)), StripBasePath: f.StripBasePath,
		TimeoutMs: ptr(f.TimeoutMS), RateLimit: f.RateLimit.request(false), Published: ptr(f.Published),
		MaxBodyBytes: ptr(f.MaxBodyBytes), Host: ptr(f.Host), ConnectTimeoutMs: ptr(f.ConnectTimeoutMS),
		ReadTimeoutMs: ptr(f.ReadTimeoutMS)}
	if j := f.JWT; j != nil {
		algs := make([]v1client.JWTAlgorithms, len(j.Algorithms))
		for i, alg := range j.Algorithms {
			algs[i] = v1client.JWTAlgorithms(alg)
		}
		jr := &v1client.JWT{Issuer: ptr(j.Issuer), Audiences: ptr(slices.Clone(j.Audiences)), Claim: ptr(j.Claim),
			Algorithms: &algs, Scopes: ptr(slices.Clone(j.Scopes))}
		if j.Plan != "" {
			if id, ok := n.planID[j.Plan]; ok {
				jr.PlanId = ptr(id)
			} else {
				pending = true
			}
		}
		var subs []v1client.JWTSubject
		for _, s := range j.Subjects {
			sub := v1client.JWTSubject{Value: ptr(s.Value), ConsumerId: ptr(s.ConsumerID)}
			if s.Plan != "" {
				id, ok := n.planID[s.Plan]
				if !ok {
					pending = true
					continue
				}
				sub.PlanId = ptr(id)
			}
			subs = append(subs, sub)
		}
		jr.Subjects = &subs
		var rss []v1client.RouteScopes
		for _, rs := range j.RouteScopes {
			rss = append(rss, v1client.RouteScopes{PathPrefix: ptr(rs.PathPrefix), Methods: ptr(slices.Clone(rs.Methods)),
				Scopes: ptr(slices.Clone(rs.Scopes))})
		}
		jr.RouteScopes = &rss
		req.Jwt = jr
	}
	return req, pending
}

// request is the body that creates p, its APIs named by id.
func (p planSpec) request(n *names) v1client.PlanRequest {
	f := p.filled()
	ids := make([]string, 0, len(f.APIs))
	for _, s := range f.APIs {
		ids = append(ids, n.apiID[s])
	}
	req := v1client.PlanRequest{Name: ptr(f.Name), RateLimit: f.RateLimit.request(true),
		Quota:  &v1client.Quota{Requests: ptr(f.Quota.Requests), Period: ptr(v1client.QuotaPeriod(f.Quota.Period))},
		ApiIds: &ids, Concurrency: ptr(f.Concurrency), Public: ptr(f.Public), ApprovalRequired: ptr(f.ApprovalRequired)}
	if pr := f.Price; pr != nil {
		req.Price = &v1client.Price{Amount: ptr(pr.Amount), Currency: ptr(pr.Currency), Interval: ptr(v1client.PriceInterval(pr.Interval)),
			IncludedRequests: ptr(pr.IncludedRequests)}
		if pr.PerRequestDecimal != "" {
			req.Price.PerRequestDecimal = ptr(pr.PerRequestDecimal)
		}
	}
	return req
}

func (p portalSpec) request() v1client.PortalRequest {
	f := p.filled()
	doms := slices.Clone(f.AllowedEmailDomains)
	if doms == nil {
		doms = []string{}
	}
	return v1client.PortalRequest{Enabled: ptr(f.Enabled), Signup: ptr(v1client.PortalRequestSignup(f.Signup)),
		DisplayName: ptr(f.DisplayName), AccentColor: ptr(f.AccentColor), LogoUrl: ptr(f.LogoURL),
		SupportEmail: ptr(f.SupportEmail), AllowedEmailDomains: &doms}
}

// requestField is the request's name of a field of the format.
var requestField = map[string]string{"upstream": "upstream_id", "apis": "api_ids"}

// patchBody is the PATCH (or PUT /v1/portal) body that sets the given
// fields of the format to their values in req: a field req leaves out is
// sent as null, which resets it.
func patchBody(req any, fields []string) ([]byte, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	for _, f := range fields {
		if rf, ok := requestField[f]; ok {
			f = rf
		}
		v, ok := all[f]
		if !ok {
			v = json.RawMessage("null")
		}
		out[f] = v
	}
	return json.Marshal(out)
}
