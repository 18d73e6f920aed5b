package sdk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// document is a loaded, validated and bounded OpenAPI document.
type document struct {
	// raw is the canonical JSON form, which the version hash covers.
	raw []byte
	// spec is loaded for one build only: a generator may change it (the Go
	// one does).
	spec *openapi3.T
	// apiVersion is info.version; version adds the hash (see Version).
	apiVersion, version string
	title               string
}

// Version returns an SDK version: the document's info.version, "+", and the
// first 12 hex digits of the SHA-256 of the canonical document. The
// canonical form is the document as JSON with object keys sorted and no
// insignificant white space, so re-indenting or reordering a stored document
// does not change the version, and any change of content does.
func Version(infoVersion string, canonical []byte) string {
	sum := sha256.Sum256(canonical)
	v := strings.TrimSpace(infoVersion)
	if v == "" {
		v = "0"
	}
	return v + "+" + hex.EncodeToString(sum[:])[:12]
}

// loadDocument parses raw (JSON, or YAML), refusing every reference outside
// the document, validates it as OpenAPI 3 and checks the limits.
func loadDocument(ctx context.Context, raw []byte) (*document, error) {
	invalid := func(msg string, err error) error {
		return &GenerateError{Message: msg, Err: err}
	}
	spec, err := loadSpec(ctx, raw)
	if err != nil {
		return nil, invalid("the API's OpenAPI document cannot be read: "+firstLine(err.Error()), err)
	}
	if !strings.HasPrefix(spec.OpenAPI, "3.") {
		return nil, invalid(fmt.Sprintf("the API's document is not OpenAPI 3 (openapi: %q); Swagger 2.0 documents must be converted first", spec.OpenAPI), nil)
	}
	if err := spec.Validate(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, invalid("the API's OpenAPI document is not valid: "+firstLine(err.Error()), err)
	}
	ops := 0
	if spec.Paths != nil {
		for _, item := range spec.Paths.Map() {
			ops += len(item.Operations())
		}
	}
	if ops == 0 {
		return nil, invalid("the API's OpenAPI document has no operations", nil)
	}
	if ops > MaxOperations {
		return nil, invalid(fmt.Sprintf("the API's OpenAPI document has %d operations; SDKs are generated for at most %d", ops, MaxOperations), nil)
	}
	if n := countSchemas(spec); n > MaxSchemas {
		return nil, invalid(fmt.Sprintf("the API's OpenAPI document has more than %d schemas", MaxSchemas), nil)
	}
	canonical, err := canonicalJSON(raw, spec)
	if err != nil {
		return nil, fmt.Errorf("canonical document: %w", err)
	}
	d := &document{raw: canonical, spec: spec}
	if spec.Info != nil {
		d.apiVersion, d.title = strings.TrimSpace(spec.Info.Version), spec.Info.Title
	}
	d.version = Version(d.apiVersion, canonical)
	return d, nil
}

// loadSpec loads one specification from raw. References are resolved only
// within the document: kin-openapi refuses external ones, and the read hook
// refuses anything that would still reach for a file or URL.
func loadSpec(ctx context.Context, raw []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	loader.IsExternalRefsAllowed = false
	loader.ReadFromURIFunc = func(_ *openapi3.Loader, u *url.URL) ([]byte, error) {
		return nil, fmt.Errorf("reference to %q: only references within the document are allowed", u.Redacted())
	}
	return loader.LoadFromData(raw)
}

// canonicalJSON re-encodes a JSON document with sorted keys and no
// insignificant white space; a YAML document is first converted through the
// loaded specification.
func canonicalJSON(raw []byte, spec *openapi3.T) ([]byte, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || dec.More() {
		b, err := json.Marshal(spec)
		if err != nil {
			return nil, err
		}
		dec = json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
	}
	return json.Marshal(v)
}

