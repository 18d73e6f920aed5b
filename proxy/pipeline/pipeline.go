package pipeline

import (
	"context"
	"time"

	"github.com/tollgate/tollgate/proxy/keyauth"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/ratelimit"
)

// KeyStore resolves API keys; *keyauth.Store implements it. LookupAt returns
// nil for unknown or revoked keys, the record of any other (which the
// pipeline checks for expiry and status), and an error when it cannot tell;
// now is when the request arrived (cached answers are checked against it).
type KeyStore interface {
	LookupAt(ctx context.Context, key []byte, now time.Time) (*keyauth.Record, error)
}

// Pipeline decides what happens to a request. Its fields are set once; it is
// safe for concurrent use.
type Pipeline struct {
	// Keys resolves API keys.
	Keys KeyStore
	// Limiter enforces plan rate limits and API ceilings.
	Limiter ratelimit.Limiter
	// Quotas enforces plan quotas; nil skips them.
	Quotas QuotaTaker
	// Concurrency enforces plan concurrency limits; nil skips them.
	Concurrency ConcurrencyLimiter

	payments paymentProblems
}

// Request is what the pipeline reads of an HTTP request. The slices are only
// read during Decide.
type Request struct {
	// Host is the Host header (port allowed).
	Host []byte
	// Path is the request path without query, as routed: decoded, from a
	// path the engine checked and put in normal form with
	// router.CleanPath (which also bounds its length and segments), so
	// that routing, route scopes and the upstream read the same path.
	Path []byte
	// Authorization is the Authorization header.
	Authorization []byte
	// APIKey is the X-API-Key header.
	APIKey []byte
	// Method is the request method (for JWT route scopes).
	Method []byte
	// ClientIP is the client's address in a stable form (binary is fine):
	// it is only hashed (consistent hashing on client_ip).
	ClientIP []byte
	// Headers reads other headers and cookies (consistent hashing); nil
	// means none.
	Headers HeaderReader
	// Now is when the request arrived, the time keys' expiry and limits
	// are checked at; zero means time.Now().
	Now time.Time
}

// Decide runs the pipeline for req against rt and fills d (reset first).
func (p *Pipeline) Decide(ctx context.Context, rt *Runtime, req *Request, d *Decision) {
	*d = Decision{}
	if rt == nil {
		d.Problem = problem.NotReady
		return
	}
	tn, ok := rt.hosts.Lookup(req.Host)
	if !ok {
		d.Problem = problem.NotFound
		return
	}
	if tn.refuse != nil {
		d.Problem = tn.refuse
		return
	}
	api, ok := tn.apis.Lookup(req.Path)
	if !ok {
		d.Problem = problem.NotFound
		return
	}
	d.API = api
	if pr := matchRoute(api, req, d); pr != nil {
		d.Problem = pr
		return
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	switch api.Config.Auth {
	case proxycfg.AuthNone:
		if api.Config.RateLimit.Requests > 0 {
			if pr := p.throttle(ctx, api, nil, nil, d, now); pr != nil {
				d.Problem = pr
				return
			}
		}
	case proxycfg.AuthKey, proxycfg.AuthJWT:
		if pr := p.authorize(ctx, api, req, d, now); pr != nil {
			d.Problem = pr
			return
		}
	default:
		d.Problem = problem.Unauthorized
		return
	}
	d.Upstream = api.Upstream
	if !api.Upstream.pick(req, d, 0) {
		d.Problem = problem.NoHealthyTarget
		return
	}
	api.Upstream.Budget.Request()
}

func (p *Pipeline) authorize(ctx context.Context, api *API, req *Request, d *Decision, now time.Time) *problem.Problem {
	rec, pr := p.credential(ctx, api, req, d, now)
	if pr != nil {
		return pr
	}
	d.Key = &rec.KeyRecord
	plan := api.plans[rec.PlanID]
	if plan == nil || !plan.Allows(api.Config.ID) {
		return problem.Forbidden
	}
	d.Plan = plan
	return p.throttle(ctx, api, plan, rec, d, now)
}

// credential finds the caller's key record: by API key for auth "key", by
// verified JWT for auth "jwt". A key is then checked for expiry and status
// at now; a key refused for its status is still set as d.Key, so that the
// refusal is counted in its usage.
func (p *Pipeline) credential(ctx context.Context, api *API, req *Request, d *Decision, now time.Time) (*keyauth.Record, *problem.Problem) {
	if api.Config.Auth == proxycfg.AuthJWT {
		return p.jwtCredential(ctx, api, req)
	}
	key, inAuth := keyauth.Credential(req.Authorization, req.APIKey)
	if key == nil {
		return nil, problem.Unauthorized
	}
	d.KeyInAuthorization = inAuth
	rec, err := p.Keys.LookupAt(ctx, key, now)
	if err != nil {
		return nil, problem.Unavailable
	}
	if rec == nil || rec.TenantID != api.TenantID {
		return nil, problem.Unauthorized
	}
	if pr, payment := keyProblem(&rec.KeyRecord, now.Unix()); pr != nil {
		if pr != problem.Unauthorized {
			d.Key = &rec.KeyRecord
		}
		if payment {
			pr = p.payments.get(rec.BillingURL)
		}
		return nil, pr
	}
	return rec, nil
}
