package pipeline

import (
	"context"
	"time"

	"github.com/tollgate/tollgate/proxy/keyauth"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/ratelimit"
)

// KeyStore resolves API keys; *keyauth.Store implements it. Lookup returns
// nil for unknown or inactive keys and an error when it cannot tell.
type KeyStore interface {
	Lookup(ctx context.Context, key []byte) (*proxycfg.KeyRecord, error)
}

// Pipeline decides what happens to a request. Its fields are set once; it is
// safe for concurrent use.
type Pipeline struct {
	// Keys resolves API keys.
	Keys KeyStore
	// Limiter enforces plan rate limits.
	Limiter ratelimit.Limiter
}

// Request is what the pipeline reads of an HTTP request. The slices are only
// read during Decide.
type Request struct {
	// Host is the Host header (port allowed).
	Host []byte
	// Path is the request path without query, as routed.
	Path []byte
	// Authorization is the Authorization header.
	Authorization []byte
	// APIKey is the X-API-Key header.
	APIKey []byte
}

// Decision is the pipeline's answer. Problem non-nil means answer with it;
// otherwise forward to Target.
type Decision struct {
	// Problem is the error answer, nil to forward.
	Problem *problem.Problem
	// API is the routed API (nil when not found).
	API *API
	// Target is the chosen target when forwarding.
	Target *Target
	// Key is the caller's key record (nil for auth "none").
	Key *proxycfg.KeyRecord
	// Plan is the key's plan (nil for auth "none").
	Plan *Plan
	// Rate is the rate-limit decision; meaningful when Limited.
	Rate ratelimit.Decision
	// Limited reports that a rate limit applied and RateLimit headers
	// should be sent (on success and on 429).
	Limited bool
	// KeyInAuthorization reports that the key came from Authorization,
	// which then must not be forwarded. X-API-Key is never forwarded.
	KeyInAuthorization bool
}

// Decide runs the pipeline for req against rt and fills d (reset first).
func (p *Pipeline) Decide(ctx context.Context, rt *Runtime, req *Request, d *Decision) {
	*d = Decision{}
	if rt == nil {
		d.Problem = problem.Unavailable
		return
	}
	api, ok := rt.Route(req.Host, req.Path)
	if !ok {
		d.Problem = problem.NotFound
		return
	}
	d.API = api
	switch api.Config.Auth {
	case proxycfg.AuthNone:
	case proxycfg.AuthKey:
		if pr := p.authorize(ctx, api, req, d); pr != nil {
			d.Problem = pr
			return
		}
	default:
		// JWT validation needs issuer settings the snapshot does not carry yet.
		d.Problem = problem.Unauthorized
		return
	}
	i, ok := api.pool.Pick()
	if !ok {
		d.Problem = problem.NoHealthyTarget
		return
	}
	d.Target = api.Targets[i]
}

func (p *Pipeline) authorize(ctx context.Context, api *API, req *Request, d *Decision) *problem.Problem {
	key, inAuth := keyauth.Credential(req.Authorization, req.APIKey)
	if key == nil {
		return problem.Unauthorized
	}
	d.KeyInAuthorization = inAuth
	rec, err := p.Keys.Lookup(ctx, key)
	if err != nil {
		return problem.Unavailable
	}
	if rec == nil || rec.TenantID != api.TenantID {
		return problem.Unauthorized
	}
	d.Key = rec
	plan := api.plans[rec.PlanID]
	if plan == nil || !plan.Allows(api.Config.ID) {
		return problem.Forbidden
	}
	d.Plan = plan
	if plan.RateLimit.Requests <= 0 {
		return nil
	}
	rd, err := p.Limiter.Allow(ctx, rec.ID, plan.RateLimit, time.Now())
	if err != nil {
		return problem.Unavailable
	}
	d.Rate, d.Limited = rd, true
	if !rd.Allowed {
		return problem.RateLimited
	}
	return nil
}
