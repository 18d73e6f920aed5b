// Package mgmtapi is the management REST API under /v1: it authenticates the
// caller, decodes requests, calls the domain packages (tenancy, catalog,
// audit) and encodes their answers, mapping their typed errors to RFC 9457
// problem details. It holds no business rules.
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
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, c *call) error

// route is one operation of the API. Every route is in routes(), which the
// OpenAPI test compares with the document.
type route struct {
	method string
	path   string
	auth   authKind
	handle handlerFunc
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
}

func (a *api) routes() []route {
	c := a.cat
	return append([]route{
		{"GET", "/v1/openapi.json", authNone, a.openAPI},
		{"POST", "/v1/tenants", authOperator, a.createTenant},
		{"GET", "/v1/tenant", authTenant, a.getTenant},

		{"POST", "/v1/admin-tokens", authTenant, a.createAdminToken},
		{"GET", "/v1/admin-tokens", authTenant, a.listAdminTokens},
		{"GET", "/v1/admin-tokens/{id}", authTenant, a.getAdminToken},
		{"DELETE", "/v1/admin-tokens/{id}", authTenant, a.revokeAdminToken},

		{"POST", "/v1/upstreams", authTenant, create(c.CreateUpstream)},
		{"GET", "/v1/upstreams", authTenant, list(c.ListUpstreams)},
		{"GET", "/v1/upstreams/{id}", authTenant, get(c.GetUpstream)},
		{"PATCH", "/v1/upstreams/{id}", authTenant, update(c.UpdateUpstream)},
		{"DELETE", "/v1/upstreams/{id}", authTenant, remove(c.DeleteUpstream)},
		{"GET", "/v1/upstreams/{id}/health", authTenant, a.getUpstreamHealth},

		{"POST", "/v1/apis", authTenant, create(c.CreateAPI)},
		{"GET", "/v1/apis", authTenant, list(c.ListAPIs)},
		{"GET", "/v1/apis/{id}", authTenant, get(c.GetAPI)},
		{"PATCH", "/v1/apis/{id}", authTenant, update(c.UpdateAPI)},
		{"DELETE", "/v1/apis/{id}", authTenant, remove(c.DeleteAPI)},
		{"PUT", "/v1/apis/{id}/openapi", authTenant, a.putAPIDocument},
		{"GET", "/v1/apis/{id}/openapi", authTenant, a.getAPIDocument},

		{"POST", "/v1/plans", authTenant, create(c.CreatePlan)},
		{"GET", "/v1/plans", authTenant, list(c.ListPlans)},
		{"GET", "/v1/plans/{id}", authTenant, get(c.GetPlan)},
		{"PATCH", "/v1/plans/{id}", authTenant, update(c.UpdatePlan)},
		{"DELETE", "/v1/plans/{id}", authTenant, remove(c.DeletePlan)},

		{"POST", "/v1/consumers", authTenant, create(c.CreateConsumer)},
		{"GET", "/v1/consumers", authTenant, list(c.ListConsumers)},
		{"GET", "/v1/consumers/{id}", authTenant, get(c.GetConsumer)},
		{"PATCH", "/v1/consumers/{id}", authTenant, update(c.UpdateConsumer)},
		{"DELETE", "/v1/consumers/{id}", authTenant, remove(c.DeleteConsumer)},

		{"POST", "/v1/keys", authTenant, a.createKey},
		{"GET", "/v1/keys", authTenant, a.listKeys},
		{"GET", "/v1/keys/{id}", authTenant, get(c.GetKey)},
		{"DELETE", "/v1/keys/{id}", authTenant, remove(c.RevokeKey)},
		{"GET", "/v1/keys/{id}/quota", authTenant, a.getKeyQuota},

		{"GET", "/v1/usage", authTenant, a.getUsage},
		{"GET", "/v1/usage/top-consumers", authTenant, a.getTopConsumers},

		{"GET", "/v1/audit", authTenant, a.listAudit},
	}, append(a.devPortalRoutes(), a.limitsRoutes()...)...)
}

