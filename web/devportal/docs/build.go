package docs

import (
	"cmp"
	"encoding/json"
	"errors"
	"iter"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// MaxDocumentBytes bounds the documents Build reads. Imports are capped at
// 2 MiB (catalog.MaxOpenAPIBytes); the stored, normalized form can be a
// little larger.
const MaxDocumentBytes = 4 << 20

// OtherTag names the group of operations without tags.
const OtherTag = "Other"

// ErrNotOpenAPI3 means the document is not an OpenAPI 3.x document.
var ErrNotOpenAPI3 = errors.New("not an OpenAPI 3 document")

// Build parses an OpenAPI 3 document (JSON or YAML) and builds its
// reference page model. External $refs are refused; the document is not
// validated again (the catalogue validated it at import), so Build also
// copes with documents kin-openapi would flag. Build is pure and costs a
// full parse: pages should go through a Cache.
func Build(doc []byte, opts Options) (*Reference, error) {
	t, err := load(doc)
	if err != nil {
		return nil, err
	}
	ref, m := convert(t, opts)
	if err := m.prerender(); err != nil {
		return nil, err
	}
	ref.Key = opts.Key
	return ref, nil
}

// AuthFor describes how the gateway wants credentials for an API of the
// given auth mode ("" is AuthKey). Pages of APIs without a document use it
// too.
func AuthFor(mode string) Auth {
	switch mode {
	case AuthNone:
		return Auth{Mode: AuthNone, Summary: "This API is open: calls need no credentials."}
	case AuthJWT:
		return Auth{Mode: AuthJWT, Header: "Authorization", Prefix: "Bearer ", Placeholder: "YOUR_TOKEN",
			Summary: "Send a JSON Web Token from the API provider's identity provider in the Authorization header: Authorization: Bearer <token>."}
	default:
		return Auth{Mode: AuthKey, Header: "X-API-Key", Placeholder: "YOUR_API_KEY",
			Summary: "Send your API key in the X-API-Key header (Authorization: Bearer <key> works too). Keep it secret: it identifies your app and counts against your plan."}
	}
}

// methodOrder ranks methods the way people read an API: read, create,
// replace, update, delete.
var methodOrder = []string{
	http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
	http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodConnect,
}

func methodRank(m string) int {
	if i := slices.Index(methodOrder, strings.ToUpper(m)); i >= 0 {
		return i
	}
	return len(methodOrder)
}

// sortedMethods orders method names by methodRank, then by name.
func sortedMethods(methods iter.Seq[string]) []string {
	return slices.SortedFunc(methods, func(a, b string) int {
		return cmp.Or(cmp.Compare(methodRank(a), methodRank(b)), strings.Compare(a, b))
	})
}

// converter carries the state of one Build.
type converter struct {
	opts Options
	base string
	auth Auth
	ids  map[string]int // anchor ids handed out
	m    *memo
}

func convert(t *openapi3.T, opts Options) (*Reference, *memo) {
	c := &converter{opts: opts, base: strings.TrimSuffix(opts.BaseURL, "/"), auth: AuthFor(opts.Auth), ids: map[string]int{}, m: newMemo()}
	ref := &Reference{BaseURL: c.base, Auth: c.auth}
	if t.Info != nil {
		ref.Info = Info{Title: t.Info.Title, Version: t.Info.Version, Description: parseText(t.Info.Description)}
	}
	if ref.Info.Title == "" {
		ref.Info.Title = "API reference"
	}
	ref.Schemes = schemes(t)

	// Tags: the declared ones in document order, then those only
	// operations name, in the order operations are listed.
	tags := map[string]*Tag{}
	var order []*Tag
	addTag := func(name, desc string) *Tag {
		if tg, ok := tags[name]; ok {
			return tg
		}
		tg := &Tag{Name: name, Description: parseText(desc), ID: c.anchor("tag-" + slug(name))}
		tags[name] = tg
		order = append(order, tg)
		return tg
	}
	for _, tg := range t.Tags {
		if tg != nil && tg.Name != "" {
			addTag(tg.Name, tg.Description)
		}
	}
	var other *Tag
	if t.Paths != nil {
		paths := t.Paths.Keys()
		slices.Sort(paths)
		for _, path := range paths {
			item := t.Paths.Value(path)
			if item == nil {
				continue
			}
			ops := item.Operations()
			for _, m := range sortedMethods(maps.Keys(ops)) {
				op := c.operation(strings.ToUpper(m), path, item, ops[m])
				var tg *Tag
				if name := firstTag(ops[m].Tags); name != "" {
					tg = addTag(name, "")
				} else {
					if other == nil {
						other = &Tag{Name: OtherTag}
					}
					tg = other
				}
				tg.Operations = append(tg.Operations, op)
				ref.Operations++
			}
		}
	}
	if other != nil {
		if tg, clash := tags[OtherTag]; clash {
			tg.Operations = append(tg.Operations, other.Operations...)
		} else {
			other.ID = c.anchor("tag-other")
			order = append(order, other)
		}
	}
	for _, tg := range order {
		if len(tg.Operations) > 0 {
			ref.Tags = append(ref.Tags, tg)
		}
	}
	return ref, c.m
}

func firstTag(tags []string) string {
	for _, t := range tags {
		if t = strings.TrimSpace(t); t != "" {
			return t
		}
	}
	return ""
}

// anchor hands out a page-unique id based on want.
func (c *converter) anchor(want string) string {
	n := c.ids[want]
	c.ids[want] = n + 1
	if n == 0 {
		return want
	}
	id := want + "-" + strconv.Itoa(n+1)
	if _, taken := c.ids[id]; taken {
		return c.anchor(id)
	}
	c.ids[id] = 1
	return id
}

// slug keeps ASCII letters and digits, lower-cased, and turns every other
// run into one "-". It never produces "--", which the views use to derive
// ids from an operation's id.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for i := 0; i < len(s) && b.Len() < 80; i++ {
		switch ch := s[i]; {
		case ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9':
			b.WriteByte(ch)
			dash = false
		case ch >= 'A' && ch <= 'Z':
			b.WriteByte(ch + 'a' - 'A')
			dash = false
		default:
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
				dash = true
			}
		}
	}
	out := strings.TrimSuffix(b.String(), "-")
	if out == "" {
		return "x"
	}
	return out
}

