package docs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/tollgate/tollgate/web/devportal/docs"
)

// bigDocument generates an OpenAPI document of tags×perTag operations the
// way real ones look: CRUD on resources with path, query and header
// parameters, shared component schemas with nesting, enums and arrays, and
// error responses.
func bigDocument(tags, perTag int) []byte {
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
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return b
}

var benchOpts = docs.Options{BaseURL: "http://acme.localhost:8000/big", Auth: docs.AuthKey, Key: "tg_live_0123456789abcdef"}

var benchTry = docs.TryItConfig{Enabled: true, RelayURL: "/apis/big/try", CSRFToken: "csrf", Key: benchOpts.Key}

// BenchmarkReference200 builds and renders the reference of a 200-operation
// document: cold (parse, build and render, as on the first view of a
// document) and warm (from the cache, a developer's key filled in, and
// render, as on every later view). The target is under 50 ms server time.
func BenchmarkReference200(b *testing.B) {
	doc := bigDocument(20, 10)
	b.Run("cold", func(b *testing.B) {
		var size int
		b.ReportAllocs()
		for b.Loop() {
			ref, err := docs.Build(doc, benchOpts)
			if err != nil {
				b.Fatal(err)
			}
			cw := countingWriter{}
			if err := docs.ReferenceView(ref, benchTry).Render(context.Background(), &cw); err != nil {
				b.Fatal(err)
			}
			size = cw.n
		}
		reportPerRender(b, size)
	})
	b.Run("warm", func(b *testing.B) {
		cache := docs.NewCache(8)
		if _, err := cache.Reference(doc, benchOpts); err != nil {
			b.Fatal(err)
		}
		var size int
		b.ReportAllocs()
		for b.Loop() {
			ref, err := cache.Reference(doc, benchOpts)
			if err != nil {
				b.Fatal(err)
			}
			cw := countingWriter{}
			if err := docs.ReferenceView(ref, benchTry).Render(context.Background(), &cw); err != nil {
				b.Fatal(err)
			}
			size = cw.n
		}
		reportPerRender(b, size)
	})
}

func reportPerRender(b *testing.B, size int) {
	perOp := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(perOp.Microseconds())/1000, "ms/render")
	b.ReportMetric(float64(size)/1024, "KiB/page")
}

// countingWriter counts what a render writes, like a response writer that
// sends it on.
type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)

func TestBigDocumentBuilds(t *testing.T) {
	t.Parallel()
	ref, err := docs.Build(bigDocument(20, 10), benchOpts)
	if err != nil {
		t.Fatal(err)
	}
	if ref.Operations != 200 || len(ref.Tags) != 20 {
		t.Fatalf("got %d operations in %d tags, want 200 in 20", ref.Operations, len(ref.Tags))
	}
	var buf bytes.Buffer
	start := time.Now()
	if err := docs.ReferenceView(ref, benchTry).Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	t.Logf("rendered %d KiB in %v", buf.Len()/1024, time.Since(start))
}
