package mgmtapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/services/fault"
)

// The OpenAPI 3.0 document of /v1, generated from the route table: every
// route's method, path, auth and documentation (api.go, devportal.go,
// limits.go, and externalRoutes for billing's routes), and the schemas of
// its request and response types and query parameters (model_*.go), by
// reflection over their JSON (or query) tags and the doc, format, enum,
// min, max, default, pattern, maxLength, minItems, required and type struct
// tags. testdata/openapi.json pins the result (go test -run OpenAPI
// -update rewrites it), so that a change of the document is a reviewed
// diff.

type obj = map[string]any

// OpenAPIDocument is the answer of GET /v1/openapi.json: this document.
type OpenAPIDocument map[string]any

func (OpenAPIDocument) schemaDoc() string { return "An OpenAPI 3.0 document." }

func (OpenAPIDocument) openAPISchema(*schemaGen) obj { return obj{"type": "object"} }

// tagDocs are the document's tags, in order, with their descriptions.
var tagDocs = []struct{ name, desc string }{
	{tagMeta, "The API itself."},
	{tagTenants, "Tenants: companies that put their APIs behind Tollgate. Creating one takes the operator token."},
	{tagAdminTokens, "The bearer tokens of a tenant's admins: the token alone decides the tenant."},
	{tagUpstreams, "Pools of backend targets, balanced and health-checked."},
	{tagAPIs, "A tenant's HTTP APIs: where they are served, which upstream serves them, how callers authenticate, and their routes."},
	{tagPlans, "Limits, quotas and prices that keys are issued under."},
	{tagConsumers, "The developers and applications that hold keys."},
	{tagKeys, "API keys: issued once, stored as digests, revoked at once."},
	{tagUsage, "What the proxy workers served, from per-minute rollups."},
	{tagAudit, "Who changed what, and when."},
	{tagPortal, "The tenant's developer portal: its settings, developers, apps and subscriptions."},
	{tagBilling, "The tenant's Stripe connection (served by the billing module)."},
	{tagLimits, "The operator's per-tenant limits."},
	{tagConfig, "What the proxy workers serve of the tenant's configuration."},
}

// problemResponses are the problem answers operations refer to, by status.
var problemResponses = map[int]struct{ name, desc string }{
	http.StatusBadRequest:            {"BadRequest", "Malformed request: bad JSON, an unknown field, a wrong type or a bad query parameter"},
	http.StatusUnauthorized:          {"Unauthenticated", "Missing or bad token"},
	http.StatusNotFound:              {"NotFound", "No such object (another tenant's objects are not found either)"},
	http.StatusConflict:              {"Conflict", "A clash with another object, a state that does not allow it, a limit exceeded (type limit-exceeded), or a request with the same Idempotency-Key still running (type idempotency-key-in-use, with Retry-After)"},
	http.StatusPreconditionFailed:    {"PreconditionFailed", "If-Match names none of the object's current ETags (type precondition-failed): it changed since it was read; nothing was changed"},
	http.StatusRequestEntityTooLarge: {"TooLarge", "The body is too large"},
	http.StatusUnprocessableEntity:   {"Validation", "Validation failed (type validation: every refused field is listed in errors), or the Idempotency-Key was used with another request (type idempotency-key-reused)"},
	http.StatusInternalServerError:   {"Internal", "The request failed; it has been logged"},
	http.StatusServiceUnavailable:    {"Unavailable", "The service is temporarily unavailable; retry after Retry-After seconds"},
}

