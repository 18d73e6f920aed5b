// Package netguard dials upstream targets with the SSRF policy applied at
// dial time: the host is resolved and every address that would reach the
// platform's own network (proxycfg.IsPrivateAddr) is refused unless private
// upstreams are allowed. Checking the resolved address at dial time, not the
// configured name, defeats DNS names that point inside.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// ErrPrivateAddr is returned (wrapped) when every address of a target is
// refused by the SSRF policy.
var ErrPrivateAddr = errors.New("upstream address is private and private upstreams are not allowed")

// Dialer dials TCP connections to upstream targets.
type Dialer struct {
	// AllowPrivate turns the SSRF guard off (dev and tests).
	AllowPrivate bool
	// Timeout bounds resolving and connecting; 0 means 5s.
	Timeout time.Duration
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

// DialContext connects to addr ("host:port") over network, refusing private
// addresses unless d.AllowPrivate. It fits net/http.Transport.DialContext.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		r := d.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		addrs, err = r.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
	}
	var nd net.Dialer
	var lastErr error
	refused := 0
	for _, ip := range addrs {
		if !d.AllowPrivate && proxycfg.IsPrivateAddr(ip) {
			refused++
			continue
		}
		c, err := nd.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	if lastErr == nil && refused > 0 {
		return nil, fmt.Errorf("dial %s: %w", addr, ErrPrivateAddr)
	}
	if lastErr == nil {
		return nil, fmt.Errorf("dial %s: no addresses", addr)
	}
	return nil, fmt.Errorf("dial %s: %w", addr, lastErr)
}

// Dial connects to addr over TCP. It fits fasthttp.HostClient.Dial.
func (d *Dialer) Dial(addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), "tcp", addr)
}

// DialTimeout connects to addr over TCP within timeout (bounded by
// d.Timeout too). It fits fasthttp.HostClient.DialTimeout, which passes the
// time left of the request.
func (d *Dialer) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, "tcp", addr)
}
