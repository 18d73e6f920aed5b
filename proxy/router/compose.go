package router

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tollgate/tollgate/proxy/cowmap"
)

// The parts of a Table for a runtime composed tenant by tenant: Prefixes
// are one tenant's APIs by base path, built with the tenant; Hosts maps
// host names to a value per tenant (for example its Prefixes), and its next
// version changes the hosts of the tenants that changed only, sharing the
// rest with the version before (cowmap).

// Prefixes are one tenant's routes by base path, longest first. They are
// never changed after NewPrefixes; lookups need no locks and do not
// allocate.
type Prefixes[T any] struct {
	routes []route[T]
}

// NewPrefixes compiles a tenant's routes. Base paths must start with "/".
func NewPrefixes[T any](routes []Route[T]) (*Prefixes[T], error) {
	p := &Prefixes[T]{routes: make([]route[T], 0, len(routes))}
	for _, r := range routes {
		if !strings.HasPrefix(r.BasePath, "/") {
			return nil, fmt.Errorf("base path %q must start with /", r.BasePath)
		}
		p.routes = append(p.routes, route[T]{prefix: strings.TrimRight(r.BasePath, "/"), value: r.Value})
	}
	sort.SliceStable(p.routes, func(i, j int) bool { return len(p.routes[i].prefix) > len(p.routes[j].prefix) })
	return p, nil
}

// Lookup returns the value of the longest base path that prefixes path on
// a segment boundary.
func (p *Prefixes[T]) Lookup(path []byte) (value T, ok bool) {
	if p == nil {
		return value, false
	}
	for i := range p.routes {
		r := &p.routes[i]
		if matchPrefix(path, r.prefix) {
			return r.value, true
		}
	}
	return value, false
}

// Each calls fn with the value of every route.
func (p *Prefixes[T]) Each(fn func(T)) {
	if p == nil {
		return
	}
	for i := range p.routes {
		fn(p.routes[i].value)
	}
}

// Hosts maps host names, in the form HostName gives them, to values. A
// Hosts in use is never changed: a new config edits a new version of it
// (Edit), which shares every part the edit does not touch (cowmap), so that
// a change of one tenant's host names costs in proportion to it.
type Hosts[V any] struct {
	m cowmap.Map[V]
}

// Lookup returns the value of a Host header's host (port allowed, any case,
// a trailing dot ignored). It does not allocate.
func (h Hosts[V]) Lookup(hostHeader []byte) (value V, ok bool) {
	hb := stripPort(hostHeader)
	if n := len(hb); n > 0 && hb[n-1] == '.' {
		hb = hb[:n-1]
	}
	if len(hb) == 0 || len(hb) > maxHostLen {
		return value, false
	}
	var buf [maxHostLen]byte
	for i, c := range hb {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return h.m.GetBytes(buf[:len(hb)])
}

// Len is the number of host names.
func (h Hosts[V]) Len() int { return h.m.Len() }

// Edit starts the next version of h: Set and Delete take host names in the
// form HostName gives them.
func (h Hosts[V]) Edit() HostsEdit[V] { return HostsEdit[V]{h.m.Edit()} }

// HostsEdit makes the next version of a Hosts.
type HostsEdit[V any] struct {
	*cowmap.Edit[V]
}

// Hosts ends the edit and returns the new version.
func (e HostsEdit[V]) Hosts() Hosts[V] { return Hosts[V]{e.Map()} }

// HostName is the key of a configured host name in Hosts: lower case,
// without a trailing dot. A name longer than a host can be is an error
// (ErrHostTooLong).
func HostName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	if len(n) > maxHostLen || n == "" {
		return "", fmt.Errorf("host %.40q: %w", n, ErrHostTooLong)
	}
	return n, nil
}

// PlatformHost is a tenant's host name under the proxy domain:
// <slug>.<domain>, as HostName gives it.
func PlatformHost(slug, domain string) (string, error) {
	return HostName(slug + "." + strings.Trim(domain, "."))
}