// buildOpenAPI generates the document of routes.
func buildOpenAPI(routes []route) (obj, error) {
	g := newSchemaGen(routes)
	paths := obj{}
	used := map[int]bool{}
	for _, rt := range routes {
		item, _ := paths[rt.path].(obj)
		if item == nil {
			item = obj{}
			paths[rt.path] = item
		}
		op, err := g.operation(rt, used)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", rt.method, rt.path, err)
		}
		item[strings.ToLower(rt.method)] = op
	}
	responses := obj{}
	for status := range used {
		pr := problemResponses[status]
		r := obj{"description": pr.desc,
			"content": obj{"application/problem+json": obj{"schema": g.ref(typeOf[Problem]())}}}
		switch status {
		case http.StatusUnauthorized:
			r["headers"] = obj{"WWW-Authenticate": obj{"description": `Bearer realm="tollgate"`, "schema": obj{"type": "string"}}}
		case http.StatusServiceUnavailable:
			r["headers"] = obj{"Retry-After": obj{"description": "seconds to wait", "schema": obj{"type": "integer"}}}
		}
		responses[pr.name] = r
	}
	tags := make([]any, 0, len(tagDocs))
	for _, t := range tagDocs {
		tags = append(tags, obj{"name": t.name, "description": t.desc})
	}
	if err := g.err(); err != nil {
		return nil, err
	}
	return obj{
		"openapi": "3.0.3",
		"info": obj{
			"title":   "Tollgate management API",
			"version": "1",
			"description": "Manage a tenant's upstreams, APIs, plans, consumers and keys, its developer portal and its usage. " +
				"Every tenant-scoped call takes `Authorization: Bearer <tenant admin token>`: the token alone decides the tenant, " +
				"and another tenant's objects answer 404. Lists are paginated with limit and cursor. " +
				"Errors are RFC 9457 problem details (application/problem+json) with a stable type.",
			"contact": obj{"name": "Tollgate", "url": "https://tollgate.dev"},
		},
		"servers":  []any{obj{"url": "/"}},
		"security": []any{obj{"bearer": []any{}}},
		"tags":     tags,
		"paths":    paths,
		"components": obj{
			"securitySchemes": obj{
				"bearer":   obj{"type": "http", "scheme": "bearer", "description": "a tenant admin token"},
				"operator": obj{"type": "http", "scheme": "bearer", "description": "the operator token (TOLLGATE_OPERATOR_TOKEN)"},
			},
			"schemas":   g.schemas,
			"responses": responses,
		},
	}, nil
}

var pathParamRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// operation documents one route; used collects the problem statuses it
// refers to.
func (g *schemaGen) operation(rt route, used map[int]bool) (obj, error) {
	d := rt.doc
	if d.id == "" || d.tag == "" || d.summary == "" || d.desc == "" {
		return nil, fmt.Errorf("operation id, tag, summary and description are required")
	}
	op := obj{"operationId": d.id, "tags": []any{d.tag}, "summary": d.summary, "description": d.desc}
	switch rt.auth {
	case authOperator:
		op["security"] = []any{obj{"operator": []any{}}}
	case authNone:
		op["security"] = []any{}
	}
	var params []any
	for _, m := range pathParamRE.FindAllStringSubmatch(rt.path, -1) {
		params = append(params, obj{"name": m[1], "in": "path", "required": true,
			"description": pathParamDoc(rt.path), "schema": obj{"type": "string", "format": "uuid"}})
	}
	if rt.query != nil {
		params = append(params, g.queryParams(rt.query)...)
	}
	idempotent := rt.method == http.MethodPost && !rt.external
	if idempotent {
		params = append(params, obj{"name": idempotencyHeader, "in": "header", "required": false,
			"description": "a key of the caller's choosing (a UUID, say) that makes a retry of this request return the first answer (Idempotent-Replayed: true) instead of acting again; kept 24 hours per tenant (per operator for POST /v1/tenants). A secret of the first answer (a key, a token) is null in a replay. Reusing a key with another request answers 422 idempotency-key-reused; while the first request runs, 409 idempotency-key-in-use.",
			"schema":      obj{"type": "string", "minLength": 1, "maxLength": maxIdempotencyKey}})
	}
	if rt.ifMatch {
		params = append(params, obj{"name": "If-Match", "in": "header", "required": false,
			"description": "ETags of the object (from a GET, PUT or PATCH answer), or *: the change is made only if the object still has one of them, else 412 precondition-failed",
			"schema":      obj{"type": "string"}})
	}
	if len(params) > 0 {
		op["parameters"] = params
	}

	problems := map[int]bool{http.StatusInternalServerError: true, http.StatusServiceUnavailable: true}
	if rt.auth != authNone {
		problems[http.StatusUnauthorized] = true
	}
	if len(pathParamRE.FindAllString(rt.path, -1)) > 0 {
		problems[http.StatusNotFound] = true
	}
	if rt.query != nil {
		problems[http.StatusBadRequest] = true
	}
	switch {
	case rt.inDocument:
		op["requestBody"] = obj{"required": true, "description": "an OpenAPI 3 document, JSON or YAML",
			"content": obj{"application/json": obj{"schema": obj{"type": "object"}},
				"application/yaml": obj{"schema": obj{"type": "string"}}}}
		problems[http.StatusBadRequest], problems[http.StatusRequestEntityTooLarge], problems[http.StatusUnprocessableEntity] = true, true, true
	case rt.in != nil:
		op["requestBody"] = obj{"required": !rt.inOptional,
			"content": obj{"application/json": obj{"schema": g.ref(rt.in)}}}
		problems[http.StatusBadRequest] = true
		if !rt.inOptional {
			problems[http.StatusRequestEntityTooLarge], problems[http.StatusUnprocessableEntity] = true, true
		}
	}
	if idempotent {
		problems[http.StatusConflict], problems[http.StatusUnprocessableEntity] = true, true
	}
	if rt.ifMatch {
		problems[http.StatusPreconditionFailed] = true
	}
	for _, s := range d.problems {
		if _, ok := problemResponses[s]; !ok {
			return nil, fmt.Errorf("no problem response for status %d", s)
		}
		problems[s] = true
	}

	responses := obj{}
	ok := obj{"description": http.StatusText(rt.status)}
	if rt.out != nil {
		ok["content"] = obj{"application/json": obj{"schema": g.ref(rt.out)}}
	}
	switch {
	case rt.external:
	case rt.status == http.StatusOK && rt.method != http.MethodPost && rt.method != http.MethodDelete:
		ok["headers"] = obj{"ETag": obj{"description": "strong validator of this answer; send it in If-Match to change the object only if it has not changed since",
			"schema": obj{"type": "string"}}}
	case idempotent:
		ok["headers"] = obj{replayedHeader: obj{"description": "true: this answer is a replay of the first answer under the request's Idempotency-Key (its secrets null)",
			"schema": obj{"type": "string", "enum": []any{"true"}}}}
	}
	responses[strconv.Itoa(rt.status)] = ok
	for s := range problems {
		used[s] = true
		responses[strconv.Itoa(s)] = obj{"$ref": "#/components/responses/" + problemResponses[s].name}
	}
	op["responses"] = responses
	return op, nil
}

