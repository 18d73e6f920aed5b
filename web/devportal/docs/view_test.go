package docs_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tollgate/tollgate/web/devportal/docs"
)

func yamlUnmarshal(b []byte, v any) error { return yaml.Unmarshal(b, v) }

func render(ref *docs.Reference, tc docs.TryItConfig) (string, error) {
	var b strings.Builder
	err := docs.ReferenceView(ref, tc).Render(context.Background(), &b)
	return b.String(), err
}

// hostile puts markup and script into every string a document controls.
const hostile = `{
  "openapi": "3.0.3",
  "info": {"title": "<script>alert('title')</script>", "version": "1\"><script>alert(1)</script>",
           "description": "Hello <img src=x onerror=alert(1)> & <b>bold</b>\n\n` + "```" + `\n</code></pre><script>alert('fence')</script>\n` + "```" + `"},
  "tags": [{"name": "<script>alert('tag')</script>", "description": "<iframe src=javascript:alert(1)>"}],
  "paths": {
    "/x/{id}": {
      "post": {
        "tags": ["<script>alert('tag')</script>"],
        "operationId": "\"><script>alert('id')</script>",
        "summary": "<script>alert('summary')</script>",
        "description": "</textarea><script>alert('desc')</script>",
        "parameters": [
          {"name": "id", "in": "path", "required": true, "description": "<script>alert('param')</script>",
           "schema": {"type": "string", "enum": ["<script>alert('enum')</script>", "b"]}},
          {"name": "q\"><script>alert('name')</script>", "in": "query", "example": "\"><script>alert('ex')</script>",
           "schema": {"type": "string", "default": "</textarea><script>alert('default')</script>"}}
        ],
        "requestBody": {"content": {"application/json": {
          "schema": {"type": "object", "properties": {"<script>alert('prop')</script>": {"type": "string", "format": "<script>alert('format')</script>"}}},
          "example": {"note": "</textarea><script>alert('body')</script>", "quote": "'; alert(1); '"}
        }}},
        "responses": {"200": {"description": "<script>alert('resp')</script>", "content": {"text/html": {"example": "<script>alert('html')</script>"}}}}
      }
    }
  },
  "components": {"securitySchemes": {"<script>s</script>": {"type": "apiKey", "in": "header", "name": "<script>alert('scheme')</script>"}}}
}`

func TestReferenceViewEscapesTheDocument(t *testing.T) {
	t.Parallel()
	ref, err := docs.Build([]byte(hostile), docs.Options{BaseURL: "http://acme.localhost:8000/x", Key: `k"><script>alert('key')</script>`})
	if err != nil {
		t.Fatal(err)
	}
	page, err := render(ref, docs.TryItConfig{Enabled: true, RelayURL: "javascript:alert(1)", CSRFToken: `"><script>`,
		Key: `"><script>alert('tckey')</script>`, KeyHint: "<script>alert('hint')</script>"})
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(` [a-z-]+="\s*javascript:`).FindString(page); m != "" {
		t.Errorf("an attribute holds %q", m)
	}
	for _, bad := range []string{"<script", "<img", "<iframe", "<b>"} {
		if i := strings.Index(page, bad); i >= 0 {
			t.Errorf("the page contains %q: ...%s...", bad, page[max(0, i-120):min(len(page), i+80)])
		}
	}
	if n := strings.Count(page, "</textarea>"); n != strings.Count(page, "<textarea") {
		t.Errorf("%d </textarea> for %d textareas: a value closed one early", n, strings.Count(page, "<textarea"))
	}
	if strings.Contains(page, "data-relay") {
		t.Error("a javascript: relay URL should disable the console, not reach the page")
	}
	for _, want := range []string{"&lt;script&gt;alert(", "&lt;img src=x onerror=alert(1)&gt;", "&amp; &lt;b&gt;bold&lt;/b&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks the escaped text %q", want)
		}
	}
}

