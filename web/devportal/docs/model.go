package docs

import "strings"

// Auth modes of an API, as the gateway enforces them (proxycfg.AuthKey,
// AuthJWT, AuthNone).
const (
	AuthKey  = "key"
	AuthJWT  = "jwt"
	AuthNone = "none"
)

// Options say where and how the API is called. They are the portal's facts,
// not the document's: the gateway URL replaces the document's servers.
type Options struct {
	// BaseURL is the API's gateway base URL, base path included
	// ("http://acme.localhost:8000/pets"). Operation paths are appended to
	// it. Empty leaves relative URLs in the snippets.
	BaseURL string
	// Auth is the API's auth mode: AuthKey, AuthJWT or AuthNone. Empty
	// means AuthKey.
	Auth string
	// Key is the developer's credential filled into the snippets. Empty
	// shows a placeholder (Auth.Placeholder) instead. Changing only the key
	// is cheap: see Reference.WithKey.
	Key string
}

// Reference is the page model of one API's reference documentation. It is
// immutable once built and shared between requests through a Cache; only
// Key differs per developer (WithKey).
type Reference struct {
	// Info is the document's title, version and description.
	Info Info
	// BaseURL is the gateway base URL every operation path is relative to.
	BaseURL string
	// Auth says how the gateway wants the credential.
	Auth Auth
	// Schemes are the security schemes the document declares, for reference;
	// the gateway's own rule is Auth.
	Schemes []Scheme
	// Tags group the operations: the document's tags in document order, then
	// tags only operations name, then "Other" for untagged operations.
	Tags []*Tag
	// Operations counts the operations over all tags.
	Operations int
	// Key is the developer's credential shown in snippets; empty shows
	// Auth.Placeholder.
	Key string
}

// WithKey returns a copy of r whose snippets carry key. It copies only the
// top-level struct, so it is cheap; the tags and operations are shared.
func (r *Reference) WithKey(key string) *Reference {
	c := *r
	c.Key = key
	return &c
}

// Info is the document's info object.
type Info struct {
	Title       string
	Version     string
	Description Text
}

// Auth is how the gateway authenticates calls to the API.
type Auth struct {
	// Mode is AuthKey, AuthJWT or AuthNone.
	Mode string
	// Header is the request header that carries the credential
	// ("X-API-Key" or "Authorization"); empty for AuthNone.
	Header string
	// Prefix precedes the credential in Header ("Bearer " for JWTs).
	Prefix string
	// Placeholder stands for the credential in snippets when the developer's
	// key is not known ("YOUR_API_KEY").
	Placeholder string
	// Summary explains the rule in one sentence for the page.
	Summary string
}

// Scheme is a security scheme the document declares.
type Scheme struct {
	Name        string
	Type        string // "apiKey", "http", "oauth2", "openIdConnect", "mutualTLS"
	Detail      string // "header X-API-Key", "bearer (JWT)", ...
	Description Text
}

// Tag is a group of operations.
type Tag struct {
	// ID is the tag's anchor id on the page ("tag-pets").
	ID          string
	Name        string
	Description Text
	Operations  []*Operation
}

// Operation is one method and path of the API.
type Operation struct {
	// ID is the operation's anchor id, unique on the page and stable across
	// renders of the same document: from the operationId when there is one,
	// else from the method and path ("op-listpets", "op-get-pets-petid").
	ID string
	// OperationID is the document's operationId ("" when absent).
	OperationID string
	// Method is the upper-case HTTP method.
	Method string
	// Path is the path template relative to the base URL ("/pets/{petId}").
	Path        string
	Summary     string
	Description Text
	Deprecated  bool
	// Params are the path, query, header and cookie parameters, path-level
	// ones merged in, in document order.
	Params []Param
	// Body is the request body, nil when the operation takes none.
	Body *Body
	// Responses are ordered by status code, "default" last.
	Responses []Response
	// Snippets are curl, JavaScript, Python and Go; render them with
	// Reference.Code so they carry the developer's key.
	Snippets []Snippet
	// TryBody prefills the try-it body: the request example, or "".
	TryBody string
	// TryContentType is the media type the try-it console sends TryBody as.
	TryContentType string
}

