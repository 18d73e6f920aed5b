package sdk

import (
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/oapi-codegen/oapi-codegen/v2/pkg/codegen"
)

// OapiCodegenVersion is the version of oapi-codegen that writes the Go
// clients; it is named in every Go SDK.
const OapiCodegenVersion = "v2.8.2"

// codegenSlot serialises oapi-codegen: codegen.Generate keeps its options and
// the specification in package-level variables, so two generations in one
// process must not overlap. A channel rather than a mutex, so that a waiting
// build gives up with its context.
var codegenSlot = make(chan struct{}, 1)

// goSDK builds the files of a Go module: client.go from oapi-codegen, and
// Tollgate's helpers, go.mod, go.sum and README.md.
func goSDK(ctx context.Context, req Request, doc *document) ([]file, error) {
	// oapi-codegen prunes and renames inside the specification it is given;
	// doc.spec was loaded for this build alone, so it may.
	spec := doc.spec
	stripGoExtensions(spec)
	slug := slugOf(req.APISlug)
	pkg := goPackageName(slug)
	src, err := runOapiCodegen(ctx, spec, pkg)
	if err != nil {
		return nil, err
	}
	m := goModel{
		Package: pkg, Module: goModulePath(req.TenantSlug, slug), Name: oneLine(apiName(req, doc)),
		BaseURL: req.BaseURL, Version: doc.version, APIVersion: doc.apiVersion, Codegen: OapiCodegenVersion,
	}
	client, imports, methods, err := finishGo(src, m)
	if err != nil {
		return nil, err
	}
	m.Methods = methods
	mods, err := goModulesFor(imports)
	if err != nil {
		return nil, err
	}
	helpers, err := renderGoHelpers(m)
	if err != nil {
		return nil, err
	}
	var readme bytes.Buffer
	if err := goReadme.Execute(&readme, m); err != nil {
		return nil, fmt.Errorf("go readme: %w", err)
	}
	files := []file{
		{"go.mod", goModFile(m.Module, mods)},
		{"client.go", client},
		{"tollgate.go", helpers},
		{"README.md", readme.Bytes()},
		{"VERSION", []byte(doc.version + "\n")},
	}
	if sum := goSumFile(mods); len(sum) > 0 {
		files = append(files, file{"go.sum", sum})
	}
	return files, nil
}

// runOapiCodegen generates the types, Client and ClientWithResponses of
// package pkg. It skips oapi-codegen's own formatting: that runs
// golang.org/x/tools/imports, which executes `go env` and so would need a Go
// toolchain on the control plane; finishGo does the part we need.
func runOapiCodegen(ctx context.Context, spec *openapi3.T, pkg string) (string, error) {
	select {
	case codegenSlot <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-codegenSlot }()
	version := OapiCodegenVersion
	src, err := codegen.Generate(spec, codegen.Configuration{
		PackageName: pkg,
		Generate:    codegen.GenerateOptions{Client: true, Models: true},
		OutputOptions: codegen.OutputOptions{
			SkipFmt: true,
			// Names from different places of a document (a schema Pet and
			// an operation pet's response) get distinct Go names.
			ResolveTypeNameCollisions: true,
		},
		NoVCSVersionOverride: &version,
	})
	if err != nil {
		return "", &GenerateError{Message: "oapi-codegen cannot generate a Go client from this document: " + firstLine(err.Error()), Err: err}
	}
	return src, nil
}

