package docs

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Snippet languages, in the order the page shows them.
const (
	LangCurl   = "curl"
	LangJS     = "javascript"
	LangPython = "python"
	LangGo     = "go"
)

// Snippet is example code that calls one operation. It is built once per
// document with a hole where the credential goes; Reference.Code fills the
// developer's key in (escaped for the language) at render time, so a cached
// Reference serves every developer.
type Snippet struct {
	// Lang is LangCurl, LangJS, LangPython or LangGo.
	Lang string
	// Label names the language on the page ("curl", "JavaScript", ...).
	Label string
	// parts are the code around the credential; len 1 without auth.
	parts []string
}

// Code renders a snippet with the reference's key, or its placeholder when
// the key is not known.
func (r *Reference) Code(s Snippet) string {
	if len(s.parts) == 1 {
		return s.parts[0]
	}
	key := r.Key
	if key == "" {
		key = r.Auth.Placeholder
	} else {
		key = quoteInner(s.Lang, key)
	}
	return strings.Join(s.parts, key)
}

// call is what every snippet of an operation says: method, URL, headers,
// and the body as text.
type call struct {
	method  string
	url     string
	headers [][2]string // in order; the credential header has value keyHole
	body    string
	json    bool // body is JSON (sent with JSON.stringify / json=)
	jsonVal any  // the parsed JSON body, for Python
	jsonOut bool // the response is JSON
}

// keyHole marks where the credential goes while a snippet is built. It
// cannot occur in generated code: every other string passes through
// quoteInner, which escapes control characters.
const keyHole = "\x00KEY\x00"

func snippets(c call) []Snippet {
	return []Snippet{
		{Lang: LangCurl, Label: "curl", parts: strings.Split(curlSnippet(c), keyHole)},
		{Lang: LangJS, Label: "JavaScript", parts: strings.Split(jsSnippet(c), keyHole)},
		{Lang: LangPython, Label: "Python", parts: strings.Split(pythonSnippet(c), keyHole)},
		{Lang: LangGo, Label: "Go", parts: strings.Split(goSnippet(c), keyHole)},
	}
}

// hole quotes v for lang, keeping the credential's hole in it.
func hole(lang, v string) string {
	parts := strings.Split(v, keyHole)
	for i, p := range parts {
		parts[i] = quoteInner(lang, p)
	}
	return strings.Join(parts, keyHole)
}

func curlSnippet(c call) string {
	var b strings.Builder
	b.WriteString("curl")
	if strings.ContainsAny(c.url, "{}[]") {
		b.WriteString(" -g") // placeholders are not curl URL globs
	}
	if c.method != http.MethodGet {
		b.WriteString(" -X " + c.method)
	}
	b.WriteString(" '" + quoteInner(LangCurl, c.url) + "'")
	for _, h := range c.headers {
		b.WriteString(" \\\n  -H '" + quoteInner(LangCurl, h[0]) + ": " + hole(LangCurl, h[1]) + "'")
	}
	if c.body != "" {
		b.WriteString(" \\\n  --data-raw '" + quoteInner(LangCurl, c.body) + "'")
	}
	return b.String()
}

func jsSnippet(c call) string {
	var b strings.Builder
	b.WriteString(`const response = await fetch("` + quoteInner(LangJS, c.url) + "\", {\n")
	b.WriteString(`  method: "` + c.method + "\",\n")
	if len(c.headers) > 0 {
		b.WriteString("  headers: {\n")
		for _, h := range c.headers {
			b.WriteString(`    "` + quoteInner(LangJS, h[0]) + `": "` + hole(LangJS, h[1]) + "\",\n")
		}
		b.WriteString("  },\n")
	}
	if c.body != "" {
		if c.json {
			b.WriteString("  body: JSON.stringify(" + indentTail(c.body, "  ") + "),\n")
		} else {
			b.WriteString(`  body: "` + quoteInner(LangJS, c.body) + "\",\n")
		}
	}
	b.WriteString("});\n")
	if c.jsonOut {
		b.WriteString("const data = await response.json();\n")
	} else {
		b.WriteString("const data = await response.text();\n")
	}
	b.WriteString("console.log(response.status, data);")
	return b.String()
}

var pythonMethods = map[string]string{
	http.MethodGet: "get", http.MethodPost: "post", http.MethodPut: "put", http.MethodPatch: "patch",
	http.MethodDelete: "delete", http.MethodHead: "head", http.MethodOptions: "options",
}

func pythonSnippet(c call) string {
	var b strings.Builder
	b.WriteString("import requests\n\n")
	if fn, ok := pythonMethods[c.method]; ok {
		b.WriteString("response = requests." + fn + "(\n")
	} else {
		b.WriteString("response = requests.request(\n    \"" + c.method + "\",\n")
	}
	b.WriteString(`    "` + quoteInner(LangPython, c.url) + "\",\n")
	if len(c.headers) > 0 {
		b.WriteString("    headers={\n")
		for _, h := range c.headers {
			b.WriteString(`        "` + quoteInner(LangPython, h[0]) + `": "` + hole(LangPython, h[1]) + "\",\n")
		}
		b.WriteString("    },\n")
	}
	if c.body != "" {
		if c.json {
			b.WriteString("    json=" + pythonLiteral(c.jsonVal, "    ") + ",\n")
		} else {
			b.WriteString(`    data="` + quoteInner(LangPython, c.body) + "\",\n")
		}
	}
	b.WriteString("    timeout=30,\n)\n")
	if c.jsonOut {
		b.WriteString("print(response.status_code, response.json())")
	} else {
		b.WriteString("print(response.status_code, response.text)")
	}
	return b.String()
}

