package clientip_test

import (
	"net/http/httptest"
	"testing"

	"github.com/tollgate/tollgate/services/clientip"
)

func TestFrom(t *testing.T) {
	t.Parallel()
	trusted, err := clientip.Parse("10.0.0.0/8, 192.168.1.5 fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		trusted clientip.Trusted
		peer    string
		xff     []string
		want    string
	}{
		{name: "no proxies trusted: the peer", peer: "10.1.2.3:5000", xff: []string{"203.0.113.9"}, want: "10.1.2.3"},
		{name: "untrusted peer's header ignored", trusted: trusted, peer: "198.51.100.7:5000", xff: []string{"203.0.113.9"}, want: "198.51.100.7"},
		{name: "trusted peer: the client it saw", trusted: trusted, peer: "10.1.2.3:5000", xff: []string{"203.0.113.9"}, want: "203.0.113.9"},
		{name: "spoofed left entries ignored", trusted: trusted, peer: "10.1.2.3:5000", xff: []string{"1.1.1.1, 203.0.113.9"}, want: "203.0.113.9"},
		{name: "chain of trusted proxies", trusted: trusted, peer: "10.1.2.3:5000", xff: []string{"1.1.1.1, 203.0.113.9, 192.168.1.5, 10.9.9.9"}, want: "203.0.113.9"},
		{name: "several header lines", trusted: trusted, peer: "10.1.2.3:5000", xff: []string{"1.1.1.1", "203.0.113.9, 10.0.0.2"}, want: "203.0.113.9"},
		{name: "garbage stops the walk", trusted: trusted, peer: "10.1.2.3:5000", xff: []string{"evil, 10.0.0.9"}, want: "10.0.0.9"},
		{name: "no header: the proxy", trusted: trusted, peer: "10.1.2.3:5000", want: "10.1.2.3"},
		{name: "IPv6 with brackets and port", trusted: trusted, peer: "[fd00::1]:443", xff: []string{"[2001:db8::7]:1234"}, want: "2001:db8::7"},
		{name: "IPv4-mapped peer", trusted: trusted, peer: "[::ffff:10.1.2.3]:80", xff: []string{"203.0.113.9"}, want: "203.0.113.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := tc.trusted.From(r); got != tc.want {
				t.Errorf("From = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"10.0.0.0/33", "not-an-ip", "10.0.0.1/8/8"} {
		if _, err := clientip.Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	tr, err := clientip.Parse(" 10.0.0.1/8 ,2001:db8::1 ")
	if err != nil || tr.String() != "10.0.0.0/8,2001:db8::1/128" {
		t.Errorf("Parse = %q, %v", tr.String(), err)
	}
	if tr, err := clientip.Parse(""); err != nil || tr.String() != "" {
		t.Errorf("empty: %q, %v", tr.String(), err)
	}
}

func TestBucket(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"not an address":       "not an address",
	} {
		if got := clientip.Bucket(in); got != want {
			t.Errorf("Bucket(%q) = %q, want %q", in, got, want)
		}
	}
}
