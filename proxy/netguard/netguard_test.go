package netguard

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestDialer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	tests := []struct {
		name         string
		allowPrivate bool
		addr         string
		wantPrivate  bool
	}{
		{name: "loopback refused", addr: ln.Addr().String(), wantPrivate: true},
		{name: "localhost name refused", addr: net.JoinHostPort("localhost", port), wantPrivate: true},
		{name: "metadata refused", addr: "169.254.169.254:80", wantPrivate: true},
		{name: "loopback allowed", allowPrivate: true, addr: ln.Addr().String()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := &Dialer{AllowPrivate: tc.allowPrivate}
			c, err := d.DialContext(context.Background(), "tcp", tc.addr)
			if tc.wantPrivate {
				if !errors.Is(err, ErrPrivateAddr) {
					t.Fatalf("err = %v, want ErrPrivateAddr", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c.Close()
		})
	}
}
