package docs_test

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/web/devportal/docs"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

const (
	petBase = "http://acme.localhost:8000/pets"
	petKey  = "tg_live_5f3a9c"
)

func petstore(t *testing.T, opts docs.Options) *docs.Reference {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("testdata", "petstore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := docs.Build(doc, opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return ref
}

// op finds an operation by its operationId (or anchor id).
func op(t *testing.T, ref *docs.Reference, id string) *docs.Operation {
	t.Helper()
	for _, tg := range ref.Tags {
		for _, o := range tg.Operations {
			if o.OperationID == id || o.ID == id {
				return o
			}
		}
	}
	t.Fatalf("no operation %q", id)
	return nil
}

func child(t *testing.T, n *docs.SchemaNode, name string) *docs.SchemaNode {
	t.Helper()
	for _, c := range n.Children {
		if c.Name == name {
			return c
		}
	}
	var names []string
	for _, c := range n.Children {
		names = append(names, c.Name)
	}
	t.Fatalf("no property %q under %q (has %v)", name, n.Name, names)
	return nil
}

func TestBuildPetstore(t *testing.T) {
	t.Parallel()
	ref := petstore(t, docs.Options{BaseURL: petBase + "/", Auth: docs.AuthKey, Key: petKey})

	if ref.Info.Title != "Petstore" || ref.Info.Version != "1.2.0" {
		t.Errorf("info = %+v", ref.Info)
	}
	if got := ref.Info.Description; len(got) != 3 || got[0].Kind != docs.Paragraph || got[1].Kind != docs.List || got[2].Kind != docs.Code {
		t.Errorf("description blocks = %+v, want paragraph, list, code", got)
	}
	if ref.BaseURL != petBase {
		t.Errorf("BaseURL = %q, want %q (no trailing slash)", ref.BaseURL, petBase)
	}
	if ref.Auth.Header != "X-API-Key" || ref.Auth.Prefix != "" {
		t.Errorf("auth = %+v", ref.Auth)
	}
	if len(ref.Schemes) != 1 || ref.Schemes[0].Name != "apiKey" || ref.Schemes[0].Detail != "API key in the header X-API-Key" {
		t.Errorf("schemes = %+v", ref.Schemes)
	}

	// Tags: declared order, unused ones dropped, untagged operations last.
	var tags []string
	for _, tg := range ref.Tags {
		var ids []string
		for _, o := range tg.Operations {
			ids = append(ids, o.ID)
		}
		tags = append(tags, tg.Name+":"+strings.Join(ids, ","))
	}
	want := []string{
		"pets:op-listpets,op-createpet,op-getpet,op-deletepet",
		"store:op-placeorder",
		"Other:op-get-health",
	}
	if !slices.Equal(tags, want) {
		t.Errorf("tags =\n%v\nwant\n%v", tags, want)
	}
	if ref.Operations != 6 {
		t.Errorf("Operations = %d, want 6", ref.Operations)
	}

	list := op(t, ref, "listPets")
	if list.Method != "GET" || list.Path != "/pets" || list.Summary != "List pets" {
		t.Errorf("listPets = %s %s %q", list.Method, list.Path, list.Summary)
	}
	var params []string
	for _, p := range list.Params {
		params = append(params, strings.Join([]string{p.Name, p.In, p.Type, strings.Join(p.Enum, "|"), p.Default}, "/"))
		if p.Name == "status" && !p.Required {
			t.Error("status should be required")
		}
	}
	wantParams := []string{"limit/query/integer (int32)//20", "status/query/string/available|pending|sold/", "X-Request-Id/header/string (uuid)//"}
	if !slices.Equal(params, wantParams) {
		t.Errorf("listPets params =\n%v\nwant\n%v", params, wantParams)
	}
	// A 200 of an array of Pet: the item's properties, allOf merged,
	// readOnly id shown in a response.
	ok := list.Responses[0]
	if ok.Status != "200" || ok.Class != "2xx" || list.Responses[1].Status != "default" {
		t.Errorf("responses = %s, %s", ok.Status, list.Responses[1].Status)
	}
	if len(ok.Headers) != 1 || ok.Headers[0].Name != "X-Next" {
		t.Errorf("response headers = %+v", ok.Headers)
	}
	arr := ok.Media[0].Schema
	if arr.Type != "array of Pet" {
		t.Errorf("200 schema type = %q", arr.Type)
	}
	if id := child(t, arr, "id"); !id.ReadOnly || !id.Required || id.Type != "integer (int64)" {
		t.Errorf("Pet.id = %+v", id)
	}
	if ex := ok.Media[0].Examples; len(ex) != 1 || !ex[0].Synthesized || !strings.Contains(ex[0].Value, `"id": 0`) {
		t.Errorf("200 example = %+v", ex)
	}

	// Path-level parameters merge into each operation; their example fills
	// the snippets' URL.
	get := op(t, ref, "getPet")
	if len(get.Params) != 1 || get.Params[0].Name != "petId" || !get.Params[0].Required || get.Params[0].Example != "42" {
		t.Errorf("getPet params = %+v", get.Params)
	}
	if code := ref.Code(get.Snippets[0]); !strings.Contains(code, petBase+"/pets/42") {
		t.Errorf("getPet curl lacks the example URL:\n%s", code)
	}
	if del := op(t, ref, "deletePet"); !del.Deprecated || del.Responses[0].Status != "204" {
		t.Errorf("deletePet = deprecated %v, responses %+v", del.Deprecated, del.Responses)
	}

	// The request body: a nested schema with an enum, an array, a
	// recursive category, and a synthesized example that honours the
	// document's property examples.
	create := op(t, ref, "createPet")
	if create.Body == nil || !create.Body.Required || create.Body.Media[0].Type != "application/json" {
		t.Fatalf("createPet body = %+v", create.Body)
	}
	root := create.Body.Media[0].Schema
	if root.Ref != "NewPet" || root.Type != "object" {
		t.Errorf("body schema = %q %q", root.Ref, root.Type)
	}
	if name := child(t, root, "name"); !name.Required || name.Example != "Rex" {
		t.Errorf("name = %+v", name)
	}
	if st := child(t, root, "status"); !slices.Equal(st.Enum, []string{"available", "pending", "sold"}) {
		t.Errorf("status enum = %v", st.Enum)
	}
	if tg := child(t, root, "tags"); tg.Type != "array of string" || tg.Expandable() {
		t.Errorf("tags = %+v", tg)
	}
	cat := child(t, root, "category")
	if cat.Ref != "Category" || !cat.Expandable() {
		t.Errorf("category = %+v", cat)
	}
	if parent := child(t, cat, "parent"); !parent.Recursive || parent.Expandable() {
		t.Errorf("category.parent should stop as recursive: %+v", parent)
	}
	if child(t, root, "born").Type != "string (date)" {
		t.Error("born should be a string (date)")
	}
	ex := create.Body.Media[0].Examples
	if len(ex) != 1 || !ex[0].Synthesized {
		t.Fatalf("createPet examples = %+v", ex)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(ex[0].Value), &body); err != nil {
		t.Fatalf("synthesized example is not JSON: %v\n%s", err, ex[0].Value)
	}
	if body["name"] != "Rex" || body["status"] != "available" || body["born"] != "2025-01-15" {
		t.Errorf("synthesized example = %v", body)
	}
	if _, has := body["category"].(map[string]any)["parent"]; has {
		t.Error("the recursive parent should be left out of the example")
	}
	if create.TryBody != ex[0].Value || create.TryContentType != "application/json" {
		t.Errorf("try-it prefill = %q %q", create.TryContentType, create.TryBody)
	}
	// The document's own example wins over synthesis.
	if r := create.Responses[0]; r.Status != "201" || r.Media[0].Examples[0].Synthesized || !strings.Contains(r.Media[0].Examples[0].Value, `"name": "Rex"`) {
		t.Errorf("201 example = %+v", r.Media[0].Examples)
	}

	// Named examples and oneOf alternatives.
	order := op(t, ref, "placeOrder")
	if oe := order.Body.Media[0].Examples; len(oe) != 1 || oe[0].Name != "small" || oe[0].Summary != "One pet" {
		t.Errorf("placeOrder examples = %+v", oe)
	}
	ship := child(t, order.Body.Media[0].Schema, "shipTo")
	if ship.Variant != "one of" || len(ship.Children) != 2 || ship.Children[0].Ref != "Address" || ship.Type != "one of Address, string" {
		t.Errorf("shipTo = %+v", ship)
	}
	if q := child(t, order.Body.Media[0].Schema, "quantity"); !slices.Equal(q.Constraints, []string{"≥ 1"}) {
		t.Errorf("quantity constraints = %v", q.Constraints)
	}

	health := op(t, ref, "op-get-health")
	if ex := health.Responses[0].Media[0].Examples; len(ex) != 1 || ex[0].Value != "ok" {
		t.Errorf("text/plain example = %+v", ex)
	}
}

// TestSnippets compares the four snippets of one operation with a golden
// file, and checks every snippet of the document for the key and the URL.
func TestSnippets(t *testing.T) {
	t.Parallel()
	ref := petstore(t, docs.Options{BaseURL: petBase, Key: petKey})
	var got strings.Builder
	for _, s := range op(t, ref, "createPet").Snippets {
		got.WriteString("### " + s.Label + "\n" + ref.Code(s) + "\n\n")
	}
	golden := filepath.Join("testdata", "createPet.snippets.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got.String() != string(want) {
		t.Errorf("snippets differ from %s (run go test -update and review):\n%s", golden, got.String())
	}

	for _, tg := range ref.Tags {
		for _, o := range tg.Operations {
			if len(o.Snippets) != 4 {
				t.Fatalf("%s has %d snippets", o.ID, len(o.Snippets))
			}
			for i, lang := range []string{docs.LangCurl, docs.LangJS, docs.LangPython, docs.LangGo} {
				s := o.Snippets[i]
				code := ref.Code(s)
				if s.Lang != lang || !strings.Contains(code, petKey) || !strings.Contains(code, petBase+o.Path[:4]) || !strings.Contains(code, "X-API-Key") {
					t.Errorf("%s %s snippet lacks the key, header or URL:\n%s", o.ID, s.Lang, code)
				}
			}
		}
	}
	list := op(t, ref, "listPets")
	if code := ref.Code(list.Snippets[0]); !strings.Contains(code, "/pets?status=available'") || strings.Contains(code, "limit") {
		t.Errorf("listPets curl should carry the required query parameter only:\n%s", code)
	}
}

func TestSnippetCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       docs.Options
		want, lose []string
	}{
		{name: "key unknown", opts: docs.Options{BaseURL: petBase},
			want: []string{"-H 'X-API-Key: YOUR_API_KEY'"}},
		{name: "key with a quote", opts: docs.Options{BaseURL: petBase, Key: `k'1"2`},
			want: []string{`-H 'X-API-Key: k'\''1"2'`, `"X-API-Key": "k'1\"2"`}},
		{name: "jwt", opts: docs.Options{BaseURL: petBase, Auth: docs.AuthJWT, Key: "eyJ.x.y"},
			want: []string{"-H 'Authorization: Bearer eyJ.x.y'", `"Authorization": "Bearer eyJ.x.y"`}, lose: []string{"X-API-Key"}},
		{name: "jwt unknown", opts: docs.Options{BaseURL: petBase, Auth: docs.AuthJWT},
			want: []string{"Bearer YOUR_TOKEN"}},
		{name: "open API", opts: docs.Options{BaseURL: petBase, Auth: docs.AuthNone, Key: "ignored"},
			lose: []string{"X-API-Key", "Authorization", "ignored"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ref := petstore(t, tt.opts)
			o := op(t, ref, "createPet")
			var all strings.Builder
			for _, s := range o.Snippets {
				all.WriteString(ref.Code(s) + "\n")
			}
			for _, w := range tt.want {
				if !strings.Contains(all.String(), w) {
					t.Errorf("snippets lack %q:\n%s", w, all.String())
				}
			}
			for _, l := range tt.lose {
				if strings.Contains(all.String(), l) {
					t.Errorf("snippets contain %q:\n%s", l, all.String())
				}
			}
		})
	}
	// WithKey fills another key into the same built reference.
	ref := petstore(t, docs.Options{BaseURL: petBase})
	other := ref.WithKey("tg_other")
	s := op(t, ref, "createPet").Snippets[0]
	if !strings.Contains(other.Code(s), "tg_other") || !strings.Contains(ref.Code(s), "YOUR_API_KEY") {
		t.Error("WithKey should change the key of the copy only")
	}
}

