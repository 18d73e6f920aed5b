package router

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

func compileRoutes(t testing.TB, spec ...string) *Routes {
	t.Helper()
	var rs []proxycfg.Route
	for _, s := range spec {
		m, p, _ := strings.Cut(s, " ")
		rs = append(rs, proxycfg.Route{Method: m, Path: p})
	}
	r, err := CompileRoutes(rs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRoutesMatch(t *testing.T) {
	t.Parallel()
	r := compileRoutes(t,
		"GET /items",
		"POST /items",
		"GET /items/{id}",
		"DELETE /items/{itemId}", // same shape as {id}: one edge
		"GET /items/mine",
		"PUT /items/mine/settings",
		"GET /files/{name}.json",
		"GET /files/{name}.{ext}.gz",
		"GET /v{major}/status",
		"GET /",
		"GET /users/{uid}/orders/{oid}",
		"PURGE /cache/{key}",
		"GET /trailing/",
		"POST /a/{x}/c",
		"GET /a/b/{y}",
	)
	tests := []struct {
		name   string
		method string
		path   string
		want   RouteResult
		allow  string
	}{
		{name: "literal", method: "GET", path: "/items", want: RouteMatched},
		{name: "literal other method", method: "POST", path: "/items", want: RouteMatched},
		{name: "head where get", method: "HEAD", path: "/items", want: RouteMatched},
		{name: "param", method: "GET", path: "/items/42", want: RouteMatched},
		{name: "param other name same shape", method: "DELETE", path: "/items/42", want: RouteMatched},
		{name: "literal beats param", method: "GET", path: "/items/mine", want: RouteMatched},
		{name: "param behind literal sibling", method: "DELETE", path: "/items/mine", want: RouteMatched},
		{name: "deeper literal", method: "PUT", path: "/items/mine/settings", want: RouteMatched},
		{name: "wrong method", method: "PATCH", path: "/items", want: RouteMethodNotAllowed, allow: "GET, HEAD, POST"},
		{name: "wrong method on param", method: "POST", path: "/items/42", want: RouteMethodNotAllowed, allow: "GET, HEAD, DELETE"},
		{name: "allow is the union of matching templates", method: "POST", path: "/items/mine", want: RouteMethodNotAllowed, allow: "GET, HEAD, DELETE"},
		{name: "methods are case sensitive", method: "get", path: "/items", want: RouteMethodNotAllowed, allow: "GET, HEAD, POST"},
		{name: "param needs a non-empty segment", method: "GET", path: "/items/", want: RouteNotFound},
		{name: "param is one segment", method: "GET", path: "/items/1/2", want: RouteNotFound},
		{name: "unknown path", method: "GET", path: "/nothing", want: RouteNotFound},
		{name: "prefix of a template", method: "GET", path: "/users/7", want: RouteNotFound},
		{name: "two params", method: "GET", path: "/users/7/orders/9", want: RouteMatched},
		{name: "mixed segment", method: "GET", path: "/files/report.json", want: RouteMatched},
		{name: "mixed segment greedy name", method: "GET", path: "/files/a.b.json", want: RouteMatched},
		{name: "mixed segment empty name", method: "GET", path: "/files/.json", want: RouteNotFound},
		{name: "mixed segment wrong suffix", method: "GET", path: "/files/report.xml", want: RouteNotFound},
		{name: "two params in a segment", method: "GET", path: "/files/a.tar.gz", want: RouteMatched},
		{name: "two params backtrack", method: "GET", path: "/files/a.b.c.gz", want: RouteMatched},
		{name: "two params one empty", method: "GET", path: "/files/a..gz", want: RouteNotFound},
		{name: "literal prefix param", method: "GET", path: "/v2/status", want: RouteMatched},
		{name: "literal prefix param empty", method: "GET", path: "/v/status", want: RouteNotFound},
		{name: "root", method: "GET", path: "/", want: RouteMatched},
		{name: "root wrong method", method: "POST", path: "/", want: RouteMethodNotAllowed, allow: "GET, HEAD"},
		{name: "custom method", method: "PURGE", path: "/cache/k", want: RouteMatched},
		{name: "custom method in allow", method: "GET", path: "/cache/k", want: RouteMethodNotAllowed, allow: "PURGE"},
		{name: "trailing slash declared", method: "GET", path: "/trailing/", want: RouteMatched},
		{name: "trailing slash is significant", method: "GET", path: "/trailing", want: RouteNotFound},
		{name: "trailing slash not declared", method: "GET", path: "/items/mine/", want: RouteNotFound},
		{name: "backtrack out of a literal branch", method: "POST", path: "/a/b/c", want: RouteMatched},
		{name: "literal branch itself", method: "GET", path: "/a/b/c", want: RouteMatched},
		{name: "overlapping templates union", method: "PUT", path: "/a/b/c", want: RouteMethodNotAllowed, allow: "GET, HEAD, POST"},
		{name: "empty path", method: "GET", path: "", want: RouteNotFound},
		{name: "relative path", method: "GET", path: "items", want: RouteNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, allow := r.Match([]byte(tc.method), []byte(tc.path))
			if got != tc.want || string(allow) != tc.allow {
				t.Fatalf("Match(%s %s) = %d, %q; want %d, %q", tc.method, tc.path, got, allow, tc.want, tc.allow)
			}
		})
	}
}

func TestRoutesNilMatchesEverything(t *testing.T) {
	t.Parallel()
	r, err := CompileRoutes(nil)
	if err != nil || r != nil {
		t.Fatalf("CompileRoutes(nil) = %v, %v; want nil, nil", r, err)
	}
	if got, _ := r.Match([]byte("BREW"), []byte("/any/where")); got != RouteMatched {
		t.Fatalf("nil routes: %d, want matched", got)
	}
}

func TestCompileRoutesRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		route proxycfg.Route
		want  string
	}{
		{name: "empty method", route: proxycfg.Route{Path: "/a"}, want: "method"},
		{name: "method with space", route: proxycfg.Route{Method: "GE T", Path: "/a"}, want: "method"},
		{name: "relative path", route: proxycfg.Route{Method: "GET", Path: "a"}, want: "start with /"},
		{name: "unclosed brace", route: proxycfg.Route{Method: "GET", Path: "/a/{id"}, want: "unclosed"},
		{name: "stray close", route: proxycfg.Route{Method: "GET", Path: "/a/id}"}, want: "without {"},
		{name: "nested", route: proxycfg.Route{Method: "GET", Path: "/a/{{id}}"}, want: "nested"},
		{name: "empty name", route: proxycfg.Route{Method: "GET", Path: "/a/{}"}, want: "empty"},
		{name: "spans segments", route: proxycfg.Route{Method: "GET", Path: "/a/{x/y}"}, want: "spans"},
		{name: "space", route: proxycfg.Route{Method: "GET", Path: "/a b"}, want: "space"},
		{name: "too many parameters", route: proxycfg.Route{Method: "GET", Path: strings.Repeat("/{p}", proxycfg.MaxRouteParams+1)}, want: "parameters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := CompileRoutes([]proxycfg.Route{tc.route})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	many := make([]proxycfg.Route, 0, maxMethods)
	for i := range maxMethods {
		many = append(many, proxycfg.Route{Method: fmt.Sprintf("M%d", i), Path: "/x"})
	}
	if _, err := CompileRoutes(many); err == nil || !strings.Contains(err.Error(), "distinct") {
		t.Fatalf("%d methods: err = %v", len(many)+len(standardMethods), err)
	}
}

// benchRoutes is an API of realistic size: 60 operations over 30 templates.
func benchRoutes(tb testing.TB) *Routes {
	var spec []string
	for _, res := range []string{"users", "orders", "items", "invoices", "products", "carts"} {
		spec = append(spec,
			"GET /"+res, "POST /"+res,
			"GET /"+res+"/{id}", "PUT /"+res+"/{id}", "DELETE /"+res+"/{id}",
			"GET /"+res+"/{id}/history", "GET /"+res+"/{id}/export.{format}",
			"GET /"+res+"/search", "PATCH /"+res+"/{id}/tags/{tag}", "GET /"+res+"/{id}/tags/{tag}")
	}
	return compileRoutes(tb, spec...)
}

func TestRoutesMatchDoesNotAllocate(t *testing.T) {
	r := benchRoutes(t)
	for _, req := range [][2]string{
		{"GET", "/invoices/123/tags/paid"}, {"GET", "/carts/9/export.csv"},
		{"POST", "/users/1"}, {"GET", "/nope/1"}, {"HEAD", "/orders/search"},
	} {
		m, p := []byte(req[0]), []byte(req[1])
		if n := testing.AllocsPerRun(100, func() { r.Match(m, p) }); n != 0 {
			t.Errorf("Match(%s %s) allocates %.0f times", req[0], req[1], n)
		}
	}
}

func BenchmarkRouteMatch(b *testing.B) {
	r := benchRoutes(b)
	for _, bc := range []struct {
		name, method, path string
	}{
		{name: "literal", method: "GET", path: "/products/search"},
		{name: "param", method: "DELETE", path: "/orders/8f14e45f"},
		{name: "two params", method: "PATCH", path: "/invoices/123/tags/paid"},
		{name: "mixed segment", method: "GET", path: "/carts/9/export.csv"},
		{name: "not found", method: "GET", path: "/nope/123"},
		{name: "method not allowed", method: "POST", path: "/users/1"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m, p := []byte(bc.method), []byte(bc.path)
			b.ReportAllocs()
			for b.Loop() {
				r.Match(m, p)
			}
		})
	}
}

