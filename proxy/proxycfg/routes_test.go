package proxycfg

import (
	"strings"
	"testing"
)

func TestValidateRoute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		route Route
		want  string // "" means valid
	}{
		{name: "literal", route: Route{Method: "GET", Path: "/items"}},
		{name: "root", route: Route{Method: "GET", Path: "/"}},
		{name: "param", route: Route{Method: "DELETE", Path: "/items/{id}"}},
		{name: "mixed segment", route: Route{Method: "GET", Path: "/files/{name}.{ext}"}},
		{name: "custom method token", route: Route{Method: "PURGE", Path: "/cache/{key}"}},
		{name: "no method", route: Route{Path: "/items"}, want: "method"},
		{name: "method not a token", route: Route{Method: "GET/1", Path: "/items"}, want: "method"},
		{name: "relative path", route: Route{Method: "GET", Path: "items"}, want: "start with /"},
		{name: "empty path", route: Route{Method: "GET"}, want: "start with /"},
		{name: "unclosed", route: Route{Method: "GET", Path: "/items/{id"}, want: "unclosed"},
		{name: "stray close", route: Route{Method: "GET", Path: "/items/id}"}, want: "without {"},
		{name: "nested", route: Route{Method: "GET", Path: "/items/{a{b}}"}, want: "nested"},
		{name: "empty name", route: Route{Method: "GET", Path: "/items/{}"}, want: "empty"},
		{name: "spans segments", route: Route{Method: "GET", Path: "/items/{a/b}"}, want: "spans"},
		{name: "control character", route: Route{Method: "GET", Path: "/items/\x00"}, want: "control"},
		{name: "too long", route: Route{Method: "GET", Path: "/" + strings.Repeat("a", MaxRoutePathLen)}, want: "longer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateRoute(tc.route)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("ValidateRoute(%+v) = %v", tc.route, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ValidateRoute(%+v) = %v, want one mentioning %q", tc.route, err, tc.want)
			}
		})
	}
}

func TestSnapshotValidateChecksRoutes(t *testing.T) {
	t.Parallel()
	snap := func(routes ...Route) *Snapshot {
		return &Snapshot{Schema: SchemaVersion, Generation: 1, Tenants: []Tenant{{
			ID: "t", Slug: "t",
			Upstreams: []Upstream{{ID: "u", Algorithm: AlgorithmRoundRobin, Targets: []Target{{URL: "http://127.0.0.1:1", Weight: 1}}}},
			APIs:      []API{{ID: "a", BasePath: "/a", UpstreamID: "u", Auth: AuthNone, Routes: routes}},
		}}}
	}
	if err := snap().Validate(); err != nil {
		t.Fatalf("no routes: %v", err)
	}
	if err := snap(Route{Method: "GET", Path: "/x/{id}"}).Validate(); err != nil {
		t.Fatalf("good route: %v", err)
	}
	if err := snap(Route{Method: "GET", Path: "/x/{id"}).Validate(); err == nil || !strings.Contains(err.Error(), `api "a"`) {
		t.Fatalf("bad route: err = %v, want it named with its api", err)
	}
}