// stripGoExtensions removes every specification extension from the parts of
// the document oapi-codegen reads. Its x-go-type, x-go-type-import,
// x-go-name and x-oapi-codegen-extra-tags put tenant-written text into Go
// source and imports; an SDK must contain only code Tollgate chose. It also
// drops callbacks and webhooks, for which oapi-codegen would add server-side
// initiators that a client does not need.
func stripGoExtensions(spec *openapi3.T) {
	spec.Extensions = nil
	spec.Webhooks = nil
	if spec.Info != nil {
		spec.Info.Extensions = nil
	}
	w := schemaWalker{seen: map[*openapi3.Schema]bool{}, visit: func(s *openapi3.Schema) { s.Extensions = nil }}
	clearParams := func(ps openapi3.Parameters) {
		for _, p := range ps {
			p.Extensions = nil
			if p.Value != nil {
				p.Value.Extensions = nil
				clearContent(p.Value.Content)
			}
		}
	}
	clearResponse := func(r *openapi3.ResponseRef) {
		if r == nil {
			return
		}
		r.Extensions = nil
		if r.Value != nil {
			r.Value.Extensions = nil
			clearContent(r.Value.Content)
			for _, h := range r.Value.Headers {
				if h != nil {
					h.Extensions = nil
					if h.Value != nil {
						h.Value.Extensions = nil
					}
				}
			}
		}
	}
	if c := spec.Components; c != nil {
		c.Extensions = nil
		c.Callbacks = nil
		for _, s := range c.Schemas {
			s.Extensions = nil
		}
		for _, p := range c.Parameters {
			clearParams(openapi3.Parameters{p})
		}
		for _, b := range c.RequestBodies {
			b.Extensions = nil
			if b.Value != nil {
				b.Value.Extensions = nil
				clearContent(b.Value.Content)
			}
		}
		for _, r := range c.Responses {
			clearResponse(r)
		}
		for _, h := range c.Headers {
			h.Extensions = nil
			if h.Value != nil {
				h.Value.Extensions = nil
			}
		}
	}
	if spec.Paths != nil {
		spec.Paths.Extensions = nil
		for _, item := range spec.Paths.Map() {
			item.Extensions = nil
			clearParams(item.Parameters)
			for _, op := range item.Operations() {
				op.Extensions = nil
				op.Callbacks = nil
				clearParams(op.Parameters)
				if b := op.RequestBody; b != nil {
					b.Extensions = nil
					if b.Value != nil {
						b.Value.Extensions = nil
						clearContent(b.Value.Content)
					}
				}
				if op.Responses != nil {
					op.Responses.Extensions = nil
					for _, r := range op.Responses.Map() {
						clearResponse(r)
					}
				}
			}
		}
	}
	w.visitRef = func(r *openapi3.SchemaRef) { r.Extensions = nil }
	w.document(spec)
}

func clearContent(c openapi3.Content) {
	for _, m := range c {
		if m != nil {
			m.Extensions = nil
		}
	}
}

// goModel is what the Go helper file and README are written from.
type goModel struct {
	Package, Module, Name, BaseURL string
	Version, APIVersion, Codegen   string
	// Methods are the ClientWithResponses methods, one per operation.
	Methods []string
}

// goHelperNames are declared by tollgate.go; a document whose generated code
// declares one of them cannot get a Go SDK.
var goHelperNames = []string{"DefaultServer", "SDKVersion", "APIKeyHeader", "WithAPIKey", "NewDefaultClient"}

// finishGo does what oapi-codegen's formatting step would: it replaces the
// header, removes the imports the code does not use, and formats. It also
// refuses code that is not plain client code: a duplicate declaration (the
// document's names clash), an init function, an import of an unexpected
// package. It returns the file, its remaining imports and the names of the
// ClientWithResponses methods.
func finishGo(src string, m goModel) ([]byte, []string, []string, error) {
	i := strings.Index(src, "\npackage ")
	if i < 0 {
		return nil, nil, nil, fmt.Errorf("generated Go code has no package clause")
	}
	header := fmt.Sprintf("// Package %s is a client for the %s API (document version %s) behind the gateway at %s.\n//\n"+
		"// Code generated by Tollgate with oapi-codegen %s. DO NOT EDIT.\n",
		m.Package, m.Name, oneLine(m.APIVersion), oneLine(m.BaseURL), m.Codegen)
	src = header + src[i+1:]

	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "client.go", src, parser.ParseComments)
	if err != nil {
		return nil, nil, nil, &GenerateError{Message: "oapi-codegen wrote Go code that does not parse for this document", Err: err}
	}
	src, imports := pruneImports(fset, f, src)
	fset = token.NewFileSet()
	if f, err = parser.ParseFile(fset, "client.go", src, parser.ParseComments); err != nil {
		return nil, nil, nil, fmt.Errorf("parse pruned Go code: %w", err)
	}
	declared := map[string]bool{}
	for _, n := range goHelperNames {
		declared[n] = true
	}
	var methods []string
	for _, d := range f.Decls {
		var names []string
		switch d := d.(type) {
		case *ast.FuncDecl:
			name := d.Name.Name
			if d.Recv != nil && len(d.Recv.List) == 1 {
				recv := receiverType(d.Recv.List[0].Type)
				if recv == "ClientWithResponses" && strings.HasSuffix(name, "WithResponse") {
					methods = append(methods, name)
				}
				name = recv + "." + name
			} else if name == "init" {
				return nil, nil, nil, &GenerateError{Message: "the generated Go code has an init function"}
			}
			names = append(names, name)
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					names = append(names, s.Name.Name)
				case *ast.ValueSpec:
					for _, n := range s.Names {
						names = append(names, n.Name)
					}
				}
			}
		}
		for _, n := range names {
			if n == "_" {
				continue
			}
			if declared[n] {
				return nil, nil, nil, &GenerateError{Message: fmt.Sprintf("the document's names give two Go declarations named %s", n)}
			}
			declared[n] = true
		}
	}
	var out bytes.Buffer
	if err := format.Node(&out, fset, f); err != nil {
		return nil, nil, nil, fmt.Errorf("format generated Go code: %w", err)
	}
	return out.Bytes(), imports, methods, nil
}

