package proxycfg

import (
	"net/netip"
	"testing"
)

// TestIsPrivateAddr covers the ranges the hardening audit found missing
// (NAT64, 6to4, IPv4-compatible, site-local, benchmarking, reserved) and
// the ones covered before, with public addresses beside them.
func TestIsPrivateAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		addr    string
		private bool
	}{
		{name: "public v4", addr: "93.184.216.34"},
		{name: "public v6", addr: "2606:2800:220:1:248:1893:25c8:1946"},
		{name: "loopback", addr: "127.0.0.1", private: true},
		{name: "rfc1918", addr: "10.1.2.3", private: true},
		{name: "link-local metadata", addr: "169.254.169.254", private: true},
		{name: "alibaba metadata", addr: "100.100.100.200", private: true},
		{name: "cgnat", addr: "100.64.0.1", private: true},
		{name: "this network", addr: "0.1.2.3", private: true},
		{name: "multicast v4", addr: "224.0.0.1", private: true},
		{name: "multicast v6", addr: "ff0e::1", private: true},
		{name: "unspecified", addr: "::", private: true},
		{name: "v4-mapped loopback", addr: "::ffff:127.0.0.1", private: true},
		{name: "benchmarking", addr: "198.18.0.1", private: true},
		{name: "benchmarking upper", addr: "198.19.255.254", private: true},
		{name: "after benchmarking", addr: "198.20.0.1"},
		{name: "reserved", addr: "240.0.0.1", private: true},
		{name: "broadcast", addr: "255.255.255.255", private: true},
		{name: "ietf protocol assignments", addr: "192.0.0.170", private: true},
		{name: "ipv4-compatible loopback", addr: "::7f00:1", private: true},
		{name: "ipv4-compatible public", addr: "::5db8:d822", private: true},
		{name: "site-local", addr: "fec0::1", private: true},
		{name: "unique local", addr: "fd12:3456::1", private: true},
		{name: "aws imds v6", addr: "fd00:ec2::254", private: true},
		{name: "nat64 of loopback", addr: "64:ff9b::7f00:1", private: true},
		{name: "nat64 of metadata", addr: "64:ff9b::a9fe:a9fe", private: true},
		{name: "nat64 of rfc1918", addr: "64:ff9b::a01:203", private: true},
		{name: "nat64 of public", addr: "64:ff9b::5db8:d822"},
		{name: "local-use nat64", addr: "64:ff9b:1::5db8:d822", private: true},
		{name: "6to4 of loopback", addr: "2002:7f00:1::1", private: true},
		{name: "6to4 of rfc1918", addr: "2002:c0a8:101::1", private: true},
		{name: "6to4 of public", addr: "2002:5db8:d822::1"},
		{name: "teredo", addr: "2001:0:4136:e378:8000:63bf:3fff:fdd2", private: true},
		{name: "documentation v6", addr: "2001:db8::1", private: true},
		{name: "discard-only", addr: "100::1", private: true},
		{name: "invalid", addr: "", private: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ip netip.Addr
			if tc.addr != "" {
				ip = netip.MustParseAddr(tc.addr)
			}
			if got := IsPrivateAddr(ip); got != tc.private {
				t.Fatalf("IsPrivateAddr(%s) = %v, want %v", tc.addr, got, tc.private)
			}
		})
	}
}
