package pipeline

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/proxy/jwtauth"
	"github.com/tollgate/tollgate/proxy/keyauth"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/router"
)

// Problems of JWT authentication.
var (
	problemBadToken = problem.New("unauthorized", 401, "Unauthorized",
		"A valid bearer token of the API's issuer is required: send it as 'Authorization: Bearer <jwt>'.")
	problemScope = problem.New("insufficient-scope", 403, "Forbidden",
		"The token lacks a scope this route requires.")
	problemNoPlan = problem.New("forbidden", 403, "Forbidden",
		"The token's subject is not mapped to a plan of this API.")
	problemIssuerDown = problem.New("unavailable", 503, "Service Unavailable",
		"The token issuer could not be reached to verify the token; retry later.")
)

// jwtAuth is an API's compiled JWT settings.
type jwtAuth struct {
	policy      *jwtauth.Policy
	cfg         proxycfg.JWT
	tenantID    string
	defaultNS   string // jwtNamespace of the default plan
	routeScopes []routeScope
	subjects    map[string]*keyauth.Record // by claim value
}

// routeScope is a proxycfg.RouteScopes compiled for per-segment matching.
type routeScope struct {
	segments [][]byte // the path prefix's non-empty segments
	methods  []string
	scopes   []string
}

// covers reports whether the scope applies to path (relative to the API's
// base path, decoded, in CleanPath's normal form). It compares whole
// segments, so "/admin" covers "/admin" and "/admin/x" but not
// "/administrator", and it fails closed where upstreams read paths
// differently: segments compare without regard to ASCII case (some servers
// ignore it) and without their path parameters (";jsessionid=..." is not
// part of the resource name to Tomcat and Jetty), so "/ADMIN;x/y" is under
// "/admin" too.
func (rs *routeScope) covers(path []byte) bool {
	rest := path
	if len(rest) > 0 && rest[0] == '/' {
		rest = rest[1:]
	}
	for i, want := range rs.segments {
		seg, tail, more := bytes.Cut(rest, []byte{'/'})
		if j := bytes.IndexByte(seg, ';'); j >= 0 {
			seg = seg[:j]
		}
		if !bytes.EqualFold(seg, want) {
			return false
		}
		if !more && i < len(rs.segments)-1 {
			return false
		}
		rest = tail
	}
	return true
}

func compileRouteScopes(in []proxycfg.RouteScopes) []routeScope {
	out := make([]routeScope, 0, len(in))
	for _, rs := range in {
		c := routeScope{methods: rs.Methods, scopes: rs.Scopes}
		for seg := range strings.SplitSeq(rs.PathPrefix, "/") {
			if seg != "" {
				c.segments = append(c.segments, []byte(seg))
			}
		}
		out = append(out, c)
	}
	return out
}

// jwtNamespace prefixes the limit subjects of a tenant's JWT callers under
// one plan (keyauth.NewScopedRecord): two tenants whose issuers name a
// caller alike, or one caller under two plans, never share a rate limit,
// quota or concurrency counter.
func jwtNamespace(tenantID, planID string) string { return "jwt/" + tenantID + "/" + planID }

func newJWTAuth(v *jwtauth.Verifier, tenantID string, cfg *proxycfg.JWT) (*jwtAuth, error) {
	pol, err := v.Policy(jwtauth.Config{Issuer: cfg.Issuer, Audiences: cfg.Audiences, Claim: cfg.Claim, Algorithms: cfg.Algorithms})
	if err != nil {
		return nil, err
	}
	j := &jwtAuth{policy: pol, cfg: *cfg, tenantID: tenantID, defaultNS: jwtNamespace(tenantID, cfg.PlanID),
		routeScopes: compileRouteScopes(cfg.RouteScopes),
		subjects:    make(map[string]*keyauth.Record, len(cfg.Subjects))}
	for _, s := range cfg.Subjects {
		// TenantID is the API's tenant whatever the mapping says: the
		// snapshot does not hold consumers, so a worker cannot check that
		// ConsumerID is one of the tenant's (the control plane must);
		// limits and usage still stay within the tenant.
		j.subjects[s.Value] = keyauth.NewScopedRecord(proxycfg.KeyRecord{
			ID: "jwt:" + s.Value, TenantID: tenantID, ConsumerID: s.ConsumerID, PlanID: s.PlanID, Status: proxycfg.KeyActive,
		}, jwtNamespace(tenantID, s.PlanID))
	}
	return j, nil
}

// jwtCredential verifies the bearer token and maps its subject to a key
// record: a listed subject gets its consumer and plan; any other gets the
// API's default plan, with the claim value as the consumer. The record's
// id is "jwt:<value>" (as usage shows it); its limit subjects are
// namespaced by tenant and plan (jwtNamespace).
func (p *Pipeline) jwtCredential(ctx context.Context, api *API, req *Request) (*keyauth.Record, *problem.Problem) {
	j := api.jwt
	if j == nil {
		return nil, problemBadToken
	}
	tok := bearer(req.Authorization)
	if tok == nil {
		return nil, problemBadToken
	}
	id, err := j.policy.Verify(ctx, tok)
	if err != nil {
		if errors.Is(err, jwtauth.ErrUnavailable) {
			return nil, problemIssuerDown
		}
		return nil, problemBadToken
	}
	if !id.HasScopes(j.cfg.Scopes) {
		return nil, problemScope
	}
	if len(j.routeScopes) > 0 {
		path := router.StripPrefix(req.Path, api.Config.BasePath)
		for i := range j.routeScopes {
			rs := &j.routeScopes[i]
			if !rs.covers(path) {
				continue
			}
			if len(rs.methods) > 0 && !slices.ContainsFunc(rs.methods, func(m string) bool { return strings.EqualFold(m, string(req.Method)) }) {
				continue
			}
			if !id.HasScopes(rs.scopes) {
				return nil, problemScope
			}
		}
	}
	if rec := j.subjects[id.Subject]; rec != nil {
		return rec, nil
	}
	if j.cfg.PlanID == "" {
		return nil, problemNoPlan
	}
	return keyauth.NewScopedRecord(proxycfg.KeyRecord{
		ID: "jwt:" + id.Subject, TenantID: j.tenantID, ConsumerID: id.Subject, PlanID: j.cfg.PlanID, Status: proxycfg.KeyActive,
	}, j.defaultNS), nil
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(authorization []byte) []byte {
	const prefix = "bearer "
	a := bytes.TrimSpace(authorization)
	if len(a) <= len(prefix) || !strings.EqualFold(string(a[:len(prefix)]), prefix) {
		return nil
	}
	t := bytes.TrimSpace(a[len(prefix):])
	if len(t) == 0 {
		return nil
	}
	return t
}