// pathParamDoc describes the {id} of path: the object of the segment before
// it.
func pathParamDoc(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if s == "{id}" && i > 0 {
			noun := strings.TrimSuffix(strings.ReplaceAll(segs[i-1], "-", " "), "s")
			if noun == "api" {
				noun = "API"
			}
			return "the " + noun + "'s id"
		}
	}
	return "the object's id"
}

// queryParams documents the query-tagged fields of the struct t.
func (g *schemaGen) queryParams(t reflect.Type) []any {
	var out []any
	for _, f := range structFields(t, "query") {
		s := g.schema(f.typ, f.tag)
		desc, _ := s["description"].(string)
		delete(s, "description")
		p := obj{"name": f.name, "in": "query", "schema": s}
		if desc == "" {
			desc = f.name
		}
		p["description"] = desc
		out = append(out, p)
	}
	return out
}

// schemaGen turns the /v1 model's Go types into OpenAPI 3.0 schemas: a named
// struct (or map) type of the model becomes a component schema.
type schemaGen struct {
	schemas obj
	names   map[reflect.Type]string
	// inRequest are the types a request body reaches: their fields are
	// required only when tagged required:"true" (a default fills the rest,
	// and PATCH bodies name any of them); the fields of the other (answer
	// only) types are required unless omitempty, since they are always
	// present.
	inRequest map[reflect.Type]bool
	errs      []error
}

func newSchemaGen(routes []route) *schemaGen {
	g := &schemaGen{schemas: obj{}, names: map[reflect.Type]string{}, inRequest: map[reflect.Type]bool{}}
	for _, rt := range routes {
		if rt.in != nil {
			g.markRequest(rt.in)
		}
	}
	return g
}

func (g *schemaGen) err() error {
	if len(g.errs) > 0 {
		return fmt.Errorf("openapi: %v", g.errs)
	}
	return nil
}

func (g *schemaGen) markRequest(t reflect.Type) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || g.inRequest[t] {
		return
	}
	g.inRequest[t] = true
	for _, f := range structFields(t, "json") {
		g.markRequest(f.typ)
	}
}

// Interfaces a model type may implement.
type (
	// schemaDocer describes a type (the component's description).
	schemaDocer interface{ schemaDoc() string }
	// schemaProvider writes its own schema (a type reflection cannot
	// describe, such as a map with known keys).
	schemaProvider interface{ openAPISchema(*schemaGen) obj }
)