func (c *converter) operation(method, path string, item *openapi3.PathItem, o *openapi3.Operation) *Operation {
	op := &Operation{
		OperationID: o.OperationID,
		Method:      method,
		Path:        path,
		Summary:     strings.TrimSpace(o.Summary),
		Description: parseText(o.Description),
		Deprecated:  o.Deprecated,
	}
	if op.Summary == "" && item.Summary != "" {
		op.Summary = strings.TrimSpace(item.Summary)
	}
	if len(op.Description) == 0 {
		op.Description = parseText(item.Description)
	}
	if o.OperationID != "" {
		op.ID = c.anchor("op-" + slug(o.OperationID))
	} else {
		op.ID = c.anchor("op-" + slug(method+" "+path))
	}
	op.Params = c.m.params(item.Parameters, o.Parameters)
	if o.RequestBody != nil && o.RequestBody.Value != nil {
		rb := o.RequestBody.Value
		op.Body = &Body{Description: parseText(rb.Description), Required: rb.Required, Media: c.m.media(rb.Content, toServer)}
		if len(op.Body.Media) == 0 {
			op.Body = nil
		}
	}
	op.Responses = c.m.responses(o.Responses)
	if op.Body != nil {
		m := op.Body.Media[0] // media puts JSON first
		op.TryContentType = m.Type
		if len(m.Examples) > 0 {
			op.TryBody = m.Examples[0].Value
		}
	}
	op.Snippets = snippets(c.call(op))
	return op
}

// params merges path-level and operation-level parameters; an operation's
// parameter replaces a path-level one of the same name and location.
func (m *memo) params(pathLevel, opLevel openapi3.Parameters) []Param {
	var out []Param
	add := func(p *openapi3.Parameter) {
		pr := m.param(p)
		for i := range out {
			if out[i].Name == pr.Name && out[i].In == pr.In {
				out[i] = pr
				return
			}
		}
		out = append(out, pr)
	}
	for _, list := range []openapi3.Parameters{pathLevel, opLevel} {
		for _, p := range list {
			if p != nil && p.Value != nil && p.Value.Name != "" {
				add(p.Value)
			}
		}
	}
	return out
}