var goMethods = map[string]string{
	http.MethodGet: "http.MethodGet", http.MethodPost: "http.MethodPost", http.MethodPut: "http.MethodPut",
	http.MethodPatch: "http.MethodPatch", http.MethodDelete: "http.MethodDelete", http.MethodHead: "http.MethodHead",
	http.MethodOptions: "http.MethodOptions", http.MethodTrace: "http.MethodTrace",
}

func goSnippet(c call) string {
	var b strings.Builder
	b.WriteString("package main\n\nimport (\n\t\"fmt\"\n\t\"io\"\n\t\"net/http\"\n")
	if c.body != "" {
		b.WriteString("\t\"strings\"\n")
	}
	b.WriteString(")\n\nfunc main() {\n")
	body := "nil"
	if c.body != "" {
		if strings.ContainsFunc(c.body, func(r rune) bool { return r == '`' || r < 0x20 && r != '\n' && r != '\t' }) {
			b.WriteString("\tbody := strings.NewReader(\"" + quoteInner(LangGo, c.body) + "\")\n")
		} else {
			b.WriteString("\tbody := strings.NewReader(`" + c.body + "`)\n")
		}
		body = "body"
	}
	method, ok := goMethods[c.method]
	if !ok {
		method = `"` + c.method + `"`
	}
	b.WriteString("\treq, err := http.NewRequest(" + method + ", \"" + quoteInner(LangGo, c.url) + "\", " + body + ")\n")
	b.WriteString("\tif err != nil {\n\t\tpanic(err)\n\t}\n")
	for _, h := range c.headers {
		b.WriteString("\treq.Header.Set(\"" + quoteInner(LangGo, h[0]) + "\", \"" + hole(LangGo, h[1]) + "\")\n")
	}
	b.WriteString("\tresp, err := http.DefaultClient.Do(req)\n\tif err != nil {\n\t\tpanic(err)\n\t}\n")
	b.WriteString("\tdefer resp.Body.Close()\n")
	b.WriteString("\tdata, err := io.ReadAll(resp.Body)\n\tif err != nil {\n\t\tpanic(err)\n\t}\n")
	b.WriteString("\tfmt.Println(resp.Status)\n\tfmt.Println(string(data))\n}")
	return b.String()
}

// quoteInner escapes s for use inside a string literal of lang: a
// single-quoted shell word for curl, a double-quoted literal otherwise.
func quoteInner(lang, s string) string {
	if lang == LangCurl {
		if !strings.ContainsAny(s, "'\x00") {
			return s
		}
		return strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), "'", `'\''`)
	}
	if lang == LangGo {
		q := strconv.Quote(s)
		return q[1 : len(q)-1]
	}
	// JSON string escapes are valid in JavaScript and Python literals.
	safe := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == 0x7f {
			safe = false
			break
		}
	}
	if safe && !strings.ContainsAny(s, "\u2028\u2029") {
		return s
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	q := strings.TrimSuffix(b.String(), "\n")
	return q[1 : len(q)-1]
}

// indentTail indents every line of s after the first by prefix.
func indentTail(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// pythonLiteral renders a JSON value as a Python literal (True, False,
// None), indented like the JSON it came from.
func pythonLiteral(v any, indent string) string {
	var b strings.Builder
	writePython(&b, v, indent)
	return b.String()
}

func writePython(b *strings.Builder, v any, indent string) {
	const step = "    "
	switch v := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if v {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case string:
		b.WriteString(`"` + quoteInner(LangPython, v) + `"`)
	case map[string]any:
		if len(v) == 0 {
			b.WriteString("{}")
			return
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("{\n")
		for _, k := range keys {
			b.WriteString(indent + step + `"` + quoteInner(LangPython, k) + `": `)
			writePython(b, v[k], indent+step)
			b.WriteString(",\n")
		}
		b.WriteString(indent + "}")
	case []any:
		if len(v) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString("[\n")
		for _, e := range v {
			b.WriteString(indent + step)
			writePython(b, e, indent+step)
			b.WriteString(",\n")
		}
		b.WriteString(indent + "]")
	default:
		// Numbers (float64, json.Number, ints) print the same in JSON and Python.
		out, err := json.Marshal(v)
		if err != nil {
			b.WriteString("None")
			return
		}
		b.WriteString(string(out))
	}
}

// snippetURL is the operation's URL with path parameters replaced by their
// examples where the document has them ("{petId}" stays otherwise) and the
// given query parameters appended.
func snippetURL(base, path string, pathVals map[string]string, query [][2]string) string {
	var b strings.Builder
	b.WriteString(base)
	for {
		i := strings.IndexByte(path, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(path[i:], '}')
		if j < 0 {
			break
		}
		b.WriteString(path[:i])
		name := path[i+1 : i+j]
		if v, ok := pathVals[name]; ok {
			b.WriteString(url.PathEscape(v))
		} else {
			b.WriteString(path[i : i+j+1])
		}
		path = path[i+j+1:]
	}
	b.WriteString(path)
	for i, q := range query {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(q[0]) + "=")
		if strings.HasPrefix(q[1], "{") && strings.HasSuffix(q[1], "}") {
			b.WriteString(q[1]) // a placeholder reads better unescaped
		} else {
			b.WriteString(url.QueryEscape(q[1]))
		}
	}
	return b.String()
}