const untagged = `{
  "openapi": "3.0.0",
  "info": {"title": "Echo", "version": "1"},
  "paths": {
    "/echo": {
      "post": {"summary": "Echo", "requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}},
               "responses": {"200": {"description": "Echoed"}}},
      "get": {"responses": {"200": {"description": "OK"}}}
    },
    "/echo/{id}": {"get": {"operationId": "get echo", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                           "responses": {"200": {"description": "OK"}}}},
    "/echo-id": {"get": {"operationId": "get-echo", "responses": {"200": {"description": "OK"}}}}
  }
}`

func TestBuildWithoutTags(t *testing.T) {
	t.Parallel()
	ref, err := docs.Build([]byte(untagged), docs.Options{BaseURL: "http://acme.localhost:8000/echo"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ref.Tags) != 1 || ref.Tags[0].Name != docs.OtherTag || ref.Tags[0].ID != "tag-other" {
		t.Fatalf("tags = %+v", ref.Tags)
	}
	var ids []string
	for _, o := range ref.Tags[0].Operations {
		ids = append(ids, o.Method+" "+o.Path+" "+o.ID)
	}
	// Paths sorted, GET before POST; clashing slugs get a suffix.
	want := []string{"GET /echo op-get-echo", "POST /echo op-post-echo", "GET /echo-id op-get-echo-2", "GET /echo/{id} op-get-echo-3"}
	if !slices.Equal(ids, want) {
		t.Errorf("operations =\n%v\nwant\n%v", ids, want)
	}
	post := ref.Tags[0].Operations[1]
	if post.Body == nil || post.TryContentType != "text/plain" || post.TryBody != "" {
		t.Errorf("text body = %+v, try %q %q", post.Body, post.TryContentType, post.TryBody)
	}
	if o := ref.Tags[0].Operations[0]; o.Title() != "GET /echo" {
		t.Errorf("Title without summary = %q", o.Title())
	}
	if code := ref.Code(ref.Tags[0].Operations[3].Snippets[0]); !strings.HasPrefix(code, "curl -g 'http://acme.localhost:8000/echo/echo/{id}'") {
		t.Errorf("a placeholder URL needs curl -g:\n%s", code)
	}
}

const cyclic = `
openapi: 3.1.0
info: {title: Trees, version: "1"}
paths:
  /nodes:
    post:
      requestBody:
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Node"}
      responses:
        "200":
          description: The node and its neighbours.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/A"}
components:
  schemas:
    Node:
      type: object
      properties:
        name: {type: string}
        children: {type: array, items: {$ref: "#/components/schemas/Node"}}
        next: {$ref: "#/components/schemas/Node"}
        labels: {type: object, additionalProperties: {$ref: "#/components/schemas/Node"}}
    A:
      type: object
      properties:
        b: {$ref: "#/components/schemas/B"}
    B:
      allOf:
        - $ref: "#/components/schemas/A"
        - type: object
          properties:
            a: {$ref: "#/components/schemas/A"}
            self: {$ref: "#/components/schemas/B"}
`

func TestBuildSchemaCycles(t *testing.T) {
	t.Parallel()
	ref, err := docs.Build([]byte(cyclic), docs.Options{BaseURL: "http://acme.localhost:8000/t"})
	if err != nil {
		t.Fatal(err)
	}
	o := ref.Tags[0].Operations[0]
	node := o.Body.Media[0].Schema
	for _, name := range []string{"children", "next"} {
		if c := child(t, node, name); !c.Recursive || c.Expandable() {
			t.Errorf("Node.%s should stop as recursive: %+v", name, c)
		}
	}
	if labels := child(t, node, "labels"); labels.Type != "map of Node" || !child(t, labels, "{key}").Recursive {
		t.Errorf("Node.labels should be a map whose values stop as recursive: %+v", labels)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(o.TryBody), &v); err != nil || v["name"] != "string" {
		t.Errorf("example of a recursive schema = %q (%v)", o.TryBody, err)
	}
	a := o.Responses[0].Media[0].Schema
	b := child(t, a, "b")
	if !b.Expandable() {
		t.Fatalf("A.b should expand once: %+v", b)
	}
	if ba := child(t, b, "a"); !ba.Recursive {
		t.Errorf("A.b.a should stop as recursive: %+v", ba)
	}
	if bs := child(t, b, "self"); !bs.Recursive {
		t.Errorf("A.b.self should stop as recursive: %+v", bs)
	}
	if _, err := render(ref, docs.TryItConfig{Enabled: true}); err != nil {
		t.Fatal(err)
	}
}

// TestBuildDeepSchema: a long chain of distinct nested objects is cut at
// the depth limit, and a very wide one at the size limit.
func TestBuildLimits(t *testing.T) {
	t.Parallel()
	deep := map[string]any{"type": "string"}
	for range 40 {
		deep = map[string]any{"type": "object", "properties": map[string]any{"inner": deep}}
	}
	wide := map[string]any{}
	for i := range 600 {
		wide[strings.Repeat("p", 1+i%7)+string(rune('a'+i%26))+string(rune('a'+i/26))] = map[string]any{"type": "integer"}
	}
	doc, _ := json.Marshal(map[string]any{
		"openapi": "3.0.0", "info": map[string]any{"title": "Limits", "version": "1"},
		"paths": map[string]any{"/x": map[string]any{"post": map[string]any{
			"requestBody": map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": deep}}},
			"responses": map[string]any{"200": map[string]any{"description": "ok", "content": map[string]any{"application/json": map[string]any{
				"schema": map[string]any{"type": "object", "properties": wide}}}}},
		}}},
	})
	ref, err := docs.Build(doc, docs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := ref.Tags[0].Operations[0]
	n, depth := o.Body.Media[0].Schema, 0
	for len(n.Children) > 0 {
		n, depth = n.Children[0], depth+1
	}
	if !n.Elided || depth > 10 {
		t.Errorf("deep schema: stopped at depth %d, elided %v", depth, n.Elided)
	}
	if w := o.Responses[0].Media[0].Schema; !w.Elided || len(w.Children) >= 600 {
		t.Errorf("wide schema: %d children, elided %v", len(w.Children), w.Elided)
	}
}

func TestBuildRefusesBadDocuments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc string
		is        error
	}{
		{name: "external file ref", doc: `{"openapi":"3.0.0","info":{"title":"x","version":"1"},"paths":{"/a":{"get":{"responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"other.yaml#/Pet"}}}}}}}}}`},
		{name: "external URL ref", doc: `{"openapi":"3.0.0","info":{"title":"x","version":"1"},"paths":{"/a":{"get":{"responses":{"200":{"$ref":"http://127.0.0.1:1/r.json"}}}}}}`},
		{name: "swagger 2", doc: `{"swagger":"2.0","openapi":"2.0","info":{"title":"x","version":"1"},"paths":{}}`, is: docs.ErrNotOpenAPI3},
		{name: "not a document", doc: `<html>`},
		{name: "too large", doc: `{"openapi":"3.0.0","x":"` + strings.Repeat("a", docs.MaxDocumentBytes) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := docs.Build([]byte(tt.doc), docs.Options{})
			if err == nil {
				t.Fatal("Build accepted the document")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	yamlDoc, err := os.ReadFile(filepath.Join("testdata", "petstore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ref := petstore(t, docs.Options{})
	want := docs.Summary{Title: "Petstore", Version: "1.2.0", Description: "Manage the pets of a store.", Operations: 6,
		Tags: []string{"pets", "store", docs.OtherTag}}
	fromYAML, err := docs.Summarize(yamlDoc)
	if err != nil {
		t.Fatal(err)
	}
	// The catalogue stores documents as JSON: the cheap path.
	var v any
	if err := yamlUnmarshal(yamlDoc, &v); err != nil {
		t.Fatal(err)
	}
	jsonDoc, _ := json.Marshal(v)
	fromJSON, err := docs.Summarize(jsonDoc)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]docs.Summary{"reference": ref.Summary(), "yaml": fromYAML, "json": fromJSON} {
		if got.Title != want.Title || got.Version != want.Version || got.Description != want.Description ||
			got.Operations != want.Operations || !slices.Equal(got.Tags, want.Tags) {
			t.Errorf("%s summary = %+v, want %+v", name, got, want)
		}
	}
	big := bigDocument(20, 10)
	s, err := docs.Summarize(big)
	if err != nil || s.Operations != 200 || len(s.Tags) != 20 || s.Tags[0] != "resource00" {
		t.Errorf("big summary = %+v, %v", s, err)
	}
}

func TestCache(t *testing.T) {
	t.Parallel()
	c := docs.NewCache(2)
	doc := []byte(untagged)
	opts := docs.Options{BaseURL: "http://acme.localhost:8000/echo"}
	r1, err := c.Reference(doc, opts)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := c.Reference(doc, opts)
	if r1 != r2 {
		t.Error("the second view should come from the cache")
	}
	// Another developer's key: a cheap copy sharing the operations.
	withKey, _ := c.Reference(doc, docs.Options{BaseURL: opts.BaseURL, Key: "tg_k"})
	if withKey == r1 || &withKey.Tags[0] != &r1.Tags[0] || withKey.Key != "tg_k" || r1.Key != "" {
		t.Error("a key should not rebuild the reference nor change the shared one")
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1", c.Len())
	}
	// Another base URL is another entry; the cache stays bounded.
	if _, err := c.Reference(doc, docs.Options{BaseURL: "http://other.localhost:8000/echo"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Summary(doc); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 2 {
		t.Errorf("Len = %d, want 2 (bounded)", c.Len())
	}
	if r3, _ := c.Reference(doc, opts); r3 == r1 {
		t.Error("the least recently used entry should have been evicted")
	}
	// A bad document fails from the cache too.
	if _, err := c.Reference([]byte("{}"), opts); err == nil {
		t.Error("a bad document should fail")
	}
	// Concurrent views of one new document build it once.
	c2 := docs.NewCache(0)
	big := bigDocument(4, 5)
	var wg sync.WaitGroup
	refs := make([]*docs.Reference, 8)
	for i := range refs {
		wg.Go(func() {
			r, err := c2.Reference(big, opts)
			if err != nil {
				t.Error(err)
			}
			refs[i] = r
		})
	}
	wg.Wait()
	for _, r := range refs {
		if r != refs[0] {
			t.Fatal("concurrent views should share one build")
		}
	}
}
