package catalog_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

// maxParseTime bounds the time ParseOpenAPI may take for one fuzz input (far
// above what a valid small document takes, far below a pathological blow-up).
const maxParseTime = 2 * time.Second

// FuzzParseOpenAPI feeds tenant-supplied documents to the import: it must
// never panic, must answer every input in bounded time, must refuse with a
// validation error of the field "document" (never an internal error), and
// everything it accepts must be routable by the proxy.
//
// The seed corpus runs with go test; a longer run:
//
//	go test ./services/catalog -run '^$' -fuzz FuzzParseOpenAPI -fuzztime 5m
func FuzzParseOpenAPI(f *testing.F) {
	for _, seed := range []string{
		`{"openapi":"3.1.0","info":{"title":"T","version":"1"},"paths":{"/a":{"get":{"responses":{"200":{"description":"ok"}}}}}}`,
		"openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths:\n  /b/{id}:\n    parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n    delete: {responses: {'204': {description: gone}}}\n",
		"",
		"[1, 2",
		`{"swagger":"2.0","info":{"title":"T","version":"1"},"paths":{}}`,
		"openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths:\n  /x:\n    $ref: 'http://169.254.169.254/latest/meta-data'\n",
		// Self-referencing schemas and references.
		"openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths:\n  /r:\n    get:\n      responses:\n        '200':\n          description: ok\n          content: {application/json: {schema: {$ref: '#/components/schemas/N'}}}\ncomponents:\n  schemas:\n    N: {type: object, properties: {next: {$ref: '#/components/schemas/N'}}}\n",
		"openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths:\n  /r: {$ref: '#/paths/~1r'}\n",
		// YAML aliases (entity expansion).
		"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\nopenapi: 3.0.3\n",
		// Paths the proxy cannot route, and odd templates.
		"openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths:\n  /a/{x}{y}:\n    get: {responses: {'200': {description: ok}}}\n  /b/..:\n    get: {responses: {'200': {description: ok}}}\n",
		"openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths:\n  /a/{" + strings.Repeat("x", 300) + "}:\n    get: {responses: {'200': {description: ok}}}\n",
		// Deep nesting.
		strings.Repeat("[", 5000) + strings.Repeat("]", 5000),
		"openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths: {}\nx: " + strings.Repeat("{a: ", 2000) + "1" + strings.Repeat("}", 2000) + "\n",
		"\xff\xfe\x00o\x00p\x00e\x00n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), maxParseTime)
		defer cancel()
		start := time.Now()
		imp, normalized, err := catalog.ParseOpenAPI(ctx, doc)
		if d := time.Since(start); d > maxParseTime {
			t.Fatalf("parsing %d bytes took %v", len(doc), d)
		}
		if err != nil {
			var ve *fault.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("not a validation error (a 500 for the tenant's input): %v", err)
			}
			for _, fe := range ve.Errors {
				if fe.Field != "document" || fe.Message == "" {
					t.Fatalf("refusal %+v", fe)
				}
			}
			return
		}
		if len(imp.Routes) == 0 || len(imp.Routes) > catalog.MaxImportedRoute || len(normalized) == 0 {
			t.Fatalf("accepted %d routes, %d bytes", len(imp.Routes), len(normalized))
		}
		for _, r := range imp.Routes {
			if err := proxycfg.ValidateRoute(proxycfg.Route{Method: r.Method, Path: r.Path}); err != nil {
				t.Fatalf("accepted unroutable %s %s: %v", r.Method, r.Path, err)
			}
		}
	})
}
