package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tenantFixture is a tenant of a test platform, driven by apply and export.
type tenantFixture struct {
	t              *testing.T
	p              *platform
	token, id, dir string
}

func (p *platform) newTenant(slug string) *tenantFixture {
	p.t.Helper()
	var created createdTenant
	p.api("POST", "/v1/tenants", p.operator, map[string]any{"name": slug + " corp", "slug": slug}, 201, &created)
	return &tenantFixture{t: p.t, p: p, token: created.AdminToken, id: created.Tenant.ID, dir: p.t.TempDir()}
}

// cli runs tollgate with args against the platform as the tenant.
func (f *tenantFixture) cli(args ...string) (string, error) {
	f.t.Helper()
	var out bytes.Buffer
	getenv := func(k string) string {
		return map[string]string{"TOLLGATE_URL": f.p.control, "TOLLGATE_TOKEN": f.token}[k]
	}
	err := run(context.Background(), args, &out, getenv)
	return out.String(), err
}

// write stores a file of the tenant's directory and returns its path.
func (f *tenantFixture) write(name, content string) string {
	f.t.Helper()
	path := filepath.Join(f.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return path
}

// snapshot is what a write would leave a trace in: the tenant's audit
// entries, its config generation, and every object's updated_at.
type snapshot struct {
	audit      int
	generation int64
	updated    string
}

func (f *tenantFixture) snapshot() snapshot {
	f.t.Helper()
	var s snapshot
	ctx := context.Background()
	if err := f.p.db.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE tenant_id = $1`, f.id).Scan(&s.audit); err != nil {
		f.t.Fatal(err)
	}
	if err := f.p.db.QueryRow(ctx, `SELECT coalesce((SELECT generation FROM config_changes WHERE tenant_id = $1), 0)`,
		f.id).Scan(&s.generation); err != nil {
		f.t.Fatal(err)
	}
	if err := f.p.db.QueryRow(ctx, `SELECT concat_ws('|',
		(SELECT string_agg(name || '@' || updated_at::text, ',' ORDER BY id) FROM upstreams WHERE tenant_id = $1),
		(SELECT string_agg(slug || '@' || updated_at::text, ',' ORDER BY id) FROM apis WHERE tenant_id = $1),
		(SELECT string_agg(name || '@' || updated_at::text, ',' ORDER BY id) FROM plans WHERE tenant_id = $1),
		(SELECT string_agg(api_id::text || '@' || imported_at::text, ',' ORDER BY api_id) FROM api_documents WHERE tenant_id = $1),
		(SELECT updated_at::text FROM tenant_settings WHERE tenant_id = $1))`, f.id).Scan(&s.updated); err != nil {
		f.t.Fatal(err)
	}
	return s
}

// objects lists the names of the tenant's upstreams, APIs (slugs) and plans.
func (f *tenantFixture) objects() string {
	f.t.Helper()
	var s string
	if err := f.p.db.QueryRow(context.Background(), `SELECT concat_ws(' | ',
		(SELECT string_agg(name, ',' ORDER BY name) FROM upstreams WHERE tenant_id = $1),
		(SELECT string_agg(slug, ',' ORDER BY slug) FROM apis WHERE tenant_id = $1),
		(SELECT string_agg(name, ',' ORDER BY name) FROM plans WHERE tenant_id = $1))`, f.id).Scan(&s); err != nil {
		f.t.Fatal(err)
	}
	return s
}

const petsDocument = `      openapi: 3.0.3
      info: {title: Pets, version: "1.0"}
      paths:
        /pets:
          get:
            operationId: listPets
            responses:
              200: {description: the pets}
        /pets/{id}:
          parameters:
            - {name: id, in: path, required: true, schema: {type: string}}
          get:
            responses:
              "200": {description: one pet}
`

// tenantYAML is a tenant's configuration with most of what the format
// covers: defaults left out and set, a document, a JWT API naming a plan
// the same apply creates, a priced plan and the portal.
const tenantYAML = `upstreams:
  - name: backend
    targets:
      - url: http://127.0.0.1:9001
      - {url: "http://127.0.0.1:9002", weight: 3}
    algorithm: weighted
    health_check: {path: /healthz, interval_ms: 1000}
    retry: {attempts: 2}
  - name: spare
    targets: [{url: "http://127.0.0.1:9003"}]
    outlier: {}
    algorithm: consistent_hash
    hash_on: {source: header, name: X-User, bounded_load: 1.3}
    circuit_breaker: {max_requests: 50}
apis:
  - name: Pets
    slug: pets
    base_path: /pets
    upstream: backend
    published: true
    rate_limit: {requests: 100, per_seconds: 1}
    max_body_bytes: 1048576
    host: preserve
    connect_timeout_ms: 500
    openapi:
` + petsDocument + `  - name: Accounts
    slug: accounts
    base_path: /accounts
    upstream: backend
    auth: jwt
    strip_base_path: false
    jwt:
      issuer: https://idp.example.com
      audiences: [accounts]
      plan: Gold
      scopes: [read]
plans:
  - name: Starter
    rate_limit: {requests: 10, per_seconds: 1}
    quota: {requests: 1000}
    apis: [pets]
    public: true
  - name: Gold
    rate_limit: {requests: 100, per_seconds: 1, scope: consumer}
    apis: [pets, accounts]
    price: {amount: 1900, currency: USD, per_request_decimal: "0.05", included_requests: 1000}
    concurrency: 4
    approval_required: true
portal:
  enabled: true
  signup: approval
  display_name: Acme developers
  accent_color: "#ABCDEF"
  allowed_email_domains: ["@Example.com"]
`

// TestApplyExport drives `tollgate apply` and `tollgate export` against a
// control plane over HTTP: a dry run writes nothing, apply creates, the
// same file again writes nothing (no audit entry, no new generation, no
// new updated_at), one edited field is one update of that field, export
// then apply (YAML and JSON) writes nothing, and -prune deletes what the
// file leaves out.
func TestApplyExport(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	f := p.newTenant("acme")
	file := f.write("tenant.yaml", tenantYAML)
	empty := f.snapshot()

	out, err := f.cli("apply", "-f", file, "--dry-run")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	for _, want := range []string{"create    upstream backend", "create    api accounts", "create    openapi document of api pets",
		"create    plan Gold", "update    portal", "            enabled: false -> true", "Plan: 7 to create, 1 to update, 0 to delete, 0 unchanged.",
		"Dry run: nothing was changed."} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if s := f.snapshot(); s != empty || f.objects() != "" {
		t.Fatalf("the dry run changed the tenant: %+v -> %+v, objects %q", empty, s, f.objects())
	}

	out, err = f.cli("apply", "-f", file)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if got, want := f.objects(), "backend,spare | accounts,pets | Gold,Starter"; got != want {
		t.Fatalf("objects %q, want %q\n%s", got, want, out)
	}
	var api struct {
		ID  string `json:"id"`
		JWT struct {
			PlanID string `json:"plan_id"`
		} `json:"jwt"`
		StripBasePath bool `json:"strip_base_path"`
	}
	var apis struct{ Items []json.RawMessage }
	p.api("GET", "/v1/apis", f.token, nil, 200, &apis)
	for _, raw := range apis.Items {
		if strings.Contains(string(raw), `"slug":"accounts"`) {
			_ = json.Unmarshal(raw, &api)
		}
	}
	var gold struct{ ID string }
	var plans struct{ Items []json.RawMessage }
	p.api("GET", "/v1/plans", f.token, nil, 200, &plans)
	for _, raw := range plans.Items {
		if strings.Contains(string(raw), `"name":"Gold"`) {
			_ = json.Unmarshal(raw, &gold)
		}
	}
	if api.JWT.PlanID == "" || api.JWT.PlanID != gold.ID || api.StripBasePath {
		t.Errorf("accounts API %+v: want its JWT plan Gold (%s) and strip_base_path false", api, gold.ID)
	}

	applied := f.snapshot()
	noChange := func(what, path string, args ...string) {
		t.Helper()
		out, err := f.cli(append([]string{"apply", "-f", path}, args...)...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, out)
		}
		if !strings.Contains(out, "No changes") || !strings.Contains(out, "0 to create, 0 to update, 0 to delete") {
			t.Errorf("%s: not a no-op:\n%s", what, out)
		}
		if s := f.snapshot(); s != applied {
			t.Fatalf("%s wrote: %+v -> %+v", what, applied, s)
		}
	}
	noChange("the same file again", file)

	t.Run("one edited field is one update", func(t *testing.T) {
		edited := f.write("edited.yaml", strings.Replace(tenantYAML, "rate_limit: {requests: 10, per_seconds: 1}",
			"rate_limit: {requests: 20, per_seconds: 1}", 1))
		out, err := f.cli("apply", "-f", edited, "-dry-run")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "update    plan Starter\n            rate_limit.requests: 10 -> 20\n") ||
			!strings.Contains(out, "0 to create, 1 to update, 0 to delete, 7 unchanged") {
			t.Fatalf("plan of one edit:\n%s", out)
		}
		if out, err = f.cli("apply", "-f", edited); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		s := f.snapshot()
		if s.audit != applied.audit+1 || s.generation == applied.generation {
			t.Errorf("one update: audit %d -> %d, generation %d -> %d", applied.audit, s.audit, applied.generation, s.generation)
		}
		applied = s
		noChange("the edited file again", edited)
	})

	t.Run("export then apply", func(t *testing.T) {
		yamlOut, err := f.cli("export")
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		again, _ := f.cli("export")
		if again != yamlOut {
			t.Error("two exports of an unchanged tenant differ")
		}
		for _, want := range []string{"# The configuration of tenant acme", "  - name: backend\n    algorithm: weighted\n",
			"    strip_base_path: false\n", "    openapi:\n      openapi: 3.0.3\n      info:\n", "plan: Gold",
			"allowed_email_domains:\n    - example.com\n"} {
			if !strings.Contains(yamlOut, want) {
				t.Errorf("export lacks %q:\n%s", want, yamlOut)
			}
		}
		for _, unwanted := range []string{"round_robin", "weight: 1\n", "auth: key", "scope: key", "period: month", "signup: open",
			"interval_ms: 10000", f.token} {
			if strings.Contains(yamlOut, unwanted) {
				t.Errorf("export holds %q (a default or a secret):\n%s", unwanted, yamlOut)
			}
		}
		noChange("apply of the YAML export", f.write("export.yaml", yamlOut))
		jsonOut, err := f.cli("export", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid([]byte(jsonOut)) {
			t.Fatalf("export -o json is not JSON:\n%s", jsonOut)
		}
		noChange("apply of the JSON export", f.write("export.json", jsonOut))
		// A directory: every file in name order, as one configuration.
		dir := filepath.Join(f.dir, "split")
		parts := strings.SplitN(yamlOut, "\napis:\n", 2)
		f.write("split/1-upstreams.yaml", parts[0]+"\n")
		f.write("split/2-rest.yml", "apis:\n"+parts[1])
		f.write("split/notes.txt", "not read")
		noChange("apply of a directory", dir)
	})

	t.Run("prune", func(t *testing.T) {
		pruned := strings.Replace(tenantYAML, "  - name: spare\n    targets: [{url: \"http://127.0.0.1:9003\"}]\n    outlier: {}\n"+
			"    algorithm: consistent_hash\n    hash_on: {source: header, name: X-User, bounded_load: 1.3}\n    circuit_breaker: {max_requests: 50}\n", "", 1)
		pruned = strings.Replace(pruned, "rate_limit: {requests: 10, per_seconds: 1}", "rate_limit: {requests: 20, per_seconds: 1}", 1)
		path := f.write("pruned.yaml", pruned)
		out, err := f.cli("apply", "-f", path)
		if err != nil || !strings.Contains(out, "No changes") {
			t.Fatalf("without -prune the upstream stays: %v\n%s", err, out)
		}
		out, err = f.cli("apply", "-f", path, "-prune", "-dry-run")
		if err != nil || !strings.Contains(out, "delete    upstream spare") || f.objects() != "backend,spare | accounts,pets | Gold,Starter" {
			t.Fatalf("prune dry run: %v\n%s", err, out)
		}
		if out, err = f.cli("apply", "-f", path, "--prune"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got := f.objects(); got != "backend | accounts,pets | Gold,Starter" {
			t.Fatalf("after prune: %q\n%s", got, out)
		}
		// A reference to what -prune would delete is refused before anything changes.
		bad := f.write("bad-prune.yaml", "upstreams: []\napis:\n  - {name: Pets, slug: pets, base_path: /pets, upstream: backend}\n")
		if out, err = f.cli("apply", "-f", bad, "-prune"); err == nil || !strings.Contains(err.Error(),
			"bad-prune.yaml:3: apis[0].upstream: upstream \"backend\" is not in the file: -prune would delete it") {
			t.Fatalf("a reference to a pruned upstream: %v\n%s", err, out)
		}
		// The whole tenant's configuration gone: plans, then APIs, then upstreams.
		none := f.write("none.yaml", "{}\n")
		if out, err = f.cli("apply", "-f", none, "-prune"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "deleted plan Gold") || strings.Index(out, "deleted plan") > strings.Index(out, "deleted api") ||
			strings.Index(out, "deleted api") > strings.Index(out, "deleted upstream") || f.objects() != "" {
			t.Fatalf("prune of everything, in dependency order:\n%s\nleft %q", out, f.objects())
		}
	})
}

// TestApplyErrors: a bad entry is refused before anything changes, with
// the file, line and field it is at.
func TestApplyErrors(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	f := p.newTenant("errs")
	for _, tc := range []struct {
		name    string
		files   map[string]string
		want    []string
		wantAll bool
	}{
		{"unknown field", map[string]string{"bad.yaml": "upstreams:\n  - name: a\n    targets: [{url: \"http://127.0.0.1:1\"}]\napis:\n  - name: A\n    base_pth: /a\n"},
			[]string{"bad.yaml:6: apis[0].base_pth: unknown field (the fields here are name, slug, base_path,"}, false},
		{"wrong type", map[string]string{"bad.yaml": "upstreams:\n  - name: a\n    targets:\n      - url: http://127.0.0.1:1\n        weight: two\n"},
			[]string{"bad.yaml:5: upstreams[0].targets[0].weight: must be an integer, not \"two\""}, false},
		{"not a list", map[string]string{"bad.json": "{\"plans\": {\"name\": \"x\"}}"},
			[]string{"bad.json:1: plans: must be a list"}, false},
		{"syntax", map[string]string{"bad.yaml": "upstreams:\n  - name: [a\n"},
			[]string{"bad.yaml:", "not YAML or JSON"}, false},
		{"missing and bad fields", map[string]string{"bad.yaml": "upstreams:\n  - targets: []\n    algorithm: fastest\n" +
			"apis:\n  - {name: A, slug: Bad_Slug, base_path: a, upstream: nowhere}\n"},
			[]string{"bad.yaml:2: upstreams[0].name: is required", "bad.yaml:2: upstreams[0].targets: at least one target is required",
				"bad.yaml:3: upstreams[0].algorithm: must be round_robin", "bad.yaml:5: apis[0].slug: must be a lowercase DNS label",
				"bad.yaml:5: apis[0].base_path: must start with /"}, true},
		{"unknown reference", map[string]string{"bad.yaml": "apis:\n  - name: A\n    slug: a\n    base_path: /a\n    upstream: nowhere\n" +
			"plans:\n  - name: P\n    apis: [a, b]\n"},
			[]string{"bad.yaml:5: apis[0].upstream: no upstream \"nowhere\" in the file or the tenant",
				"bad.yaml:8: plans[0].apis[1]: no API \"b\" in the file or the tenant"}, true},
		{"declared twice across files", map[string]string{
			"dir/a.yaml": "upstreams:\n  - name: u\n    targets: [{url: \"http://127.0.0.1:1\"}]\n",
			"dir/b.yaml": "\nupstreams:\n  - name: u\n    targets: [{url: \"http://127.0.0.1:2\"}]\n"},
			[]string{"b.yaml:3: upstreams[0].name: upstream \"u\" is also declared at ", "a.yaml:2"}, false},
		{"bad document", map[string]string{"bad.yaml": "upstreams:\n  - name: u\n    targets: [{url: \"http://127.0.0.1:1\"}]\n" +
			"apis:\n  - name: A\n    slug: a\n    base_path: /a\n    upstream: u\n    openapi: {openapi: 3.0.3, info: {title: x, version: '1'}, paths: {}}\n"},
			[]string{"bad.yaml:9: apis[0].openapi: has no operations under paths"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := ""
			for name, content := range tc.files {
				target = f.write(filepath.Join(tc.name, name), content)
			}
			if len(tc.files) > 1 {
				target = filepath.Dir(target)
			}
			before := f.snapshot()
			out, err := f.cli("apply", "-f", target)
			if err == nil {
				t.Fatalf("no error:\n%s", out)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			if s := f.snapshot(); s != before || f.objects() != "" {
				t.Errorf("a refused file changed the tenant: %q", f.objects())
			}
		})
	}
}

// TestApplyStopsAtFirstRefusal: when the control plane refuses a change,
// apply stops there, says what it applied, and leaves what it had not
// reached untouched.
func TestApplyStopsAtFirstRefusal(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	f := p.newTenant("partial")
	path := f.write("tenant.yaml", `upstreams:
  - name: first
    targets: [{url: "http://127.0.0.1:9001"}]
  - name: second
    targets: [{url: "http://127.0.0.1:9002"}]
    health_check: {interval_ms: 5}
apis:
  - {name: A, slug: a, base_path: /a, upstream: first}
plans:
  - {name: P, apis: [a]}
`)
	out, err := f.cli("apply", "-f", path)
	if err == nil || !strings.Contains(err.Error(), "apply stopped at create upstream second: the control plane refused it (422 validation)") ||
		!strings.Contains(err.Error(), "tenant.yaml:6: upstreams[1].health_check.interval_ms: must be between") {
		t.Fatalf("error %v\n%s", err, out)
	}
	if !strings.Contains(out, "created upstream first\nStopped: 1 of 4 changes applied; not applied: create upstream second, create api a, create plan P.") {
		t.Errorf("output:\n%s", out)
	}
	if got := f.objects(); got != "first |  | " && got != "first" {
		t.Fatalf("objects after the refusal: %q, want the first upstream only", got)
	}
}

// TestApplyRefusesConcurrentChange: apply updates with the ETag it planned
// from, so a change made by someone else in between is refused (412), not
// overwritten.
func TestApplyRefusesConcurrentChange(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	f := p.newTenant("race")
	path := f.write("tenant.yaml", "upstreams:\n  - name: u\n    targets: [{url: \"http://127.0.0.1:9001\"}]\n")
	if out, err := f.cli("apply", "-f", path); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	path = f.write("tenant.yaml", "upstreams:\n  - name: u\n    targets: [{url: \"http://127.0.0.1:9002\"}]\n")
	cfg, err := loadTenantConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newTenantClient(p.control, f.token)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lv, err := readLive(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := planApply(ctx, c, cfg, lv, false)
	if err != nil {
		t.Fatal(err)
	}
	p.api("PATCH", "/v1/upstreams/"+lv.upstreams[0].Id, f.token, map[string]any{"algorithm": "random"}, 200, nil)
	var out bytes.Buffer
	err = plan.execute(ctx, &out)
	if err == nil || !strings.Contains(err.Error(), "412 precondition-failed") {
		t.Fatalf("execute after a concurrent change: %v\n%s", err, out.String())
	}

	// Two live upstreams of one name cannot be told apart: apply refuses to guess.
	for range 2 {
		p.api("POST", "/v1/upstreams", f.token, map[string]any{"name": "dup",
			"targets": []any{map[string]any{"url": "http://127.0.0.1:9003"}}}, 201, nil)
	}
	dup := f.write("dup.yaml", "upstreams:\n  - name: dup\n    targets: [{url: \"http://127.0.0.1:9003\"}]\n")
	if out, err := f.cli("apply", "-f", dup); err == nil || !strings.Contains(err.Error(),
		"dup.yaml:2: upstreams[0].name: the tenant has 2 upstreams named \"dup\"") {
		t.Fatalf("ambiguous name: %v\n%s", err, out)
	}
}

// TestV1ForMachinesOverHTTP checks ETag, If-Match and Idempotency-Key on
// the control plane's real listener.
func TestV1ForMachinesOverHTTP(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	s := p.setupTenant("machines", []string{"http://127.0.0.1:9"}, 10)
	do := func(method, path string, body any, header ...string) (*http.Response, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, p.control+path, rd)
		req.Header.Set("Authorization", "Bearer "+s.token)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp, m
	}

	resp, _ := do("GET", "/v1/plans/"+s.plan, nil)
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("GET answered no ETag")
	}
	if resp, m := do("PATCH", "/v1/plans/"+s.plan, map[string]any{"public": true}, "If-Match", `"stale"`); resp.StatusCode != 412 ||
		m["type"] != "https://tollgate.dev/problems/precondition-failed" {
		t.Fatalf("stale If-Match: %d %v", resp.StatusCode, m)
	}
	if resp, _ := do("PATCH", "/v1/plans/"+s.plan, map[string]any{"public": true}, "If-Match", etag); resp.StatusCode != 200 ||
		resp.Header.Get("ETag") == etag {
		t.Fatalf("current If-Match: %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}

	key := map[string]any{"consumer_id": s.consumer, "plan_id": s.plan}
	r1, first := do("POST", "/v1/keys", key, "Idempotency-Key", "retry-me")
	r2, replay := do("POST", "/v1/keys", key, "Idempotency-Key", "retry-me")
	if r1.StatusCode != 201 || r2.StatusCode != 201 || first["key"] == nil || replay["key"] != nil ||
		replay["id"] != first["id"] || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replayed create: %d %v / %d %v", r1.StatusCode, first, r2.StatusCode, replay)
	}
	var other idOf
	p.api("POST", "/v1/consumers", s.token, map[string]any{"name": "Other", "email": "o@example.com"}, 201, &other)
	if r, m := do("POST", "/v1/keys", map[string]any{"consumer_id": other.ID, "plan_id": s.plan}, "Idempotency-Key", "retry-me"); r.StatusCode != 422 ||
		m["type"] != "https://tollgate.dev/problems/idempotency-key-reused" {
		t.Fatalf("reused key with another body: %d %v", r.StatusCode, m)
	}

	// tollgate tenant create through TOLLGATE_URL, with the operator token.
	var out bytes.Buffer
	env := map[string]string{"TOLLGATE_URL": p.control, "TOLLGATE_OPERATOR_TOKEN": p.operator}
	if err := run(context.Background(), []string{"tenant", "create", "-name", "Remote", "-slug", "remote"}, &out,
		func(k string) string { return env[k] }); err != nil || !strings.Contains(out.String(), "admin token (shown once): tga_") {
		t.Fatalf("tenant create through TOLLGATE_URL: %v\n%s", err, out.String())
	}
	env["TOLLGATE_OPERATOR_TOKEN"] = "wrong"
	if err := run(context.Background(), []string{"tenant", "create", "-name", "Nope", "-slug", "nope"}, &out,
		func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a wrong operator token: %v", err)
	}
}
