package router

import (
	"errors"
	"strings"
	"testing"
)

func testTable(t testing.TB) *Table[string] {
	t.Helper()
	tbl, err := Build("gw.example.com", []Tenant[string]{
		{Slug: "acme", Domains: []string{"api.acme.io"}, Routes: []Route[string]{
			{BasePath: "/v1", Value: "v1"},
			{BasePath: "/v1/admin/", Value: "admin"},
			{BasePath: "/v10", Value: "v10"},
		}},
		{Slug: "globex", Routes: []Route[string]{
			{BasePath: "/", Value: "root"},
			{BasePath: "/billing", Value: "billing"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func TestLookup(t *testing.T) {
	t.Parallel()
	tbl := testTable(t)
	tests := []struct {
		name       string
		host, path string
		want       string
		ok, tenant bool
	}{
		{name: "exact base", host: "acme.gw.example.com", path: "/v1", want: "v1", ok: true, tenant: true},
		{name: "base with slash", host: "acme.gw.example.com", path: "/v1/", want: "v1", ok: true, tenant: true},
		{name: "below base", host: "acme.gw.example.com", path: "/v1/x/y", want: "v1", ok: true, tenant: true},
		{name: "longest prefix", host: "acme.gw.example.com", path: "/v1/admin/users", want: "admin", ok: true, tenant: true},
		{name: "longest prefix exact", host: "acme.gw.example.com", path: "/v1/admin", want: "admin", ok: true, tenant: true},
		{name: "segment boundary", host: "acme.gw.example.com", path: "/v10/x", want: "v10", ok: true, tenant: true},
		{name: "no segment match", host: "acme.gw.example.com", path: "/v100", tenant: true},
		{name: "no api", host: "acme.gw.example.com", path: "/other", tenant: true},
		{name: "host with port", host: "acme.gw.example.com:8000", path: "/v1", want: "v1", ok: true, tenant: true},
		{name: "host upper case", host: "ACME.GW.Example.COM", path: "/v1", want: "v1", ok: true, tenant: true},
		{name: "host trailing dot", host: "acme.gw.example.com.", path: "/v1", want: "v1", ok: true, tenant: true},
		{name: "custom domain", host: "api.acme.io:443", path: "/v1/a", want: "v1", ok: true, tenant: true},
		{name: "root matches all", host: "globex.gw.example.com", path: "/anything/else", want: "root", ok: true, tenant: true},
		{name: "root loses to longer", host: "globex.gw.example.com", path: "/billing/x", want: "billing", ok: true, tenant: true},
		{name: "unknown host", host: "nope.gw.example.com", path: "/v1"},
		{name: "bare domain", host: "gw.example.com", path: "/v1"},
		{name: "empty host", host: "", path: "/v1"},
		{name: "ipv6 literal", host: "[::1]:8000", path: "/v1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, tenant := tbl.Lookup([]byte(tc.host), []byte(tc.path))
			if got != tc.want || ok != tc.ok || tenant != tc.tenant {
				t.Fatalf("Lookup(%q, %q) = %q, %v, %v; want %q, %v, %v", tc.host, tc.path, got, ok, tenant, tc.want, tc.ok, tc.tenant)
			}
		})
	}
}

// TestBuildDuplicateHost: a host claimed twice is left out and reported,
// without failing the table; a platform host beats a custom domain.
func TestBuildDuplicateHost(t *testing.T) {
	t.Parallel()
	tbl, err := Build("d", []Tenant[int]{
		{Slug: "b", Domains: []string{"A.d", "b.example"}, Routes: []Route[int]{{BasePath: "/", Value: 2}}},
		{Slug: "a", Routes: []Route[int]{{BasePath: "/", Value: 1}}},
		{Slug: "c", Domains: []string{"B.EXAMPLE.", strings.Repeat("x", 300)}, Routes: []Route[int]{{BasePath: "/", Value: 3}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := tbl.Lookup([]byte("a.d"), []byte("/")); !ok || v != 1 {
		t.Fatalf("a.d served by %d, want tenant a", v)
	}
	if v, ok, _ := tbl.Lookup([]byte("b.example"), []byte("/")); !ok || v != 2 {
		t.Fatalf("b.example served by %d, want its first claimant", v)
	}
	if v, ok, _ := tbl.Lookup([]byte("c.d"), []byte("/")); !ok || v != 3 {
		t.Fatalf("c.d served by %d", v)
	}
	var dups, long int
	for _, e := range tbl.Skipped() {
		switch {
		case errors.Is(e, ErrDuplicateHost):
			dups++
		case errors.Is(e, ErrHostTooLong):
			long++
		}
	}
	if dups != 2 || long != 1 {
		t.Fatalf("skipped %v", tbl.Skipped())
	}
}

func TestStripPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, path, base, want string }{
		{name: "below", path: "/v1/x", base: "/v1", want: "/x"},
		{name: "exact", path: "/v1", base: "/v1", want: "/"},
		{name: "trailing slash", path: "/v1/", base: "/v1", want: "/"},
		{name: "root base", path: "/a/b", base: "/", want: "/a/b"},
		{name: "base with slash", path: "/v1/x", base: "/v1/", want: "/x"},
		{name: "not a prefix", path: "/v10/x", base: "/v1", want: "/v10/x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(StripPrefix([]byte(tc.path), tc.base)); got != tc.want {
				t.Fatalf("StripPrefix(%q, %q) = %q, want %q", tc.path, tc.base, got, tc.want)
			}
		})
	}
}

func TestLookupNoAlloc(t *testing.T) {
	tbl := testTable(t)
	host, path := []byte("ACME.gw.example.com:8000"), []byte("/v1/admin/users")
	if n := testing.AllocsPerRun(100, func() { tbl.Lookup(host, path) }); n != 0 {
		t.Fatalf("Lookup allocates %v times", n)
	}
}

func BenchmarkRouteLookup(b *testing.B) {
	tbl := testTable(b)
	host, path := []byte("acme.gw.example.com:8000"), []byte("/v1/admin/users/42")
	b.ReportAllocs()
	for b.Loop() {
		tbl.Lookup(host, path)
	}
}
