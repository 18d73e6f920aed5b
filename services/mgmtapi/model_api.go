package mgmtapi

import (
	"slices"
	"time"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/catalog"
)

// APIRequest creates an API (POST /v1/apis); PATCH merges the fields it
// names into the API's current ones.
type APIRequest struct {
	Name          string    `json:"name" maxLength:"200"`
	Slug          string    `json:"slug" pattern:"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" doc:"a lowercase DNS label, unique in the tenant"`
	BasePath      string    `json:"base_path" doc:"the path prefix the API is served under, unique in the tenant: /orders"`
	UpstreamID    string    `json:"upstream_id" format:"uuid"`
	Auth          string    `json:"auth" enum:"key,jwt,none" default:"key"`
	StripBasePath *bool     `json:"strip_base_path" default:"true" doc:"remove base_path before forwarding"`
	TimeoutMS     int       `json:"timeout_ms" min:"0" max:"300000" doc:"bounds the upstream exchange; 0: the proxy default"`
	RateLimit     RateLimit `json:"rate_limit" doc:"a ceiling on all the API's traffic together (it protects the backend); requests 0: none; scope does not apply"`
	Published     bool      `json:"published" doc:"listed in the developer portal"`
	JWT           *JWT      `json:"jwt,omitempty"`
	MaxBodyBytes  int64     `json:"max_body_bytes,omitempty" min:"0" doc:"request body limit (413 beyond); 0: the proxy default"`
	Host          string    `json:"host,omitempty" doc:"Host sent upstream: omitted = the target's, \"preserve\" = the client's, or a host name"`
	// ConnectTimeoutMS and ReadTimeoutMS: 0 takes the proxy's default.
	ConnectTimeoutMS int `json:"connect_timeout_ms,omitempty" min:"0" max:"60000" doc:"0: the proxy default (5s)"`
	ReadTimeoutMS    int `json:"read_timeout_ms,omitempty" min:"0" max:"300000" doc:"bounds reading the response; 0: timeout_ms only"`
}

func (APIRequest) schemaDoc() string {
	return "What a caller sets on an API: where it is served, which upstream serves it and how callers authenticate."
}

