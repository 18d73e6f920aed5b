package mgmtapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// Optimistic concurrency. Every 200 answer to GET, PUT and PATCH carries a
// strong ETag: a digest of the JSON body it answers, so that it changes
// whenever anything a reader can see changes (updated_at included). A
// PATCH, PUT or DELETE that sends If-Match goes ahead only while the
// object's current ETag is one of those it names ("*": any existing one);
// otherwise it answers 412 precondition-failed and changes nothing.
//
// PATCH on upstreams, APIs, plans and consumers, and PUT /v1/portal, check
// twice: the ETag against the object as GET answers it, then, under the row
// lock their write takes, that the fields a caller can set have not changed
// since, so that a change committed between the two is not overwritten.
// The other writes (DELETE, the other PUTs) check just before they write.

// etagOf is the strong ETag of an answer's body.
func etagOf(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
}

// etagOfValue is the ETag of v answered as JSON.
func etagOfValue(v any) (string, error) {
	body, err := encodeJSON(v)
	if err != nil {
		return "", err
	}
	return etagOf(body), nil
}

// ifMatchOf is the request's If-Match header ("" when it has none); several
// header lines count as one list.
func ifMatchOf(r *http.Request) string {
	return strings.TrimSpace(strings.Join(r.Header.Values("If-Match"), ","))
}

// ifMatchHolds reports whether the If-Match list h names etag or "*". The
// comparison is strong: a weak tag (W/"...") never matches.
func ifMatchHolds(h, etag string) bool {
	for _, part := range strings.Split(h, ",") {
		if t := strings.TrimSpace(part); t == "*" || t == etag {
			return true
		}
	}
	return false
}

// ifMatchStar reports whether the If-Match list h holds "*": any existing
// object.
func ifMatchStar(h string) bool {
	for _, part := range strings.Split(h, ",") {
		if strings.TrimSpace(part) == "*" {
			return true
		}
	}
	return false
}

// preconditionFailed is the error of a write whose If-Match no longer holds.
func preconditionFailed() error {
	return &problemError{Problem{Type: ProblemBase + "precondition-failed", Title: "Precondition failed",
		Status: http.StatusPreconditionFailed,
		Detail: "If-Match does not name the object's current ETag: it changed since it was read; read it again and retry"}}
}

// checkIfMatch checks the request's If-Match (if any) against current, the
// object as GET answers it; nil current means there is none, which no
// If-Match matches.
func checkIfMatch(r *http.Request, current any) error {
	h := ifMatchOf(r)
	if h == "" {
		return nil
	}
	if current == nil {
		return preconditionFailed()
	}
	etag, err := etagOfValue(current)
	if err != nil {
		return err
	}
	if !ifMatchHolds(h, etag) {
		return preconditionFailed()
	}
	return nil
}

// sameJSON reports whether a and b encode to the same JSON: the settable
// state a PATCH saw before its write against the one it writes over.
func sameJSON(a, b any) bool {
	x, errA := json.Marshal(a)
	y, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(x) == string(y)
}

// currentFunc reads the object a write changes, as GET answers it, for
// If-Match; nil means the object has no representation yet.
type currentFunc func(r *http.Request, c *call) (any, error)

// reader is the currentFunc of the object of the path's {id}.
func reader[Out, Resp any](get func(ctx context.Context, tenantID, id string) (Out, error), out func(Out) Resp) currentFunc {
	return func(r *http.Request, c *call) (any, error) {
		o, err := get(r.Context(), c.actor.TenantID, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		return out(o), nil
	}
}

// readerOf is the currentFunc of a handler that answers the object.
func readerOf[Resp any](fn func(r *http.Request, c *call) (Resp, error)) currentFunc {
	return func(r *http.Request, c *call) (any, error) {
		v, err := fn(r, c)
		if err != nil {
			return nil, err
		}
		return v, nil
	}
}