// countSchemas counts the distinct schemas reachable from the document,
// stopping early past MaxSchemas.
func countSchemas(spec *openapi3.T) int {
	w := schemaWalker{seen: map[*openapi3.Schema]bool{}}
	w.document(spec)
	return len(w.seen)
}

// schemaWalker visits every schema of a document once. visit, if set, is
// called for each schema, and visitRef for every reference to one (a schema
// referenced from two places has two).
type schemaWalker struct {
	seen     map[*openapi3.Schema]bool
	visit    func(*openapi3.Schema)
	visitRef func(*openapi3.SchemaRef)
}

func (w *schemaWalker) document(spec *openapi3.T) {
	if c := spec.Components; c != nil {
		for _, name := range sortedKeys(c.Schemas) {
			w.schema(c.Schemas[name])
		}
		for _, name := range sortedKeys(c.Parameters) {
			w.parameter(c.Parameters[name])
		}
		for _, name := range sortedKeys(c.RequestBodies) {
			if b := c.RequestBodies[name]; b != nil && b.Value != nil {
				w.content(b.Value.Content)
			}
		}
		for _, name := range sortedKeys(c.Responses) {
			w.response(c.Responses[name])
		}
		for _, name := range sortedKeys(c.Headers) {
			if h := c.Headers[name]; h != nil && h.Value != nil {
				w.schema(h.Value.Schema)
				w.content(h.Value.Content)
			}
		}
	}
	if spec.Paths == nil {
		return
	}
	for _, path := range spec.Paths.InMatchingOrder() {
		item := spec.Paths.Value(path)
		for _, p := range item.Parameters {
			w.parameter(p)
		}
		ops := item.Operations()
		for _, m := range sortedKeys(ops) {
			op := ops[m]
			for _, p := range op.Parameters {
				w.parameter(p)
			}
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				w.content(op.RequestBody.Value.Content)
			}
			if op.Responses != nil {
				for _, code := range sortedKeys(op.Responses.Map()) {
					w.response(op.Responses.Value(code))
				}
			}
		}
	}
}

func (w *schemaWalker) parameter(p *openapi3.ParameterRef) {
	if p == nil || p.Value == nil {
		return
	}
	w.schema(p.Value.Schema)
	w.content(p.Value.Content)
}

func (w *schemaWalker) response(r *openapi3.ResponseRef) {
	if r == nil || r.Value == nil {
		return
	}
	w.content(r.Value.Content)
	for _, name := range sortedKeys(r.Value.Headers) {
		if h := r.Value.Headers[name]; h != nil && h.Value != nil {
			w.schema(h.Value.Schema)
		}
	}
}

func (w *schemaWalker) content(c openapi3.Content) {
	for _, mt := range sortedKeys(c) {
		if m := c[mt]; m != nil {
			w.schema(m.Schema)
			w.schema(m.ItemSchema)
		}
	}
}

func (w *schemaWalker) schema(r *openapi3.SchemaRef) {
	if r != nil && w.visitRef != nil {
		w.visitRef(r)
	}
	if r == nil || r.Value == nil || w.seen[r.Value] || len(w.seen) > MaxSchemas {
		return
	}
	s := r.Value
	w.seen[s] = true
	if w.visit != nil {
		w.visit(s)
	}
	for _, list := range []openapi3.SchemaRefs{s.OneOf, s.AnyOf, s.AllOf, s.PrefixItems} {
		for _, m := range list {
			w.schema(m)
		}
	}
	for _, m := range []*openapi3.SchemaRef{s.Not, s.Items, s.AdditionalProperties.Schema, s.Contains,
		s.PropertyNames, s.If, s.Then, s.Else, s.UnevaluatedItems.Schema, s.UnevaluatedProperties.Schema} {
		w.schema(m)
	}
	for _, props := range []openapi3.Schemas{s.Properties, s.PatternProperties, s.DependentSchemas} {
		for _, name := range sortedKeys(props) {
			w.schema(props[name])
		}
	}
}

// sortedKeys returns the keys of m in order, so that every walk and every
// generated file is deterministic.
func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
