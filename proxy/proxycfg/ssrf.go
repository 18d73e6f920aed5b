package proxycfg

import "net/netip"

// privateRanges are addresses that are not a tenant's public backend and
// that the standard library's predicates (loopback, private, link-local,
// multicast, unspecified) do not cover: special-purpose ranges that are not
// globally reachable (IANA special-purpose registries) and cloud metadata
// endpoints.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),      // carrier-grade NAT, never a public backend
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud metadata
	netip.MustParsePrefix("192.0.0.0/24"),       // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),      // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),        // reserved, and the broadcast address
	netip.MustParsePrefix("::/96"),              // IPv4-compatible (deprecated): ::7f00:1 is 127.0.0.1 to some stacks
	netip.MustParsePrefix("64:ff9b:1::/48"),     // local-use NAT64 (RFC 8215): translates into the operator's network
	netip.MustParsePrefix("100::/64"),           // discard-only
	netip.MustParsePrefix("2001::/32"),          // Teredo: a tunnel to an IPv4 address in disguise
	netip.MustParsePrefix("2001:2::/48"),        // benchmarking
	netip.MustParsePrefix("2001:db8::/32"),      // documentation
	netip.MustParsePrefix("fec0::/10"),          // site-local (deprecated, still routed by some networks)
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS IMDS over IPv6 (also in fc00::/7)
}

// Prefixes whose addresses embed an IPv4 address that decides.
var (
	nat64 = netip.MustParsePrefix("64:ff9b::/96") // well-known NAT64: the last 32 bits
	sixTo = netip.MustParsePrefix("2002::/16")    // 6to4: bits 16..47
)

// IsPrivateAddr reports whether an upstream target at ip would reach the
// platform's own network rather than a tenant's public backend: loopback,
// private, link-local, unspecified, multicast, a special-purpose range that
// is not globally reachable, a metadata address, or an IPv6 address that
// embeds such an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96, 6to4). Both
// the management API (when a target is saved) and the proxy (when it dials)
// refuse such addresses unless the operator allows private upstreams; they
// share this function so that they can never disagree.
func IsPrivateAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return true
	}
	for _, p := range privateRanges {
		if p.Contains(ip) {
			return true
		}
	}
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip):
			return IsPrivateAddr(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case sixTo.Contains(ip):
			return IsPrivateAddr(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
	}
	return false
}