// TestReferenceViewStrictCSP: the page needs no inline script, style or
// event handler, so it runs under script-src 'self'; style-src 'self'.
func TestReferenceViewStrictCSP(t *testing.T) {
	t.Parallel()
	page, err := render(petstore(t, docs.Options{BaseURL: petBase, Key: petKey}), docs.TryItConfig{Enabled: true, RelayURL: "/apis/a1/try", CSRFToken: "tok", Key: petKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`<script`, `<style`, `\sstyle=`, `\son[a-z]+=`, `javascript:`} {
		if m := regexp.MustCompile(re).FindString(page); m != "" {
			t.Errorf("the page contains %q", m)
		}
	}
}

// TestReferenceViewLinks: ids are unique, and every in-page link and label
// points at one.
func TestReferenceViewLinks(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string][]byte{"petstore": nil, "untagged": []byte(untagged), "big": bigDocument(5, 10)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var ref *docs.Reference
			if doc == nil {
				ref = petstore(t, docs.Options{BaseURL: petBase})
			} else {
				var err error
				if ref, err = docs.Build(doc, docs.Options{BaseURL: petBase}); err != nil {
					t.Fatal(err)
				}
			}
			page, err := render(ref, docs.TryItConfig{Enabled: true, RelayURL: "/apis/a1/try"})
			if err != nil {
				t.Fatal(err)
			}
			ids := map[string]int{}
			for _, m := range regexp.MustCompile(` id="([^"]+)"`).FindAllStringSubmatch(page, -1) {
				ids[m[1]]++
			}
			for id, n := range ids {
				if n > 1 {
					t.Errorf("id %q appears %d times", id, n)
				}
			}
			for _, re := range []string{` href="#([^"]+)"`, ` for="([^"]+)"`, ` data-copy="([^"]+)"`, ` aria-labelledby="([^"]+)"`, ` aria-describedby="([^"]+)"`} {
				for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(page, -1) {
					if ids[m[1]] == 0 {
						t.Errorf("%s points at a missing id", strings.TrimSpace(m[0]))
					}
				}
			}
			for _, tg := range ref.Tags {
				for _, o := range tg.Operations {
					if ids[o.ID] != 1 || !strings.Contains(page, `href="#`+o.ID+`"`) {
						t.Errorf("operation %s has no anchor or no entry in the contents", o.ID)
					}
				}
			}
		})
	}
}

func TestReferenceViewTryIt(t *testing.T) {
	t.Parallel()
	ref := petstore(t, docs.Options{BaseURL: petBase, Key: petKey})
	page, err := render(ref, docs.TryItConfig{Enabled: true, RelayURL: "/apis/a1/try", CSRFToken: "tok-123", Key: petKey, KeyHint: "Your key from Apps."})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`data-relay="/apis/a1/try"`, `data-csrf="tok-123"`, `data-auth-header="X-API-Key"`,
		// A real form per operation, disabled until tryit.js takes it over.
		`<form class="ref-try-form" method="post" data-method="POST" data-path="/pets" data-content-type="application/json">`,
		`<fieldset class="ref-try-fields" disabled>`,
		`value="` + petKey + `"`, `Your key from Apps.`,
		// Parameters: an enum as a select, a path parameter prefilled with its example.
		`<select id="op-listpets--p1" name="query.status" data-in="query" data-name="status" required>`,
		`data-in="path" data-name="petId" value="42"`,
		// The body prefilled with the example, quotes left readable.
		`data-role="body" rows=`, `"name": "Rex"`,
		// Copy buttons and CSS-only tabs.
		`<button type="button" class="ref-copy" data-copy="op-createpet--python" aria-label="Copy Python sample" hidden>`,
		`<input type="radio" class="ref-tab-radio" name="op-createpet--lang" id="op-createpet--curl-tab" checked>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	// The API key header is set from the key field, never asked twice.
	if strings.Count(page, `class="ref-try-form"`) != 6 {
		t.Errorf("want 6 consoles, got %d", strings.Count(page, `class="ref-try-form"`))
	}

	off, err := render(ref, docs.TryItConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(off, "<form") || strings.Contains(off, "data-relay") {
		t.Error("a disabled console should render no form")
	}
	if !strings.Contains(off, "ref-snippets") {
		t.Error("snippets should not depend on the console")
	}
}
