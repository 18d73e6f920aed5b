package docs

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Limits of examples: synthesized ones stop at a depth, and any example is
// cut at a size so one odd document cannot bloat every page view.
const (
	maxExampleDepth = 6
	maxExampleLen   = 32 << 10
)

// mediaExamples returns the document's examples of a media type, or one
// synthesized from its schema when it has none.
func (m *memo) mediaExamples(mt *openapi3.MediaType, mediaType string, dir direction) []Example {
	jsonish := isJSON(mediaType)
	var out []Example
	if mt.Example != nil {
		out = append(out, Example{Value: exampleText(mt.Example, jsonish)})
	}
	if len(mt.Examples) > 0 {
		names := make([]string, 0, len(mt.Examples))
		for name := range mt.Examples {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			ex := mt.Examples[name]
			if ex == nil || ex.Value == nil {
				continue
			}
			e := Example{Name: name, Summary: ex.Value.Summary}
			switch {
			case ex.Value.Value != nil:
				e.Value = exampleText(ex.Value.Value, jsonish)
			case ex.Value.ExternalValue != "":
				e.Value = "External example: " + ex.Value.ExternalValue
			default:
				continue
			}
			out = append(out, e)
		}
	}
	if len(out) > 0 || mt.Schema == nil || mt.Schema.Value == nil {
		return out
	}
	if s := mt.Schema.Value; s.Example != nil {
		return []Example{{Value: exampleText(s.Example, jsonish)}}
	}
	if !jsonish && !strings.HasPrefix(mediaType, "application/x-www-form-urlencoded") {
		return nil // a made-up XML or binary body would mislead more than help
	}
	v, ok := m.synthesize(mt.Schema, dir)
	if !ok {
		return nil
	}
	return []Example{{Value: exampleText(v, true), Synthesized: true}}
}

// exampleText renders an example value: pretty JSON for JSON media types
// (a string that holds JSON is re-indented), the string itself otherwise.
func exampleText(v any, jsonish bool) string {
	if s, ok := v.(string); ok {
		if jsonish && json.Valid([]byte(s)) {
			var buf bytes.Buffer
			if json.Indent(&buf, []byte(s), "", "  ") == nil {
				return clip(buf.String(), maxExampleLen)
			}
		}
		if !jsonish {
			return clip(s, maxExampleLen)
		}
	}
	if !jsonish && isScalar(v) {
		return scalarText(v)
	}
	return clip(prettyJSON(v), maxExampleLen)
}

// prettyJSON encodes v indented, without escaping <, > and & (the page
// escapes for HTML; the snippets must show the real characters).
func prettyJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// scalarText renders an enum, default or example value compactly: strings
// as they are, everything else as JSON.
func scalarText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return clip(strings.TrimSuffix(buf.String(), "\n"), 200)
}

func isScalar(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	return true
}

// isJSON reports whether a media type carries JSON ("application/json",
// "application/problem+json", "application/vnd.x+json; charset=utf-8").
func isJSON(mediaType string) bool {
	mt, _, _ := strings.Cut(mediaType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "*/*" || mt == "text/json"
}

// synth1 makes up an example value from a schema: its own example,
// default, first enum value or const where it has one, else a plausible
// value of its type and format. ok is false where nothing sensible exists
// (a schema that only refers back to itself).
func (m *memo) synth1(ref *openapi3.SchemaRef, dir direction, stack *[]*openapi3.Schema, depth int) (any, bool) {
	if ref == nil || ref.Value == nil {
		return nil, false
	}
	orig := ref.Value
	s := m.of(orig).flat
	switch {
	case s.Example != nil:
		return s.Example, true
	case len(s.Examples) > 0:
		return s.Examples[0], true
	case s.Default != nil:
		return s.Default, true
	case len(s.Enum) > 0:
		return s.Enum[0], true
	case s.Const != nil:
		return s.Const, true
	}
	if slices.Contains(*stack, orig) || depth > maxExampleDepth {
		return nil, false
	}
	*stack = append(*stack, orig)
	defer func() { *stack = (*stack)[:len(*stack)-1] }()

	if len(s.OneOf) > 0 || len(s.AnyOf) > 0 {
		for _, alt := range append(slices.Clip(s.OneOf), s.AnyOf...) {
			if v, ok := m.synth1(alt, dir, stack, depth+1); ok {
				return v, true
			}
		}
		return nil, false
	}
	typ := ""
	for _, t := range s.Type.Slice() {
		if t != openapi3.TypeNull {
			typ = t
			break
		}
	}
	if typ == "" {
		switch {
		case len(s.Properties) > 0 || s.AdditionalProperties.Schema != nil:
			typ = openapi3.TypeObject
		case s.Items != nil:
			typ = openapi3.TypeArray
		case s.Type.IncludesNull():
			return nil, true
		default:
			return nil, false
		}
	}
	switch typ {
	case openapi3.TypeObject:
		obj := make(map[string]any, len(s.Properties))
		for name, p := range s.Properties {
			if p == nil || dir.skips(p.Value) {
				continue
			}
			if v, ok := m.synth1(p, dir, stack, depth+1); ok {
				obj[name] = v
			}
		}
		if ap := s.AdditionalProperties.Schema; ap != nil && len(obj) == 0 {
			if v, ok := m.synth1(ap, dir, stack, depth+1); ok {
				obj["key"] = v
			}
		}
		return obj, true
	case openapi3.TypeArray:
		if v, ok := m.synth1(s.Items, dir, stack, depth+1); ok {
			return []any{v}, true
		}
		return []any{}, true
	case openapi3.TypeString:
		return stringExample(s), true
	case openapi3.TypeInteger:
		if s.Min != nil {
			n := int64(*s.Min)
			if s.ExclusiveMin.IsTrue() {
				n++
			}
			return n, true
		}
		return 0, true
	case openapi3.TypeNumber:
		if s.Min != nil {
			return *s.Min, true
		}
		return 0.0, true
	case openapi3.TypeBoolean:
		return true, true
	}
	return nil, false
}

// stringExample is a plausible value for a string of the schema's format.
func stringExample(s *openapi3.Schema) string {
	switch s.Format {
	case "date-time":
		return "2025-01-15T09:30:00Z"
	case "date":
		return "2025-01-15"
	case "time":
		return "09:30:00"
	case "email":
		return "user@example.com"
	case "uuid":
		return "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	case "uri", "url", "iri":
		return "https://example.com"
	case "hostname":
		return "example.com"
	case "ipv4":
		return "192.0.2.1"
	case "ipv6":
		return "2001:db8::1"
	case "byte":
		return "aGVsbG8="
	case "password":
		return "********"
	case "binary":
		return ""
	}
	v := "string"
	if s.MinLength > uint64(len(v)) {
		v = strings.Repeat("x", int(min(s.MinLength, 64)))
	}
	return v
}
