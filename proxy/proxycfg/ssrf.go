package proxycfg

import "net/netip"

// metadataAddrs are cloud instance-metadata endpoints that are not covered by
// the private and link-local ranges (169.254.169.254 is link-local already).
var metadataAddrs = []netip.Prefix{
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS IMDS over IPv6
	netip.MustParsePrefix("100.64.0.0/10"),      // carrier-grade NAT, never a public backend
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network"
}

// IsPrivateAddr reports whether an upstream target at ip would reach the
// platform's own network rather than a tenant's public backend: loopback,
// private, link-local, unspecified, multicast or a metadata address. Both the
// management API (when a target is saved) and the proxy (when it dials) refuse
// such addresses unless the operator allows private upstreams; they share this
// function so that they can never disagree.
func IsPrivateAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return true
	}
	for _, p := range metadataAddrs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
