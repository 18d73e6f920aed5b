package mgmtapi

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestIdempotencyKey: a retried create under the same Idempotency-Key
// answers the first answer again (status, body; no duplicate, no audit
// entry), without the secret it showed; the same key with another request
// is refused; failures are not kept; keys are per tenant and expire.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	f := e.fixture("acme")
	other, _ := e.tenant("other")
	ctx := context.Background()
	upstream := map[string]any{"name": "pool", "targets": []any{map[string]any{"url": "http://127.0.0.1:12", "weight": 1}}}

	t.Run("replay", func(t *testing.T) {
		first := e.do("POST", "/v1/upstreams", f.token, upstream, "Idempotency-Key", "up-1")
		if first.Status != 201 || first.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("first: %d %v %s", first.Status, first.Header, first.Body)
		}
		before := e.counts()
		// The same request with its fields in another order is the same.
		again := e.do("POST", "/v1/upstreams", f.token,
			`{"targets":[{"weight":1,"url":"http://127.0.0.1:12"}],"name":"pool"}`, "Idempotency-Key", "up-1")
		if again.Status != 201 || string(again.Body) != string(first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %d %v %s, want the first answer %s", again.Status, again.Header, again.Body, first.Body)
		}
		if after := e.counts(); !equalCounts(before, after) {
			t.Fatalf("a replay changed the database: %v -> %v", before, after)
		}
		// Another tenant's same key is its own.
		if r := e.do("POST", "/v1/upstreams", other, upstream, "Idempotency-Key", "up-1"); r.Status != 201 ||
			r.Header.Get("Idempotent-Replayed") != "" || r.JSON(t)["id"] == first.JSON(t)["id"] {
			t.Fatalf("other tenant, same key: %d %v %s", r.Status, r.Header, r.Body)
		}
	})

	t.Run("secrets are shown once", func(t *testing.T) {
		req := map[string]any{"consumer_id": f.consumer, "plan_id": f.plan}
		k1 := e.do("POST", "/v1/keys", f.token, req, "Idempotency-Key", "key-1")
		if k1.Status != 201 || k1.JSON(t)["key"] == nil {
			t.Fatalf("first key: %d %s", k1.Status, k1.Body)
		}
		secret := k1.JSON(t)["key"].(string)
		k2 := e.do("POST", "/v1/keys", f.token, req, "Idempotency-Key", "key-1")
		m := k2.JSON(t)
		if k2.Status != 201 || m["id"] != k1.JSON(t)["id"] || m["key"] != nil || k2.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replayed key: %d %v %s, want the same id with key null", k2.Status, k2.Header, k2.Body)
		}
		var stored string
		if err := e.db.QueryRow(ctx, `SELECT convert_from(body, 'UTF8') FROM idempotency_keys WHERE key = 'key-1'`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stored, secret) {
			t.Fatalf("the kept answer holds the key: %s", stored)
		}

		t1 := e.do("POST", "/v1/tenants", testOperatorToken, map[string]any{"name": "Beta", "slug": "beta"}, "Idempotency-Key", "t-1")
		t2 := e.do("POST", "/v1/tenants", testOperatorToken, map[string]any{"name": "Beta", "slug": "beta"}, "Idempotency-Key", "t-1")
		if t1.Status != 201 || t2.Status != 201 || t1.JSON(t)["admin_token"] == nil || t2.JSON(t)["admin_token"] != nil ||
			t2.JSON(t)["tenant"].(map[string]any)["id"] != t1.JSON(t)["tenant"].(map[string]any)["id"] {
			t.Fatalf("tenant create replay: %d %s / %d %s", t1.Status, t1.Body, t2.Status, t2.Body)
		}
		a1 := e.do("POST", "/v1/admin-tokens", f.token, map[string]any{"name": "deploy"}, "Idempotency-Key", "a-1")
		a2 := e.do("POST", "/v1/admin-tokens", f.token, map[string]any{"name": "deploy"}, "Idempotency-Key", "a-1")
		if a1.JSON(t)["token"] == nil || a2.JSON(t)["token"] != nil || a2.JSON(t)["id"] != a1.JSON(t)["id"] {
			t.Fatalf("admin token replay: %s / %s", a1.Body, a2.Body)
		}
	})

	t.Run("refused", func(t *testing.T) {
		before := e.counts()
		for _, tc := range []struct {
			name, method, path, key string
			body                    any
			want                    int
			typ                     string
		}{
			{"another body", "POST", "/v1/upstreams", "up-1", map[string]any{"name": "pool2",
				"targets": []any{map[string]any{"url": "http://127.0.0.1:13"}}}, 422, "idempotency-key-reused"},
			{"another path", "POST", "/v1/consumers", "up-1", map[string]any{"name": "c", "email": "c@example.com"}, 422, "idempotency-key-reused"},
			{"bad key", "POST", "/v1/upstreams", strings.Repeat("k", 256), upstream, 400, "bad-request"},
			{"key with a space", "POST", "/v1/upstreams", "a b", upstream, 400, "bad-request"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.do(tc.method, tc.path, f.token, tc.body, "Idempotency-Key", tc.key)
				if r.Status != tc.want || !strings.Contains(string(r.Body), tc.typ) {
					t.Fatalf("%d %s, want %d %s", r.Status, r.Body, tc.want, tc.typ)
				}
				if fields := fieldsOf(t, r); len(fields) != 1 || fields[0] != "Idempotency-Key" {
					t.Errorf("fields %v, want Idempotency-Key", fields)
				}
			})
		}
		if after := e.counts(); !equalCounts(before, after) {
			t.Fatalf("refused requests changed the database: %v -> %v", before, after)
		}
	})

	t.Run("failures are not kept", func(t *testing.T) {
		bad := map[string]any{"name": "broken", "targets": []any{}}
		if r := e.do("POST", "/v1/upstreams", f.token, bad, "Idempotency-Key", "fix-me"); r.Status != 422 {
			t.Fatalf("invalid create: %d %s", r.Status, r.Body)
		}
		fixed := map[string]any{"name": "broken", "targets": []any{map[string]any{"url": "http://127.0.0.1:14"}}}
		if r := e.do("POST", "/v1/upstreams", f.token, fixed, "Idempotency-Key", "fix-me"); r.Status != 201 ||
			r.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("corrected create under the same key: %d %v %s", r.Status, r.Header, r.Body)
		}
	})

	t.Run("in progress, stale, expired", func(t *testing.T) {
		req := map[string]any{"name": "Svc", "email": "svc@example.com"}
		raw, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		hash := requestHash(httptest.NewRequest("POST", "/v1/consumers", nil), raw)
		if _, err := e.db.Exec(ctx, `INSERT INTO idempotency_keys (scope, key, tenant_id, request_hash, expires_at)
			VALUES ($1::text, 'busy', $1::text::uuid, $2, now() + interval '1 hour')`, f.tenantID, hash); err != nil {
			t.Fatal(err)
		}
		r := e.do("POST", "/v1/consumers", f.token, req, "Idempotency-Key", "busy")
		if r.Status != 409 || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), "idempotency-key-in-use") {
			t.Fatalf("running first request: %d %v %s, want 409 idempotency-key-in-use", r.Status, r.Header, r.Body)
		}
		// Its process died a while ago: the key is free.
		if _, err := e.db.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '2 minutes' WHERE key = 'busy'`); err != nil {
			t.Fatal(err)
		}
		first := e.do("POST", "/v1/consumers", f.token, req, "Idempotency-Key", "busy")
		if first.Status != 201 {
			t.Fatalf("after a stale claim: %d %s", first.Status, first.Body)
		}
		// After 24 hours the key is forgotten: the request runs again.
		if _, err := e.db.Exec(ctx, `UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'busy'`); err != nil {
			t.Fatal(err)
		}
		second := e.do("POST", "/v1/consumers", f.token, req, "Idempotency-Key", "busy")
		if second.Status != 201 || second.Header.Get("Idempotent-Replayed") != "" || second.JSON(t)["id"] == first.JSON(t)["id"] {
			t.Fatalf("after expiry: %d %v %s", second.Status, second.Header, second.Body)
		}
	})
}
