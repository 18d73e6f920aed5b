// Package mgmtapi is the management REST API under /v1: it authenticates the
// caller, decodes requests into the /v1 model (model.go), maps them to the
// domain packages' inputs (tenancy, catalog, settings, audit, ...), and maps
// their answers back, turning their typed errors into RFC 9457 problem
// details. It holds no business rules. Its OpenAPI document is generated
// from the route table and the model's types (openapi.go).
package mgmtapi

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/tenancy"
)

// Options configures the management API.
type Options struct {
	// DB is the control plane's database.
	DB *pgxpool.Pool
	// Secret (TOLLGATE_SECRET) keys the HMAC digests of API keys and admin
	// tokens unless DigestKey is set, and the encryption of tenants'
	// settings secrets (services/settings).
	Secret []byte
	// DigestKey keys the HMAC digests of API keys and admin tokens: the
	// installation's digest key (secrets.ControlDigestKey), the one the
	// proxy workers get. If nil, Secret (digest key version 0).
	DigestKey []byte
	// OperatorToken authorises operator calls (POST /v1/tenants); "" disables them.
	OperatorToken string
	// AllowPrivateUpstreams (TOLLGATE_UPSTREAM_ALLOW_PRIVATE) turns the SSRF
	// guard on upstream targets off.
	AllowPrivateUpstreams bool
	// Logger receives server errors. If nil, slog.Default() is used.
	Logger *slog.Logger
	// Redis holds the proxies' quota counters, read by GET
	// /v1/keys/{id}/quota; nil makes that route fail.
	Redis redis.UniversalClient
	// Keys names the Redis keys (Prefix separates deployments and tests).
	Keys proxycfg.Keys
	// Developers is the developer portal's account service (approvals,
	// invitations); nil makes those routes fail.
	Developers *developers.Service
	// Limits are the operator's per-tenant limits (limits.FromEnv); each
	// tenant's own values apply on top. If nil, limits.Defaults().
	Limits *limits.Limits
	// ConfigSize measures a tenant's compiled config for the limit
	// config_bytes (cmd passes publish.TenantConfigBytes). If nil, that
	// limit is neither checked on changes through this API nor reported.
	ConfigSize limits.ConfigSizer
}

// authKind says which credential a route takes.
type authKind int

const (
	authTenant   authKind = iota // a tenant admin token
	authOperator                 // the operator token
	authNone                     // public
)

// call is what a handler knows about its caller.
type call struct {
	actor audit.Actor
	token tenancy.AdminToken
	// tagged: a 200 answer carries an ETag (GET, PUT and PATCH).
	tagged bool
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, c *call) error

// route is one operation of the API: what it serves (endpoint: handler and
// the types of its bodies) and how the document describes it. Every route
// is in routes() or externalRoutes(); the OpenAPI document is generated
// from them (openapi.go).
type route struct {
	method string
	path   string
	auth   authKind
	endpoint
	doc opDoc
}

// opDoc describes an operation in the document.
type opDoc struct {
	// id is the operationId: camelCase, unique.
	id string
	// tag groups the operation (one of tags).
	tag string
	// summary is one line; desc says more.
	summary, desc string
	// problems are problem statuses beyond those the route's shape implies
	// (401 with a token, 400 with a body or query, 404 on an {id}, 413 and
	// 422 with a JSON body, 500 and 503 always).
	problems []int
}

type api struct {
	db *pgxpool.Pool
	// secret keys the digests of keys and tokens (Options.DigestKey);
	// settingsSecret is the server secret, for settings encryption.
	secret         []byte
	settingsSecret []byte
	opTok          string
	cat            *catalog.Service
	log            *slog.Logger
	rdb            redis.UniversalClient
	keys           proxycfg.Keys
	dev            *developers.Service
	limits         *limits.Limits
	configSize     limits.ConfigSizer
}

