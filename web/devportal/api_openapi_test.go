package devportal

import (
	"context"
	"sort"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestAPIDocumentMatchesRoutes: /api/openapi.json is a valid OpenAPI 3
// document that lists exactly the mounted routes.
func TestAPIDocumentMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc, err := openapi3.NewLoader().LoadFromData(APIDocument())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[method+" "+path] = true
			if op.Summary == "" {
				t.Errorf("%s %s has no summary", method, path)
			}
		}
	}
	mounted := map[string]bool{}
	for _, rt := range (&Portal{}).apiRouteTable() {
		k := rt.method + " " + rt.path
		if mounted[k] {
			t.Errorf("route %s twice", k)
		}
		mounted[k] = true
	}
	var missing, extra []string
	for k := range mounted {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !mounted[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, k := range missing {
		t.Errorf("route %s is not documented", k)
	}
	for _, k := range extra {
		t.Errorf("documented %s is not a route", k)
	}
	// Public routes are documented as needing no credentials, the others
	// as needing a session.
	for _, rt := range (&Portal{}).apiRouteTable() {
		op := doc.Paths.Find(rt.path).GetOperation(rt.method)
		if op == nil || op.Security == nil {
			t.Errorf("%s %s: no security requirement", rt.method, rt.path)
			continue
		}
		if signedIn := len(*op.Security) > 0; signedIn != (rt.access == apiSession) {
			t.Errorf("%s %s: documented signed-in %v, mounted access %v", rt.method, rt.path, signedIn, rt.access)
		}
	}
}