func receiverType(e ast.Expr) string {
	if s, ok := e.(*ast.StarExpr); ok {
		e = s.X
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// pruneImports rewrites the import declarations of src (parsed as f) to
// the imports the code refers to, standard library first, and returns the
// new source and the kept paths. oapi-codegen's template imports a fixed
// superset and leaves the rest to goimports.
func pruneImports(fset *token.FileSet, f *ast.File, src string) (string, []string) {
	used := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			// A package qualifier is an identifier the parser could not
			// resolve to a declaration in the file.
			if id, ok := sel.X.(*ast.Ident); ok && id.Obj == nil {
				used[id.Name] = true
			}
		}
		return true
	})
	var std, other, kept []string
	start, end := -1, -1
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.IMPORT {
			continue
		}
		if start < 0 {
			start = fset.Position(g.Pos()).Offset
		}
		end = fset.Position(g.End()).Offset
		for _, s := range g.Specs {
			is := s.(*ast.ImportSpec)
			path, _ := strconv.Unquote(is.Path.Value)
			if !used[importName(is, path)] || slices.Contains(kept, path) {
				continue
			}
			kept = append(kept, path)
			line := "\t" + strconv.Quote(path)
			if is.Name != nil {
				line = "\t" + is.Name.Name + " " + strconv.Quote(path)
			}
			if strings.Contains(strings.Split(path, "/")[0], ".") {
				other = append(other, line)
			} else {
				std = append(std, line)
			}
		}
	}
	if start < 0 {
		return src, nil
	}
	block := ""
	if len(kept) > 0 {
		groups := []string{}
		for _, g := range [][]string{std, other} {
			if len(g) > 0 {
				slices.Sort(g)
				groups = append(groups, strings.Join(g, "\n"))
			}
		}
		block = "import (\n" + strings.Join(groups, "\n\n") + "\n)"
	}
	return src[:start] + block + src[end:], kept
}

// importName is the name an import declares: its alias, or its package
// name, which for the paths oapi-codegen imports is the last element that is
// not a major version.
func importName(is *ast.ImportSpec, path string) string {
	if is.Name != nil {
		return is.Name.Name
	}
	parts := strings.Split(path, "/")
	last := parts[len(parts)-1]
	if len(parts) > 1 && len(last) > 1 && last[0] == 'v' && strings.Trim(last[1:], "0123456789") == "" {
		last = parts[len(parts)-2]
	}
	if j := strings.Index(last, ".v"); j > 0 {
		last = last[:j]
	}
	return strings.TrimPrefix(last, "go-")
}

// goPackageName turns an API slug into a Go package name.
func goPackageName(slug string) string {
	name := strings.ReplaceAll(slug, "-", "")
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		name = "api" + name
	}
	if token.IsKeyword(name) || name == "main" || name == "init" {
		name += "api"
	}
	return name
}