// Tags of the operations, in the document's order.
const (
	tagMeta        = "Meta"
	tagTenants     = "Tenants"
	tagAdminTokens = "Admin tokens"
	tagUpstreams   = "Upstreams"
	tagAPIs        = "APIs"
	tagPlans       = "Plans"
	tagConsumers   = "Consumers"
	tagKeys        = "Keys"
	tagUsage       = "Usage"
	tagAudit       = "Audit"
	tagPortal      = "Developer portal"
	tagBilling     = "Billing"
	tagLimits      = "Limits"
	tagConfig      = "Config"
)

// conflict marks operations that may answer 409 (a clash, a state that
// does not allow it, or a limit exceeded).
var conflict = []int{http.StatusConflict}

func (a *api) routes() []route {
	c := a.cat
	rs := []route{
		{"GET", "/v1/openapi.json", authNone, a.openAPIEndpoint(), opDoc{"getOpenApiDocument", tagMeta,
			"This document", "The OpenAPI 3.0 document of /v1, generated from the API's request and response types.", nil}},
		{"POST", "/v1/tenants", authOperator, withBody(http.StatusCreated, a.createTenant), opDoc{"createTenant", tagTenants,
			"Create a tenant and its first admin token (operator token)",
			"Creates a tenant with its slug and name and returns it with its first admin token, which is shown only in this answer. Takes the operator token (TOLLGATE_OPERATOR_TOKEN).", conflict}},
		{"GET", "/v1/tenant", authTenant, noBody(http.StatusOK, a.getTenant), opDoc{"getTenant", tagTenants,
			"The caller's tenant", "Returns the tenant the admin token belongs to: the token alone decides the tenant.", nil}},

		{"POST", "/v1/admin-tokens", authTenant, withBody(http.StatusCreated, a.createAdminToken), opDoc{"createAdminToken", tagAdminTokens,
			"Create an admin token (shown once)", "Creates another admin token of the caller's tenant; the token is shown only in this answer.", nil}},
		{"GET", "/v1/admin-tokens", authTenant, withQuery[PageQuery](noBody(http.StatusOK, a.listAdminTokens)), opDoc{"listAdminTokens", tagAdminTokens,
			"List admin tokens", "Lists the tenant's admin tokens, revoked ones included, oldest first; the tokens themselves are never shown again.", nil}},
		{"GET", "/v1/admin-tokens/{id}", authTenant, noBody(http.StatusOK, a.getAdminToken), opDoc{"getAdminToken", tagAdminTokens,
			"Read an admin token", "Returns one admin token of the tenant, without the token itself.", nil}},
		{"DELETE", "/v1/admin-tokens/{id}", authTenant, remove(a.revokeAdminToken, readerOf(a.getAdminToken)), opDoc{"revokeAdminToken", tagAdminTokens,
			"Revoke an admin token", "Revokes an admin token: it stops working at once. The tenant's last working token cannot be revoked (409).", conflict}},

		{"POST", "/v1/upstreams", authTenant, create(c.CreateUpstream, UpstreamRequest.input, upstreamOf), opDoc{"createUpstream", tagUpstreams,
			"Create an upstream", "Creates a pool of backend targets. Target URLs pass the SSRF guard (no private addresses unless the operator allows them); the tenant's limits on upstreams and targets apply.", conflict}},
		{"GET", "/v1/upstreams", authTenant, list(c.ListUpstreams, upstreamOf), opDoc{"listUpstreams", tagUpstreams,
			"List upstreams", "Lists the tenant's upstreams with their targets, oldest first.", nil}},
		{"GET", "/v1/upstreams/{id}", authTenant, get(c.GetUpstream, upstreamOf), opDoc{"getUpstream", tagUpstreams,
			"Read an upstream", "Returns one upstream of the tenant with its targets.", nil}},
		{"PATCH", "/v1/upstreams/{id}", authTenant, update(c.GetUpstream, c.UpdateUpstream, catalog.Upstream.Input, upstreamRequestOf, UpstreamRequest.input, upstreamOf),
			opDoc{"updateUpstream", tagUpstreams, "Replace the named fields of an upstream",
				"Every field the body names replaces the upstream's current value (null resets it); the others stay. The result is validated as on create.", conflict}},
		{"DELETE", "/v1/upstreams/{id}", authTenant, remove(c.DeleteUpstream, reader(c.GetUpstream, upstreamOf)), opDoc{"deleteUpstream", tagUpstreams,
			"Delete an upstream", "Deletes an upstream; while an API uses it the answer is 409.", conflict}},
		{"GET", "/v1/upstreams/{id}/health", authTenant, noBody(http.StatusOK, a.getUpstreamHealth), opDoc{"getUpstreamHealth", tagUpstreams,
			"Live health of the upstream's targets", "Aggregates the proxy workers' recent reports on each target of the upstream: healthy on every worker, degraded on some, down on none, or unknown.", nil}},

		{"POST", "/v1/apis", authTenant, create(c.CreateAPI, APIRequest.input, apiOf), opDoc{"createApi", tagAPIs,
			"Create an API", "Creates an API served under base_path on the tenant's gateway hosts, forwarding to the upstream. The slug and base path are unique in the tenant.", conflict}},
		{"GET", "/v1/apis", authTenant, list(c.ListAPIs, apiOf), opDoc{"listApis", tagAPIs,
			"List APIs", "Lists the tenant's APIs, oldest first.", nil}},
		{"GET", "/v1/apis/{id}", authTenant, get(c.GetAPI, apiOf), opDoc{"getApi", tagAPIs,
			"Read an API", "Returns one API of the tenant.", nil}},
		{"PATCH", "/v1/apis/{id}", authTenant, update(c.GetAPI, c.UpdateAPI, catalog.API.Input, apiRequestOf, APIRequest.input, apiOf), opDoc{"updateApi", tagAPIs,
			"Replace the named fields of an API",
			"Every field the body names replaces the API's current value (null resets it); the others stay. The result is validated as on create.", conflict}},
		{"DELETE", "/v1/apis/{id}", authTenant, remove(c.DeleteAPI, reader(c.GetAPI, apiOf)), opDoc{"deleteApi", tagAPIs,
			"Delete an API", "Deletes an API; plans that included it no longer do.", nil}},
		{"PUT", "/v1/apis/{id}/openapi", authTenant, a.putAPIDocumentEndpoint(), opDoc{"importApiDocument", tagAPIs,
			"Import an OpenAPI 3 document (JSON or YAML); its operations become the API's routes",
			"Validates the document with kin-openapi and replaces the API's routes with its operations; the proxy then serves those only (404 or 405 otherwise). External references are refused.", conflict}},
		{"GET", "/v1/apis/{id}/openapi", authTenant, noBody(http.StatusOK, a.getAPIDocument), opDoc{"getApiDocument", tagAPIs,
			"The API's imported OpenAPI document: title, version and routes", "Returns the summary of the API's last imported document; 404 when it has none.", nil}},
		{"GET", "/v1/apis/{id}/openapi/document", authTenant, noBody(http.StatusOK, a.exportAPIDocument), opDoc{"exportApiDocument", tagAPIs,
			"The API's imported OpenAPI document itself, as stored (JSON)",
			"Returns the document last imported with PUT /v1/apis/{id}/openapi, as the API stores it: parsed and written back as JSON. Importing it again changes no route. 404 when the API has none.", nil}},

		{"POST", "/v1/plans", authTenant, create(c.CreatePlan, PlanRequest.input, planOf), opDoc{"createPlan", tagPlans,
			"Create a plan", "Creates a plan: the limits keys are issued under, the APIs they may call and, optionally, a price billed through Stripe.", conflict}},
		{"GET", "/v1/plans", authTenant, list(c.ListPlans, planOf), opDoc{"listPlans", tagPlans,
			"List plans", "Lists the tenant's plans, oldest first.", nil}},
		{"GET", "/v1/plans/{id}", authTenant, get(c.GetPlan, planOf), opDoc{"getPlan", tagPlans,
			"Read a plan", "Returns one plan of the tenant.", nil}},
		{"PATCH", "/v1/plans/{id}", authTenant, update(c.GetPlan, c.UpdatePlan, catalog.Plan.Input, planRequestOf, PlanRequest.input, planOf), opDoc{"updatePlan", tagPlans,
			"Replace the named fields of a plan",
			"Every field the body names replaces the plan's current value (null resets it); the others stay. The result is validated as on create.", conflict}},
		{"DELETE", "/v1/plans/{id}", authTenant, remove(c.DeletePlan, reader(c.GetPlan, planOf)), opDoc{"deletePlan", tagPlans,
			"Delete a plan", "Deletes a plan; while it has active keys the answer is 409.", conflict}},

		{"POST", "/v1/consumers", authTenant, create(c.CreateConsumer, ConsumerRequest.input, consumerOf), opDoc{"createConsumer", tagConsumers,
			"Create a consumer", "Creates a consumer: a developer or application that holds keys.", conflict}},
		{"GET", "/v1/consumers", authTenant, list(c.ListConsumers, consumerOf), opDoc{"listConsumers", tagConsumers,
			"List consumers", "Lists the tenant's consumers, developers of the portal included, oldest first.", nil}},
		{"GET", "/v1/consumers/{id}", authTenant, get(c.GetConsumer, consumerOf), opDoc{"getConsumer", tagConsumers,
			"Read a consumer", "Returns one consumer of the tenant.", nil}},
		{"PATCH", "/v1/consumers/{id}", authTenant, update(c.GetConsumer, c.UpdateConsumer, catalog.Consumer.Input, consumerRequestOf, ConsumerRequest.input, consumerOf),
			opDoc{"updateConsumer", tagConsumers, "Replace the named fields of a consumer",
				"Every field the body names replaces the consumer's current value; the others stay. A suspended consumer's keys are refused by every worker.", conflict}},
		{"DELETE", "/v1/consumers/{id}", authTenant, remove(c.DeleteConsumer, reader(c.GetConsumer, consumerOf)), opDoc{"deleteConsumer", tagConsumers,
			"Delete a consumer", "Deletes a consumer and revokes its keys.", nil}},

		{"POST", "/v1/keys", authTenant, withBody(http.StatusCreated, a.createKey), opDoc{"createKey", tagKeys,
			"Issue a key (the key is shown once)", "Issues an API key to a consumer under a plan. The key is shown only in this answer; only its digest is stored. Workers can use it as soon as the call returns.", conflict}},
		{"GET", "/v1/keys", authTenant, withQuery[KeyListQuery](noBody(http.StatusOK, a.listKeys)), opDoc{"listKeys", tagKeys,
			"List keys", "Lists the tenant's keys (or one consumer's), oldest first, without the keys themselves.", nil}},
		{"GET", "/v1/keys/{id}", authTenant, get(c.GetKey, keyOf), opDoc{"getKey", tagKeys,
			"Read a key", "Returns one key of the tenant, without the key itself.", nil}},
		{"DELETE", "/v1/keys/{id}", authTenant, remove(c.RevokeKey, reader(c.GetKey, keyOf)), opDoc{"revokeKey", tagKeys,
			"Revoke a key", "Revokes a key: every worker refuses it (401) once the revocation reaches it. Revoking a revoked key succeeds.", nil}},
		{"GET", "/v1/keys/{id}/quota", authTenant, noBody(http.StatusOK, a.getKeyQuota), opDoc{"getKeyQuota", tagKeys,
			"The key's quota in the current billing period: used and left", "Reads the quota counter the proxy workers enforce for the key (or its consumer, by the plan's scope).", nil}},

		{"GET", "/v1/usage", authTenant, withQuery[UsageQuery](noBody(http.StatusOK, a.getUsage)), opDoc{"getUsage", tagUsage,
			"Proxied requests per time bucket (empty buckets included), from per-minute rollups",
			"Counts the tenant's proxied requests, bytes and latency per minute, hour or day over a range, optionally for one API, consumer, key, plan or status class.", []int{http.StatusUnprocessableEntity}}},
		{"GET", "/v1/usage/top-consumers", authTenant, withQuery[TopConsumersQuery](noBody(http.StatusOK, a.getTopConsumers)), opDoc{"listTopConsumers", tagUsage,
			"The consumers with the most requests in the range", "Ranks the tenant's consumers by proxied requests over a range, with their error counts.", []int{http.StatusUnprocessableEntity}}},

		{"GET", "/v1/audit", authTenant, withQuery[PageQuery](noBody(http.StatusOK, a.listAudit)), opDoc{"listAuditEntries", tagAudit,
			"List audit entries, oldest first", "Lists the changes made to the tenant's objects: who made them, what and when. Secrets are never recorded.", nil}},
	}
	rs = append(rs, a.devPortalRoutes()...)
	rs = append(rs, a.limitsRoutes()...)
	return append(rs, a.configRoutes()...)
}

