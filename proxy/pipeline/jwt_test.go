package pipeline

import (
	"testing"

	"github.com/tollgate/tollgate/proxy/keyauth"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// TestRouteScopeCovers is the regression test of route scopes compared as
// a raw, case-sensitive byte prefix: they cover whole segments, fail
// closed on case and path parameters, and never cover a longer name.
func TestRouteScopeCovers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, prefix, path string
		covers             bool
	}{
		{name: "exact", prefix: "/admin", path: "/admin", covers: true},
		{name: "below", prefix: "/admin", path: "/admin/users/1", covers: true},
		{name: "trailing slash on path", prefix: "/admin", path: "/admin/", covers: true},
		{name: "trailing slash on prefix", prefix: "/admin/", path: "/admin", covers: true},
		{name: "longer name", prefix: "/admin", path: "/administrator"},
		{name: "other case", prefix: "/admin", path: "/ADMIN/users", covers: true},
		{name: "path parameter", prefix: "/admin", path: "/admin;jsessionid=x/users", covers: true},
		{name: "path parameter other case", prefix: "/admin/users", path: "/Admin;a=b/USERS;c", covers: true},
		{name: "two segments partial", prefix: "/admin/users", path: "/admin"},
		{name: "two segments other", prefix: "/admin/users", path: "/admin/groups"},
		{name: "root covers all", prefix: "/", path: "/anything", covers: true},
		{name: "not at the start", prefix: "/admin", path: "/x/admin"},
		{name: "empty path", prefix: "/admin", path: "/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := compileRouteScopes([]proxycfg.RouteScopes{{PathPrefix: tc.prefix, Scopes: []string{"s"}}})[0]
			if got := rs.covers([]byte(tc.path)); got != tc.covers {
				t.Fatalf("%q covers %q = %v, want %v", tc.prefix, tc.path, got, tc.covers)
			}
		})
	}
}

// TestJWTSubjectsNamespaced: the limit subjects of JWT callers carry the
// tenant and the plan; the record's tenant is the API's.
func TestJWTSubjectsNamespaced(t *testing.T) {
	t.Parallel()
	a := keyauth.NewScopedRecord(proxycfg.KeyRecord{ID: "jwt:alice", TenantID: "t1", ConsumerID: "alice", PlanID: "p"}, jwtNamespace("t1", "p"))
	b := keyauth.NewScopedRecord(proxycfg.KeyRecord{ID: "jwt:alice", TenantID: "t2", ConsumerID: "alice", PlanID: "p"}, jwtNamespace("t2", "p"))
	for _, scope := range []string{proxycfg.ScopeKey, proxycfg.ScopeConsumer} {
		if a.Subject(scope) == b.Subject(scope) {
			t.Fatalf("scope %q: two tenants share subject %q", scope, a.Subject(scope))
		}
	}
	if got := a.Subject(proxycfg.ScopeKey); got != "jwt/t1/p/jwt:alice" {
		t.Fatalf("key subject %q", got)
	}
	if got := a.Subject(proxycfg.ScopeConsumer); got != "jwt/t1/p/c/alice/p" {
		t.Fatalf("consumer subject %q", got)
	}
}
