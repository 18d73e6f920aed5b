package devportal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/mail"
	"github.com/tollgate/tollgate/services/sdk"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/services/usage"
	"github.com/tollgate/tollgate/web/devportal"
)

// The portal's speed target: catalogue and docs pages render in under
// 50 ms of server time for a 200-operation document. These benchmarks go
// through the whole handler (host routing, settings, session, database
// reads, the reference from a warm cache, the page render) with an
// httptest recorder, and report milliseconds per page.

// pageBench is a portal with one tenant ("acme") whose published API
// carries a document of tags×perTag operations, and a signed-in developer
// with a key for it.
type pageBench struct {
	h       http.Handler
	session *http.Cookie
	apiSlug string
}

func newPageBench(b *testing.B, tags, perTag int) *pageBench {
	b.Helper()
	ctx := context.Background()
	db := storetest.NewPool(b)
	rdb, keys := storetest.NewRedis(b)
	cat := catalog.New(db, testSecret, true)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	devs := &developers.Service{DB: db, Catalog: cat, Mailer: &mail.Sink{}, Secret: testSecret, Logger: quiet}
	p, err := devportal.New(devportal.Options{Developers: devs, Catalog: cat, Tenants: tenancy.Directory{DB: db},
		Usage: usage.Reader{DB: db, Redis: rdb, Keys: keys}, SDKs: &sdk.Generator{}, Domain: portalDomain,
		GatewayURL: "http://{slug}.gw.test:8000", Secret: testSecret, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	devs.PortalURL = p.PortalURL
	ten, _, err := tenancy.Create(ctx, db, testSecret, "Acme Inc", "acme")
	if err != nil {
		b.Fatal(err)
	}
	actor := audit.Actor{TenantID: ten.ID, Name: audit.Operator}
	if _, err := settings.SavePortal(ctx, db, actor, func(s *settings.Portal) error {
		s.Enabled, s.DisplayName, s.AccentColor = true, "Acme Developers", "#0f766e"
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	weight := 1
	up, err := cat.CreateUpstream(ctx, actor, catalog.UpstreamInput{Name: "backend", Algorithm: "round_robin",
		Targets: []catalog.Target{{URL: "http://127.0.0.1:9", Weight: &weight}}})
	if err != nil {
		b.Fatal(err)
	}
	var apiIDs []string
	// A catalogue of a few APIs, the first with the big document.
	for i, name := range []string{"Big", "Pets", "Orders", "Weather"} {
		a, err := cat.CreateAPI(ctx, actor, catalog.APIInput{Name: name, Slug: strings.ToLower(name),
			BasePath: "/" + strings.ToLower(name), UpstreamID: up.ID, Auth: "key", Published: true})
		if err != nil {
			b.Fatal(err)
		}
		doc := []byte(petsDoc)
		if i == 0 {
			doc = pageBigDocument(tags, perTag)
		}
		if _, err := cat.ImportOpenAPI(ctx, actor, a.ID, doc); err != nil {
			b.Fatalf("import %s: %v", name, err)
		}
		apiIDs = append(apiIDs, a.ID)
	}
	plan, err := cat.CreatePlan(ctx, actor, catalog.PlanInput{Name: "Free", Public: true, APIIDs: apiIDs,
		RateLimit: catalog.RateLimit{Requests: 10, PerSeconds: 1}, Quota: catalog.Quota{Requests: 1000, Period: "month"}})
	if err != nil {
		b.Fatal(err)
	}
	if err := devs.Signup(ctx, ten, developers.SignupInput{Email: "bench@example.com", Password: "correct horse battery",
		Name: "Bench"}, "192.0.2.1"); err != nil {
		b.Fatal(err)
	}
	dev, err := devs.Login(ctx, ten, "bench@example.com", "correct horse battery", "192.0.2.1")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(ctx, `UPDATE developers SET email_verified_at = now() WHERE id = $1`, dev.ID); err != nil {
		b.Fatal(err)
	}
	dev.EmailVerified = true
	app, err := cat.CreateApp(ctx, dev.Actor(), dev.ConsumerID, catalog.AppInput{Name: "Bench app"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := devs.Subscribe(ctx, dev, app.ID, plan.ID); err != nil {
		b.Fatal(err)
	}
	sess, err := devs.StartSession(ctx, dev)
	if err != nil {
		b.Fatal(err)
	}
	return &pageBench{h: p, session: &http.Cookie{Name: "tgp_session", Value: sess.ID}, apiSlug: "big"}
}

// run renders path b.N times (after one warming request) and reports ms per
// page and the page's size.
func (pb *pageBench) run(b *testing.B, path string, signedIn bool) {
	b.Helper()
	get := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		req.Host = host("acme")
		if signedIn {
			req.AddCookie(pb.session)
		}
		rec := httptest.NewRecorder()
		pb.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d\n%.2000s", path, rec.Code, rec.Body.String())
		}
		return rec
	}
	warm := get()
	size := warm.Body.Len()
	if signedIn && !strings.Contains(warm.Body.String(), "data-relay=") && strings.HasPrefix(path, "/apis/") {
		b.Fatal("the signed-in API page has no console")
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		get()
	}
	per := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/page")
	b.ReportMetric(float64(size)/1024, "KiB/page")
}

// BenchmarkCatalogPage renders the catalogue of four published APIs (one
// of 200 operations).
func BenchmarkCatalogPage(b *testing.B) {
	pb := newPageBench(b, 20, 10)
	b.Run("visitor", func(b *testing.B) { pb.run(b, "/apis", false) })
	b.Run("developer", func(b *testing.B) { pb.run(b, "/apis", true) })
}

// BenchmarkAPIPage200 renders the page of an API with a 200-operation
// document: for a visitor, and for a signed-in developer with a key (the
// try-it console on every operation).
func BenchmarkAPIPage200(b *testing.B) {
	pb := newPageBench(b, 20, 10)
	b.Run("visitor", func(b *testing.B) { pb.run(b, "/apis/"+pb.apiSlug, false) })
	b.Run("developer", func(b *testing.B) { pb.run(b, "/apis/"+pb.apiSlug, true) })
}

// pageBigDocument generates an OpenAPI document of tags×perTag operations
// like the docs package's benchmark: CRUD on resources with path, query and
// header parameters, shared nested component schemas, enums, arrays and
// error responses.
func pageBigDocument(tags, perTag int) []byte {
	paths := map[string]any{}
	var tagList []any
	methods := []string{"get", "post", "put", "patch", "delete"}
	for t := 0; t < tags; t++ {
		res := fmt.Sprintf("resource%02d", t)
		tagList = append(tagList, map[string]any{"name": res, "description": "Operations on " + res + "."})
		for i := 0; i < perTag; i++ {
			path := fmt.Sprintf("/%s/{%sId}/items%d", res, res, i/len(methods))
			m := methods[i%len(methods)]
			op := map[string]any{
				"tags":        []any{res},
				"operationId": fmt.Sprintf("%s%s%d", m, res, i),
				"summary":     fmt.Sprintf("%s item %d of %s", m, i, res),
				"description": "Does the thing.\n\nIt has **two** paragraphs and a list:\n\n- one\n- two",
				"parameters": []any{
					map[string]any{"name": "limit", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
					map[string]any{"name": "sort", "in": "query", "schema": map[string]any{"type": "string", "enum": []any{"asc", "desc"}}},
					map[string]any{"name": "X-Request-Id", "in": "header", "schema": map[string]any{"type": "string", "format": "uuid"}},
				},
				"responses": map[string]any{
					"200": map[string]any{"description": "The item.", "content": map[string]any{"application/json": map[string]any{
						"schema": map[string]any{"$ref": "#/components/schemas/Item"}}}},
					"400": map[string]any{"description": "Bad request.", "content": map[string]any{"application/problem+json": map[string]any{
						"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}},
					"404": map[string]any{"description": "Not found."},
				},
			}
			if m == "post" || m == "put" || m == "patch" {
				op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{
					"schema": map[string]any{"$ref": "#/components/schemas/NewItem"}}}}
			}
			item, _ := paths[path].(map[string]any)
			if item == nil {
				item = map[string]any{"parameters": []any{map[string]any{"name": res + "Id", "in": "path", "required": true,
					"schema": map[string]any{"type": "string"}, "example": "abc123"}}}
				paths[path] = item
			}
			item[m] = op
		}
	}
	str := map[string]any{"type": "string"}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "Big API", "version": "2.0.0", "description": "A generated document with many operations."},
		"tags":    tagList,
		"paths":   paths,
		"components": map[string]any{"schemas": map[string]any{
			"NewItem": map[string]any{"type": "object", "required": []any{"name"}, "properties": map[string]any{
				"name":     map[string]any{"type": "string", "example": "Widget", "maxLength": 64},
				"kind":     map[string]any{"type": "string", "enum": []any{"a", "b", "c"}},
				"tags":     map[string]any{"type": "array", "items": str},
				"owner":    map[string]any{"$ref": "#/components/schemas/Owner"},
				"price":    map[string]any{"type": "number", "format": "double", "minimum": 0},
				"metadata": map[string]any{"type": "object", "additionalProperties": str},
			}},
			"Item": map[string]any{"allOf": []any{
				map[string]any{"$ref": "#/components/schemas/NewItem"},
				map[string]any{"type": "object", "properties": map[string]any{
					"id":      map[string]any{"type": "string", "format": "uuid", "readOnly": true},
					"created": map[string]any{"type": "string", "format": "date-time", "readOnly": true},
					"parts":   map[string]any{"type": "array", "items": map[string]any{"$ref": "#/components/schemas/Item"}},
				}},
			}},
			"Owner": map[string]any{"type": "object", "properties": map[string]any{
				"name":    str,
				"email":   map[string]any{"type": "string", "format": "email"},
				"address": map[string]any{"type": "object", "properties": map[string]any{"street": str, "city": str, "zip": str}},
			}},
			"Problem": map[string]any{"type": "object", "properties": map[string]any{
				"type": map[string]any{"type": "string", "format": "uri"}, "title": str, "status": map[string]any{"type": "integer"}, "detail": str,
			}},
		}},
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return raw
}
