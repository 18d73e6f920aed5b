package devportal

// The JSON API of the developer portal, under /api on the portal host. It
// calls the same services as the pages; this file holds the route table,
// authentication, CSRF, request decoding and error answers, and the api_*.go
// files the handlers by resource. apidoc.go describes every route in the
// OpenAPI document served at /api/openapi.json (a test checks both agree).
//
// Authentication: "Authorization: Bearer <token>" with a token from POST
// /api/login, or the browser's session cookie. A cookie session must send
// its CSRF token in the X-CSRF-Token header on every state-changing call; a
// bearer token needs none (a browser never attaches it by itself). Signed-out
// calls with a body must be application/json, which a cross-site form cannot
// send without a CORS preflight the portal never grants.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/mgmtapi"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/tenancy"
)

// apiMaxBody bounds JSON request bodies.
const apiMaxBody = 1 << 20

// apiCSRFHeader carries a cookie session's CSRF token on JSON calls.
const apiCSRFHeader = "X-CSRF-Token"

// apiAccess says who may call a route and how its answers may be cached.
type apiAccess int

const (
	// apiPublic routes (catalogue, documents, SDKs) are readable signed out,
	// like the pages, and may be cached by browsers (they revalidate).
	apiPublic apiAccess = iota
	// apiAnon routes (signup, login, verification, reset) need no session;
	// their answers are never stored.
	apiAnon
	// apiSession routes need a signed-in developer (401 otherwise); their
	// answers are never stored.
	apiSession
)

// apiCall is what the wrapper hands a handler: the tenant of the host and,
// on apiSession routes, the developer's session.
type apiCall struct {
	tenant  tenancy.Tenant
	session developers.Session
	// bearer is true when the session came from an Authorization header.
	bearer bool
}

// dev is the signed-in developer.
func (c *apiCall) dev() developers.Developer { return c.session.Developer }

type apiHandler func(w http.ResponseWriter, r *http.Request, c *apiCall) error

// apiRoute is one operation of the JSON API. Every route is in apiRouteTable,
// which the OpenAPI test compares with the document.
type apiRoute struct {
	method string
	path   string
	access apiAccess
	handle apiHandler
}

// apiRouteTable lists every operation of the JSON API. p may be a zero
// Portal when only the (method, path) pairs are needed.
func (p *Portal) apiRouteTable() []apiRoute {
	return []apiRoute{
		{"GET", "/api/openapi.json", apiPublic, p.apiOpenAPI},

		{"POST", "/api/signup", apiAnon, p.apiSignup},
		{"POST", "/api/verify", apiAnon, p.apiVerify},
		{"POST", "/api/verify/resend", apiSession, p.apiResendVerification},
		{"POST", "/api/login", apiAnon, p.apiLogin},
		{"POST", "/api/logout", apiSession, p.apiLogout},
		{"POST", "/api/password/forgot", apiAnon, p.apiForgotPassword},
		{"POST", "/api/password/reset", apiAnon, p.apiResetPassword},
		{"GET", "/api/me", apiSession, p.apiMe},

		{"GET", "/api/apis", apiPublic, p.apiListAPIs},
		{"GET", "/api/apis/{id}", apiPublic, p.apiGetAPI},
		{"GET", "/api/apis/{id}/openapi.json", apiPublic, p.apiGetAPIDocument},
		{"GET", "/api/apis/{id}/sdk/go", apiPublic, p.apiSDK("go")},
		{"GET", "/api/apis/{id}/sdk/typescript", apiPublic, p.apiSDK("typescript")},
		{"POST", "/api/try/{id}", apiSession, p.apiTryIt()},
		{"GET", "/api/plans", apiPublic, p.apiListPlans},
		{"GET", "/api/plans/{id}", apiPublic, p.apiGetPlan},

		{"POST", "/api/apps", apiSession, p.apiCreateApp},
		{"GET", "/api/apps", apiSession, p.apiListApps},
		{"GET", "/api/apps/{id}", apiSession, p.apiGetApp},
		{"PATCH", "/api/apps/{id}", apiSession, p.apiUpdateApp},
		{"DELETE", "/api/apps/{id}", apiSession, p.apiDeleteApp},
		{"POST", "/api/apps/{id}/subscriptions", apiSession, p.apiSubscribe},
		{"GET", "/api/apps/{id}/subscriptions", apiSession, p.apiListAppSubscriptions},

		{"GET", "/api/subscriptions", apiSession, p.apiListSubscriptions},
		{"GET", "/api/subscriptions/{id}", apiSession, p.apiGetSubscription},
		{"DELETE", "/api/subscriptions/{id}", apiSession, p.apiCancelSubscription},
		{"POST", "/api/subscriptions/{id}/keys", apiSession, p.apiCreateKey},
		{"GET", "/api/subscriptions/{id}/keys", apiSession, p.apiListKeys},
		{"GET", "/api/subscriptions/{id}/invoices", apiSession, p.apiInvoices},
		{"GET", "/api/subscriptions/{id}/estimate", apiSession, p.apiEstimate},
		{"GET", "/api/subscriptions/{id}/billing", apiSession, p.apiBilling},

		{"GET", "/api/keys/{id}", apiSession, p.apiGetKey},
		{"POST", "/api/keys/{id}/rotate", apiSession, p.apiRotateKey},
		{"DELETE", "/api/keys/{id}", apiSession, p.apiRevokeKey},

		{"GET", "/api/usage", apiSession, p.apiUsage},
		{"GET", "/api/usage/series", apiSession, p.apiUsageSeries},
	}
}

