package docs

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Summary is what the catalogue shows of a document: cheap to compute and
// tiny to cache.
type Summary struct {
	Title   string
	Version string
	// Description is the first paragraph of the description, clipped.
	Description string
	// Operations counts the operations.
	Operations int
	// Tags are the tags that have operations, declared ones in document
	// order first, then OtherTag when some operations have none.
	Tags []string
}

const summaryDescLen = 240

// Summary summarizes the reference.
func (r *Reference) Summary() Summary {
	s := Summary{Title: r.Info.Title, Version: r.Info.Version, Operations: r.Operations,
		Description: r.Info.Description.FirstSentence(summaryDescLen)}
	for _, t := range r.Tags {
		s.Tags = append(s.Tags, t.Name)
	}
	return s
}

// Summarize summarizes a document without building its reference: a JSON
// document (the catalogue stores them normalized to JSON) is only decoded
// shallowly; YAML falls back to a full parse.
func Summarize(doc []byte) (Summary, error) {
	if d := bytes.TrimSpace(doc); len(d) > 0 && d[0] == '{' {
		if s, ok := summarizeJSON(d); ok {
			return s, nil
		}
	}
	t, err := load(doc)
	if err != nil {
		return Summary{}, err
	}
	return summarizeT(t), nil
}

// opTags decodes an operation's tags and ignores path-item fields that are
// not operations (parameters, summary, servers, $ref).
type opTags struct {
	op   bool
	tags []string
}

func (o *opTags) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '{' {
		return nil
	}
	var v struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	o.op, o.tags = true, v.Tags
	return nil
}

var operationKeys = map[string]bool{
	"get": true, "put": true, "post": true, "delete": true, "options": true,
	"head": true, "patch": true, "trace": true, "query": true,
}

func summarizeJSON(doc []byte) (Summary, bool) {
	var d struct {
		OpenAPI string `json:"openapi"`
		Info    struct {
			Title       string `json:"title"`
			Version     string `json:"version"`
			Description string `json:"description"`
		} `json:"info"`
		Tags []struct {
			Name string `json:"name"`
		} `json:"tags"`
		Paths map[string]map[string]opTags `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil || !strings.HasPrefix(d.OpenAPI, "3.") {
		return Summary{}, false
	}
	declared := make([]string, 0, len(d.Tags))
	for _, t := range d.Tags {
		declared = append(declared, t.Name)
	}
	var ops [][]string
	for _, path := range slices.Sorted(maps.Keys(d.Paths)) {
		item := d.Paths[path]
		for _, m := range sortedMethods(maps.Keys(item)) {
			if op := item[m]; op.op && operationKeys[m] {
				ops = append(ops, op.tags)
			}
		}
	}
	s := Summary{Title: d.Info.Title, Version: d.Info.Version, Operations: len(ops),
		Description: parseText(d.Info.Description).FirstSentence(summaryDescLen), Tags: usedTags(declared, ops)}
	if s.Title == "" {
		s.Title = "API reference"
	}
	return s, true
}

func summarizeT(t *openapi3.T) Summary {
	var s Summary
	if t.Info != nil {
		s.Title, s.Version = t.Info.Title, t.Info.Version
		s.Description = parseText(t.Info.Description).FirstSentence(summaryDescLen)
	}
	if s.Title == "" {
		s.Title = "API reference"
	}
	var declared []string
	for _, tg := range t.Tags {
		if tg != nil {
			declared = append(declared, tg.Name)
		}
	}
	var ops [][]string
	if t.Paths != nil {
		m := t.Paths.Map()
		for _, path := range slices.Sorted(maps.Keys(m)) {
			if m[path] == nil {
				continue
			}
			item := m[path].Operations()
			for _, method := range sortedMethods(maps.Keys(item)) {
				ops = append(ops, item[method].Tags)
			}
		}
	}
	s.Operations = len(ops)
	s.Tags = usedTags(declared, ops)
	return s
}

// usedTags lists the tags operations use like Build groups them: declared
// ones in document order, then undeclared ones in the order operations are
// listed, then OtherTag.
func usedTags(declared []string, ops [][]string) []string {
	used := map[string]bool{}
	var undeclared []string
	untagged := false
	for _, tags := range ops {
		name := firstTag(tags)
		switch {
		case name == "":
			untagged = true
		case !used[name]:
			used[name] = true
			if !slices.Contains(declared, name) {
				undeclared = append(undeclared, name)
			}
		}
	}
	var out []string
	for _, name := range declared {
		if used[name] && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	out = append(out, undeclared...)
	if untagged && !slices.Contains(out, OtherTag) {
		out = append(out, OtherTag)
	}
	return out
}
