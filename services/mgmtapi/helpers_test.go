package mgmtapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/storetest"
)

const testOperatorToken = "op-secret-token"

var testSecret = []byte("test-secret")

// env is one API over its own fresh database.
type env struct {
	t  *testing.T
	db *pgxpool.Pool
	h  http.Handler
}

func newEnv(t *testing.T, allowPrivate bool) *env {
	t.Helper()
	db := storetest.NewPool(t)
	h := New(Options{DB: db, Secret: testSecret, OperatorToken: testOperatorToken, ConfigSize: publish.TenantConfigBytes,
		AllowPrivateUpstreams: allowPrivate, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return &env{t: t, db: db, h: h}
}

// resp is a decoded answer.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r resp) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
	return m
}

func (e *env) do(method, path, token string, body any, header ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return resp{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// must does a request and fails unless it answers want; it returns the JSON object.
func (e *env) must(want int, method, path, token string, body any) map[string]any {
	e.t.Helper()
	r := e.do(method, path, token, body)
	if r.Status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	if len(r.Body) == 0 {
		return nil
	}
	return r.JSON(e.t)
}

// tenant creates a tenant and returns its admin token and id.
func (e *env) tenant(slug string) (token, id string) {
	e.t.Helper()
	m := e.must(201, "POST", "/v1/tenants", testOperatorToken, map[string]any{"name": slug + " Inc", "slug": slug})
	return m["admin_token"].(string), m["tenant"].(map[string]any)["id"].(string)
}

// fixture is one tenant with one object of every kind.
type fixture struct {
	token, tenantID                              string
	upstream, api, plan, consumer, key, adminTok string
	keySecret                                    string
}

func (e *env) fixture(slug string) fixture {
	e.t.Helper()
	f := fixture{}
	f.token, f.tenantID = e.tenant(slug)
	f.upstream = e.must(201, "POST", "/v1/upstreams", f.token, map[string]any{
		"name": "backend", "targets": []any{map[string]any{"url": "http://127.0.0.1:9", "weight": 2}},
	})["id"].(string)
	f.api = e.must(201, "POST", "/v1/apis", f.token, map[string]any{
		"name": "Orders", "slug": "orders", "base_path": "/orders", "upstream_id": f.upstream, "auth": "key",
	})["id"].(string)
	f.plan = e.must(201, "POST", "/v1/plans", f.token, map[string]any{
		"name": "Gold", "rate_limit": map[string]any{"requests": 10, "per_seconds": 1},
		"quota": map[string]any{"requests": 1000, "period": "month"}, "api_ids": []string{f.api},
	})["id"].(string)
	f.consumer = e.must(201, "POST", "/v1/consumers", f.token, map[string]any{"name": "Dev", "email": "dev@example.com"})["id"].(string)
	k := e.must(201, "POST", "/v1/keys", f.token, map[string]any{"consumer_id": f.consumer, "plan_id": f.plan})
	f.key, f.keySecret = k["id"].(string), k["key"].(string)
	f.adminTok = e.must(201, "POST", "/v1/admin-tokens", f.token, map[string]any{"name": "ci"})["id"].(string)
	return f
}

// counts returns the number of rows of every table a refused request must not touch.
func (e *env) counts() map[string]int {
	e.t.Helper()
	out := map[string]int{}
	for _, tbl := range []string{"tenants", "admin_tokens", "upstreams", "targets", "apis", "plans", "plan_apis",
		"consumers", "keys", "audit_log", "key_outbox"} {
		var n int
		if err := e.db.QueryRow(context.Background(), "SELECT count(*) FROM "+tbl).Scan(&n); err != nil {
			e.t.Fatal(err)
		}
		out[tbl] = n
	}
	var gen int
	if err := e.db.QueryRow(context.Background(), "SELECT coalesce(sum(generation), 0)::bigint FROM config_changes").Scan(&gen); err != nil {
		e.t.Fatal(err)
	}
	out["generation"] = gen
	return out
}

func fieldsOf(t *testing.T, r resp) []string {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type %q, want application/problem+json", ct)
	}
	var p Problem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("decode problem %s: %v", r.Body, err)
	}
	if p.Type == "" || p.Title == "" || p.Status != r.Status {
		t.Errorf("incomplete problem %s", r.Body)
	}
	var out []string
	for _, f := range p.Errors {
		out = append(out, f.Field)
	}
	return out
}