// foreignDocs describe the types of other packages that the model uses.
var foreignDocs = map[reflect.Type]string{
	typeOf[fault.FieldError](): "One refused field and why.",
}

var (
	timeType = typeOf[time.Time]()
	rawType  = typeOf[json.RawMessage]()
)

// ref is the schema of a body of type t: a reference to its component.
func (g *schemaGen) ref(t reflect.Type) obj { return g.schema(t, "") }

// schema is the schema of a value of type t in a field with tag.
func (g *schemaGen) schema(t reflect.Type, tag reflect.StructTag) obj {
	nullable := false
	for t.Kind() == reflect.Pointer {
		t, nullable = t.Elem(), true
	}
	var s obj
	switch {
	case t == timeType:
		s = obj{"type": "string", "format": "date-time"}
	case t == rawType:
		s = obj{}
	case g.component(t):
		s = obj{"$ref": "#/components/schemas/" + g.names[t]}
	case t.Kind() == reflect.Slice:
		items := g.schema(t.Elem(), itemTag(tag))
		s = obj{"type": "array", "items": items}
	case t.Kind() == reflect.Map:
		s = obj{"type": "object", "additionalProperties": g.schema(t.Elem(), "")}
	case t.Kind() == reflect.Struct:
		s = g.structSchema(t)
	case t.Kind() == reflect.String:
		s = obj{"type": "string"}
	case t.Kind() == reflect.Bool:
		s = obj{"type": "boolean"}
	case t.Kind() == reflect.Int64:
		s = obj{"type": "integer", "format": "int64"}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		s = obj{"type": "integer"}
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		s = obj{"type": "number"}
	default:
		g.errs = append(g.errs, fmt.Errorf("no schema for %s", t))
		s = obj{}
	}
	if t.Kind() != reflect.Slice {
		applyTags(s, tag)
	} else if v := tag.Get("doc"); v != "" {
		s["description"] = v
	}
	if v := tag.Get("minItems"); v != "" {
		s["minItems"] = number(v)
	}
	if nullable {
		s["nullable"] = true
	}
	// A $ref takes no siblings in OpenAPI 3.0: wrap it in allOf.
	if ref, ok := s["$ref"]; ok && len(s) > 1 {
		delete(s, "$ref")
		s["allOf"] = []any{obj{"$ref": ref}}
	}
	return s
}

// itemTag keeps the tags of a slice field that describe its items.
func itemTag(tag reflect.StructTag) reflect.StructTag {
	var parts []string
	for _, k := range []string{"format", "enum", "pattern", "maxLength", "min", "max"} {
		if v, ok := tag.Lookup(k); ok {
			parts = append(parts, k+":"+strconv.Quote(v))
		}
	}
	return reflect.StructTag(strings.Join(parts, " "))
}

// applyTags adds the constraints and description of a field's tags to s.
func applyTags(s obj, tag reflect.StructTag) {
	if v := tag.Get("type"); v != "" {
		s["type"] = v
	}
	if v := tag.Get("doc"); v != "" {
		s["description"] = v
	}
	if v := tag.Get("format"); v != "" {
		s["format"] = v
	}
	if v := tag.Get("enum"); v != "" {
		var vals []any
		for _, e := range strings.Split(v, ",") {
			vals = append(vals, e)
		}
		s["enum"] = vals
	}
	if v := tag.Get("pattern"); v != "" {
		s["pattern"] = v
	}
	if v := tag.Get("maxLength"); v != "" {
		s["maxLength"] = number(v)
	}
	if v := tag.Get("min"); v != "" {
		s["minimum"] = number(v)
	}
	if v := tag.Get("max"); v != "" {
		s["maximum"] = number(v)
	}
	if v, ok := tag.Lookup("default"); ok {
		switch s["type"] {
		case "integer", "number":
			s["default"] = number(v)
		case "boolean":
			s["default"] = v == "true"
		default:
			s["default"] = v
		}
	}
}

func number(v string) any {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n
	}
	f, _ := strconv.ParseFloat(v, 64)
	return f
}

