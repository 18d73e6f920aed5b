package mgmtapi

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

func TestTenantCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	tests := []struct {
		name   string
		token  string
		body   any
		status int
		fields []string
	}{
		{name: "no token", body: map[string]any{"name": "A", "slug": "a"}, status: 401},
		{name: "wrong token", token: "nope", body: map[string]any{"name": "A", "slug": "a"}, status: 401},
		{name: "bad slug", token: testOperatorToken, body: map[string]any{"name": "A", "slug": "Not_A_Label"}, status: 422, fields: []string{"slug"}},
		{name: "missing name", token: testOperatorToken, body: map[string]any{"slug": "abc"}, status: 422, fields: []string{"name"}},
		{name: "unknown field", token: testOperatorToken, body: map[string]any{"name": "A", "slug": "a", "x": 1}, status: 400, fields: []string{"x"}},
		{name: "wrong type", token: testOperatorToken, body: map[string]any{"name": 5, "slug": "a"}, status: 400, fields: []string{"name"}},
		{name: "malformed json", token: testOperatorToken, body: `{"name":`, status: 400},
		{name: "ok", token: testOperatorToken, body: map[string]any{"name": "Acme", "slug": "acme"}, status: 201},
		{name: "slug taken", token: testOperatorToken, body: map[string]any{"name": "Acme 2", "slug": "acme"}, status: 409, fields: []string{"slug"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.counts()
			r := e.do("POST", "/v1/tenants", tc.token, tc.body)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if tc.status == 201 {
				m := r.JSON(t)
				tn := m["tenant"].(map[string]any)
				if tn["slug"] != "acme" || tn["id"] == "" || !strings.HasPrefix(m["admin_token"].(string), "tga_") {
					t.Fatalf("bad answer %s", r.Body)
				}
				me := e.must(200, "GET", "/v1/tenant", m["admin_token"].(string), nil)
				if me["id"] != tn["id"] {
					t.Fatalf("GET /v1/tenant = %v", me)
				}
				return
			}
			if got := fieldsOf(t, r); tc.fields != nil && !slices.Equal(got, tc.fields) {
				t.Errorf("fields %v, want %v", got, tc.fields)
			}
			if after := e.counts(); !maps.Equal(before, after) {
				t.Errorf("refused request wrote: %v -> %v", before, after)
			}
		})
	}

	disabled := New(Options{DB: e.db, Secret: testSecret})
	e2 := &env{t: t, db: e.db, h: disabled}
	if r := e2.do("POST", "/v1/tenants", "", map[string]any{"name": "B", "slug": "b"}); r.Status != 401 {
		t.Errorf("operator API without token configured: %d", r.Status)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	tok, _ := e.tenant("acme")
	for _, tc := range []struct{ name, header string }{
		{name: "missing"}, {name: "garbage", header: "garbage"}, {name: "unknown token", header: "tga_nope"},
		{name: "operator token", header: testOperatorToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", "/v1/upstreams", tc.header, nil)
			if r.Status != 401 || r.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			fieldsOf(t, r)
		})
	}
	// A revoked admin token stops working; the last token cannot be revoked.
	me := e.must(200, "GET", "/v1/admin-tokens", tok, nil)
	first := me["items"].([]any)[0].(map[string]any)["id"].(string)
	e.must(409, "DELETE", "/v1/admin-tokens/"+first, tok, nil)
	second := e.must(201, "POST", "/v1/admin-tokens", tok, map[string]any{"name": "second"})
	if !strings.HasPrefix(second["token"].(string), "tga_") {
		t.Fatalf("admin token not shown: %v", second)
	}
	e.must(204, "DELETE", "/v1/admin-tokens/"+first, second["token"].(string), nil)
	e.must(401, "GET", "/v1/upstreams", tok, nil)
	e.must(200, "GET", "/v1/upstreams", second["token"].(string), nil)
	got := e.must(200, "GET", "/v1/admin-tokens/"+second["id"].(string), second["token"].(string), nil)
	if _, ok := got["token"]; ok {
		t.Fatal("GET shows the admin token")
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	f := e.fixture("acme")
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		fields []string
	}{
		{"upstream no targets", "POST", "/v1/upstreams", map[string]any{"name": "u", "targets": []any{}}, 422, []string{"targets"}},
		{"upstream bad algorithm", "POST", "/v1/upstreams", map[string]any{"name": "u", "algorithm": "fastest",
			"targets": []any{map[string]any{"url": "http://a.example"}}}, 422, []string{"algorithm"}},
		{"upstream bad url and weight", "POST", "/v1/upstreams", map[string]any{"name": "u", "targets": []any{
			map[string]any{"url": "http://ok.example"}, map[string]any{"url": "ftp://x", "weight": 0}}}, 422,
			[]string{"targets[1].weight", "targets[1].url"}},
		{"upstream url without host", "POST", "/v1/upstreams", map[string]any{"name": "u", "targets": []any{
			map[string]any{"url": "http://"}}}, 422, []string{"targets[0].url"}},
		{"upstream health check", "POST", "/v1/upstreams", map[string]any{"name": "u",
			"targets":      []any{map[string]any{"url": "http://a.example"}},
			"health_check": map[string]any{"path": "health", "interval_ms": 10, "healthy_threshold": -1}}, 422,
			[]string{"health_check.path", "health_check.interval_ms", "health_check.healthy_threshold"}},
		{"upstream weight wrong type", "POST", "/v1/upstreams", map[string]any{"name": "u", "targets": []any{
			map[string]any{"url": "http://a.example", "weight": "heavy"}}}, 400, nil},
		{"upstream unknown field", "POST", "/v1/upstreams", map[string]any{"name": "u", "colour": "red"}, 400, []string{"colour"}},
		{"upstream body not object", "POST", "/v1/upstreams", `[1]`, 400, nil},
		{"upstream empty body", "POST", "/v1/upstreams", nil, 400, nil},
		{"api base path", "POST", "/v1/apis", map[string]any{"name": "a", "slug": "a", "base_path": "/a/../b",
			"upstream_id": f.upstream}, 422, []string{"base_path"}},
		{"api trailing slash", "POST", "/v1/apis", map[string]any{"name": "a", "slug": "a", "base_path": "/a/",
			"upstream_id": f.upstream}, 422, []string{"base_path"}},
		{"api no leading slash", "POST", "/v1/apis", map[string]any{"name": "a", "slug": "a", "base_path": "a",
			"upstream_id": f.upstream}, 422, []string{"base_path"}},
		{"api auth", "POST", "/v1/apis", map[string]any{"name": "a", "slug": "a", "base_path": "/a", "auth": "basic",
			"upstream_id": f.upstream}, 422, []string{"auth"}},
		{"api unknown upstream", "POST", "/v1/apis", map[string]any{"name": "a", "slug": "a", "base_path": "/a",
			"upstream_id": "00000000-0000-0000-0000-000000000000"}, 422, []string{"upstream_id"}},
		{"api duplicate base path", "POST", "/v1/apis", map[string]any{"name": "a", "slug": "other", "base_path": "/orders",
			"upstream_id": f.upstream}, 409, []string{"base_path"}},
		{"api duplicate slug", "POST", "/v1/apis", map[string]any{"name": "a", "slug": "orders", "base_path": "/x",
			"upstream_id": f.upstream}, 409, []string{"slug"}},
		{"api strip wrong type", "POST", "/v1/apis", map[string]any{"name": "a", "slug": "b", "base_path": "/b",
			"upstream_id": f.upstream, "strip_base_path": "yes"}, 400, []string{"strip_base_path"}},
		{"plan limits", "POST", "/v1/plans", map[string]any{"name": "p", "rate_limit": map[string]any{"requests": 5},
			"quota": map[string]any{"requests": -1, "period": "week"}}, 422,
			[]string{"rate_limit.per_seconds", "quota.requests", "quota.period"}},
		{"plan unknown api", "POST", "/v1/plans", map[string]any{"name": "p", "api_ids": []string{"nope"}}, 422, []string{"api_ids[0]"}},
		{"plan price", "POST", "/v1/plans", map[string]any{"name": "p", "price": map[string]any{"amount_cents": -1, "currency": "dollars"}},
			422, []string{"price.amount_cents", "price.currency"}},
		{"consumer email", "POST", "/v1/consumers", map[string]any{"name": "c", "email": "not-an-email"}, 422, []string{"email"}},
		{"key missing fields", "POST", "/v1/keys", map[string]any{}, 422, []string{"consumer_id", "plan_id"}},
		{"key unknown plan", "POST", "/v1/keys", map[string]any{"consumer_id": f.consumer, "plan_id": "00000000-0000-0000-0000-000000000000"},
			422, []string{"plan_id"}},
		{"patch bad field", "PATCH", "/v1/upstreams/" + f.upstream, map[string]any{"algorithm": "fastest"}, 422, []string{"algorithm"}},
		{"patch unknown field", "PATCH", "/v1/apis/" + f.api, map[string]any{"path": "/x"}, 400, []string{"path"}},
		{"patch null body", "PATCH", "/v1/apis/" + f.api, `null`, 400, nil},
		{"bad limit", "GET", "/v1/apis?limit=x", nil, 400, []string{"limit"}},
		{"bad cursor", "GET", "/v1/apis?cursor=zzz", nil, 400, []string{"cursor"}},
		{"upstream in use", "DELETE", "/v1/upstreams/" + f.upstream, nil, 409, nil},
		{"plan with active keys", "DELETE", "/v1/plans/" + f.plan, nil, 409, nil},
		{"unknown route", "GET", "/v1/nothing", nil, 404, nil},
		{"wrong method", "PUT", "/v1/apis", nil, 405, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.counts()
			r := e.do(tc.method, tc.path, f.token, tc.body)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			got := fieldsOf(t, r)
			if tc.fields != nil && !slices.Equal(got, tc.fields) {
				t.Errorf("fields %v, want %v (%s)", got, tc.fields, r.Body)
			}
			if after := e.counts(); !maps.Equal(before, after) {
				t.Errorf("refused request wrote: %v -> %v", before, after)
			}
		})
	}
}

func TestDefaultsAndPatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	f := e.fixture("acme")
	api := e.must(200, "GET", "/v1/apis/"+f.api, f.token, nil)
	if api["strip_base_path"] != true || api["auth"] != "key" {
		t.Fatalf("defaults: %v", api)
	}
	up := e.must(201, "POST", "/v1/upstreams", f.token, map[string]any{"name": "hc",
		"targets": []any{map[string]any{"url": "http://10.1.2.3:8080"}}, "health_check": map[string]any{"path": "/healthz"}})
	hc := up["health_check"].(map[string]any)
	if up["algorithm"] != "round_robin" || hc["interval_ms"].(float64) != 10000 || hc["healthy_threshold"].(float64) != 2 {
		t.Fatalf("upstream defaults: %v", up)
	}
	if w := up["targets"].([]any)[0].(map[string]any)["weight"]; w != 1.0 {
		t.Fatalf("default weight %v", w)
	}
	// PATCH replaces only the named fields.
	p := e.must(200, "PATCH", "/v1/apis/"+f.api, f.token, map[string]any{"strip_base_path": false, "name": "Orders v2"})
	if p["strip_base_path"] != false || p["name"] != "Orders v2" || p["base_path"] != "/orders" || p["upstream_id"] != f.upstream {
		t.Fatalf("patch: %v", p)
	}
	u := e.must(200, "PATCH", "/v1/upstreams/"+up["id"].(string), f.token, map[string]any{"health_check": nil,
		"algorithm": "weighted"})
	if u["health_check"] != nil || u["algorithm"] != "weighted" || len(u["targets"].([]any)) != 1 {
		t.Fatalf("patch upstream: %v", u)
	}
	pl := e.must(200, "PATCH", "/v1/plans/"+f.plan, f.token, map[string]any{"api_ids": []string{}})
	if len(pl["api_ids"].([]any)) != 0 || pl["rate_limit"].(map[string]any)["requests"].(float64) != 10 {
		t.Fatalf("patch plan: %v", pl)
	}
	// Deleting a consumer revokes its keys.
	e.must(204, "DELETE", "/v1/consumers/"+f.consumer, f.token, nil)
	var status string
	if err := e.db.QueryRow(context.Background(), `SELECT record->>'status' FROM key_outbox ORDER BY id DESC LIMIT 1`).Scan(&status); err != nil || status != proxycfg.KeyRevoked {
		t.Fatalf("outbox after consumer delete: %q %v", status, err)
	}
	e.must(404, "GET", "/v1/keys/"+f.key, f.token, nil)
	// With no active key left the plan can go; then the API, then the upstream.
	e.must(204, "DELETE", "/v1/plans/"+f.plan, f.token, nil)
	e.must(204, "DELETE", "/v1/apis/"+f.api, f.token, nil)
	e.must(204, "DELETE", "/v1/upstreams/"+f.upstream, f.token, nil)
	e.must(404, "GET", "/v1/upstreams/"+f.upstream, f.token, nil)
}

func TestKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	f := e.fixture("acme")
	if !strings.HasPrefix(f.keySecret, "tg_") || len(f.keySecret) < 40 {
		t.Fatalf("key %q", f.keySecret)
	}
	got := e.must(200, "GET", "/v1/keys/"+f.key, f.token, nil)
	if _, ok := got["key"]; ok {
		t.Fatal("GET returns the key")
	}
	if !strings.HasPrefix(f.keySecret, got["prefix"].(string)) || got["status"] != "active" {
		t.Fatalf("key: %v", got)
	}
	list := e.must(200, "GET", "/v1/keys?consumer_id="+f.consumer, f.token, nil)
	raw, _ := json.Marshal(list)
	if strings.Contains(string(raw), f.keySecret) || len(list["items"].([]any)) != 1 {
		t.Fatalf("list: %s", raw)
	}
	var digest string
	if err := e.db.QueryRow(context.Background(), `SELECT digest FROM keys WHERE id = $1`, f.key).Scan(&digest); err != nil {
		t.Fatal(err)
	}
	if digest != proxycfg.Digest(testSecret, f.keySecret) {
		t.Fatal("stored digest is not proxycfg.Digest of the key")
	}
	var n int
	if err := e.db.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE data::text LIKE '%' || $1 || '%'`,
		f.keySecret).Scan(&n); err != nil || n != 0 {
		t.Fatalf("key in audit log: %d %v", n, err)
	}
	e.must(204, "DELETE", "/v1/keys/"+f.key, f.token, nil)
	if k := e.must(200, "GET", "/v1/keys/"+f.key, f.token, nil); k["status"] != "revoked" || k["revoked_at"] == nil {
		t.Fatalf("after revoke: %v", k)
	}
	e.must(204, "DELETE", "/v1/keys/"+f.key, f.token, nil) // idempotent
	e.must(405, "PATCH", "/v1/keys/"+f.key, f.token, map[string]any{})
	e.must(204, "DELETE", "/v1/plans/"+f.plan, f.token, nil)
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	a := e.fixture("alpha")
	b := e.fixture("beta")

	objects := []struct{ name, collection, id string }{
		{"upstream", "upstreams", a.upstream}, {"api", "apis", a.api}, {"plan", "plans", a.plan},
		{"consumer", "consumers", a.consumer}, {"key", "keys", a.key}, {"admin token", "admin-tokens", a.adminTok},
	}
	for _, o := range objects {
		t.Run(o.name, func(t *testing.T) {
			before := e.counts()
			path := "/v1/" + o.collection + "/" + o.id
			e.must(404, "GET", path, b.token, nil)
			if o.collection != "keys" && o.collection != "admin-tokens" {
				e.must(404, "PATCH", path, b.token, map[string]any{"name": "stolen"})
			}
			e.must(404, "DELETE", path, b.token, nil)
			list := e.must(200, "GET", "/v1/"+o.collection+"?limit=200", b.token, nil)
			for _, it := range list["items"].([]any) {
				if it.(map[string]any)["id"] == o.id {
					t.Fatalf("tenant B lists A's %s", o.name)
				}
			}
			if after := e.counts(); !maps.Equal(before, after) {
				t.Errorf("refused request wrote: %v -> %v", before, after)
			}
			e.must(200, "GET", path, a.token, nil)
		})
	}
	t.Run("references", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, path string
			body               any
		}{
			{"api on A's upstream", "POST", "/v1/apis", map[string]any{"name": "x", "slug": "x", "base_path": "/x", "upstream_id": a.upstream}},
			{"patch api to A's upstream", "PATCH", "/v1/apis/" + b.api, map[string]any{"upstream_id": a.upstream}},
			{"plan with A's api", "POST", "/v1/plans", map[string]any{"name": "x", "api_ids": []string{a.api}}},
			{"key for A's consumer", "POST", "/v1/keys", map[string]any{"consumer_id": a.consumer, "plan_id": b.plan}},
			{"key on A's plan", "POST", "/v1/keys", map[string]any{"consumer_id": b.consumer, "plan_id": a.plan}},
		} {
			before := e.counts()
			r := e.do(tc.method, tc.path, b.token, tc.body)
			if r.Status != 422 && r.Status != 404 {
				t.Errorf("%s: status %d: %s", tc.name, r.Status, r.Body)
			}
			if after := e.counts(); !maps.Equal(before, after) {
				t.Errorf("%s wrote: %v -> %v", tc.name, before, after)
			}
		}
	})
	t.Run("audit", func(t *testing.T) {
		for _, tok := range []string{a.token, b.token} {
			l := e.must(200, "GET", "/v1/audit?limit=200", tok, nil)
			me := e.must(200, "GET", "/v1/tenant", tok, nil)["id"]
			for _, it := range l["items"].([]any) {
				if it.(map[string]any)["tenant_id"] != me {
					t.Fatalf("audit of another tenant: %v", it)
				}
			}
		}
	})
	t.Run("same base path in two tenants", func(t *testing.T) {
		// /orders exists in both tenants: uniqueness is per tenant.
		if got := e.must(200, "GET", "/v1/apis/"+b.api, b.token, nil)["base_path"]; got != "/orders" {
			t.Fatalf("base path %v", got)
		}
	})
}

func TestAuditEntries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	f := e.fixture("acme")
	e.must(204, "DELETE", "/v1/keys/"+f.key, f.token, nil)
	l := e.must(200, "GET", "/v1/audit?limit=200", f.token, nil)
	var actions []string
	for _, it := range l["items"].([]any) {
		m := it.(map[string]any)
		actions = append(actions, m["action"].(string))
		if m["actor"] == "" || m["resource_id"] == "" {
			t.Errorf("incomplete entry %v", m)
		}
	}
	want := []string{"tenant.create", "admin_token.create", "upstream.create", "api.create", "plan.create",
		"consumer.create", "key.create", "admin_token.create", "key.revoke"}
	if !slices.Equal(actions, want) {
		t.Fatalf("actions %v, want %v", actions, want)
	}
	raw, _ := json.Marshal(l)
	if strings.Contains(string(raw), f.keySecret) || strings.Contains(string(raw), f.token) {
		t.Fatal("audit log holds a secret")
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	tok, _ := e.tenant("acme")
	want := map[string]bool{}
	for i := range 11 {
		id := e.must(201, "POST", "/v1/consumers", tok, map[string]any{"name": fmt.Sprintf("c%d", i),
			"email": fmt.Sprintf("c%d@example.com", i)})["id"].(string)
		want[id] = true
	}
	for _, limit := range []int{1, 3, 11, 50} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			seen := map[string]bool{}
			path := fmt.Sprintf("/v1/consumers?limit=%d", limit)
			for pages := 0; ; pages++ {
				if pages > 20 {
					t.Fatal("too many pages")
				}
				p := e.must(200, "GET", path, tok, nil)
				items := p["items"].([]any)
				if len(items) > limit {
					t.Fatalf("page of %d > limit %d", len(items), limit)
				}
				for _, it := range items {
					id := it.(map[string]any)["id"].(string)
					if seen[id] {
						t.Fatalf("duplicate %s", id)
					}
					seen[id] = true
				}
				if p["next_cursor"] == nil {
					break
				}
				path = fmt.Sprintf("/v1/consumers?limit=%d&cursor=%s", limit, p["next_cursor"])
			}
			if !maps.Equal(seen, want) {
				t.Fatalf("walked %d items, want %d", len(seen), len(want))
			}
		})
	}
}

func TestSSRF(t *testing.T) {
	t.Parallel()
	strict := newEnv(t, false)
	tok, _ := strict.tenant("acme")
	lax := &env{t: t, db: strict.db, h: New(Options{DB: strict.db, Secret: testSecret, AllowPrivateUpstreams: true})}
	for _, tc := range []struct {
		name, url string
		refused   bool
	}{
		{"loopback", "http://127.0.0.1", true},
		{"loopback port", "http://127.0.0.1:8080/x", true},
		{"private", "http://10.0.0.1", true},
		{"metadata", "http://169.254.169.254/latest/meta-data", true},
		{"localhost", "http://localhost:3000", true},
		{"sub localhost", "http://api.localhost", true},
		{"ipv6 loopback", "http://[::1]:80", true},
		{"ipv4-mapped", "http://[::ffff:10.0.0.1]", true},
		{"unspecified", "http://0.0.0.0", true},
		{"public", "https://93.184.215.14", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"name": tc.name, "targets": []any{map[string]any{"url": "https://93.184.215.15"}, map[string]any{"url": tc.url}}}
			r := strict.do("POST", "/v1/upstreams", tok, body)
			if tc.refused {
				if r.Status != 422 {
					t.Fatalf("status %d: %s", r.Status, r.Body)
				}
				if got := fieldsOf(t, r); !slices.Equal(got, []string{"targets[1].url"}) {
					t.Fatalf("fields %v", got)
				}
				if !strings.Contains(string(r.Body), "private") {
					t.Errorf("unclear message: %s", r.Body)
				}
			} else if r.Status != 201 {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			lax.must(201, "POST", "/v1/upstreams", tok, body)
		})
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	r := e.do("GET", "/v1/openapi.json", "", nil)
	if r.Status != 200 {
		t.Fatalf("status %d", r.Status)
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.Body)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	registered := map[string]bool{}
	for _, rt := range (&api{}).routes() {
		registered[rt.method+" "+rt.path] = true
	}
	for _, rt := range ExternalRoutes {
		registered[rt] = true
	}
	for k := range registered {
		if !documented[k] {
			t.Errorf("route %s is not documented", k)
		}
	}
	for k := range documented {
		if !registered[k] {
			t.Errorf("documented %s is not a route", k)
		}
	}
}
