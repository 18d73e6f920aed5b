package mgmtapi

// The /v1 model: the JSON request and response types of the API, apart
// from the domain packages' stored model (catalog, tenancy, settings, ...)
// and from the data plane's contract (proxycfg), with explicit mappings
// between them in the model_*.go files:
//
//   - XRequest is what a caller sends to create X (and what PATCH merges
//     into); its input method maps it to the domain's input type.
//   - X is what the API answers; xOf maps the domain type to it.
//   - xRequestOf maps the domain's current input back to the request, the
//     base a PATCH body is merged into.
//
// The OpenAPI document (openapi.go) is generated from these types: field
// names and types from the Go types and JSON tags, descriptions and
// constraints from the doc, format, enum, min, max, default and pattern
// struct tags, and each type's description from its schemaDoc method.
// Outside tests drive these shapes (DESIGN.md "Minimum request and response
// shapes of /v1"); testdata/responses.golden.json records them.

// ListPage is the shape of every list answer: one page of items and the
// cursor of the next page (null on the last page).
type ListPage[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor" doc:"pass as cursor to read the next page; null on the last page"`
}

func newListPage[T any](items []T, next string) ListPage[T] {
	if items == nil {
		items = []T{}
	}
	p := ListPage[T]{Items: items}
	if next != "" {
		p.NextCursor = &next
	}
	return p
}

// listOf maps one page of domain objects to a ListPage of their /v1 form.
func listOf[D, T any](items []D, next string, of func(D) T) ListPage[T] {
	out := make([]T, len(items))
	for i, d := range items {
		out[i] = of(d)
	}
	return newListPage(out, next)
}

// mapSlice maps every element of in with of, keeping nil as nil.
func mapSlice[A, B any](in []A, of func(A) B) []B {
	if in == nil {
		return nil
	}
	out := make([]B, len(in))
	for i, a := range in {
		out[i] = of(a)
	}
	return out
}

// clonePtr returns a copy of *p, or nil.
func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// EmptyRequest is the optional body of the action routes (approve, reject,
// suspend, ...): nothing, or {}.
type EmptyRequest struct{}

func (EmptyRequest) schemaDoc() string { return "An empty object; the body may also be left out." }