// New returns the handler of everything under /v1/.
func New(opts Options) http.Handler {
	digestKey := opts.DigestKey
	if digestKey == nil {
		digestKey = opts.Secret
	}
	a := &api{db: opts.DB, secret: digestKey, settingsSecret: opts.Secret, opTok: opts.OperatorToken, log: opts.Logger,
		rdb: opts.Redis, keys: opts.Keys, cat: catalog.New(opts.DB, digestKey, opts.AllowPrivateUpstreams),
		dev: opts.Developers, limits: opts.Limits}
	a.cat.Limits = opts.Limits
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

// wrap authenticates the caller and runs the handler, answering errors as problems.
func (a *api) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		c := &call{}
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

// listPage is the shape of every list answer.
type listPage[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

func newListPage[T any](items []T, next string) listPage[T] {
	if items == nil {
		items = []T{}
	}
	p := listPage[T]{Items: items}
	if next != "" {
		p.NextCursor = &next
	}
	return p
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

func create[I, O any](fn func(context.Context, audit.Actor, I) (O, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		body, err := readBody(w, r)
		if err != nil {
			return err
		}
		var in I
		if err := decodeStrict(body, &in); err != nil {
			return err
		}
		out, err := fn(r.Context(), c.actor, in)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, out)
	}
}

func get[O any](fn func(ctx context.Context, tenantID, id string) (O, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		out, err := fn(r.Context(), c.actor.TenantID, r.PathValue("id"))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, out)
	}
}

func list[O any](fn func(ctx context.Context, tenantID string, page store.Page) ([]O, string, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		page, err := pageOf(r)
		if err != nil {
			return err
		}
		items, next, err := fn(r.Context(), c.actor.TenantID, page)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, newListPage(items, next))
	}
}

func update[I, O any](fn func(context.Context, audit.Actor, string, func(*I) error) (O, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		body, err := readBody(w, r)
		if err != nil {
			return err
		}
		out, err := fn(r.Context(), c.actor, r.PathValue("id"), func(in *I) error { return mergePatch(in, body) })
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, out)
	}
}

func remove(fn func(context.Context, audit.Actor, string) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		if err := fn(r.Context(), c.actor, r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// tenantCreated answers POST /v1/tenants; the admin token is shown once.
type tenantCreated struct {
	Tenant     tenancy.Tenant `json:"tenant"`
	AdminToken string         `json:"admin_token"`
}

type tenantInput struct {
	Name string `json:"name"`
	Slug string `json:"slug"`
}

func (a *api) createTenant(w http.ResponseWriter, r *http.Request, _ *call) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var in tenantInput
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	t, tok, err := tenancy.Create(r.Context(), a.db, a.secret, in.Name, in.Slug)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, tenantCreated{Tenant: t, AdminToken: tok})
}

func (a *api) getTenant(w http.ResponseWriter, r *http.Request, c *call) error {
	t, err := tenancy.Get(r.Context(), a.db, c.actor.TenantID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t)
}

type adminTokenInput struct {
	Name string `json:"name"`
}

// adminTokenCreated is an admin token with the token itself, shown once.
type adminTokenCreated struct {
	tenancy.AdminToken
	Token string `json:"token"`
}

func (a *api) createAdminToken(w http.ResponseWriter, r *http.Request, c *call) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var in adminTokenInput
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	t, tok, err := tenancy.CreateToken(r.Context(), a.db, a.secret, c.actor, in.Name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, adminTokenCreated{AdminToken: t, Token: tok})
}

func (a *api) listAdminTokens(w http.ResponseWriter, r *http.Request, c *call) error {
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	items, next, err := tenancy.ListTokens(r.Context(), a.db, c.actor.TenantID, page)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newListPage(items, next))
}

func (a *api) getAdminToken(w http.ResponseWriter, r *http.Request, c *call) error {
	t, err := tenancy.GetToken(r.Context(), a.db, c.actor.TenantID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t)
}

func (a *api) revokeAdminToken(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := tenancy.RevokeToken(r.Context(), a.db, c.actor, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// keyCreated is a key with the key itself, shown once.
type keyCreated struct {
	catalog.Key
	Secret string `json:"key"`
}

func (a *api) createKey(w http.ResponseWriter, r *http.Request, c *call) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var in catalog.KeyInput
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	k, secret, err := a.cat.CreateKey(r.Context(), c.actor, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, keyCreated{Key: k, Secret: secret})
}

func (a *api) listKeys(w http.ResponseWriter, r *http.Request, c *call) error {
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	items, next, err := a.cat.ListKeys(r.Context(), c.actor.TenantID, r.URL.Query().Get("consumer_id"), page)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newListPage(items, next))
}

func (a *api) listAudit(w http.ResponseWriter, r *http.Request, c *call) error {
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	items, next, err := audit.List(r.Context(), a.db, c.actor.TenantID, page)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newListPage(items, next))
}