// apiRoutes mounts the JSON API under /api.
func (p *Portal) apiRoutes(m *http.ServeMux) {
	routes := map[string]bool{}
	for _, rt := range p.apiRouteTable() {
		m.Handle(rt.method+" "+rt.path, p.apiWrap(rt))
		routes[rt.method+" "+rt.path] = true
	}
	// Anything else under /api answers a problem: 405 with Allow when the
	// path exists with other methods, else 404. The fallbacks name their
	// methods so that they never conflict with a page pattern such as
	// "GET /" in the mux.
	fallback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, method := range []string{"GET", "POST", "PATCH", "DELETE"} {
			probe := r.Clone(r.Context())
			probe.Method = method
			if _, pattern := m.Handler(probe); routes[pattern] {
				allowed = append(allowed, method)
			}
		}
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeAPIProblem(w, mgmtapi.Problem{Type: mgmtapi.ProblemBase + "method-not-allowed", Title: "Method not allowed",
				Status: http.StatusMethodNotAllowed, Detail: r.Method + " is not allowed here; use " + strings.Join(allowed, ", ")})
			return
		}
		writeProblem(w, r, fault.ErrNotFound)
	})
	for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		m.Handle(method+" /api/", fallback)
		m.Handle(method+" /api", fallback)
	}
}

// apiWrap authenticates a route's caller, checks CSRF for cookie sessions,
// sets the caching headers and answers the handler's error as a problem.
func (p *Portal) apiWrap(rt apiRoute) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &apiCall{tenant: tenantOf(r)}
		if rt.access == apiPublic {
			w.Header().Set("Cache-Control", "no-cache")
		} else {
			w.Header().Set("Cache-Control", "no-store")
		}
		w.Header().Set("Vary", "Authorization, Cookie")
		if rt.access == apiSession {
			s, bearer, err := p.apiCaller(r)
			if err != nil {
				p.apiFail(w, r, err)
				return
			}
			if !bearer && !apiSafeMethod(r.Method) &&
				(!p.sameOrigin(r) || !equal(r.Header.Get(apiCSRFHeader), s.CSRF)) {
				writeAPIProblem(w, mgmtapi.Problem{Type: mgmtapi.ProblemBase + "csrf", Title: "Forbidden",
					Status: http.StatusForbidden, Detail: "a signed-in browser must send its CSRF token in the " + apiCSRFHeader + " header"})
				return
			}
			c.session, c.bearer = s, bearer
		}
		if err := rt.handle(w, r, c); err != nil {
			p.apiFail(w, r, err)
		}
	})
}

// apiCaller returns the caller's session: the bearer token when the
// request has an Authorization header (even if a cookie is sent too), else
// the session cookie.
func (p *Portal) apiCaller(r *http.Request) (s developers.Session, bearer bool, err error) {
	if r.Header.Get("Authorization") != "" {
		s, err = p.bearerSession(r)
		return s, true, err
	}
	s, err = p.cookieSession(r)
	return s, false, err
}

func apiSafeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// apiError is a malformed request found by the HTTP layer itself (bad JSON,
// unknown fields, a wrong content type, bad query parameters).
type apiError struct {
	status int
	field  string
	msg    string
}

func (e *apiError) Error() string { return e.field + ": " + e.msg }

func apiBadRequest(field, msg string) error {
	return &apiError{status: http.StatusBadRequest, field: field, msg: msg}
}

