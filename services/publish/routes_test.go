package publish_test

import (
	"context"
	"testing"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

func TestImportedRoutesArePublished(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	ctx := context.Background()
	_, a1, a2, _ := h.populate()
	before := h.dbGeneration()
	if snap := h.snapshot(before); len(snap.Tenants[0].APIs[0].Routes) != 0 {
		t.Fatalf("routes before any import: %+v", snap.Tenants[0].APIs[0].Routes)
	}
	doc := []byte(`openapi: 3.0.3
info: {title: Items, version: '1'}
paths:
  /items:
    get: {responses: {'200': {description: ok}}}
    post: {responses: {'201': {description: created}}}
  /items/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    delete: {responses: {'204': {description: gone}}}
`)
	if _, err := h.cat.ImportOpenAPI(ctx, h.who, a1.ID, doc); err != nil {
		t.Fatal(err)
	}
	gen := h.dbGeneration()
	if gen <= before {
		t.Fatalf("import left the config generation at %d", gen)
	}
	snap := h.snapshot(gen)
	want := map[string][]proxycfg.Route{
		a1.ID: {{Method: "GET", Path: "/items"}, {Method: "POST", Path: "/items"}, {Method: "DELETE", Path: "/items/{id}"}},
		a2.ID: nil,
	}
	for _, a := range snap.Tenants[0].APIs {
		if !equalJSON(a.Routes, want[a.ID]) {
			t.Errorf("api %s routes %+v, want %+v", a.Slug, a.Routes, want[a.ID])
		}
	}

	// A re-import replaces the routes and is published too.
	doc2 := []byte("openapi: 3.0.3\ninfo: {title: Items, version: '2'}\npaths:\n  /health:\n    get: {responses: {'200': {description: ok}}}\n")
	if _, err := h.cat.ImportOpenAPI(ctx, h.who, a1.ID, doc2); err != nil {
		t.Fatal(err)
	}
	next := h.snapshot(h.dbGeneration())
	if next.Generation <= snap.Generation ||
		!equalJSON(next.Tenants[0].APIs[0].Routes, []proxycfg.Route{{Method: "GET", Path: "/health"}}) {
		t.Fatalf("after re-import: generation %d, routes %+v", next.Generation, next.Tenants[0].APIs[0].Routes)
	}
}
