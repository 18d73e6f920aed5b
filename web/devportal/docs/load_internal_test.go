package docs

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"gopkg.in/yaml.v3"
)

// TestLoadJSONMatchesLoader: the fast JSON path gives the same document as
// kin-openapi's LoadFromData.
func TestLoadJSONMatchesLoader(t *testing.T) {
	t.Parallel()
	y, err := os.ReadFile(filepath.Join("testdata", "petstore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		t.Fatal(err)
	}
	v.(map[string]any)["paths"].(map[string]any)["x-note"] = map[string]any{"a": 1}
	v.(map[string]any)["paths"].(map[string]any)["/pets"].(map[string]any)["x-item"] = true
	petstore, _ := json.Marshal(v)
	for name, doc := range map[string][]byte{
		"petstore":   petstore,
		"no paths":   []byte(`{"openapi":"3.1.0","info":{"title":"x","version":"1"}}`),
		"null paths": []byte(`{"openapi":"3.0.0","info":{"title":"x","version":"1"},"paths":null}`),
	} {
		t.Run(name, func(t *testing.T) {
			l := openapi3.NewLoader()
			fast, err := loadJSON(l, doc)
			if err != nil {
				t.Fatal(err)
			}
			slow, err := openapi3.NewLoader().LoadFromData(doc)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(fast)
			b, _ := json.Marshal(slow)
			if !bytes.Equal(a, b) {
				t.Errorf("loadJSON and LoadFromData differ:\n%s\n%s", a, b)
			}
		})
	}
}

func TestParseText(t *testing.T) {
	t.Parallel()
	got := parseText("First line\ncontinues.\n\n- one\n  more\n* two\n\n```go\nx := 1\n\n```\nlast <b>")
	want := Text{
		{Kind: Paragraph, Text: "First line continues."},
		{Kind: List, Items: []string{"one more", "two"}},
		{Kind: Code, Text: "x := 1\n"},
		{Kind: Paragraph, Text: "last <b>"},
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	if !bytes.Equal(a, b) {
		t.Errorf("parseText =\n%s\nwant\n%s", a, b)
	}
	if parseText("  ") != nil {
		t.Error("blank text should give no blocks")
	}
}