// documentedRoutes are every route the document describes: this API's and
// those other packages serve under /v1 (externalRoutes).
func (a *api) documentedRoutes() []route {
	return append(a.routes(), externalRoutes()...)
}

// New returns the handler of everything under /v1/.
func New(opts Options) http.Handler {
	digestKey := opts.DigestKey
	if digestKey == nil {
		digestKey = opts.Secret
	}
	a := &api{db: opts.DB, secret: digestKey, settingsSecret: opts.Secret, opTok: opts.OperatorToken, log: opts.Logger,
		rdb: opts.Redis, keys: opts.Keys, cat: catalog.New(opts.DB, digestKey, opts.AllowPrivateUpstreams),
		dev: opts.Developers, limits: opts.Limits, configSize: opts.ConfigSize}
	a.cat.Limits, a.cat.ConfigSize = opts.Limits, opts.ConfigSize
	if a.log == nil {
		a.log = slog.Default()
	}
	return a.handler()
}

func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.routes() {
		mux.Handle(rt.method+" "+rt.path, a.wrap(rt))
	}
	// Anything else under /v1/ answers a problem, 405 if the path exists
	// with other methods.
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/v1/" && pattern != "" {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeProblem(w, Problem{Type: ProblemBase + "method-not-allowed", Title: "Method not allowed",
				Status: http.StatusMethodNotAllowed, Detail: r.Method + " is not supported here"})
			return
		}
		writeProblem(w, Problem{Type: ProblemBase + "not-found", Title: "Not found", Status: http.StatusNotFound,
			Detail: "no such endpoint"})
	})
	return mux
}

