// Package router finds the tenant of a request by its host and the API by the
// longest base path that prefixes its path. A Table is built once per config
// snapshot and never mutated, so lookups need no locks; they do not allocate.
package router

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// maxHostLen bounds the host names a Table can hold (DNS limit is 253).
const maxHostLen = 255

// Route is one API of a tenant: the base path it is served under and the
// value a lookup returns.
type Route[T any] struct {
	// BasePath starts with "/". A trailing slash is ignored; "/" matches
	// every path.
	BasePath string
	// Value is returned by Lookup when this route matches.
	Value T
}

// Tenant lists the host names and routes of one tenant.
type Tenant[T any] struct {
	// Slug makes the tenant reachable at <slug>.<domain>.
	Slug string
	// Domains are extra (custom) host names of the tenant.
	Domains []string
	// Routes are the tenant's APIs.
	Routes []Route[T]
}

type route[T any] struct {
	prefix string // base path without trailing slash; "" for "/"
	value  T
}

type host[T any] struct {
	routes []route[T] // longest prefix first
}

// Table maps hosts and paths to route values. The zero Table matches nothing.
type Table[T any] struct {
	hosts   map[string]*host[T]
	skipped []error
}

// Errors of host names Build leaves out (Table.Skipped).
var (
	ErrDuplicateHost = errors.New("duplicate host")
	ErrHostTooLong   = errors.New("host name too long")
)

// Build makes a Table serving every tenant at <slug>.<domain> and at its
// custom domains. Host names are matched case-insensitively. A host name
// that is too long or taken already is left out, and reported by Skipped,
// rather than failing the table: one tenant's bad name must not keep every
// other tenant's config from loading. Platform hosts (<slug>.<domain>) are
// taken first, in tenant order, then custom domains, so that a custom
// domain can never take another tenant's platform host (the snapshot does
// not know the proxy domain, so its validation cannot see that clash).
func Build[T any](domain string, tenants []Tenant[T]) (*Table[T], error) {
	domain = strings.ToLower(strings.Trim(domain, "."))
	t := &Table[T]{hosts: make(map[string]*host[T], len(tenants))}
	hosts := make([]*host[T], len(tenants))
	for i, tn := range tenants {
		h := &host[T]{routes: make([]route[T], 0, len(tn.Routes))}
		for _, r := range tn.Routes {
			if !strings.HasPrefix(r.BasePath, "/") {
				return nil, fmt.Errorf("tenant %q: base path %q must start with /", tn.Slug, r.BasePath)
			}
			h.routes = append(h.routes, route[T]{prefix: strings.TrimRight(r.BasePath, "/"), value: r.Value})
		}
		sort.SliceStable(h.routes, func(i, j int) bool { return len(h.routes[i].prefix) > len(h.routes[j].prefix) })
		hosts[i] = h
		t.claim(tn.Slug, tn.Slug+"."+domain, h)
	}
	for i, tn := range tenants {
		for _, d := range tn.Domains {
			t.claim(tn.Slug, d, hosts[i])
		}
	}
	return t, nil
}

// claim serves h at name unless it is too long or taken.
func (t *Table[T]) claim(slug, name string, h *host[T]) {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	switch _, dup := t.hosts[n]; {
	case len(n) > maxHostLen:
		t.skipped = append(t.skipped, fmt.Errorf("tenant %q: host %.40q...: %w", slug, n, ErrHostTooLong))
	case dup:
		t.skipped = append(t.skipped, fmt.Errorf("tenant %q: host %q: %w", slug, n, ErrDuplicateHost))
	default:
		t.hosts[n] = h
	}
}

// Skipped lists the host names Build left out, and why.
func (t *Table[T]) Skipped() []error {
	if t == nil {
		return nil
	}
	return t.skipped
}

// Lookup returns the value of the route for host (a Host header, port
// allowed) and path (the request path without query). tenantFound reports
// whether the host is known, so that callers can tell the two 404s apart.
func (t *Table[T]) Lookup(hostHeader, path []byte) (value T, ok, tenantFound bool) {
	h := t.host(hostHeader)
	if h == nil {
		return value, false, false
	}
	for i := range h.routes {
		r := &h.routes[i]
		if matchPrefix(path, r.prefix) {
			return r.value, true, true
		}
	}
	return value, false, true
}

func (t *Table[T]) host(hostHeader []byte) *host[T] {
	if t == nil || t.hosts == nil {
		return nil
	}
	hb := stripPort(hostHeader)
	if n := len(hb); n > 0 && hb[n-1] == '.' {
		hb = hb[:n-1]
	}
	if len(hb) == 0 || len(hb) > maxHostLen {
		return nil
	}
	var buf [maxHostLen]byte
	for i, c := range hb {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	// The compiler turns a map index with string(bytes) into a lookup that
	// does not allocate.
	return t.hosts[string(buf[:len(hb)])]
}

// stripPort removes ":port" from a host, keeping bracketed IPv6 literals whole.
func stripPort(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' {
		for i := 1; i < len(h); i++ {
			if h[i] == ']' {
				return h[:i+1]
			}
		}
		return h
	}
	for i := len(h) - 1; i >= 0; i-- {
		switch {
		case h[i] == ':':
			return h[:i]
		case h[i] < '0' || h[i] > '9':
			return h
		}
	}
	return h
}

// matchPrefix reports whether prefix (no trailing slash) prefixes path on a
// segment boundary. The empty prefix (base path "/") matches every path.
func matchPrefix(path []byte, prefix string) bool {
	if len(path) < len(prefix) || string(path[:len(prefix)]) != prefix {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/' || prefix == ""
}

// StripPrefix returns path without the base path basePath, as an API with
// strip_base_path forwards it: "/v1/x" under "/v1" becomes "/x", and "/v1"
// becomes "/". The result aliases path or is the constant "/".
func StripPrefix(path []byte, basePath string) []byte {
	prefix := strings.TrimRight(basePath, "/")
	if !matchPrefix(path, prefix) {
		return path
	}
	rest := path[len(prefix):]
	if len(rest) == 0 {
		return slash
	}
	return rest
}

var slash = []byte("/")

// Each calls fn with the value of every route (once per tenant route, even
// when the tenant has several host names).
func (t *Table[T]) Each(fn func(T)) {
	if t == nil {
		return
	}
	seen := map[*host[T]]bool{}
	for _, h := range t.hosts {
		if seen[h] {
			continue
		}
		seen[h] = true
		for i := range h.routes {
			fn(h.routes[i].value)
		}
	}
}
