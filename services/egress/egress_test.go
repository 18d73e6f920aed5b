package egress_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/egress"
)

// publicLoopback treats 127.0.0.1 as a public address (where the tests'
// "internet" servers listen) and everything else private as private, so
// that 127.0.0.2 stands for an internal service.
func publicLoopback(a netip.Addr) bool {
	return a != netip.MustParseAddr("127.0.0.1") && proxycfg.IsPrivateAddr(a)
}

// internal is a server on 127.0.0.2 (an "internal" address) that counts the
// requests reaching it.
func internal(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "secret")
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestClient(t *testing.T) {
	t.Parallel()
	inside, hits := internal(t)
	big := strings.Repeat("x", 2048)
	pub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-inside":
			http.Redirect(w, r, inside.URL+"/", http.StatusFound)
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/big":
			_, _ = io.WriteString(w, big)
		case "/big-chunked":
			w.(http.Flusher).Flush() // no Content-Length
			_, _ = io.WriteString(w, big)
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(pub.Close)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, pub.URL+"/", http.StatusFound) // https -> http
	}))
	t.Cleanup(tlsSrv.Close)

	guarded := egress.Options{AllowHTTP: true, Refuse: publicLoopback, MaxResponseBytes: 1024}
	dev := egress.Options{AllowPrivate: true, AllowHTTP: true}
	for _, tc := range []struct {
		name    string
		o       egress.Options
		url     string
		wantErr error
		want    string
	}{
		{name: "public", o: guarded, url: pub.URL + "/", want: "ok"},
		{name: "internal address", o: guarded, url: inside.URL + "/", wantErr: egress.ErrPrivateAddr},
		{name: "metadata address", o: guarded, url: "http://169.254.169.254/latest/meta-data/", wantErr: egress.ErrPrivateAddr},
		{name: "localhost name", o: guarded, url: "http://localhost:1/", wantErr: egress.ErrPrivateAddr},
		{name: "IPv4-mapped loopback", o: guarded, url: "http://[::ffff:127.0.0.2]:1/", wantErr: egress.ErrPrivateAddr},
		{name: "redirect to an internal address", o: guarded, url: pub.URL + "/to-inside", wantErr: egress.ErrPrivateAddr},
		{name: "redirect to metadata", o: guarded, url: pub.URL + "/to-metadata", wantErr: egress.ErrPrivateAddr},
		{name: "redirect loop", o: guarded, url: pub.URL + "/loop", wantErr: egress.ErrRedirect},
		{name: "https down to http", o: egress.Options{AllowHTTP: true, Refuse: publicLoopback, TLS: tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig},
			url: tlsSrv.URL + "/", wantErr: egress.ErrRedirect},
		{name: "http without AllowHTTP", o: egress.Options{Refuse: publicLoopback}, url: pub.URL + "/", wantErr: egress.ErrScheme},
		{name: "other scheme", o: guarded, url: "file:///etc/passwd", wantErr: egress.ErrScheme},
		{name: "credentials in the URL", o: guarded, url: strings.Replace(pub.URL, "://", "://u:p@", 1) + "/", wantErr: egress.ErrScheme},
		{name: "announced body too large", o: guarded, url: pub.URL + "/big", wantErr: egress.ErrTooLarge},
		{name: "streamed body too large", o: guarded, url: pub.URL + "/big-chunked", wantErr: egress.ErrTooLarge},
		{name: "dev mode reaches internal addresses", o: dev, url: inside.URL + "/", want: "secret"},
		{name: "dev mode follows redirects inside", o: dev, url: pub.URL + "/to-inside", want: "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			resp, err := egress.New(tc.o).Get(tc.url)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if hits.Load() != before {
					t.Errorf("the internal server was reached")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != tc.want {
				t.Errorf("body %q, want %q", body, tc.want)
			}
		})
	}
}

// TestDefaultRefusesLoopback: the zero Options are the production policy.
func TestDefaultRefusesLoopback(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	c := egress.New(egress.Options{TLS: srv.Client().Transport.(*http.Transport).TLSClientConfig})
	if _, err := c.Get(srv.URL); !errors.Is(err, egress.ErrPrivateAddr) {
		t.Fatalf("err = %v, want ErrPrivateAddr", err)
	}
}

// TestDialTimeCheck: a name that resolves to an internal address is refused
// when connecting (no literal address in the URL to check beforehand), as a
// name rebound to an internal address between two lookups would be.
func TestDialTimeCheck(t *testing.T) {
	t.Parallel()
	inside, hits := internal(t)
	_, port, _ := net.SplitHostPort(inside.Listener.Addr().String())
	res := fakeDNS(t, netip.MustParseAddr("127.0.0.2"))
	for _, tc := range []struct {
		name string
		o    egress.Options
		ok   bool
	}{
		{name: "guarded", o: egress.Options{AllowHTTP: true, Refuse: publicLoopback, Resolver: res}},
		{name: "dev", o: egress.Options{AllowHTTP: true, AllowPrivate: true, Resolver: res}, ok: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			resp, err := egress.New(tc.o).Get("http://idp.rebind.test:" + port + "/")
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return
			}
			if !errors.Is(err, egress.ErrPrivateAddr) {
				t.Fatalf("err = %v, want ErrPrivateAddr", err)
			}
			if hits.Load() != before {
				t.Errorf("the internal server was reached")
			}
		})
	}
}

// fakeDNS is a resolver whose server answers every A question with addr
// (and AAAA questions with nothing).
func fakeDNS(t *testing.T, addr netip.Addr) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			q := buf[12:n] // one question: name, type, class
			end := 0
			for end < len(q) && q[end] != 0 {
				end += int(q[end]) + 1
			}
			if end+5 > len(q) {
				continue
			}
			q = q[:end+5]
			qtype := uint16(q[end+1])<<8 | uint16(q[end+2])
			resp := append([]byte{buf[0], buf[1], 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0}, q...)
			if qtype == 1 {
				resp[7] = 1 // ANCOUNT
				a := addr.As4()
				resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, a[0], a[1], a[2], a[3])
			}
			_, _ = pc.WriteTo(resp, from)
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}