// apiProblemOf maps err to the problem to answer with: the portal's own errors
// first, then the domain's as /v1 maps them.
func apiProblemOf(err error) mgmtapi.Problem {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		p := mgmtapi.Problem{Type: mgmtapi.ProblemBase + "bad-request", Title: "Malformed request", Status: ae.status, Detail: ae.msg}
		switch ae.status {
		case http.StatusRequestEntityTooLarge:
			p.Type, p.Title = mgmtapi.ProblemBase+"too-large", "Request body too large"
		case http.StatusUnsupportedMediaType:
			p.Type, p.Title = mgmtapi.ProblemBase+"unsupported-media-type", "Unsupported media type"
		}
		if ae.field != "" {
			p.Detail = ae.field + ": " + ae.msg
			p.Errors = []fault.FieldError{{Field: ae.field, Message: ae.msg}}
		}
		return p
	case errors.Is(err, developers.ErrBadCredentials):
		// The same answer for an unknown address and a wrong password.
		return mgmtapi.Problem{Type: mgmtapi.ProblemBase + "invalid-credentials", Title: "Unauthenticated",
			Status: http.StatusUnauthorized, Detail: "wrong email or password"}
	case errors.Is(err, fault.ErrUnauthenticated):
		return mgmtapi.Problem{Type: mgmtapi.ProblemBase + "unauthenticated", Title: "Unauthenticated",
			Status: http.StatusUnauthorized, Detail: "sign in first: send Authorization: Bearer <token> from POST /api/login"}
	}
	return mgmtapi.ProblemFor(err)
}

// writeProblem answers err as problem+json, mapped like /v1's errors.
func writeProblem(w http.ResponseWriter, _ *http.Request, err error) {
	writeAPIProblem(w, apiProblemOf(err))
}

func writeAPIProblem(w http.ResponseWriter, p mgmtapi.Problem) {
	w.Header().Del("ETag")
	w.Header().Del("Content-Disposition")
	mgmtapi.WriteProblem(w, p)
}

// apiFail answers err and logs it when it is the server's fault.
func (p *Portal) apiFail(w http.ResponseWriter, r *http.Request, err error) {
	pr := apiProblemOf(err)
	if pr.Status >= 500 {
		p.log.Error("devportal api: request failed", "method", r.Method, "path", r.URL.Path, "host", r.Host, "err", err)
	}
	writeAPIProblem(w, pr)
}

// apiWriteJSON answers v as JSON with status.
func apiWriteJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// apiDecode reads the request's JSON object into v strictly: the body must
// be application/json, at most apiMaxBody bytes, one object, with no
// unknown fields and no wrong types (400 naming the field).
func apiDecode(w http.ResponseWriter, r *http.Request, v any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &apiError{status: http.StatusUnsupportedMediaType, msg: "send the body as application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, apiMaxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &apiError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("the body exceeds %d bytes", apiMaxBody)}
	}
	if err != nil {
		return apiBadRequest("", "could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return apiBadRequest("", "a JSON object body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiJSONError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apiBadRequest("", "the body must hold a single JSON object")
	}
	return nil
}

func apiJSONError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return apiBadRequest("", fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apiBadRequest("", "malformed JSON: unexpected end of input")
	case errors.As(err, &te):
		if te.Field == "" {
			return apiBadRequest("", fmt.Sprintf("the body must be a JSON object, not %s", te.Value))
		}
		return apiBadRequest(te.Field, fmt.Sprintf("must be %s, not %s", apiJSONKind(te.Type.Kind().String()), te.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return apiBadRequest(name, "unknown field")
	}
	return apiBadRequest("", "malformed JSON: "+err.Error())
}

func apiJSONKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	}
	return "of another type"
}

// apiPage is the answer of a paginated list.
type apiPage[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

func apiPageOf[T any](list []T, next string) apiPage[T] {
	if list == nil {
		list = []T{}
	}
	out := apiPage[T]{Items: list}
	if next != "" {
		out.NextCursor = &next
	}
	return out
}

// apiItems is the answer of an unpaginated list.
type apiItems[T any] struct {
	Items []T `json:"items"`
}

func apiItemsOf[T any](list []T) apiItems[T] {
	if list == nil {
		list = []T{}
	}
	return apiItems[T]{Items: list}
}

// apiPageParam reads the limit and cursor query parameters.
func apiPageParam(r *http.Request) (store.Page, error) {
	q := r.URL.Query()
	pg := store.Page{After: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return pg, apiBadRequest("limit", "must be a positive integer")
		}
		pg.Limit = min(n, store.MaxLimit)
	}
	return pg, nil
}
