package mgmtapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/fault"
)

// Idempotency-Key on POST. A client that may retry a create (after a
// timeout, a dropped connection, a 503) sends a key of its choosing; the
// first request with the key runs, and its 2xx answer is kept for
// idempotencyTTL in idempotency_keys, per tenant (per operator for POST
// /v1/tenants). A later request with the same key and the same method,
// path and body gets that answer again (same status and body, with
// Idempotent-Replayed: true) instead of running: no duplicate. Secrets are
// never kept: the kept copy of an answer that showed one (a key, an admin
// token) has it null, so a replay never shows it again (DESIGN.md
// "Declarative config").
//
// The same key with another request answers 422 idempotency-key-reused;
// while the first request still runs, 409 idempotency-key-in-use with
// Retry-After. An answer that is not 2xx is not kept: the key is free
// again and a retry runs anew. A first request that has not finished after
// idempotencyStale (its process died) no longer holds the key.

const (
	idempotencyHeader = "Idempotency-Key"
	replayedHeader    = "Idempotent-Replayed"
	idempotencyTTL    = 24 * time.Hour
	idempotencyStale  = time.Minute
	maxIdempotencyKey = 255
	// idempotencySweep bounds the expired rows one request deletes.
	idempotencySweep = 100
)

// validIdempotencyKey: 1 to 255 visible ASCII characters (a UUID, say).
func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > maxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// idempotencyScope is whose keys a call's key is one of: its tenant's, or
// the operator's.
func idempotencyScope(c *call) (scope string, tenantID *string) {
	if c.actor.TenantID == "" {
		return "operator", nil
	}
	id := c.actor.TenantID
	return id, &id
}

// requestHash digests what makes two requests the same: method, path,
// query and body (JSON bodies compared as values, so that a retry that
// encodes its fields in another order is the same request).
func requestHash(r *http.Request, body []byte) string {
	canon := body
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err == nil && !dec.More() {
		if b, err := json.Marshal(v); err == nil {
			canon = b
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s?%s\n", r.Method, r.URL.Path, r.URL.RawQuery)
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil))
}

// keptAnswer is a row of idempotency_keys.
type keptAnswer struct {
	hash        string
	status      *int
	contentType string
	body        []byte
	createdAt   time.Time
}

