package billing

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/mgmtapi"
)

// API is the tenant's side of billing in the management API:
//
//	GET  /v1/billing/stripe             the tenant's connection
//	PUT  /v1/billing/stripe             {"account_id","grace_period_seconds"} → 200
//	POST /v1/billing/stripe/onboarding  {"return_url","refresh_url","type","country","email"} → 200 {"account_id","url","expires_at"}
//
// Errors are problem+json, mapped like the rest of /v1.
type API struct {
	// Billing serves the calls.
	Billing *Service
	// Authenticate returns the tenant admin calling (the bearer token
	// decides the tenant) or an error that maps to 401.
	Authenticate func(r *http.Request) (audit.Actor, error)
	// Logger receives 5xx errors. If nil, nothing is logged.
	Logger *slog.Logger
}

// Route is one route of the API, in net/http.ServeMux pattern syntax.
type Route struct {
	// Pattern is "METHOD /path".
	Pattern string
	Handler http.Handler
}

// Routes lists the API's routes, for the lead's mux.
func (a *API) Routes() []Route {
	return []Route{
		{"GET /v1/billing/stripe", a.handle(a.get)},
		{"PUT /v1/billing/stripe", a.handle(a.put)},
		{"POST /v1/billing/stripe/onboarding", a.handle(a.onboard)},
	}
}

// Handler serves Routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range a.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	return mux
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, who audit.Actor) error

func (a *API) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, err := a.Authenticate(r)
		if err == nil {
			err = h(w, r, who)
		}
		if err != nil {
			p := mgmtapi.ProblemFor(err)
			var be *badRequestError
			if errors.As(err, &be) {
				p = mgmtapi.Problem{Type: mgmtapi.ProblemBase + "bad-request", Title: "Malformed request",
					Status: http.StatusBadRequest, Detail: be.msg}
			}
			if p.Status >= 500 && a.Logger != nil {
				a.Logger.Error("billing request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			mgmtapi.WriteProblem(w, p)
		}
	})
}

type badRequestError struct{ msg string }

func (e *badRequestError) Error() string { return e.msg }

// decode reads one JSON object into v, refusing unknown fields.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		return &badRequestError{"could not read the request body (at most 64 KiB)"}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return &badRequestError{"a JSON object body is required"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &badRequestError{"malformed JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	if dec.More() {
		return &badRequestError{"the body must hold a single JSON object"}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func (a *API) get(w http.ResponseWriter, r *http.Request, who audit.Actor) error {
	c, err := a.Billing.Connection(r.Context(), who.TenantID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

func (a *API) put(w http.ResponseWriter, r *http.Request, who audit.Actor) error {
	var in ConnectInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	c, err := a.Billing.Connect(r.Context(), who, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

func (a *API) onboard(w http.ResponseWriter, r *http.Request, who audit.Actor) error {
	var in OnboardInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	o, err := a.Billing.Onboard(r.Context(), who, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, o)
}
