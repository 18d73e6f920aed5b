// Package clientip tells who a request to the control plane comes from when
// load balancers or ingress proxies stand in between: it believes the
// X-Forwarded-For header only from peers the operator names as trusted
// proxies (TOLLGATE_TRUSTED_PROXIES), and takes the right-most address that
// is not one of them, the first hop a trusted proxy saw. Anything a client
// writes into the header itself stays to the left of that and is ignored.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Trusted is a set of proxy networks whose X-Forwarded-For is believed. The
// zero value trusts no one: the client is the TCP peer.
type Trusted struct {
	nets []netip.Prefix
}

// Parse reads a list of CIDRs or single addresses separated by commas or
// spaces, such as "10.0.0.0/8, 192.168.0.10, fd00::/8". "" trusts no one.
func Parse(s string) (Trusted, error) {
	var t Trusted
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return Trusted{}, fmt.Errorf("trusted proxy %q: not a CIDR such as 10.0.0.0/8", f)
			}
			t.nets = append(t.nets, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return Trusted{}, fmt.Errorf("trusted proxy %q: not an address or CIDR", f)
		}
		a = a.Unmap()
		t.nets = append(t.nets, netip.PrefixFrom(a, a.BitLen()))
	}
	return t, nil
}

// String lists the trusted networks.
func (t Trusted) String() string {
	s := make([]string, len(t.nets))
	for i, p := range t.nets {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (t Trusted) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t.nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// From returns the client address of r: the TCP peer, or, when the peer is
// a trusted proxy, the right-most X-Forwarded-For address that is not
// trusted (the left-most valid one when all are, the last valid one seen
// when a malformed entry stops the walk).
func (t Trusted) From(r *http.Request) string {
	peer, ok := parseHost(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if !t.trusts(peer) {
		return peer.String()
	}
	client := peer
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, ok := parseHost(strings.TrimSpace(parts[j]))
			if !ok {
				return client.String()
			}
			client = a
			if !t.trusts(a) {
				return a.String()
			}
		}
	}
	return client.String()
}

// parseHost reads an address with or without a port ("192.0.2.1",
// "192.0.2.1:1234", "[2001:db8::1]:443", "2001:db8::1").
func parseHost(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(h); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// Bucket is the throttling subject of a client address: IPv6 addresses are
// grouped by their /64 (what one customer line usually gets), so that one
// client cannot rotate through its own addresses to escape a limit.
func Bucket(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is6() || a.Is4In6() {
		return addr
	}
	p, _ := a.Prefix(64)
	return p.String()
}
