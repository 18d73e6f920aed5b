package mgmtapi

import (
	"maps"
	"slices"
	"testing"
)

const petsDoc = `openapi: 3.0.3
info: {title: Orders, version: "2.1"}
paths:
  /items:
    get: {operationId: listItems, responses: {"200": {description: ok}}}
    post: {operationId: createItem, responses: {"201": {description: created}}}
  /items/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    get: {operationId: getItem, responses: {"200": {description: ok}}}
`

func TestImportOpenAPIDocument(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	f := e.fixture("acme")
	other := e.fixture("other")
	path := "/v1/apis/" + f.api + "/openapi"

	e.must(404, "GET", path, f.token, nil)

	before := e.counts()
	for _, tc := range []struct {
		name string
		doc  string
		want int
	}{
		{"empty body", "", 400},
		{"not a document", "{]", 422},
		{"swagger 2", `{"swagger":"2.0","info":{"title":"x","version":"1"},"paths":{}}`, 422},
		{"bad operation", "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    get: {}\n", 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("PUT", path, f.token, tc.doc)
			if r.Status != tc.want {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.want, r.Body)
			}
			if tc.want == 422 && !slices.Contains(fieldsOf(t, r), "document") {
				t.Errorf("422 does not name the document: %s", r.Body)
			}
		})
	}
	if after := e.counts(); !maps.Equal(before, after) {
		t.Fatalf("a refused import wrote: %v → %v", before, after)
	}

	// Another tenant can neither import into nor read this API's document.
	e.must(404, "PUT", path, other.token, petsDoc)

	imp := e.must(200, "PUT", path, f.token, petsDoc)
	if imp["title"] != "Orders" || imp["version"] != "2.1" || len(imp["routes"].([]any)) != 3 {
		t.Fatalf("import answer %v", imp)
	}
	got := e.must(200, "GET", path, f.token, nil)
	var ops []string
	for _, r := range got["routes"].([]any) {
		m := r.(map[string]any)
		ops = append(ops, m["method"].(string)+" "+m["path"].(string))
	}
	slices.Sort(ops)
	if want := []string{"GET /items", "GET /items/{id}", "POST /items"}; !slices.Equal(ops, want) {
		t.Fatalf("routes %v, want %v", ops, want)
	}
	e.must(404, "GET", path, other.token, nil)

	var audited bool
	for _, a := range e.must(200, "GET", "/v1/audit?limit=200", f.token, nil)["items"].([]any) {
		if a.(map[string]any)["action"] == "api.import_openapi" {
			audited = true
		}
	}
	if !audited {
		t.Error("the import left no audit entry")
	}
}