// wrap authenticates the caller and runs the handler, answering errors as
// problems: under its Idempotency-Key for a POST that sends one
// (idempotency.go), after its If-Match for a write that checks it before
// it runs (precondition.go).
func (a *api) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		c := &call{tagged: r.Method == http.MethodGet || r.Method == http.MethodPut || r.Method == http.MethodPatch}
		switch rt.auth {
		case authTenant:
			tok, err := tenancy.Authenticate(r.Context(), a.db, a.secret, bearer(r))
			if err != nil {
				a.fail(w, r, err)
				return
			}
			c.token, c.actor = tok, tok.Actor()
		case authOperator:
			got := bearer(r)
			if a.opTok == "" || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(a.opTok)) != 1 {
				writeProblem(w, Problem{Type: ProblemBase + "unauthenticated", Title: "Unauthenticated",
					Status: http.StatusUnauthorized, Detail: "the operator token is required (and the operator API must be enabled)"})
				return
			}
			c.actor = audit.Actor{Name: audit.Operator}
		}
		if r.Method == http.MethodPost && r.Header.Get(idempotencyHeader) != "" {
			if err := a.idempotent(w, r, c, rt); err != nil {
				a.fail(w, r, err)
			}
			return
		}
		if rt.current != nil && ifMatchOf(r) != "" {
			cur, err := rt.current(r, c)
			if err == nil {
				err = checkIfMatch(r, cur)
			}
			if err != nil {
				a.fail(w, r, err)
				return
			}
		}
		if err := rt.handle(w, r, c); err != nil {
			a.fail(w, r, err)
		}
	})
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