// component reports whether t is a named type of the model (a struct, or a
// map or other type with its own schema), generating its component schema
// the first time.
func (g *schemaGen) component(t reflect.Type) bool {
	if _, ok := g.names[t]; ok {
		return true
	}
	if t.Name() == "" {
		return false
	}
	_, provides := reflect.New(t).Elem().Interface().(schemaProvider)
	_, documented := reflect.New(t).Elem().Interface().(schemaDocer)
	if t.Kind() != reflect.Struct && !provides && !documented {
		return false
	}
	name := t.Name()
	if i := strings.IndexByte(name, '['); i >= 0 {
		// A ListPage[T]: named by its items.
		name = g.nameOfItems(t) + "List"
	}
	if other, taken := g.taken(name); taken {
		g.errs = append(g.errs, fmt.Errorf("component %s is both %s and %s", name, other, t))
	}
	g.names[t] = name
	var s obj
	switch {
	case provides:
		s = reflect.New(t).Elem().Interface().(schemaProvider).openAPISchema(g)
	case t.Kind() == reflect.Struct:
		s = g.structSchema(t)
	case t.Kind() == reflect.Map:
		s = obj{"type": "object", "additionalProperties": g.schema(t.Elem(), "")}
	default:
		g.errs = append(g.errs, fmt.Errorf("no schema for %s: give it an openAPISchema method", t))
		s = obj{}
	}
	switch d := reflect.New(t).Elem().Interface().(type) {
	case schemaDocer:
		s["description"] = d.schemaDoc()
	default:
		if doc, ok := foreignDocs[t]; ok {
			s["description"] = doc
		} else if strings.HasPrefix(t.Name(), "ListPage[") {
			s["description"] = "One page of " + name[:len(name)-len("List")] + " items, oldest first."
		} else {
			g.errs = append(g.errs, fmt.Errorf("type %s has no schemaDoc", t))
		}
	}
	g.schemas[name] = s
	return true
}

func (g *schemaGen) taken(name string) (reflect.Type, bool) {
	for t, n := range g.names {
		if n == name {
			return t, true
		}
	}
	return nil, false
}

// nameOfItems names the items of a ListPage type.
func (g *schemaGen) nameOfItems(t reflect.Type) string {
	f, _ := t.FieldByName("Items")
	return f.Type.Elem().Name()
}

// structSchema is the object schema of the struct t's JSON fields.
func (g *schemaGen) structSchema(t reflect.Type) obj {
	props := obj{}
	var required []string
	for _, f := range structFields(t, "json") {
		props[f.name] = g.schema(f.typ, f.tag)
		if f.tag.Get("required") == "true" || (!g.inRequest[t] && !f.omitempty) {
			required = append(required, f.name)
		}
	}
	s := obj{"type": "object", "properties": props}
	if len(required) > 0 {
		slices.Sort(required)
		s["required"] = required
	}
	return s
}

// field is one JSON (or query) field of a struct.
type field struct {
	name      string
	typ       reflect.Type
	tag       reflect.StructTag
	omitempty bool
}

// structFields lists the fields of the struct t as encoding/json sees them
// under the tag key ("json", or "query" for query parameters): embedded
// structs without a name of their own are inlined, "-" and unexported
// fields are left out.
func structFields(t reflect.Type, key string) []field {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get(key), ",")
		if name == "-" {
			continue
		}
		ft := f.Type
		if f.Anonymous && name == "" {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, structFields(ft, key)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			if key == "query" {
				continue
			}
			name = f.Name
		}
		out = append(out, field{name: name, typ: f.Type, tag: f.Tag, omitempty: strings.Contains(","+opts+",", ",omitempty,")})
	}
	return out
}

// generated is the document, generated once.
var generated struct {
	once sync.Once
	doc  []byte
	err  error
}

func openAPIDoc() ([]byte, error) {
	generated.once.Do(func() {
		doc, err := buildOpenAPI((&api{}).documentedRoutes())
		if err == nil {
			generated.doc, err = json.MarshalIndent(doc, "", "  ")
			generated.doc = append(generated.doc, '\n')
		}
		generated.err = err
	})
	return generated.doc, generated.err
}

// OpenAPI returns the OpenAPI 3.0 document of the API as JSON.
func OpenAPI() []byte {
	b, err := openAPIDoc()
	if err != nil {
		// The route table is fixed at build time; the tests generate it.
		panic("mgmtapi: " + err.Error())
	}
	return b
}

func (a *api) openAPIEndpoint() endpoint {
	return endpoint{out: typeOf[OpenAPIDocument](), status: http.StatusOK,
		handle: func(w http.ResponseWriter, _ *http.Request, _ *call) error {
			doc := OpenAPI()
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("ETag", etagOf(doc))
			_, err := w.Write(doc)
			return err
		}}
}
