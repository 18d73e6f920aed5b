package mgmtapi

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIGolden pins the generated document: a change of a /v1 type or
// route shows up as a diff of testdata/openapi.json (go test -run OpenAPI
// -update rewrites it).
func TestOpenAPIGolden(t *testing.T) {
	t.Parallel()
	golden(t, "openapi.json", OpenAPI())
}

// TestOpenAPILint checks the document against the rules of Spectral's oas
// ruleset that the generator could break, and ours: every operation has a
// unique camelCase operationId, one tag defined in the document's tags, a
// summary and a description, a success answer, problem answers (4xx where a
// caller can err, and 5xx), declared path parameters; no $ref has siblings;
// every component is used.
func TestOpenAPILint(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	tags := map[string]bool{}
	for _, tg := range doc["tags"].([]any) {
		m := tg.(map[string]any)
		if m["description"] == "" {
			t.Errorf("tag %v has no description", m["name"])
		}
		tags[m["name"].(string)] = true
	}
	idRE := regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	ids := map[string]string{}
	usedTags := map[string]bool{}
	for path, item := range doc["paths"].(map[string]any) {
		for method, o := range item.(map[string]any) {
			op := o.(map[string]any)
			where := strings.ToUpper(method) + " " + path
			id, _ := op["operationId"].(string)
			if !idRE.MatchString(id) {
				t.Errorf("%s: operationId %q is not camelCase", where, id)
			}
			if other, dup := ids[id]; dup {
				t.Errorf("%s: operationId %s is also %s's", where, id, other)
			}
			ids[id] = where
			opTags, _ := op["tags"].([]any)
			if len(opTags) != 1 || !tags[opTags[0].(string)] {
				t.Errorf("%s: tags %v, want one of the document's", where, opTags)
			} else {
				usedTags[opTags[0].(string)] = true
			}
			for _, k := range []string{"summary", "description"} {
				if s, _ := op[k].(string); strings.TrimSpace(s) == "" {
					t.Errorf("%s: no %s", where, k)
				}
			}
			var ok, client, server bool
			for status, r := range op["responses"].(map[string]any) {
				switch status[0] {
				case '2':
					ok = true
				case '4', '5':
					ref, _ := r.(map[string]any)["$ref"].(string)
					if !strings.HasPrefix(ref, "#/components/responses/") {
						t.Errorf("%s %s: not a problem answer: %v", where, status, r)
					}
					client, server = client || status[0] == '4', server || status[0] == '5'
				}
			}
			public := op["security"] != nil && len(op["security"].([]any)) == 0
			if !ok || !server || (!client && !public) {
				t.Errorf("%s: responses %v lack a 2xx, 4xx or 5xx answer", where, keys(op["responses"]))
			}
			var declared []string
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				pm := p.(map[string]any)
				if pm["in"] == "path" {
					declared = append(declared, pm["name"].(string))
				}
				if pm["description"] == "" {
					t.Errorf("%s: parameter %v has no description", where, pm["name"])
				}
			}
			var inPath []string
			for _, m := range pathParamRE.FindAllStringSubmatch(path, -1) {
				inPath = append(inPath, m[1])
			}
			if !slices.Equal(declared, inPath) {
				t.Errorf("%s: path parameters %v declared as %v", where, inPath, declared)
			}
		}
	}
	for tg := range tags {
		if !usedTags[tg] {
			t.Errorf("tag %s has no operation", tg)
		}
	}

	// No $ref siblings, and every component referenced.
	refs := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				refs[ref] = true
				if len(x) > 1 {
					t.Errorf("%s: $ref %s has siblings %v", path, ref, keys(x))
				}
			}
			for k, e := range x {
				walk(path+"/"+k, e)
			}
		case []any:
			for _, e := range x {
				walk(path+"[]", e)
			}
		}
	}
	walk("#", doc)
	comps := doc["components"].(map[string]any)
	for _, kind := range []string{"schemas", "responses"} {
		for name := range comps[kind].(map[string]any) {
			if !refs["#/components/"+kind+"/"+name] {
				t.Errorf("component %s/%s is not used", kind, name)
			}
		}
	}
}

func keys(v any) []string {
	var out []string
	for k := range v.(map[string]any) {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestRoutesCarryTheirTypes: every route that answers a body says its type,
// and every route that reads a JSON body says its type, so that the
// document describes them (the helpers of endpoint.go set both).
func TestRoutesCarryTheirTypes(t *testing.T) {
	t.Parallel()
	for _, rt := range (&api{}).documentedRoutes() {
		where := rt.method + " " + rt.path
		if rt.status == 0 {
			t.Errorf("%s: no success status", where)
		}
		if (rt.out == nil) != (rt.status == http.StatusNoContent) {
			t.Errorf("%s: answers %d with body type %v", where, rt.status, rt.out)
		}
		if (rt.method == "POST" || rt.method == "PUT" || rt.method == "PATCH") && rt.in == nil && !rt.inDocument {
			t.Errorf("%s: takes no body", where)
		}
	}
}