func pageOf(r *http.Request) (store.Page, error) {
	q := r.URL.Query()
	p := store.Page{After: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return p, badRequest("limit", "must be a positive integer")
		}
		p.Limit = min(n, store.MaxLimit)
	}
	return p, nil
}

func (a *api) createTenant(r *http.Request, _ *call, in TenantRequest) (TenantCreated, error) {
	t, tok, err := tenancy.Create(r.Context(), a.db, a.secret, in.Name, in.Slug)
	if err != nil {
		return TenantCreated{}, err
	}
	return TenantCreated{Tenant: tenantOf(t), AdminToken: &tok}, nil
}

func (a *api) getTenant(r *http.Request, c *call) (Tenant, error) {
	t, err := tenancy.Get(r.Context(), a.db, c.actor.TenantID)
	return tenantOf(t), err
}

func (a *api) createAdminToken(r *http.Request, c *call, in AdminTokenRequest) (AdminTokenCreated, error) {
	t, tok, err := tenancy.CreateToken(r.Context(), a.db, a.secret, c.actor, in.Name)
	if err != nil {
		return AdminTokenCreated{}, err
	}
	return AdminTokenCreated{AdminToken: adminTokenOf(t), Token: &tok}, nil
}

func (a *api) listAdminTokens(r *http.Request, c *call) (ListPage[AdminToken], error) {
	page, err := pageOf(r)
	if err != nil {
		return ListPage[AdminToken]{}, err
	}
	items, next, err := tenancy.ListTokens(r.Context(), a.db, c.actor.TenantID, page)
	if err != nil {
		return ListPage[AdminToken]{}, err
	}
	return listOf(items, next, adminTokenOf), nil
}

