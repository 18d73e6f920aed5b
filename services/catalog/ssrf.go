package catalog

import (
	"context"
	"net/netip"
	"net/url"
	"strings"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// errPrivateTarget is the user-facing reason for refusing a target.
type errPrivateTarget struct{ msg string }

func (e errPrivateTarget) Error() string { return e.msg }

// checkTargetHost refuses a target whose host is, or resolves to, an address
// of the platform's own network (proxycfg.IsPrivateAddr), unless private
// upstreams are allowed. A name that does not resolve now is accepted: the
// proxy applies the same rule when it dials, which also covers DNS rebinding.
func (s *Service) checkTargetHost(ctx context.Context, u *url.URL) error {
	if s.AllowPrivateUpstreams {
		return nil
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return errPrivateTarget{"must not point at localhost (private upstreams are disabled on this platform)"}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if proxycfg.IsPrivateAddr(ip) {
			return errPrivateTarget{"must not point at a loopback, private, link-local or metadata address (" +
				ip.String() + "); private upstreams are disabled on this platform"}
		}
		return nil
	}
	addrs, err := s.lookup(ctx, host)
	if err != nil {
		// Unresolvable now (not yet in DNS, or the resolver timed out): the
		// dial-time check in the proxy still guards it.
		return nil
	}
	for _, a := range addrs {
		if proxycfg.IsPrivateAddr(a) {
			return errPrivateTarget{"host " + host + " resolves to " + a.Unmap().String() +
				", a loopback, private, link-local or metadata address; private upstreams are disabled on this platform"}
		}
	}
	return nil
}
