package docs

import (
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Limits of one rendered schema tree: deep or huge schemas are cut with an
// "elided" marker rather than making the page enormous.
const (
	maxSchemaDepth = 8
	maxSchemaNodes = 250
	maxEnumShown   = 30
)

// direction says whether a schema describes what the client sends or what
// it receives: readOnly properties are left out of requests and writeOnly
// ones out of responses, in trees and in synthesized examples alike.
type direction uint8

const (
	toServer direction = iota
	toClient
)

// skips reports whether a property is left out in this direction.
func (d direction) skips(s *openapi3.Schema) bool {
	if s == nil {
		return false
	}
	return d == toServer && s.ReadOnly || d == toClient && s.WriteOnly
}

// treeBuilder builds one schema tree. stack holds the schemas being
// expanded, so that a schema that contains itself stops there.
type treeBuilder struct {
	dir   direction
	m     *memo
	nodes int
	stack []*openapi3.Schema
}

func (b *treeBuilder) node(name string, ref *openapi3.SchemaRef, required bool, depth int) *SchemaNode {
	b.nodes++
	n := &SchemaNode{Name: name, Required: required, Ref: refName(ref.Ref)}
	orig := ref.Value
	if orig == nil {
		n.Type = "any"
		return n
	}
	f := b.m.of(orig)
	s := f.flat
	n.Type = f.typ
	n.Nullable = s.Nullable || s.Type.IncludesNull()
	n.ReadOnly, n.WriteOnly, n.Deprecated = s.ReadOnly, s.WriteOnly, s.Deprecated
	n.Description, n.Enum, n.Default, n.Example, n.Constraints = f.desc, f.enum, f.def, f.example, f.limits
	if len(n.Description) == 0 && n.Ref == "" {
		n.Description = f.title // a component's title is like its name, already shown
	}

	if slices.Contains(b.stack, orig) {
		n.Recursive = f.children
		return n
	}
	if f.children && (depth >= maxSchemaDepth || b.nodes >= maxSchemaNodes) {
		n.Elided = true
		return n
	}
	b.stack = append(b.stack, orig)
	defer func() { b.stack = b.stack[:len(b.stack)-1] }()

	switch {
	case len(s.OneOf) > 0 || len(s.AnyOf) > 0:
		alts, variant := s.OneOf, "one of"
		if len(alts) == 0 {
			alts, variant = s.AnyOf, "any of"
		}
		n.Variant = variant
		for _, alt := range alts {
			if alt == nil || b.nodes >= maxSchemaNodes {
				continue
			}
			n.Children = append(n.Children, b.node("", alt, false, depth+1))
		}
	case s.Type.Includes(openapi3.TypeArray) || s.Items != nil && s.Type.IsEmpty():
		if s.Items == nil || s.Items.Value == nil {
			break
		}
		// An array of objects shows its items' properties directly; the
		// type already says "array of ...".
		b.nodes-- // the item node itself is not shown
		item := b.node("", s.Items, false, depth)
		n.Children, n.Variant, n.Recursive, n.Elided = item.Children, item.Variant, item.Recursive, item.Elided
		if len(n.Enum) == 0 {
			n.Enum = item.Enum
		}
	default:
		b.properties(n, s, depth)
	}
	return n
}

// properties adds an object's properties (sorted by name; the document's
// order does not survive parsing) and its additional properties.
func (b *treeBuilder) properties(n *SchemaNode, s *openapi3.Schema, depth int) {
	names := make([]string, 0, len(s.Properties))
	for name, p := range s.Properties {
		if p != nil && !b.dir.skips(p.Value) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if b.nodes >= maxSchemaNodes {
			n.Elided = true
			return
		}
		n.Children = append(n.Children, b.node(name, s.Properties[name], slices.Contains(s.Required, name), depth+1))
	}
	// A map of scalars says all in its type ("map of string"); a map of
	// objects shows the values' fields under "{key}".
	if ap := s.AdditionalProperties.Schema; ap != nil && ap.Value != nil && b.nodes < maxSchemaNodes && b.m.of(ap.Value).children {
		n.Children = append(n.Children, b.node("{key}", ap, false, depth+1))
	}
}

// flatten merges an allOf composition into one object schema, so the tree
// and the examples see its properties in one place. It returns s itself when
// there is nothing to merge.
func flatten(s *openapi3.Schema) *openapi3.Schema {
	if len(s.AllOf) == 0 {
		return s
	}
	var seen []*openapi3.Schema
	return mergeAllOf(s, &seen)
}

func mergeAllOf(s *openapi3.Schema, seen *[]*openapi3.Schema) *openapi3.Schema {
	if len(s.AllOf) == 0 || slices.Contains(*seen, s) {
		return s
	}
	*seen = append(*seen, s)
	m := *s
	m.AllOf = nil
	m.Properties = make(openapi3.Schemas, len(s.Properties))
	for k, v := range s.Properties {
		m.Properties[k] = v
	}
	m.Required = slices.Clone(s.Required)
	for _, part := range s.AllOf {
		if part == nil || part.Value == nil {
			continue
		}
		p := mergeAllOf(part.Value, seen)
		for k, v := range p.Properties {
			if _, ok := m.Properties[k]; !ok {
				m.Properties[k] = v
			}
		}
		m.Required = append(m.Required, p.Required...)
		if m.Type.IsEmpty() && !p.Type.IsEmpty() {
			m.Type = p.Type
		}
		if m.Description == "" {
			m.Description = p.Description
		}
		if m.Items == nil {
			m.Items = p.Items
		}
		if len(m.OneOf) == 0 && len(m.AnyOf) == 0 {
			m.OneOf, m.AnyOf = p.OneOf, p.AnyOf
		}
		if m.AdditionalProperties.Schema == nil {
			m.AdditionalProperties = p.AdditionalProperties
		}
		if m.Example == nil {
			m.Example = p.Example
		}
		if len(m.Enum) == 0 {
			m.Enum = p.Enum
		}
		if m.Format == "" {
			m.Format = p.Format
		}
	}
	return &m
}

// typeLabel names a schema's type for people: "string (date-time)",
// "array of Pet", "object", "one of Cat, Dog".
func (m *memo) typeLabel(orig *openapi3.Schema, depth int) string {
	if depth > 3 {
		return "…"
	}
	s := flatten(orig)
	if len(s.OneOf) > 0 || len(s.AnyOf) > 0 {
		alts, word := s.OneOf, "one of "
		if len(alts) == 0 {
			alts, word = s.AnyOf, "any of "
		}
		names := make([]string, 0, min(len(alts), 4))
		for i, a := range alts {
			if i == 3 {
				names = append(names, "…")
				break
			}
			if n := refName(a.Ref); n != "" {
				names = append(names, n)
			} else {
				names = append(names, m.typeLabelRef(a, depth+1))
			}
		}
		return word + strings.Join(names, ", ")
	}
	var types []string
	for _, t := range s.Type.Slice() {
		if t != openapi3.TypeNull {
			types = append(types, t)
		}
	}
	if len(types) == 0 {
		switch {
		case len(s.Properties) > 0 || s.AdditionalProperties.Schema != nil:
			types = []string{openapi3.TypeObject}
		case s.Items != nil:
			types = []string{openapi3.TypeArray}
		default:
			if s.Format != "" {
				return s.Format
			}
			return "any"
		}
	}
	if len(types) > 1 {
		return strings.Join(types, " or ")
	}
	switch t := types[0]; t {
	case openapi3.TypeArray:
		if s.Items == nil {
			return "array"
		}
		if n := refName(s.Items.Ref); n != "" {
			return "array of " + n
		}
		return "array of " + m.typeLabelRef(s.Items, depth+1)
	case openapi3.TypeObject:
		if ap := s.AdditionalProperties.Schema; ap != nil && len(s.Properties) == 0 {
			if n := refName(ap.Ref); n != "" {
				return "map of " + n
			}
			return "map of " + m.typeLabelRef(ap, depth+1)
		}
		return t
	default:
		if s.Format != "" {
			return t + " (" + s.Format + ")"
		}
		return t
	}
}

func (m *memo) typeLabelRef(ref *openapi3.SchemaRef, depth int) string {
	if ref == nil || ref.Value == nil {
		return "any"
	}
	if depth == 0 {
		return m.of(ref.Value).typ
	}
	return m.typeLabel(ref.Value, depth)
}

// refName is the last segment of a local reference
// ("#/components/schemas/Pet" → "Pet"), "" for none.
func refName(ref string) string {
	if ref == "" {
		return ""
	}
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		ref = ref[i+1:]
	}
	return strings.ReplaceAll(strings.ReplaceAll(ref, "~1", "/"), "~0", "~")
}

