package docs

import (
	"context"
	"io"
	"strconv"
	"strings"

	"github.com/a-h/templ"
)

// TryItConfig configures the try-it console of ReferenceView.
type TryItConfig struct {
	// Enabled shows a console on every operation. Off, the page shows no
	// forms at all.
	Enabled bool
	// RelayURL is where tryit.js POSTs the request as JSON (the portal's
	// mount of tryit.Relay for this API, e.g. "/apis/{id}/try").
	RelayURL string
	// CSRFToken is sent as the X-CSRF-Token header of every relay call.
	CSRFToken string
	// Key prefills the credential field ("" leaves it empty).
	Key string
	// KeyHint is shown under the credential field, e.g. where to get a key.
	KeyHint string
}

// safeRelay admits relay URLs on the portal ("/apis/1/try") or absolute
// http(s) ones; anything else (javascript:) leaves the console off.
func safeRelay(u string) bool {
	return strings.HasPrefix(u, "/") && !strings.HasPrefix(u, "//") ||
		strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://")
}

// Ids derived from an operation's id use "--", which slug never produces,
// so they cannot clash with another operation's or tag's id.
func subID(id, part string) string { return id + "--" + part }

// methodKey picks a method badge's colour (data-m in docs.css).
func methodKey(m string) string {
	switch m {
	case "GET":
		return "get"
	case "POST":
		return "post"
	case "PUT":
		return "put"
	case "PATCH":
		return "patch"
	case "DELETE":
		return "delete"
	}
	return "other"
}

// textEscaper escapes text for HTML element content, where only & and <
// (and > by habit) are special. Code and JSON keep their quotes readable
// and the page smaller than with templ's attribute-safe escaping.
var textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// codeText writes s as escaped element content (never inside an attribute).
func codeText(s string) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		_, err := textEscaper.WriteString(w, s)
		return err
	})
}

// schemaTree renders a schema tree: the HTML Build rendered once for a
// shared tree, or the tree itself.
func schemaTree(n *SchemaNode) templ.Component {
	if n.html != "" {
		return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
			_, err := io.WriteString(w, n.html)
			return err
		})
	}
	return schemaView(n)
}

// shortMethod keeps the table of contents' badges narrow.
func shortMethod(m string) string {
	switch m {
	case "DELETE":
		return "DEL"
	case "OPTIONS":
		return "OPT"
	case "PATCH":
		return "PTCH"
	}
	return m
}

func versionLabel(v string) string {
	if v == "" || v[0] == 'v' || v[0] == 'V' {
		return v
	}
	return "v" + v
}

func itoa(n int) string { return strconv.Itoa(n) }

// shownKey is the credential as the page shows it.
func (r *Reference) shownKey() string {
	if r.Key != "" {
		return r.Key
	}
	return r.Auth.Placeholder
}

// nodeName names a schema node on its row: its property name, else its
// component name or type (alternatives of a oneOf have no name).
func nodeName(n *SchemaNode) string {
	if n.Name != "" {
		return n.Name
	}
	if n.Ref != "" {
		return n.Ref
	}
	return n.Type
}

// firstOpen is the index of the response shown expanded: the first 2xx.
func firstOpen(rs []Response) int {
	for i, r := range rs {
		if r.Class == "2xx" {
			return i
		}
	}
	return 0
}

// tryParams are the parameters the console asks for: not cookies (the relay
// sends none) and not the credential headers (the key field sets them).
func tryParams(ps []Param) []Param {
	out := make([]Param, 0, len(ps))
	for _, p := range ps {
		if p.In == "cookie" || p.In == "header" && authHeader(p.Name) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// selectable reports whether a parameter's enum is complete enough for a
// select (enumValues cuts long ones).
func selectable(p Param) bool {
	return len(p.Enum) > 0 && !strings.HasPrefix(p.Enum[len(p.Enum)-1], "… ")
}

func rows(s string) string {
	n := strings.Count(s, "\n") + 2
	return itoa(min(max(n, 4), 18))
}

func keyLabel(a Auth) string {
	if a.Mode == AuthJWT {
		return "Token"
	}
	return "API key"
}
