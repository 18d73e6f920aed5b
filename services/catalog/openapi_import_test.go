package catalog_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
)

func TestParseOpenAPI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		doc     string
		routes  int
		reasons []string
	}{
		{name: "json", doc: `{"openapi":"3.1.0","info":{"title":"T","version":"1"},"paths":{"/a":{"get":{"responses":{"200":{"description":"ok"}}},"put":{"responses":{"200":{"description":"ok"}}}}}}`, routes: 2},
		{name: "yaml", doc: "openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths:\n  /b/{id}:\n    parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n    delete: {responses: {'204': {description: gone}}}\n", routes: 1},
		{name: "empty", doc: "  ", reasons: []string{"is required"}},
		{name: "garbage", doc: "[1, 2", reasons: []string{"cannot be read"}},
		{name: "swagger 2", doc: `{"swagger":"2.0","info":{"title":"T","version":"1"},"paths":{}}`, reasons: []string{"OpenAPI 3"}},
		{name: "two problems", doc: "openapi: 3.0.3\ninfo: {title: T}\npaths:\n  /x/{id}:\n    get: {responses: {'200': {description: ok}}}\n", reasons: []string{"version", "id"}},
		{name: "external ref", doc: "openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths:\n  /x:\n    $ref: 'http://169.254.169.254/latest/meta-data'\n", reasons: []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			imp, _, err := catalog.ParseOpenAPI(context.Background(), []byte(tc.doc))
			if tc.reasons == nil {
				if err != nil || len(imp.Routes) != tc.routes {
					t.Fatalf("routes %+v, err %v; want %d routes", imp.Routes, err, tc.routes)
				}
				return
			}
			var ve *fault.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a validation error", err)
			}
			all := ""
			for _, fe := range ve.Errors {
				if fe.Field != "document" {
					t.Errorf("field %q, want document", fe.Field)
				}
				all += fe.Message + "\n"
			}
			for _, r := range tc.reasons {
				if !strings.Contains(all, r) {
					t.Errorf("reasons %q lack %q", all, r)
				}
			}
		})
	}
}

func TestImportOpenAPIStoresRoutesPerTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	secret := []byte("openapi-test-secret-0123456789")
	s := catalog.New(db, secret, true)
	ta, _, _ := tenancy.Create(ctx, db, secret, "A", "oas-a")
	tb, _, _ := tenancy.Create(ctx, db, secret, "B", "oas-b")
	a := audit.Actor{TenantID: ta.ID, Name: "test"}
	b := audit.Actor{TenantID: tb.ID, Name: "test"}
	up, err := s.CreateUpstream(ctx, a, catalog.UpstreamInput{Name: "u", Targets: []catalog.Target{{URL: "http://127.0.0.1:9"}}})
	if err != nil {
		t.Fatal(err)
	}
	api, err := s.CreateAPI(ctx, a, catalog.APIInput{Name: "A", Slug: "a", BasePath: "/a", UpstreamID: up.ID})
	if err != nil {
		t.Fatal(err)
	}
	doc := []byte("openapi: 3.0.3\ninfo: {title: T, version: '2'}\npaths:\n  /x:\n    get: {operationId: getX, responses: {'200': {description: ok}}}\n    post: {responses: {'200': {description: ok}}}\n")
	if _, err := s.ImportOpenAPI(ctx, b, api.ID, doc); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("tenant b imported into tenant a's API: %v", err)
	}
	if _, ok, err := s.GetOpenAPIImport(ctx, tb.ID, api.ID); !errors.Is(err, fault.ErrNotFound) || ok {
		t.Errorf("tenant b reads tenant a's import: %v", err)
	}
	imp, err := s.ImportOpenAPI(ctx, a, api.ID, doc)
	if err != nil || len(imp.Routes) != 2 || imp.Version != "2" {
		t.Fatalf("import = %+v, %v", imp, err)
	}
	// A second import replaces the first.
	doc2 := []byte("openapi: 3.0.3\ninfo: {title: T, version: '3'}\npaths:\n  /y:\n    get: {responses: {'200': {description: ok}}}\n")
	if _, err := s.ImportOpenAPI(ctx, a, api.ID, doc2); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.GetOpenAPIImport(ctx, ta.ID, api.ID)
	if err != nil || !ok || len(got.Routes) != 1 || got.Routes[0] != (catalog.Route{Method: "GET", Path: "/y"}) || got.Version != "3" {
		t.Errorf("after re-import: %+v, %v, %v", got, ok, err)
	}
	if err := s.DeleteAPI(ctx, a, api.ID); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM api_routes`).Scan(&n); err != nil || n != 0 {
		t.Errorf("routes outlive their API: %d, %v", n, err)
	}
}