// idempotent runs rt under the request's Idempotency-Key, or replays the
// answer kept under it.
func (a *api) idempotent(w http.ResponseWriter, r *http.Request, c *call, rt route) error {
	key := r.Header.Get(idempotencyHeader)
	if !validIdempotencyKey(key) {
		return badRequest(idempotencyHeader, "must be 1 to 255 visible ASCII characters")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("the body exceeds %d bytes", maxBody)}
	}
	if err != nil {
		return badRequest("", "could not read the request body")
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	scope, tenantID := idempotencyScope(c)
	hash := requestHash(r, body)

	kept, claimed, err := a.claimKey(r.Context(), scope, tenantID, key, hash)
	if err != nil {
		return err
	}
	if !claimed {
		switch {
		case kept.hash != hash:
			return &problemError{Problem{Type: ProblemBase + "idempotency-key-reused", Title: "Idempotency key reused",
				Status: http.StatusUnprocessableEntity,
				Detail: "this Idempotency-Key was used with another request in the last 24 hours; send a new key with a new request",
				Errors: []fault.FieldError{{Field: idempotencyHeader, Message: "was used with another method, path or body"}}}}
		case kept.status == nil:
			return &problemError{Problem{Type: ProblemBase + "idempotency-key-in-use", Title: "Idempotency key in use",
				Status: http.StatusConflict, RetryAfter: time.Second,
				Detail: "a request with this Idempotency-Key is still running; retry shortly to get its answer"}}
		}
		w.Header().Set("Content-Type", kept.contentType)
		w.Header().Set(replayedHeader, "true")
		w.WriteHeader(*kept.status)
		_, err := w.Write(kept.body)
		return err
	}

	rec := &recorder{header: http.Header{}}
	for k, v := range w.Header() {
		rec.header[k] = v
	}
	if err := rt.handle(rec, r, c); err != nil {
		a.fail(rec, r, err)
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	// The bookkeeping outlives a caller that hung up: the change is made.
	ctx := context.WithoutCancel(r.Context())
	if rec.status >= 200 && rec.status < 300 {
		stored := rec.body.Bytes()
		if rt.redact != nil {
			if stored, err = rt.redact(stored); err != nil {
				a.log.Error("idempotency: redact answer", "path", r.URL.Path, "err", err)
				stored = nil
			}
		}
		if stored != nil {
			err = a.keepAnswer(ctx, scope, key, rec.status, rec.header.Get("Content-Type"), stored)
		}
		if stored == nil || err != nil {
			// The answer goes out; a retry waits for the claim to go stale.
			a.log.Error("idempotency: keep answer", "path", r.URL.Path, "err", err)
		}
	} else if err := a.releaseKey(ctx, scope, key); err != nil {
		a.log.Error("idempotency: release key", "path", r.URL.Path, "err", err)
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	_, err = w.Write(rec.body.Bytes())
	return err
}

// claimKey claims key for a request with hash, or returns what the key
// holds. Expired keys are forgotten first, and a few other expired ones of
// any scope with them.
func (a *api) claimKey(ctx context.Context, scope string, tenantID *string, key, hash string) (keptAnswer, bool, error) {
	if _, err := a.db.Exec(ctx, `DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
		SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT $1 FOR UPDATE SKIP LOCKED))`,
		idempotencySweep); err != nil {
		return keptAnswer{}, false, fmt.Errorf("sweep idempotency keys: %w", err)
	}
	for range 3 {
		tag, err := a.db.Exec(ctx, `INSERT INTO idempotency_keys (scope, key, tenant_id, request_hash, expires_at)
			VALUES ($1, $2, $3, $4, now() + $5::interval) ON CONFLICT (scope, key) DO NOTHING`,
			scope, key, tenantID, hash, fmt.Sprintf("%d seconds", int(idempotencyTTL.Seconds())))
		if err != nil {
			return keptAnswer{}, false, fmt.Errorf("claim idempotency key: %w", err)
		}
		if tag.RowsAffected() == 1 {
			return keptAnswer{}, true, nil
		}
		var k keptAnswer
		var expired bool
		err = a.db.QueryRow(ctx, `SELECT request_hash, status, content_type, body, created_at, expires_at < now()
			FROM idempotency_keys WHERE scope = $1 AND key = $2`, scope, key).
			Scan(&k.hash, &k.status, &k.contentType, &k.body, &k.createdAt, &expired)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			continue // released meanwhile: claim again
		case err != nil:
			return keptAnswer{}, false, fmt.Errorf("read idempotency key: %w", err)
		case expired:
			if _, err := a.db.Exec(ctx, `DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at < now()`,
				scope, key); err != nil {
				return keptAnswer{}, false, fmt.Errorf("expire idempotency key: %w", err)
			}
			continue
		case k.status == nil && k.hash == hash && time.Since(k.createdAt) > idempotencyStale:
			// The first request died: take its claim over.
			tag, err := a.db.Exec(ctx, `UPDATE idempotency_keys SET created_at = now()
				WHERE scope = $1 AND key = $2 AND status IS NULL AND created_at = $3`, scope, key, k.createdAt)
			if err != nil {
				return keptAnswer{}, false, fmt.Errorf("take over idempotency key: %w", err)
			}
			if tag.RowsAffected() == 1 {
				return keptAnswer{}, true, nil
			}
			continue
		}
		return k, false, nil
	}
	return keptAnswer{}, false, errors.New("claim idempotency key: the key keeps changing")
}

// keepAnswer stores the answer of the request that claimed key.
func (a *api) keepAnswer(ctx context.Context, scope, key string, status int, contentType string, body []byte) error {
	if _, err := a.db.Exec(ctx, `UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5
		WHERE scope = $1 AND key = $2`, scope, key, status, contentType, body); err != nil {
		return fmt.Errorf("keep answer: %w", err)
	}
	return nil
}

// releaseKey frees a key whose request did not succeed.
func (a *api) releaseKey(ctx context.Context, scope, key string) error {
	if _, err := a.db.Exec(ctx, `DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL`,
		scope, key); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// recorder buffers an answer, so that it can be kept before it is sent.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