// constraints lists a schema's limits in words.
func constraints(s *openapi3.Schema) []string {
	var c []string
	num := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	if s.Min != nil {
		op := "≥ "
		if s.ExclusiveMin.IsTrue() {
			op = "> "
		}
		c = append(c, op+num(*s.Min))
	}
	if v := s.ExclusiveMin.Value; v != nil {
		c = append(c, "> "+num(*v))
	}
	if s.Max != nil {
		op := "≤ "
		if s.ExclusiveMax.IsTrue() {
			op = "< "
		}
		c = append(c, op+num(*s.Max))
	}
	if v := s.ExclusiveMax.Value; v != nil {
		c = append(c, "< "+num(*v))
	}
	if s.MultipleOf != nil {
		c = append(c, "multiple of "+num(*s.MultipleOf))
	}
	if s.MinLength > 0 {
		c = append(c, "min length "+strconv.FormatUint(s.MinLength, 10))
	}
	if s.MaxLength != nil {
		c = append(c, "max length "+strconv.FormatUint(*s.MaxLength, 10))
	}
	if s.Pattern != "" {
		c = append(c, "pattern "+s.Pattern)
	}
	if s.MinItems > 0 {
		c = append(c, "min items "+strconv.FormatUint(s.MinItems, 10))
	}
	if s.MaxItems != nil {
		c = append(c, "max items "+strconv.FormatUint(*s.MaxItems, 10))
	}
	if s.UniqueItems {
		c = append(c, "unique items")
	}
	return c
}

func enumValues(enum []any) []string {
	if len(enum) == 0 {
		return nil
	}
	out := make([]string, 0, min(len(enum), maxEnumShown+1))
	for i, v := range enum {
		if i == maxEnumShown {
			out = append(out, "… "+strconv.Itoa(len(enum)-i)+" more")
			break
		}
		out = append(out, scalarText(v))
	}
	return out
}
