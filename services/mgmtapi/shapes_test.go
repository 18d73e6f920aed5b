package mgmtapi

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/mail"
	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
)

// update rewrites the golden files of this package (testdata/*.golden.json
// and testdata/openapi.json) from what the code answers now.
var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (go test -run %s -update writes it): %v", t.Name(), err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from what the code answers now (go test -run %s -update rewrites it):\n%s",
			path, t.Name(), lineDiff(string(want), string(got)))
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	inW, inG := map[string]int{}, map[string]int{}
	for _, l := range w {
		inW[l]++
	}
	for _, l := range g {
		inG[l]++
	}
	var b strings.Builder
	n := 0
	for _, l := range w {
		if inG[l] == 0 && n < 60 {
			fmt.Fprintf(&b, "- %s\n", l)
			n++
		}
	}
	for _, l := range g {
		if inW[l] == 0 && n < 120 {
			fmt.Fprintf(&b, "+ %s\n", l)
			n++
		}
	}
	return b.String()
}

// shapeOf lists the JSON paths of v with their JSON types ("targets[].url
// string"); array elements are merged under "[]". Values are left out, so
// that ids and times do not matter, only which fields exist and their types.
func shapeOf(v any) []string {
	set := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			set[path+" object"] = true
			for k, e := range x {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(p, e)
			}
		case []any:
			set[path+" array"] = true
			for _, e := range x {
				walk(path+"[]", e)
			}
		case string:
			set[path+" string"] = true
		case float64:
			set[path+" number"] = true
		case bool:
			set[path+" boolean"] = true
		case nil:
			set[path+" null"] = true
		}
	}
	walk("", v)
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, strings.TrimSpace(k))
	}
	sort.Strings(out)
	return out
}

// answer is what the golden file records of one call: its status and the
// shape of its body.
type answer struct {
	Status int      `json:"status"`
	Shape  []string `json:"shape,omitempty"`
}