// TestRoutesManyLiteralSiblings: a node with more literal children than it
// scans (maxScan) indexes them in a map; matching, 404 and 405 with its
// Allow value are the same either way.
func TestRoutesManyLiteralSiblings(t *testing.T) {
	t.Parallel()
	for _, n := range []int{maxScan - 1, maxScan, maxScan + 1, 3 * maxScan} {
		var routes []proxycfg.Route
		for i := range n {
			routes = append(routes, proxycfg.Route{Method: "GET", Path: fmt.Sprintf("/s%d/{id}", i)},
				proxycfg.Route{Method: "DELETE", Path: fmt.Sprintf("/s%d/{id}", i)})
		}
		r, err := CompileRoutes(routes)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			path := []byte(fmt.Sprintf("/s%d/42", i))
			if res, _ := r.Match([]byte("DELETE"), path); res != RouteMatched {
				t.Errorf("%d siblings: DELETE %s: %v", n, path, res)
			}
			if res, allow := r.Match([]byte("POST"), path); res != RouteMethodNotAllowed || string(allow) != "GET, HEAD, DELETE" {
				t.Errorf("%d siblings: POST %s: %v, Allow %q", n, path, res, allow)
			}
		}
		if res, _ := r.Match([]byte("GET"), []byte(fmt.Sprintf("/s%d/42", n))); res != RouteNotFound {
			t.Errorf("%d siblings: an undeclared sibling: %v", n, res)
		}
	}
}
