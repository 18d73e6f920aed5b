package docs

import (
	"context"
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// memo remembers, for one Build, what is derived from a schema alone:
// documents refer to the same components from hundreds of operations, and
// deriving their facts, trees and examples once per schema keeps Build fast.
// The trees it hands out are shared between operations; nothing modifies
// them after Build.
type memo struct {
	facts   map[*openapi3.Schema]*schemaFacts
	trees   map[treeKey]*SchemaNode
	synth   map[treeKey]synthResult
	paramOf map[*openapi3.Parameter]Param
}

// schemaFacts are a schema's own properties as the page shows them.
type schemaFacts struct {
	flat     *openapi3.Schema // allOf merged
	typ      string
	desc     Text
	title    Text // the title, when there is no description
	enum     []string
	def      string
	example  string
	limits   []string
	children bool // has anything nested to show
}

type treeKey struct {
	s   *openapi3.Schema
	ref string
	dir direction
}

type synthResult struct {
	v  any
	ok bool
}

func newMemo() *memo {
	return &memo{
		facts:   map[*openapi3.Schema]*schemaFacts{},
		trees:   map[treeKey]*SchemaNode{},
		synth:   map[treeKey]synthResult{},
		paramOf: map[*openapi3.Parameter]Param{},
	}
}

// of returns the facts of s, computing them on first use.
func (m *memo) of(s *openapi3.Schema) *schemaFacts {
	if f, ok := m.facts[s]; ok {
		return f
	}
	flat := flatten(s)
	f := &schemaFacts{flat: flat}
	m.facts[s] = f // before the recursive parts, so cycles terminate
	f.typ = m.typeLabel(s, 0)
	f.desc = parseText(flat.Description)
	if flat.Title != "" && len(f.desc) == 0 {
		f.title = Text{{Kind: Paragraph, Text: flat.Title}}
	}
	f.enum = enumValues(flat.Enum)
	if flat.Default != nil {
		f.def = scalarText(flat.Default)
	}
	if flat.Example != nil && isScalar(flat.Example) {
		f.example = scalarText(flat.Example)
	}
	f.limits = constraints(flat)
	f.children = m.hasChildren(flat, 0)
	return f
}

// hasChildren reports whether a schema would show anything nested.
func (m *memo) hasChildren(s *openapi3.Schema, depth int) bool {
	if len(s.Properties) > 0 || len(s.OneOf) > 0 || len(s.AnyOf) > 0 {
		return true
	}
	if depth >= 8 {
		return false
	}
	if ap := s.AdditionalProperties.Schema; ap != nil && ap.Value != nil && m.hasChildren(flatten(ap.Value), depth+1) {
		return true
	}
	if s.Items != nil && s.Items.Value != nil {
		return m.hasChildren(flatten(s.Items.Value), depth+1)
	}
	return false
}

// tree is the schema tree of a media type's schema, built once per schema
// and direction.
func (m *memo) tree(ref *openapi3.SchemaRef, dir direction) *SchemaNode {
	if ref == nil {
		return nil
	}
	k := treeKey{s: ref.Value, ref: ref.Ref, dir: dir}
	if t, ok := m.trees[k]; ok {
		return t
	}
	b := treeBuilder{dir: dir, m: m}
	t := b.node("", ref, false, 0)
	m.trees[k] = t
	return t
}

// synthesize is the example made up from a schema, once per schema and
// direction.
func (m *memo) synthesize(ref *openapi3.SchemaRef, dir direction) (any, bool) {
	if ref == nil || ref.Value == nil {
		return nil, false
	}
	k := treeKey{s: ref.Value, dir: dir}
	if r, ok := m.synth[k]; ok {
		return r.v, r.ok
	}
	var stack []*openapi3.Schema
	v, ok := m.synth1(ref, dir, &stack, 0)
	m.synth[k] = synthResult{v, ok}
	return v, ok
}

// prerender renders every schema tree once, so that page views copy the
// HTML of the trees operations share instead of rendering them again.
func (m *memo) prerender() error {
	var b strings.Builder
	for _, t := range m.trees {
		if t == nil {
			continue
		}
		b.Reset()
		if err := schemaView(t).Render(context.Background(), &b); err != nil {
			return fmt.Errorf("render schema tree: %w", err)
		}
		t.html = b.String()
	}
	return nil
}