func (m *memo) param(p *openapi3.Parameter) Param {
	if pr, ok := m.paramOf[p]; ok {
		return pr
	}
	pr := m.param1(p)
	m.paramOf[p] = pr
	return pr
}

func (m *memo) param1(p *openapi3.Parameter) Param {
	pr := Param{Name: p.Name, In: p.In, Required: p.Required || p.In == openapi3.ParameterInPath,
		Deprecated: p.Deprecated, Description: parseText(p.Description), Type: "string"}
	schema := p.Schema
	if schema == nil {
		for _, mt := range p.Content {
			if mt != nil && mt.Schema != nil {
				schema = mt.Schema
				break
			}
		}
	}
	if schema != nil && schema.Value != nil {
		f := m.of(schema.Value)
		s := f.flat
		pr.Type = f.typ
		pr.Enum = enumValues(s.Enum)
		if len(pr.Enum) == 0 && s.Items != nil && s.Items.Value != nil {
			pr.Enum = enumValues(s.Items.Value.Enum)
		}
		if s.Default != nil {
			pr.Default = scalarText(s.Default)
		}
		switch {
		case p.Example != nil:
		case s.Example != nil:
			pr.Example = scalarText(s.Example)
		case len(s.Examples) > 0:
			pr.Example = scalarText(s.Examples[0])
		}
	}
	if p.Example != nil {
		pr.Example = scalarText(p.Example)
	} else if pr.Example == "" && len(p.Examples) > 0 {
		names := make([]string, 0, len(p.Examples))
		for n, e := range p.Examples {
			if e != nil && e.Value != nil && e.Value.Value != nil {
				names = append(names, n)
			}
		}
		if len(names) > 0 {
			slices.Sort(names)
			pr.Example = scalarText(p.Examples[names[0]].Value.Value)
		}
	}
	return pr
}

// media lists a content map's media types, JSON ones first.
func (m *memo) media(content openapi3.Content, dir direction) []Media {
	if len(content) == 0 {
		return nil
	}
	types := make([]string, 0, len(content))
	for t, mt := range content {
		if mt != nil {
			types = append(types, t)
		}
	}
	slices.SortFunc(types, func(a, b string) int {
		ra, rb := mediaRank(a), mediaRank(b)
		return cmp.Or(cmp.Compare(ra, rb), strings.Compare(a, b))
	})
	out := make([]Media, 0, len(types))
	for _, t := range types {
		mt := content[t]
		out = append(out, Media{Type: t, Schema: m.tree(mt.Schema, dir), Examples: m.mediaExamples(mt, t, dir)})
	}
	return out
}

func mediaRank(t string) int {
	switch {
	case strings.HasPrefix(t, "application/json"):
		return 0
	case isJSON(t):
		return 1
	}
	return 2
}

func (m *memo) responses(rs *openapi3.Responses) []Response {
	if rs == nil || rs.Len() == 0 {
		return nil
	}
	codes := rs.Keys()
	slices.SortFunc(codes, func(a, b string) int { return cmp.Compare(statusRank(a), statusRank(b)) })
	out := make([]Response, 0, len(codes))
	for _, code := range codes {
		r := rs.Value(code)
		if r == nil || r.Value == nil {
			continue
		}
		resp := Response{Status: code, Class: "default", Media: m.media(r.Value.Content, toClient)}
		if code != "default" && len(code) == 3 {
			resp.Class = code[:1] + "xx"
		}
		if r.Value.Description != nil {
			resp.Description = parseText(*r.Value.Description)
		}
		if len(r.Value.Headers) > 0 {
			names := make([]string, 0, len(r.Value.Headers))
			for n := range r.Value.Headers {
				names = append(names, n)
			}
			slices.Sort(names)
			for _, n := range names {
				h := r.Value.Headers[n]
				if h == nil || h.Value == nil {
					continue
				}
				p := m.param(&h.Value.Parameter)
				p.Name, p.In = n, openapi3.ParameterInHeader
				resp.Headers = append(resp.Headers, p)
			}
		}
		out = append(out, resp)
	}
	return out
}

