package catalog

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestCheckBasePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		path string
		ok   bool
	}{
		{"root", "/", true},
		{"simple", "/orders", true},
		{"nested", "/v1/orders-api_2.x~", true},
		{"empty", "", false},
		{"relative", "orders", false},
		{"trailing slash", "/orders/", false},
		{"dotdot", "/a/../b", false},
		{"dot", "/a/./b", false},
		{"double slash", "//a", false},
		{"query", "/a?b", false},
		{"space", "/a b", false},
		{"percent", "/a%2e", false},
		{"too long", "/" + strings.Repeat("a", 300), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if msg := checkBasePath(tc.path); (msg == "") != tc.ok {
				t.Fatalf("checkBasePath(%q) = %q", tc.path, msg)
			}
		})
	}
}

func TestParseTargetURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
		ok   bool
	}{
		{"http", "http://example.com", true},
		{"https port path", "https://example.com:8443/base", true},
		{"ftp", "ftp://example.com", false},
		{"no host", "http://", false},
		{"credentials", "http://u:p@example.com", false},
		{"query", "http://example.com/?a=1", false},
		{"port zero", "http://example.com:0", false},
		{"port too big", "http://example.com:70000", false},
		{"empty", "", false},
		{"garbage", "::", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, msg := parseTargetURL(tc.url); (msg == "") != tc.ok {
				t.Fatalf("parseTargetURL(%q) = %q", tc.url, msg)
			}
		})
	}
}

func TestCheckTargetHostResolves(t *testing.T) {
	t.Parallel()
	s := &Service{LookupNetIP: func(_ context.Context, _, host string) ([]netip.Addr, error) {
		switch host {
		case "internal.example":
			return []netip.Addr{netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.0.0.7")}, nil
		case "public.example":
			return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
		}
		return nil, errors.New("no such host")
	}}
	tests := []struct {
		name  string
		url   string
		allow bool
		ok    bool
	}{
		{"any private address refuses", "http://internal.example", false, false},
		{"public name", "http://public.example", false, true},
		{"unresolvable is left to the proxy", "http://nowhere.example", false, true},
		{"allowed private", "http://internal.example", true, true},
		{"allowed loopback", "http://127.0.0.1", true, true},
		{"trailing dot localhost", "http://localhost.", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := *s
			s.AllowPrivateUpstreams = tc.allow
			u, _ := url.Parse(tc.url)
			if err := s.checkTargetHost(context.Background(), u); (err == nil) != tc.ok {
				t.Fatalf("checkTargetHost(%s) = %v", tc.url, err)
			}
		})
	}
}
