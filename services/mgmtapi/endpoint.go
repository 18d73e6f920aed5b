package mgmtapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/store"
)

// endpoint is what a route does over HTTP: its handler and the Go types of
// the bodies and query parameters it reads and writes. The helpers below
// build the handler and the types from one generic function, so that the
// OpenAPI document (generated from the types) and the handler cannot
// disagree about what a route takes or answers.
type endpoint struct {
	handle handlerFunc
	// in is the JSON request body's type (nil: no body); inOptional
	// allows leaving the body out.
	in         reflect.Type
	inOptional bool
	// inDocument: the body is a document other than JSON of in (an
	// imported OpenAPI document, JSON or YAML).
	inDocument bool
	// out is the JSON response body's type (nil: no body, 204).
	out reflect.Type
	// status is the success status.
	status int
	// query is a struct whose query-tagged fields are the query parameters.
	query reflect.Type
	// ifMatch: the route honours If-Match (precondition.go). current,
	// when set, reads what it is checked against before the handler runs;
	// without it the handler checks it itself, under its write's lock.
	ifMatch bool
	current currentFunc
	// redact removes the secrets (a key, a token) from a 2xx answer, for
	// the copy that Idempotency-Key keeps (idempotency.go); nil: the answer
	// holds none.
	redact func(body []byte) ([]byte, error)
	// external: another package serves the route; this one documents it.
	external bool
}

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// withQuery documents the query parameters of e (the fields of Q).
func withQuery[Q any](e endpoint) endpoint {
	e.query = typeOf[Q]()
	return e
}

// withBody decodes the body strictly into a Req, calls fn and answers its
// Resp with status.
func withBody[Req, Resp any](status int, fn func(r *http.Request, c *call, in Req) (Resp, error)) endpoint {
	return endpoint{in: typeOf[Req](), out: typeOf[Resp](), status: status, redact: redactor[Resp](),
		handle: func(w http.ResponseWriter, r *http.Request, c *call) error {
			body, err := readBody(w, r)
			if err != nil {
				return err
			}
			var in Req
			if err := decodeStrict(body, &in); err != nil {
				return err
			}
			out, err := fn(r, c, in)
			if err != nil {
				return domainError(in, err)
			}
			return writeJSON(w, c, status, out)
		}}
}

// noBody calls fn and answers its Resp with status; a request body is
// ignored.
func noBody[Resp any](status int, fn func(r *http.Request, c *call) (Resp, error)) endpoint {
	return endpoint{out: typeOf[Resp](), status: status,
		handle: func(w http.ResponseWriter, r *http.Request, c *call) error {
			out, err := fn(r, c)
			if err != nil {
				return err
			}
			return writeJSON(w, c, status, out)
		}}
}

// noContent calls fn and answers 204.
func noContent(fn func(r *http.Request, c *call) error) endpoint {
	return endpoint{status: http.StatusNoContent,
		handle: func(w http.ResponseWriter, r *http.Request, c *call) error {
			if err := fn(r, c); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}}
}

// create is POST on a collection: the request mapped to the domain's input
// by in, the stored object to its answer by out; 201.
func create[Req, In, Out, Resp any](fn func(context.Context, audit.Actor, In) (Out, error), in func(Req) In,
	out func(Out) Resp) endpoint {
	return withBody(http.StatusCreated, func(r *http.Request, c *call, req Req) (Resp, error) {
		o, err := fn(r.Context(), c.actor, in(req))
		if err != nil {
			var zero Resp
			return zero, err
		}
		return out(o), nil
	})
}

// get is GET on an item of a collection.
func get[Out, Resp any](fn func(ctx context.Context, tenantID, id string) (Out, error), out func(Out) Resp) endpoint {
	return noBody(http.StatusOK, func(r *http.Request, c *call) (Resp, error) {
		o, err := fn(r.Context(), c.actor.TenantID, r.PathValue("id"))
		if err != nil {
			var zero Resp
			return zero, err
		}
		return out(o), nil
	})
}