// TestResponseShapes records the status and field set (names and JSON
// types) of an answer of every operation of /v1, with optional fields both
// left out and set, and of the problems, in testdata/responses.golden.json.
// Outside tests drive these shapes (DESIGN.md "Minimum request and response
// shapes of /v1"): a change shows up here as a diff to review.
func TestResponseShapes(t *testing.T) {
	t.Parallel()
	rdb, keys := storetest.NewRedis(t)
	db := storetest.NewPool(t)
	sink := &mail.Sink{}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	devs := &developers.Service{DB: db, Catalog: catalog.New(db, testSecret, true), Mailer: sink, Secret: testSecret,
		Logger: discard, PortalURL: func(t tenancy.Tenant) string { return "http://" + t.Slug + ".developers.test" }}
	e := &env{t: t, db: db, h: New(Options{DB: db, Secret: testSecret, OperatorToken: testOperatorToken,
		AllowPrivateUpstreams: true, Logger: discard, Developers: devs, Redis: rdb, Keys: keys, ConfigSize: publish.TenantConfigBytes})}
	ctx := context.Background()
	got := map[string]answer{}
	var calls []recorded
	call := func(name string, want int, method, path, token string, body any, header ...string) map[string]any {
		t.Helper()
		r := e.do(method, path, token, body, header...)
		if r.Status != want {
			t.Fatalf("%s: %s %s: status %d, want %d: %s", name, method, path, r.Status, want, r.Body)
		}
		a := answer{Status: r.Status}
		var m map[string]any
		if len(r.Body) > 0 {
			var v any
			if err := json.Unmarshal(r.Body, &v); err != nil {
				t.Fatalf("%s: decode %s: %v", name, r.Body, err)
			}
			a.Shape = shapeOf(v)
			m, _ = v.(map[string]any)
		}
		if _, dup := got[name]; dup {
			t.Fatalf("case %s twice", name)
		}
		got[name] = a
		calls = append(calls, recorded{name: name, method: method, path: path, status: r.Status, req: body, resp: r.Body})
		return m
	}
	id := func(m map[string]any) string { return m["id"].(string) }

	// Tenants and admin tokens.
	tc := call("tenant.create", 201, "POST", "/v1/tenants", testOperatorToken, map[string]any{"name": "Acme", "slug": "acme"},
		"Idempotency-Key", "tenant-acme")
	call("tenant.create.replay", 201, "POST", "/v1/tenants", testOperatorToken, map[string]any{"name": "Acme", "slug": "acme"},
		"Idempotency-Key", "tenant-acme")
	tok := tc["admin_token"].(string)
	tenantID := tc["tenant"].(map[string]any)["id"].(string)
	call("tenant.get", 200, "GET", "/v1/tenant", tok, nil)
	at := call("admin_token.create", 201, "POST", "/v1/admin-tokens", tok, map[string]any{"name": "ci"}, "Idempotency-Key", "tok-ci")
	call("admin_token.create.replay", 201, "POST", "/v1/admin-tokens", tok, map[string]any{"name": "ci"}, "Idempotency-Key", "tok-ci")
	call("admin_token.get", 200, "GET", "/v1/admin-tokens/"+id(at), tok, nil)
	call("admin_token.list", 200, "GET", "/v1/admin-tokens", tok, nil)
	call("admin_token.revoke", 204, "DELETE", "/v1/admin-tokens/"+id(at), tok, nil)

	// Upstreams: the minimum shape and every optional part.
	up := call("upstream.create", 201, "POST", "/v1/upstreams", tok, map[string]any{
		"name": "backend", "algorithm": "round_robin", "targets": []any{map[string]any{"url": "http://127.0.0.1:9", "weight": 2}}})
	full := call("upstream.create.full", 201, "POST", "/v1/upstreams", tok, map[string]any{
		"name": "hashed", "algorithm": "consistent_hash",
		"targets":         []any{map[string]any{"url": "http://127.0.0.1:10"}, map[string]any{"url": "http://127.0.0.1:11", "weight": 3}},
		"health_check":    map[string]any{"path": "/healthz", "interval_ms": 5000, "healthy_threshold": 2, "unhealthy_threshold": 3, "expected_status": 204},
		"hash_on":         map[string]any{"source": "header", "name": "X-User", "bounded_load": 1.5},
		"outlier":         map[string]any{"consecutive_5xx": 5, "consecutive_errors": 3, "base_ejection_ms": 1000, "max_ejection_ms": 60000, "max_ejection_percent": 40},
		"retry":           map[string]any{"attempts": 2, "budget_percent": 10, "min_per_second": 1},
		"circuit_breaker": map[string]any{"max_requests": 100}})
	call("upstream.get", 200, "GET", "/v1/upstreams/"+id(up), tok, nil)
	call("upstream.get.full", 200, "GET", "/v1/upstreams/"+id(full), tok, nil)
	call("upstream.list", 200, "GET", "/v1/upstreams?limit=1", tok, nil)
	call("upstream.patch", 200, "PATCH", "/v1/upstreams/"+id(full), tok, map[string]any{"name": "hashed2", "retry": nil})
	call("upstream.health", 200, "GET", "/v1/upstreams/"+id(up)+"/health", tok, nil)
	now := time.Now().UTC()
	rep, _ := json.Marshal(proxycfg.TargetHealthReport{Healthy: false, LastCheck: now, LastError: "status 503", CheckedAt: now})
	if err := rdb.HSet(ctx, keys.TargetHealth(tenantID), proxycfg.TargetHealthField(id(up), "http://127.0.0.1:9", "w1"), rep).Err(); err != nil {
		t.Fatal(err)
	}
	call("upstream.health.reported", 200, "GET", "/v1/upstreams/"+id(up)+"/health", tok, nil)

	// Consumers, plans, APIs (a JWT API names a plan and a consumer).
	cons := call("consumer.create", 201, "POST", "/v1/consumers", tok, map[string]any{"name": "Dev", "email": "dev@example.com"})
	call("consumer.get", 200, "GET", "/v1/consumers/"+id(cons), tok, nil)
	call("consumer.list", 200, "GET", "/v1/consumers", tok, nil)
	call("consumer.patch", 200, "PATCH", "/v1/consumers/"+id(cons), tok, map[string]any{"name": "Dev 2"})
	api := call("api.create", 201, "POST", "/v1/apis", tok, map[string]any{
		"name": "Orders", "slug": "orders", "base_path": "/orders", "upstream_id": id(up), "auth": "key"})
	plan := call("plan.create", 201, "POST", "/v1/plans", tok, map[string]any{
		"name": "Gold", "rate_limit": map[string]any{"requests": 10, "per_seconds": 1},
		"quota": map[string]any{"requests": 1000, "period": "month"}, "api_ids": []string{id(api)}})
	priced := call("plan.create.priced", 201, "POST", "/v1/plans", tok, map[string]any{
		"name": "Metered", "rate_limit": map[string]any{"requests": 100, "per_seconds": 60, "burst": 10, "scope": "consumer"},
		"quota": map[string]any{"requests": 5, "period": "day"}, "concurrency": 4, "public": true, "approval_required": true,
		"price": map[string]any{"currency": "usd", "amount": 1900, "interval": "month", "per_request_decimal": "0.05", "included_requests": 1000}})
	call("plan.create.cents", 201, "POST", "/v1/plans", tok, map[string]any{
		"name": "Cents", "price": map[string]any{"currency": "eur", "amount_cents": 500}})
	call("plan.get", 200, "GET", "/v1/plans/"+id(plan), tok, nil)
	call("plan.get.priced", 200, "GET", "/v1/plans/"+id(priced), tok, nil)
	call("plan.list", 200, "GET", "/v1/plans", tok, nil)
	call("plan.patch", 200, "PATCH", "/v1/plans/"+id(plan), tok, map[string]any{"public": true, "approval_required": true})
	jwtAPI := call("api.create.full", 201, "POST", "/v1/apis", tok, map[string]any{
		"name": "Accounts", "slug": "accounts", "base_path": "/accounts", "upstream_id": id(full), "auth": "jwt",
		"strip_base_path": false, "timeout_ms": 3000, "rate_limit": map[string]any{"requests": 100, "per_seconds": 1, "burst": 20},
		"published": true, "max_body_bytes": 1024, "host": "preserve", "connect_timeout_ms": 500, "read_timeout_ms": 2000,
		"jwt": map[string]any{"issuer": "https://idp.example.com", "audiences": []string{"accounts"}, "claim": "client_id",
			"algorithms": []string{"RS256", "ES256"}, "plan_id": id(plan),
			"subjects":     []any{map[string]any{"value": "svc-1", "consumer_id": id(cons), "plan_id": id(priced)}},
			"scopes":       []string{"read"},
			"route_scopes": []any{map[string]any{"path_prefix": "/admin", "methods": []string{"POST"}, "scopes": []string{"admin"}}}}})
	call("api.get", 200, "GET", "/v1/apis/"+id(api), tok, nil)
	call("api.get.full", 200, "GET", "/v1/apis/"+id(jwtAPI), tok, nil)
	call("api.list", 200, "GET", "/v1/apis", tok, nil)
	call("api.patch", 200, "PATCH", "/v1/apis/"+id(api), tok, map[string]any{"published": true, "strip_base_path": false})
	call("api.openapi.put", 200, "PUT", "/v1/apis/"+id(api)+"/openapi", tok, petsDoc)
	call("api.openapi.get", 200, "GET", "/v1/apis/"+id(api)+"/openapi", tok, nil)
	call("api.openapi.document", 200, "GET", "/v1/apis/"+id(api)+"/openapi/document", tok, nil)

	// Keys.
	key := call("key.create", 201, "POST", "/v1/keys", tok, map[string]any{"consumer_id": id(cons), "plan_id": id(plan)},
		"Idempotency-Key", "key-1")
	call("key.create.replay", 201, "POST", "/v1/keys", tok, map[string]any{"consumer_id": id(cons), "plan_id": id(plan)},
		"Idempotency-Key", "key-1")
	call("key.get", 200, "GET", "/v1/keys/"+id(key), tok, nil)
	call("key.list", 200, "GET", "/v1/keys?consumer_id="+id(cons), tok, nil)
	call("key.quota", 200, "GET", "/v1/keys/"+id(key)+"/quota", tok, nil)
	call("key.revoke", 204, "DELETE", "/v1/keys/"+id(key), tok, nil)
	call("key.get.revoked", 200, "GET", "/v1/keys/"+id(key), tok, nil)

	// Usage (empty buckets included).
	call("usage.series", 200, "GET", "/v1/usage?bucket=day", tok, nil)
	call("usage.top_consumers", 200, "GET", "/v1/usage/top-consumers", tok, nil)

	// The developer portal: settings, developers, apps, subscriptions.
	call("portal.get", 200, "GET", "/v1/portal", tok, nil)
	call("portal.put", 200, "PUT", "/v1/portal", tok, map[string]any{"enabled": true, "signup": "approval",
		"display_name": "Acme devs", "accent_color": "#112233", "logo_url": "https://cdn.example.com/l.png",
		"support_email": "help@example.com", "allowed_email_domains": []string{"example.com"}})
	call("portal.oidc.put", 200, "PUT", "/v1/portal/oidc", tok, map[string]any{"issuer": "https://idp.example.com",
		"client_id": "portal", "client_secret": "s3cret"})
	ten, err := tenancy.Get(ctx, db, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	developer := func(email string) developers.Developer {
		t.Helper()
		if err := devs.Signup(ctx, ten, developers.SignupInput{Email: email, Password: "correct horse battery", Name: "Ada"},
			"192.0.2.1"); err != nil {
			t.Fatalf("signup: %v", err)
		}
		tokn := ""
		for _, m := range sink.Messages() {
			if m.To == email && strings.Contains(m.Subject, "Confirm") {
				_, after, _ := strings.Cut(m.Body, "token=")
				tokn = strings.Fields(after)[0]
			}
		}
		d, err := devs.Verify(ctx, ten, tokn, "192.0.2.1")
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		return d
	}
	ada := developer("ada@example.com")
	bob := developer("bob@example.com")
	call("developer.list", 200, "GET", "/v1/developers?status=pending", tok, nil)
	call("developer.get", 200, "GET", "/v1/developers/"+ada.ID, tok, nil)
	call("developer.approve", 200, "POST", "/v1/developers/"+ada.ID+"/approve", tok, nil)
	call("developer.reject", 200, "POST", "/v1/developers/"+bob.ID+"/reject", tok, nil)
	call("developer.invite", 202, "POST", "/v1/developer-invites", tok, map[string]any{"email": "grace@example.com"})
	ada, err = devs.Get(ctx, tenantID, ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	app, err := devs.Catalog.CreateApp(ctx, ada.Actor(), ada.ConsumerID, catalog.AppInput{Name: "My app", Description: "Mine"})
	if err != nil {
		t.Fatal(err)
	}
	call("app.list", 200, "GET", "/v1/apps", tok, nil)
	call("app.get", 200, "GET", "/v1/apps/"+app.ID, tok, nil)
	sub, err := devs.Subscribe(ctx, ada, app.ID, id(plan))
	if err != nil {
		t.Fatal(err)
	}
	call("subscription.list", 200, "GET", "/v1/subscriptions?status=pending", tok, nil)
	call("subscription.get", 200, "GET", "/v1/subscriptions/"+sub.Subscription.ID, tok, nil)
	call("subscription.approve", 200, "POST", "/v1/subscriptions/"+sub.Subscription.ID+"/approve", tok, nil)
	subKey, _, err := devs.Catalog.CreateSubscriptionKey(ctx, ada.Actor(), ada.ConsumerID, sub.Subscription.ID)
	if err != nil {
		t.Fatal(err)
	}
	call("key.get.subscription", 200, "GET", "/v1/keys/"+subKey.ID, tok, nil)
	call("subscription.suspend", 200, "POST", "/v1/subscriptions/"+sub.Subscription.ID+"/suspend", tok, nil)
	call("subscription.resume", 200, "POST", "/v1/subscriptions/"+sub.Subscription.ID+"/resume", tok, nil)
	call("subscription.cancel", 200, "POST", "/v1/subscriptions/"+sub.Subscription.ID+"/cancel", tok, nil)
	app2, err := devs.Catalog.CreateApp(ctx, ada.Actor(), ada.ConsumerID, catalog.AppInput{Name: "Other app"})
	if err != nil {
		t.Fatal(err)
	}
	sub2, err := devs.Subscribe(ctx, ada, app2.ID, id(plan))
	if err != nil {
		t.Fatal(err)
	}
	call("subscription.reject", 200, "POST", "/v1/subscriptions/"+sub2.Subscription.ID+"/reject", tok, nil)
	call("consumer.get.developer", 200, "GET", "/v1/consumers/"+ada.ConsumerID, tok, nil)

	// Limits.
	call("limits.get", 200, "GET", "/v1/limits", tok, nil)
	call("tenant_limits.get", 200, "GET", "/v1/tenants/"+tenantID+"/limits", testOperatorToken, nil)
	call("tenant_limits.put", 200, "PUT", "/v1/tenants/"+tenantID+"/limits", testOperatorToken,
		map[string]any{string(limits.APIs): 2, string(limits.Plans): nil})

	// Problems.
	call("problem.unauthenticated", 401, "GET", "/v1/apis", "", nil)
	call("problem.bad_request", 400, "POST", "/v1/consumers", tok, map[string]any{"name": "x", "colour": "red"})
	call("problem.validation", 422, "POST", "/v1/upstreams", tok, map[string]any{"name": "u", "targets": []any{}})
	call("problem.validation.cents", 422, "POST", "/v1/plans", tok, map[string]any{"name": "p",
		"price": map[string]any{"currency": "usd", "amount_cents": -1}})
	call("problem.conflict", 409, "DELETE", "/v1/upstreams/"+id(up), tok, nil)
	call("problem.limit_exceeded", 409, "POST", "/v1/apis", tok, map[string]any{
		"name": "Three", "slug": "three", "base_path": "/three", "upstream_id": id(up)})
	call("problem.not_found", 404, "GET", "/v1/apis/00000000-0000-0000-0000-000000000000", tok, nil)
	call("problem.no_route", 404, "GET", "/v1/nothing", tok, nil)
	call("problem.method", 405, "PUT", "/v1/apis", tok, nil)
	call("problem.precondition_failed", 412, "PATCH", "/v1/apis/"+id(api), tok, map[string]any{"name": "Stale"},
		"If-Match", `"stale"`)
	call("problem.idempotency_key_reused", 422, "POST", "/v1/keys", tok, map[string]any{"consumer_id": id(cons), "plan_id": id(priced)},
		"Idempotency-Key", "key-1")

	// Deletes, then the audit log of all of the above.
	call("api.delete", 204, "DELETE", "/v1/apis/"+id(jwtAPI), tok, nil)
	call("upstream.delete", 204, "DELETE", "/v1/upstreams/"+id(full), tok, nil)
	call("consumer.delete", 204, "DELETE", "/v1/consumers/"+id(cons), tok, nil)
	call("plan.delete", 204, "DELETE", "/v1/plans/"+id(priced), tok, nil)
	call("audit.list", 200, "GET", "/v1/audit?limit=200", tok, nil)

	raw, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "responses.golden.json", append(raw, '\n'))
	checkAgainstDocument(t, calls)
}

// recorded is one call of TestResponseShapes.
type recorded struct {
	name, method, path string
	status             int
	req                any
	resp               []byte
}

// checkAgainstDocument validates every recorded call against the OpenAPI
// document: the answer's status is one the operation lists, its body
// matches the schema (types, required fields, enums, nullability), it has
// no field the schema does not document, and the JSON request body matches
// the request schema. The document is generated from the same types as the
// answers, so this catches what reflection cannot see: a handler answering
// another status, a mapping leaving a required field out, a tag that lies.
func checkAgainstDocument(t *testing.T, calls []recorded) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			mux.HandleFunc(method+" "+path, func(http.ResponseWriter, *http.Request) {})
		}
	}
	for _, c := range calls {
		_, pattern := mux.Handler(httptest.NewRequest(c.method, c.path, nil))
		method, path, ok := strings.Cut(pattern, " ")
		if !ok {
			if c.status != http.StatusNotFound && c.status != http.StatusMethodNotAllowed {
				t.Errorf("%s: %s %s is not in the document", c.name, c.method, c.path)
			}
			continue
		}
		op := doc.Paths.Find(path).GetOperation(method)
		resp := op.Responses.Status(c.status)
		if resp == nil || resp.Value == nil {
			t.Errorf("%s: %s %s answered %d, which the document does not list", c.name, method, path, c.status)
			continue
		}
		if len(c.resp) > 0 {
			media := resp.Value.Content.Get("application/json")
			if c.status >= 400 {
				media = resp.Value.Content.Get("application/problem+json")
			}
			if media == nil || media.Schema == nil {
				t.Errorf("%s: %s %s %d has a body the document does not describe", c.name, method, path, c.status)
				continue
			}
			var v any
			if err := json.Unmarshal(c.resp, &v); err != nil {
				t.Fatal(err)
			}
			if err := media.Schema.Value.VisitJSON(v); err != nil {
				t.Errorf("%s: the answer does not match the document: %v", c.name, err)
			}
			for _, f := range undocumented(media.Schema.Value, v, "") {
				t.Errorf("%s: the answer's field %s is not in the document", c.name, f)
			}
		}
		if c.req == nil || op.RequestBody == nil {
			continue
		}
		if _, raw := c.req.(string); raw {
			continue // a document (YAML), not JSON
		}
		media := op.RequestBody.Value.Content.Get("application/json")
		if media == nil {
			t.Errorf("%s: %s %s takes no JSON body in the document", c.name, method, path)
			continue
		}
		raw, _ := json.Marshal(c.req)
		var v any
		_ = json.Unmarshal(raw, &v)
		if err := media.Schema.Value.VisitJSON(v); err != nil && c.status < 400 {
			t.Errorf("%s: the accepted request does not match the document: %v", c.name, err)
		}
	}
}

// undocumented lists the fields of v that s (with its allOf) does not name,
// where s does not allow other fields.
func undocumented(s *openapi3.Schema, v any, path string) []string {
	props := map[string]*openapi3.SchemaRef{}
	var extra *openapi3.Schema
	var items *openapi3.Schema
	var collect func(s *openapi3.Schema)
	collect = func(s *openapi3.Schema) {
		for k, p := range s.Properties {
			props[k] = p
		}
		if s.AdditionalProperties.Schema != nil {
			extra = s.AdditionalProperties.Schema.Value
		}
		if s.Items != nil {
			items = s.Items.Value
		}
		for _, a := range s.AllOf {
			collect(a.Value)
		}
	}
	collect(s)
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := path + "." + k
			switch {
			case props[k] != nil:
				out = append(out, undocumented(props[k].Value, e, p)...)
			case extra != nil:
				out = append(out, undocumented(extra, e, p)...)
			case len(props) > 0 || s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has:
				out = append(out, p)
			}
		}
	case []any:
		if items != nil {
			for _, e := range x {
				out = append(out, undocumented(items, e, path+"[]")...)
			}
		}
	}
	return out
}