// statusRank orders "200" < "201" < "2XX" < "400" < ... < "default".
func statusRank(code string) int {
	if code == "default" {
		return 1 << 20
	}
	if len(code) == 3 && code[0] >= '1' && code[0] <= '5' {
		if n, err := strconv.Atoi(code); err == nil {
			return n * 2
		}
		return (int(code[0]-'0')*100+99)*2 + 1 // "4XX" after every 4xx code
	}
	return 1 << 19
}

// authHeaders are header parameters the snippets and the console never set
// from the document: the gateway's credential rule sets them.
func authHeader(name string) bool {
	return strings.EqualFold(name, "Authorization") || strings.EqualFold(name, "X-API-Key")
}

// call describes the operation's example request for the snippets.
func (c *converter) call(op *Operation) call {
	cl := call{method: op.Method}
	pathVals := map[string]string{}
	var query [][2]string
	for _, p := range op.Params {
		v := cmp.Or(p.Example, p.Default)
		if v == "" && len(p.Enum) > 0 {
			v = p.Enum[0]
		}
		switch p.In {
		case openapi3.ParameterInPath:
			if v != "" {
				pathVals[p.Name] = v
			}
		case openapi3.ParameterInQuery:
			if p.Required || p.Example != "" {
				query = append(query, [2]string{p.Name, cmp.Or(v, "{"+p.Name+"}")})
			}
		}
	}
	cl.url = snippetURL(c.base, op.Path, pathVals, query)
	if c.auth.Header != "" {
		cl.headers = append(cl.headers, [2]string{c.auth.Header, c.auth.Prefix + keyHole})
	}
	for _, p := range op.Params {
		if p.In != openapi3.ParameterInHeader || !p.Required || authHeader(p.Name) ||
			strings.EqualFold(p.Name, "Content-Type") || strings.EqualFold(p.Name, "Cookie") {
			continue
		}
		v := cmp.Or(p.Example, p.Default)
		if v == "" && len(p.Enum) > 0 {
			v = p.Enum[0]
		}
		cl.headers = append(cl.headers, [2]string{p.Name, cmp.Or(v, "{"+p.Name+"}")})
	}
	if op.Body != nil && op.TryBody != "" {
		cl.headers = append(cl.headers, [2]string{"Content-Type", op.TryContentType})
		cl.body = op.TryBody
		if isJSON(op.TryContentType) {
			var v any
			if json.Unmarshal([]byte(op.TryBody), &v) == nil {
				cl.json, cl.jsonVal = true, v
			}
		}
	}
	for _, r := range op.Responses {
		if r.Class == "2xx" {
			for _, m := range r.Media {
				if isJSON(m.Type) {
					cl.jsonOut = true
				}
			}
			break
		}
	}
	return cl
}

// schemes lists the document's security schemes by name.
func schemes(t *openapi3.T) []Scheme {
	if t.Components == nil || len(t.Components.SecuritySchemes) == 0 {
		return nil
	}
	names := make([]string, 0, len(t.Components.SecuritySchemes))
	for n := range t.Components.SecuritySchemes {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]Scheme, 0, len(names))
	for _, n := range names {
		ss := t.Components.SecuritySchemes[n]
		if ss == nil || ss.Value == nil {
			continue
		}
		v := ss.Value
		s := Scheme{Name: n, Type: v.Type, Description: parseText(v.Description)}
		switch v.Type {
		case "apiKey":
			s.Detail = "API key in the " + v.In + " " + v.Name
		case "http":
			s.Detail = "HTTP " + v.Scheme
			if v.BearerFormat != "" {
				s.Detail += " (" + v.BearerFormat + ")"
			}
		case "oauth2":
			var flows []string
			if f := v.Flows; f != nil {
				if f.AuthorizationCode != nil {
					flows = append(flows, "authorization code")
				}
				if f.ClientCredentials != nil {
					flows = append(flows, "client credentials")
				}
				if f.Implicit != nil {
					flows = append(flows, "implicit")
				}
				if f.Password != nil {
					flows = append(flows, "password")
				}
			}
			s.Detail = "OAuth 2"
			if len(flows) > 0 {
				s.Detail += ": " + strings.Join(flows, ", ")
			}
		case "openIdConnect":
			s.Detail = "OpenID Connect: " + v.OpenIdConnectUrl
		default:
			s.Detail = v.Type
		}
		out = append(out, s)
	}
	return out
}