// goModulePath is the module path of an SDK: tollgate.sdk/<tenant>/<api>.
// It is not fetchable; the README shows how to use the unzipped folder.
func goModulePath(tenant, slug string) string {
	if t := slugOf(tenant); tenant != "" {
		return "tollgate.sdk/" + t + "/" + slug
	}
	return "tollgate.sdk/" + slug
}

func renderGoHelpers(m goModel) ([]byte, error) {
	var b bytes.Buffer
	if err := goHelpers.Execute(&b, m); err != nil {
		return nil, fmt.Errorf("go helpers: %w", err)
	}
	out, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("format go helpers: %w", err)
	}
	return out, nil
}

var goFuncs = template.FuncMap{"quote": strconv.Quote, "oneLine": oneLine}

var goHelpers = template.Must(template.New("tollgate.go").Funcs(goFuncs).Parse(`// Code generated by Tollgate. DO NOT EDIT.

package {{.Package}}

import (
	"context"
	"net/http"
)

// DefaultServer is the gateway base URL of the {{oneLine .Name}} API, which
// NewDefaultClient uses.
const DefaultServer = {{quote .BaseURL}}

// SDKVersion is the version of this SDK: the API document's info.version and
// the first 12 hex digits of the SHA-256 of the document.
const SDKVersion = {{quote .Version}}

// APIKeyHeader is the header in which the gateway expects an API key.
const APIKeyHeader = "X-API-Key"

// WithAPIKey sends key in the X-API-Key header of every request.
func WithAPIKey(key string) ClientOption {
	return WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		req.Header.Set(APIKeyHeader, key)
		return nil
	})
}

// NewDefaultClient returns a client with typed responses for DefaultServer.
// Pass WithAPIKey to authenticate, and WithHTTPClient for timeouts.
func NewDefaultClient(opts ...ClientOption) (*ClientWithResponses, error) {
	return NewClientWithResponses(DefaultServer, opts...)
}
`))

var goReadme = template.Must(template.New("README.md").Funcs(goFuncs).Parse(`# {{.Name}}: Go SDK

A Go client for the {{.Name}} API, generated by Tollgate with
[oapi-codegen](https://github.com/oapi-codegen/oapi-codegen) {{.Codegen}} from
the API's OpenAPI document (version {{.APIVersion}}).

- SDK version: ` + "`{{.Version}}`" + ` (also in ` + "`VERSION` and `SDKVersion`" + `)
- Gateway: {{.BaseURL}}
- Module: ` + "`{{.Module}}`" + `, package ` + "`{{.Package}}`" + `
- ` + "`CHECKSUM.sha256`" + ` lists the SHA-256 of every file (` + "`sha256sum -c CHECKSUM.sha256`" + `).

## Install

Unzip the folder into your repository (say as ` + "`third_party/{{.Package}}`" + `), then point your
module at it:

` + "```sh" + `
go mod edit -require={{.Module}}@v0.0.0 -replace={{.Module}}=./third_party/{{.Package}}
go mod tidy
` + "```" + `

## Use

` + "```go" + `
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	{{.Package}} "{{.Module}}"
)

func main() {
	client, err := {{.Package}}.NewDefaultClient({{.Package}}.WithAPIKey(os.Getenv("API_KEY")))
	if err != nil {
		log.Fatal(err)
	}
{{- if .Methods}}
	resp, err := client.{{index .Methods 0}}(context.Background() /* , parameters */)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status())
{{- end}}
}
` + "```" + `

` + "`NewDefaultClient`" + ` calls {{.BaseURL}}; use ` + "`NewClientWithResponses(url, ...)`" + ` for another
address. Every method has a ` + "`...WithResponse`" + ` form that decodes the documented responses
(` + "`resp.JSON200`" + ` and so on) and a plain form that returns the ` + "`*http.Response`" + `. Requests
without a valid key are answered 401, requests over your plan's rate 429 with
` + "`Retry-After`" + `.

## Operations
{{range .Methods}}
- ` + "`{{.}}`" + `
{{- end}}
`))

// oneLine replaces line breaks and other control characters with spaces, so
// tenant-written text stays inside a comment line or a heading.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0x2028 || r == 0x2029 {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// apiName is the API's display name: the request's, else the document's title.
func apiName(req Request, doc *document) string {
	for _, s := range []string{req.APIName, doc.title, req.APISlug} {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return "API"
}