// list is GET on a collection: one page (query limit and cursor).
func list[Out, Resp any](fn func(ctx context.Context, tenantID string, page store.Page) ([]Out, string, error),
	out func(Out) Resp) endpoint {
	return withQuery[PageQuery](noBody(http.StatusOK, func(r *http.Request, c *call) (ListPage[Resp], error) {
		page, err := pageOf(r)
		if err != nil {
			return ListPage[Resp]{}, err
		}
		items, next, err := fn(r.Context(), c.actor.TenantID, page)
		if err != nil {
			return ListPage[Resp]{}, err
		}
		return listOf(items, next, out), nil
	}))
}

// update is PATCH on an item: the fields the body names replace the
// current ones (mergePatch over the current input as a Req, which toReq
// makes of the domain's input), then the merged request goes back to the
// domain as its input. With If-Match, the object as get reads it must have
// one of the ETags named, and its input (inputOf) must still be the same
// under the lock of the write ("*" takes the object as it is then).
func update[Req, In, Out, Resp any](get func(ctx context.Context, tenantID, id string) (Out, error),
	fn func(context.Context, audit.Actor, string, func(*In) error) (Out, error),
	inputOf func(Out) In, toReq func(In) Req, in func(Req) In, out func(Out) Resp) endpoint {
	return endpoint{in: typeOf[Req](), out: typeOf[Resp](), status: http.StatusOK, ifMatch: true,
		handle: func(w http.ResponseWriter, r *http.Request, c *call) error {
			body, err := readBody(w, r)
			if err != nil {
				return err
			}
			var seen *In
			if h := ifMatchOf(r); h != "" && !ifMatchStar(h) {
				o, err := get(r.Context(), c.actor.TenantID, r.PathValue("id"))
				if err != nil {
					return err
				}
				if err := checkIfMatch(r, out(o)); err != nil {
					return err
				}
				s := inputOf(o)
				seen = &s
			}
			var req Req
			o, err := fn(r.Context(), c.actor, r.PathValue("id"), func(cur *In) error {
				if seen != nil && !sameJSON(*cur, *seen) {
					return preconditionFailed()
				}
				req = toReq(*cur)
				if err := mergePatch(&req, body); err != nil {
					return err
				}
				*cur = in(req)
				return nil
			})
			if err != nil {
				return domainError(req, err)
			}
			return writeJSON(w, c, http.StatusOK, out(o))
		}}
}

// remove is DELETE on an item; 204. With If-Match, current (the item as
// GET answers it) must have one of the ETags named.
func remove(fn func(context.Context, audit.Actor, string) error, current currentFunc) endpoint {
	e := noContent(func(r *http.Request, c *call) error {
		return fn(r.Context(), c.actor, r.PathValue("id"))
	})
	e.ifMatch, e.current = true, current
	return e
}

// domainError lets a request type name the domain's errors in its own
// terms (a field the request spells differently from the domain).
func domainError(req any, err error) error {
	if m, ok := req.(interface{ domainError(error) error }); ok {
		return m.domainError(err)
	}
	return err
}

// secretHolder is an answer that shows a secret once (a key, an admin
// token): withoutSecret is the same answer with the secret null, as a
// replay under its Idempotency-Key shows it.
type secretHolder interface{ withoutSecret() any }

// redactor removes the secret of a Resp answer, when Resp holds one.
func redactor[Resp any]() func([]byte) ([]byte, error) {
	var zero Resp
	if _, ok := any(zero).(secretHolder); !ok {
		return nil
	}
	return func(body []byte) ([]byte, error) {
		var v Resp
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, fmt.Errorf("redact answer: %w", err)
		}
		return encodeJSON(any(v).(secretHolder).withoutSecret())
	}
}

// PageQuery are the query parameters of every list.
type PageQuery struct {
	Limit  int    `query:"limit" min:"1" max:"200" default:"50" doc:"the most items on the page"`
	Cursor string `query:"cursor" doc:"next_cursor of the previous page"`
}