// API is a stored API.
type API struct {
	ID               string    `json:"id" format:"uuid"`
	Name             string    `json:"name"`
	Slug             string    `json:"slug"`
	BasePath         string    `json:"base_path"`
	UpstreamID       string    `json:"upstream_id" format:"uuid"`
	Auth             string    `json:"auth" enum:"key,jwt,none"`
	StripBasePath    bool      `json:"strip_base_path"`
	TimeoutMS        int       `json:"timeout_ms" doc:"0: the proxy default"`
	RateLimit        RateLimit `json:"rate_limit" doc:"a ceiling on all the API's traffic together; requests 0: none"`
	Published        bool      `json:"published" doc:"listed in the developer portal"`
	JWT              *JWT      `json:"jwt,omitempty"`
	MaxBodyBytes     int64     `json:"max_body_bytes,omitempty"`
	Host             string    `json:"host,omitempty"`
	ConnectTimeoutMS int       `json:"connect_timeout_ms,omitempty"`
	ReadTimeoutMS    int       `json:"read_timeout_ms,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

func (API) schemaDoc() string {
	return "A tenant's HTTP API, served under base_path on the tenant's gateway hosts."
}

// RateLimit allows requests per per_seconds.
type RateLimit struct {
	Requests   int64  `json:"requests" min:"0" doc:"0: unlimited"`
	PerSeconds int64  `json:"per_seconds" min:"0" max:"86400"`
	Burst      int64  `json:"burst" min:"0" doc:"also at most burst requests per per_seconds*burst/requests; 0: no cap"`
	Scope      string `json:"scope,omitempty" enum:"key,consumer" doc:"plans only: whose requests share the plan's limits (default key)"`
}

func (RateLimit) schemaDoc() string {
	return "At most requests per per_seconds, in a sliding window."
}

// JWT configures an API with auth jwt.
type JWT struct {
	Issuer      string        `json:"issuer" format:"uri"`
	Audiences   []string      `json:"audiences" doc:"accepted aud values; a token must carry one"`
	Claim       string        `json:"claim,omitempty" default:"sub" doc:"sub, client_id or any string claim"`
	Algorithms  []string      `json:"algorithms,omitempty" enum:"RS256,RS384,RS512,ES256,ES384,ES512,PS256,PS384,PS512,EdDSA" doc:"default RS256"`
	PlanID      string        `json:"plan_id,omitempty" format:"uuid" doc:"plan of callers not listed in subjects; empty: they are refused"`
	Subjects    []JWTSubject  `json:"subjects,omitempty"`
	Scopes      []string      `json:"scopes,omitempty" doc:"required on every request"`
	RouteScopes []RouteScopes `json:"route_scopes,omitempty"`
}

func (JWT) schemaDoc() string {
	return "auth jwt: tokens are verified against the issuer's OIDC discovery and JWKS; the claim's value maps to a consumer and plan through subjects, else plan_id, else 403."
}

// JWTSubject maps one claim value to a consumer and a plan.
type JWTSubject struct {
	Value      string `json:"value"`
	ConsumerID string `json:"consumer_id" format:"uuid" doc:"a consumer of the tenant"`
	PlanID     string `json:"plan_id" format:"uuid"`
}

func (JWTSubject) schemaDoc() string { return "One claim value mapped to a consumer and a plan." }

// RouteScopes requires scopes on some routes.
type RouteScopes struct {
	PathPrefix string   `json:"path_prefix" doc:"after the base path, compared segment by segment"`
	Methods    []string `json:"methods,omitempty" doc:"empty: every method"`
	Scopes     []string `json:"scopes"`
}

func (RouteScopes) schemaDoc() string {
	return "Scopes required on requests under path_prefix with one of methods."
}

// APIDocument is the summary of an API's imported OpenAPI document.
type APIDocument struct {
	Title      string     `json:"title"`
	Version    string     `json:"version"`
	Routes     []APIRoute `json:"routes"`
	ImportedAt time.Time  `json:"imported_at"`
}

func (APIDocument) schemaDoc() string {
	return "An API's imported OpenAPI document: its title, version and the routes the proxy enforces."
}

// APIRoute is one operation of an imported document.
type APIRoute struct {
	Method      string `json:"method"`
	Path        string `json:"path" doc:"relative to the API's base path"`
	OperationID string `json:"operation_id"`
	Summary     string `json:"summary"`
}

func (APIRoute) schemaDoc() string { return "One operation of an imported OpenAPI document." }

func (r APIRequest) input() catalog.APIInput {
	return catalog.APIInput{Name: r.Name, Slug: r.Slug, BasePath: r.BasePath, UpstreamID: r.UpstreamID, Auth: r.Auth,
		StripBasePath: clonePtr(r.StripBasePath), TimeoutMS: r.TimeoutMS, RateLimit: r.RateLimit.domain(), Published: r.Published,
		APIDataplane: catalog.APIDataplane{JWT: r.JWT.contract(), MaxBodyBytes: r.MaxBodyBytes, Host: r.Host,
			ConnectTimeoutMS: r.ConnectTimeoutMS, ReadTimeoutMS: r.ReadTimeoutMS}}
}

func apiRequestOf(in catalog.APIInput) APIRequest {
	return APIRequest{Name: in.Name, Slug: in.Slug, BasePath: in.BasePath, UpstreamID: in.UpstreamID, Auth: in.Auth,
		StripBasePath: clonePtr(in.StripBasePath), TimeoutMS: in.TimeoutMS, RateLimit: rateLimitOf(in.RateLimit),
		Published: in.Published, JWT: jwtOf(in.JWT), MaxBodyBytes: in.MaxBodyBytes, Host: in.Host,
		ConnectTimeoutMS: in.ConnectTimeoutMS, ReadTimeoutMS: in.ReadTimeoutMS}
}

func apiOf(a catalog.API) API {
	return API{ID: a.ID, Name: a.Name, Slug: a.Slug, BasePath: a.BasePath, UpstreamID: a.UpstreamID, Auth: a.Auth,
		StripBasePath: a.StripBasePath, TimeoutMS: a.TimeoutMS, RateLimit: rateLimitOf(a.RateLimit), Published: a.Published,
		JWT: jwtOf(a.JWT), MaxBodyBytes: a.MaxBodyBytes, Host: a.Host, ConnectTimeoutMS: a.ConnectTimeoutMS,
		ReadTimeoutMS: a.ReadTimeoutMS, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

func (r RateLimit) domain() catalog.RateLimit {
	return catalog.RateLimit{Requests: r.Requests, PerSeconds: r.PerSeconds, Burst: r.Burst, Scope: r.Scope}
}

func rateLimitOf(r catalog.RateLimit) RateLimit {
	return RateLimit{Requests: r.Requests, PerSeconds: r.PerSeconds, Burst: r.Burst, Scope: r.Scope}
}

// contract maps the request's JWT settings to the type the catalog stores
// them as (the contract's).
func (j *JWT) contract() *proxycfg.JWT {
	if j == nil {
		return nil
	}
	out := &proxycfg.JWT{Issuer: j.Issuer, Audiences: slices.Clone(j.Audiences), Claim: j.Claim,
		Algorithms: slices.Clone(j.Algorithms), PlanID: j.PlanID, Scopes: slices.Clone(j.Scopes)}
	out.Subjects = mapSlice(j.Subjects, func(s JWTSubject) proxycfg.JWTSubject {
		return proxycfg.JWTSubject{Value: s.Value, ConsumerID: s.ConsumerID, PlanID: s.PlanID}
	})
	out.RouteScopes = mapSlice(j.RouteScopes, func(r RouteScopes) proxycfg.RouteScopes {
		return proxycfg.RouteScopes{PathPrefix: r.PathPrefix, Methods: slices.Clone(r.Methods), Scopes: slices.Clone(r.Scopes)}
	})
	return out
}

func jwtOf(j *proxycfg.JWT) *JWT {
	if j == nil {
		return nil
	}
	out := &JWT{Issuer: j.Issuer, Audiences: slices.Clone(j.Audiences), Claim: j.Claim,
		Algorithms: slices.Clone(j.Algorithms), PlanID: j.PlanID, Scopes: slices.Clone(j.Scopes)}
	out.Subjects = mapSlice(j.Subjects, func(s proxycfg.JWTSubject) JWTSubject {
		return JWTSubject{Value: s.Value, ConsumerID: s.ConsumerID, PlanID: s.PlanID}
	})
	out.RouteScopes = mapSlice(j.RouteScopes, func(r proxycfg.RouteScopes) RouteScopes {
		return RouteScopes{PathPrefix: r.PathPrefix, Methods: slices.Clone(r.Methods), Scopes: slices.Clone(r.Scopes)}
	})
	return out
}

func apiDocumentOf(imp catalog.OpenAPIImport) APIDocument {
	routes := mapSlice(imp.Routes, func(r catalog.Route) APIRoute {
		return APIRoute{Method: r.Method, Path: r.Path, OperationID: r.OperationID, Summary: r.Summary}
	})
	return APIDocument{Title: imp.Title, Version: imp.Version, Routes: routes, ImportedAt: imp.ImportedAt}
}
