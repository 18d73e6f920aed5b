package mgmtapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
)

// ProblemBase prefixes the stable type URIs of the problem documents.
const ProblemBase = "https://tollgate.dev/problems/"

// Problem is an RFC 9457 problem details document.
type Problem struct {
	Type   string             `json:"type" format:"uri" doc:"stable: https://tollgate.dev/problems/ and a code such as validation, not-found, conflict, limit-exceeded"`
	Title  string             `json:"title"`
	Status int                `json:"status"`
	Detail string             `json:"detail,omitempty"`
	Errors []fault.FieldError `json:"errors,omitempty" doc:"every refused field"`
	// Limit, Max and Value describe a limit-exceeded problem: the limit's
	// name, its value for the tenant and what the change would have made it.
	Limit string `json:"limit,omitempty" doc:"limit-exceeded: the limit's name (see Limits)"`
	Max   *int64 `json:"max,omitempty" doc:"limit-exceeded: the limit's value for the tenant (for a lower bound, the least allowed)"`
	Value *int64 `json:"value,omitempty" doc:"limit-exceeded: what the change would have made it"`
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter time.Duration `json:"-"`
}

func (Problem) schemaDoc() string { return "An RFC 9457 problem details document." }

// requestError is a malformed request (400) found by the HTTP layer itself:
// bad JSON, unknown fields, wrong types, bad query parameters.
type requestError struct {
	status int
	field  string
	msg    string
}

func (e *requestError) Error() string { return e.field + ": " + e.msg }

func badRequest(field, msg string) error {
	return &requestError{status: http.StatusBadRequest, field: field, msg: msg}
}

// problemError is an error of the HTTP layer's own rules (preconditions,
// idempotency keys) that is answered as the problem it carries.
type problemError struct{ p Problem }

func (e *problemError) Error() string { return e.p.Detail }

// problemFor turns an error into the problem to answer with. Only errors the
// domain marks as user-facing reach the client; the rest become a bare 500.
func problemFor(err error) Problem {
	var ve *fault.ValidationError
	var ce *fault.ConflictError
	var re *requestError
	var de *fault.DeniedError
	var te *fault.ThrottledError
	var le *fault.LimitError
	var pe *problemError
	switch {
	case errors.As(err, &pe):
		return pe.p
	case errors.As(err, &le):
		// Before conflicts: a LimitError is also a ConflictError.
		p := Problem{Type: ProblemBase + "limit-exceeded", Title: "Limit exceeded", Status: http.StatusConflict,
			Detail: le.Message, Limit: le.Limit, Max: &le.Max, Value: &le.Value}
		if le.Field != "" {
			p.Errors = []fault.FieldError{{Field: le.Field, Message: le.Message}}
		}
		return p
	case errors.As(err, &de):
		return Problem{Type: ProblemBase + de.Code, Title: "Forbidden", Status: http.StatusForbidden, Detail: de.Message}
	case errors.As(err, &te):
		return Problem{Type: ProblemBase + "too-many-attempts", Title: "Too many attempts", Status: http.StatusTooManyRequests,
			Detail: "too many attempts; try again later", RetryAfter: te.RetryAfter}
	case errors.As(err, &re):
		p := Problem{Type: ProblemBase + "bad-request", Title: "Malformed request", Status: re.status, Detail: re.msg}
		if re.status == http.StatusRequestEntityTooLarge {
			p.Type, p.Title = ProblemBase+"too-large", "Request body too large"
		}
		if re.field != "" {
			p.Detail = re.field + ": " + re.msg
			p.Errors = []fault.FieldError{{Field: re.field, Message: re.msg}}
		}
		return p
	case errors.Is(err, store.ErrBadCursor):
		return Problem{Type: ProblemBase + "bad-request", Title: "Malformed request", Status: http.StatusBadRequest,
			Detail: "cursor: not a cursor from a previous page", Errors: []fault.FieldError{{Field: "cursor", Message: "not a cursor from a previous page"}}}
	case errors.As(err, &ve):
		return Problem{Type: ProblemBase + "validation", Title: "Validation failed", Status: http.StatusUnprocessableEntity,
			Detail: "the request has invalid fields; see errors", Errors: ve.Errors}
	case errors.As(err, &ce):
		p := Problem{Type: ProblemBase + "conflict", Title: "Conflict", Status: http.StatusConflict, Detail: ce.Message}
		if ce.Field != "" {
			p.Errors = []fault.FieldError{{Field: ce.Field, Message: ce.Message}}
		}
		return p
	case errors.Is(err, fault.ErrNotFound):
		return Problem{Type: ProblemBase + "not-found", Title: "Not found", Status: http.StatusNotFound,
			Detail: "no such object"}
	case errors.Is(err, fault.ErrUnauthenticated):
		return Problem{Type: ProblemBase + "unauthenticated", Title: "Unauthenticated", Status: http.StatusUnauthorized,
			Detail: "a valid bearer token is required"}
	case store.Unavailable(err):
		// The database is unreachable: nothing was changed that the client
		// can see, and the pool reconnects by itself.
		return Problem{Type: ProblemBase + "unavailable", Title: "Service unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the service is temporarily unavailable; retry shortly", RetryAfter: 5 * time.Second}
	}
	return Problem{Type: ProblemBase + "internal", Title: "Internal error", Status: http.StatusInternalServerError,
		Detail: "the request failed; it has been logged"}
}

// ProblemFor is problemFor for the other JSON APIs of the control plane
// (the developer portal's /api), so that every API maps the domain's errors
// the same way.
func ProblemFor(err error) Problem { return problemFor(err) }

// WriteProblem writes p as application/problem+json.
func WriteProblem(w http.ResponseWriter, p Problem) { writeProblem(w, p) }

func writeProblem(w http.ResponseWriter, p Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((p.RetryAfter+time.Second-1)/time.Second)))
	}
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err)
	switch {
	case p.Status == http.StatusServiceUnavailable:
		// An outage is logged once by the control plane's store.Monitor,
		// not once per request.
		a.log.Debug("request failed: database unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	case p.Status >= 500:
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeProblem(w, p)
}

// writeJSON answers v as JSON with status; a 200 answer to a read or a
// change of one object (c.tagged) carries the ETag of its body.
func writeJSON(w http.ResponseWriter, c *call, status int, v any) error {
	body, err := encodeJSON(v)
	if err != nil {
		return fmt.Errorf("encode answer: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	if c != nil && c.tagged && status == http.StatusOK {
		w.Header().Set("ETag", etagOf(body))
	}
	w.WriteHeader(status)
	_, err = w.Write(body)
	return err
}

// encodeJSON is the JSON answer of v, as writeJSON writes it (and ETags
// digest it).
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