func (a *api) getAdminToken(r *http.Request, c *call) (AdminToken, error) {
	t, err := tenancy.GetToken(r.Context(), a.db, c.actor.TenantID, r.PathValue("id"))
	return adminTokenOf(t), err
}

func (a *api) revokeAdminToken(ctx context.Context, who audit.Actor, id string) error {
	return tenancy.RevokeToken(ctx, a.db, who, id)
}

func (a *api) createKey(r *http.Request, c *call, in KeyRequest) (KeyCreated, error) {
	k, secret, err := a.cat.CreateKey(r.Context(), c.actor, in.input())
	if err != nil {
		return KeyCreated{}, err
	}
	return KeyCreated{Key: keyOf(k), Secret: &secret}, nil
}

// KeyListQuery are the query parameters of GET /v1/keys.
type KeyListQuery struct {
	ConsumerID string `query:"consumer_id" format:"uuid" doc:"only this consumer's keys"`
	PageQuery
}

func (a *api) listKeys(r *http.Request, c *call) (ListPage[Key], error) {
	page, err := pageOf(r)
	if err != nil {
		return ListPage[Key]{}, err
	}
	items, next, err := a.cat.ListKeys(r.Context(), c.actor.TenantID, r.URL.Query().Get("consumer_id"), page)
	if err != nil {
		return ListPage[Key]{}, err
	}
	return listOf(items, next, keyOf), nil
}

func (a *api) listAudit(r *http.Request, c *call) (ListPage[AuditEntry], error) {
	page, err := pageOf(r)
	if err != nil {
		return ListPage[AuditEntry]{}, err
	}
	items, next, err := audit.List(r.Context(), a.db, c.actor.TenantID, page)
	if err != nil {
		return ListPage[AuditEntry]{}, err
	}
	return listOf(items, next, auditEntryOf), nil
}
