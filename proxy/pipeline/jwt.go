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
	policy   *jwtauth.Policy
	cfg      proxycfg.JWT
	subjects map[string]*keyauth.Record // by claim value
}

func newJWTAuth(v *jwtauth.Verifier, tenantID string, cfg *proxycfg.JWT) (*jwtAuth, error) {
	pol, err := v.Policy(jwtauth.Config{Issuer: cfg.Issuer, Audiences: cfg.Audiences, Claim: cfg.Claim, Algorithms: cfg.Algorithms})
	if err != nil {
		return nil, err
	}
	j := &jwtAuth{policy: pol, cfg: *cfg, subjects: make(map[string]*keyauth.Record, len(cfg.Subjects))}
	for _, s := range cfg.Subjects {
		j.subjects[s.Value] = keyauth.NewRecord(proxycfg.KeyRecord{
			ID: "jwt:" + s.Value, TenantID: tenantID, ConsumerID: s.ConsumerID, PlanID: s.PlanID, Status: proxycfg.KeyActive,
		})
	}
	return j, nil
}

// jwtCredential verifies the bearer token and maps its subject to a key
// record: a listed subject gets its consumer and plan; any other gets the
// API's default plan, with the claim value as the consumer (and as the
// rate-limit subject, "jwt:<value>").
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
	if len(j.cfg.RouteScopes) > 0 {
		path := router.StripPrefix(req.Path, api.Config.BasePath)
		for _, rs := range j.cfg.RouteScopes {
			if !bytes.HasPrefix(path, []byte(rs.PathPrefix)) {
				continue
			}
			if len(rs.Methods) > 0 && !slices.ContainsFunc(rs.Methods, func(m string) bool { return strings.EqualFold(m, string(req.Method)) }) {
				continue
			}
			if !id.HasScopes(rs.Scopes) {
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
	return keyauth.NewRecord(proxycfg.KeyRecord{
		ID: "jwt:" + id.Subject, TenantID: api.TenantID, ConsumerID: id.Subject, PlanID: j.cfg.PlanID, Status: proxycfg.KeyActive,
	}), nil
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