// Title is how the operation is named in lists: its summary, else its
// method and path.
func (o *Operation) Title() string {
	if o.Summary != "" {
		return o.Summary
	}
	return o.Method + " " + o.Path
}

// Param is an operation parameter.
type Param struct {
	Name string
	// In is "path", "query", "header" or "cookie".
	In          string
	Required    bool
	Deprecated  bool
	Type        string // "integer (int64)", "array of string", ...
	Description Text
	Enum        []string
	Default     string
	// Example is the document's example value (never synthesized), "" if none.
	Example string
}

// Body is an operation's request body.
type Body struct {
	Description Text
	Required    bool
	Media       []Media
}

// Response is one documented response.
type Response struct {
	// Status is the status code or range ("200", "4XX") or "default".
	Status string
	// Class is "2xx", "3xx", "4xx", "5xx" or "default", for styling.
	Class       string
	Description Text
	Headers     []Param
	Media       []Media
}

// Media is a body in one media type.
type Media struct {
	// Type is the media type ("application/json").
	Type string
	// Schema is the body's schema as a tree; nil without a schema.
	Schema *SchemaNode
	// Examples are the document's examples, or one synthesized from the
	// schema when it has none.
	Examples []Example
}

// Example is a rendered example value.
type Example struct {
	// Name is the example's key in an examples map ("" for a single example).
	Name    string
	Summary string
	// Value is the example as text: pretty-printed JSON for JSON media
	// types, else the value itself.
	Value string
	// Synthesized is true when the document had no example and this one was
	// made up from the schema.
	Synthesized bool
}

// SchemaNode is a schema rendered as a readable tree: an object's
// properties, an array's item properties or a composition's alternatives are
// its Children. Trees are cut at a depth and size limit and where a schema
// refers back to itself.
type SchemaNode struct {
	// Name is the property name; "" for a root or an alternative.
	Name string
	// Type reads like "string (date-time)", "array of Pet", "object".
	Type string
	// Ref is the component name the schema came from ("Pet"), "" if inline.
	Ref         string
	Required    bool
	Nullable    bool
	ReadOnly    bool
	WriteOnly   bool
	Deprecated  bool
	Description Text
	Enum        []string
	Default     string
	Example     string
	// Constraints are limits in words: "≥ 1", "max length 64", "pattern ^[a-z]+$".
	Constraints []string
	// Variant, when set ("one of", "any of"), says Children are alternatives
	// rather than properties.
	Variant  string
	Children []*SchemaNode
	// Recursive marks where the schema refers back to an enclosing one; its
	// children are not repeated.
	Recursive bool
	// Elided marks where the depth or size limit cut the tree.
	Elided bool

	// html is the tree rendered by Build (trees are shared between
	// operations; rendering each once keeps page views fast).
	html string
}

// Expandable reports whether the node has anything to show below its row.
func (n *SchemaNode) Expandable() bool { return len(n.Children) > 0 }

// Text is plain text from the document split into blocks. The document's
// Markdown is not interpreted beyond paragraphs, lists and fenced code, and
// any HTML in it is shown as text.
type Text []Block

// Block is a paragraph, a list or a code block.
type Block struct {
	Kind  BlockKind
	Text  string   // paragraph or code
	Items []string // list items
}

// BlockKind is the kind of a Block.
type BlockKind uint8

// Block kinds.
const (
	Paragraph BlockKind = iota
	List
	Code
)

// FirstSentence returns the first paragraph of t, cut at max runes, for
// one-line summaries.
func (t Text) FirstSentence(max int) string {
	for _, b := range t {
		if b.Kind == Paragraph {
			return clip(b.Text, max)
		}
	}
	return ""
}

func clip(s string, max int) string {
	if max <= 0 || len(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max {
			return strings.TrimRight(s[:i], " ") + "…"
		}
		n++
	}
	return s
}
