package worker

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/tlsstore"
)

// selfSigned writes a certificate for names into dir and returns a pool
// trusting it.
func selfSigned(t *testing.T, dir string, names ...string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	_ = os.WriteFile(filepath.Join(dir, names[0]+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(filepath.Join(dir, names[0]+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// frontAddrs are the fronts of a worker started by startFronts.
type frontAddrs struct {
	secure, h2c string
	// pool trusts the TLS front's certificate for api.acme.test.
	pool *x509.CertPool
}

// startFronts starts a worker with its TLS and h2c fronts, serving tenant
// acme (custom domain api.acme.test) from backend b1.
func startFronts(t *testing.T) frontAddrs {
	t.Helper()
	b := backend(t, "b1")
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, &proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: 1, Tenants: []proxycfg.Tenant{{
		ID: "t-acme", Slug: "acme", Domains: []string{"api.acme.test"},
		Upstreams: []proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: b.URL, Weight: 1}}}},
		APIs:      []proxycfg.API{{ID: "a", Slug: "a", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}},
	}}})
	dir := t.TempDir()
	pool := selfSigned(t, dir, "api.acme.test")
	secure, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h2c, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := e.startWith(t, func(o *Options) {
		o.SecureListener, o.H2CListener = secure, h2c
		o.Certificates = tlsstore.New(dir, 50*time.Millisecond, nil)
	})
	r.waitReady(t, 1)
	return frontAddrs{secure: secure.Addr().String(), h2c: h2c.Addr().String(), pool: pool}
}

func TestHTTP2Fronts(t *testing.T) {
	t.Parallel()
	f := startFronts(t)

	var h2cProto http.Protocols
	h2cProto.SetUnencryptedHTTP2(true)
	var tlsProto http.Protocols
	tlsProto.SetHTTP2(true)
	tests := []struct {
		name      string
		url       string
		host      string
		transport *http.Transport
		wantProto string
		wantTLS   bool
	}{
		{name: "h2c", url: "http://" + f.h2c + "/x", host: "acme.localhost",
			transport: &http.Transport{Protocols: &h2cProto}, wantProto: "HTTP/2.0"},
		{name: "h2 over tls with the tenant's custom domain certificate", url: "https://api.acme.test/x",
			transport: &http.Transport{Protocols: &tlsProto, TLSClientConfig: &tls.Config{RootCAs: f.pool},
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, f.secure)
				}}, wantProto: "HTTP/2.0", wantTLS: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &http.Client{Transport: tc.transport, Timeout: 10 * time.Second}
			defer tc.transport.CloseIdleConnections()
			req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
			if tc.host != "" {
				req.Host = tc.host
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || resp.Proto != tc.wantProto {
				t.Fatalf("status %d proto %s body %s", resp.StatusCode, resp.Proto, body)
			}
			var got echo
			if err := json.Unmarshal(body, &got); err != nil || got.Backend != "b1" {
				t.Fatalf("backend answer %s: %v", body, err)
			}
			proto := http.Header(got.Header).Get("X-Forwarded-Proto")
			if tc.wantTLS != (proto == "https") {
				t.Fatalf("X-Forwarded-Proto %q", proto)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Fatal("no request id on the front's answer")
			}
		})
	}
	// An unknown server name gets no certificate.
	conn, err := tls.Dial("tcp", f.secure, &tls.Config{ServerName: "evil.test", RootCAs: f.pool})
	if err == nil {
		conn.Close()
		t.Fatal("TLS handshake for an unknown name succeeded")
	}
}

// h2Conn is a raw HTTP/2 client connection to a front, for what clients
// built on net/http never send.
type h2Conn struct {
	t      *testing.T
	c      net.Conn
	fr     *http2.Framer
	enc    *hpack.Encoder
	blk    bytes.Buffer
	scheme string
}

// dialH2 opens an HTTP/2 connection to the TLS front (secure) or the h2c
// front and exchanges SETTINGS.
func dialH2(t *testing.T, f frontAddrs, secure bool) *h2Conn {
	t.Helper()
	h := &h2Conn{t: t, scheme: "http"}
	if secure {
		tc, err := tls.Dial("tcp", f.secure, &tls.Config{ServerName: "api.acme.test", RootCAs: f.pool, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("ALPN chose %q", p)
		}
		h.c, h.scheme = tc, "https"
	} else {
		c, err := net.Dial("tcp", f.h2c)
		if err != nil {
			t.Fatal(err)
		}
		h.c = c
	}
	t.Cleanup(func() { h.c.Close() })
	_ = h.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(h.c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	h.fr = http2.NewFramer(h.c, h.c)
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.enc = hpack.NewEncoder(&h.blk)
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var sawSettings, sawAck bool
	for !sawSettings || !sawAck {
		sf, ok := h.read().(*http2.SettingsFrame)
		if !ok {
			continue
		}
		if sf.IsAck() {
			sawAck = true
			continue
		}
		sawSettings = true
		if err := h.fr.WriteSettingsAck(); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// read returns the next frame; the connection's end fails the test.
func (h *h2Conn) read() http2.Frame {
	h.t.Helper()
	f, err := h.fr.ReadFrame()
	if err != nil {
		h.t.Fatalf("reading a frame: %v", err)
	}
	return f
}

// until reads frames until match returns true for one, and returns it.
func (h *h2Conn) until(what string, match func(http2.Frame) bool) http2.Frame {
	h.t.Helper()
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

// get sends GET /x on stream with extra header fields (name, value pairs),
// all in one HEADERS frame, or in two when split.
func (h *h2Conn) get(stream uint32, split bool, extra ...string) {
	h.t.Helper()
	h.blk.Reset()
	fields := append([]string{":method", "GET", ":scheme", h.scheme, ":path", "/x", ":authority", "api.acme.test"}, extra...)
	for i := 0; i < len(fields); i += 2 {
		_ = h.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	b := h.blk.Bytes()
	var err error
	if split {
		if err = h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: b[:len(b)/2], EndStream: true}); err == nil {
			err = h.fr.WriteContinuation(stream, true, b[len(b)/2:])
		}
	} else {
		err = h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: b, EndStream: true, EndHeaders: true})
	}
	if err != nil {
		h.t.Fatal(err)
	}
}

// wantStatus waits for the response headers of stream.
func (h *h2Conn) wantStatus(stream uint32, status string) {
	h.t.Helper()
	f := h.until("response headers", func(f http2.Frame) bool {
		if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.StreamID == stream {
			h.t.Fatalf("stream %d reset: %v", stream, rst.ErrCode)
		}
		mh, ok := f.(*http2.MetaHeadersFrame)
		return ok && mh.StreamID == stream
	})
	if got := f.(*http2.MetaHeadersFrame).PseudoValue("status"); got != status {
		h.t.Fatalf("stream %d: status %s, want %s", stream, got, status)
	}
}

// wantReset waits for RST_STREAM on stream and checks its code.
func (h *h2Conn) wantReset(stream uint32, code http2.ErrCode) {
	h.t.Helper()
	f := h.until("RST_STREAM", func(f http2.Frame) bool {
		if mh, ok := f.(*http2.MetaHeadersFrame); ok && mh.StreamID == stream {
			h.t.Fatalf("stream %d answered %s, want RST_STREAM %v", stream, mh.PseudoValue("status"), code)
		}
		rst, ok := f.(*http2.RSTStreamFrame)
		return ok && rst.StreamID == stream
	})
	if got := f.(*http2.RSTStreamFrame).ErrCode; got != code {
		h.t.Fatalf("stream %d reset with %v, want %v", stream, got, code)
	}
}

// TestHTTP2FrontConformance holds the h2spec cases Go's HTTP/2 server
// fails on its own (bench/h2spec.sh runs all of them), on both fronts.
func TestHTTP2FrontConformance(t *testing.T) {
	t.Parallel()
	f := startFronts(t)
	tests := []struct {
		name string
		run  func(t *testing.T, h *h2Conn)
	}{
		{name: "4.2/3 a HEADERS frame over SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR", run: func(t *testing.T, h *h2Conn) {
			if err := h.fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, 1,
				make([]byte, h2MaxFrameSize+1)); err != nil {
				t.Fatal(err)
			}
			ga := h.until("GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
			if ga.ErrCode != http2.ErrCodeFrameSize {
				t.Fatalf("GOAWAY %v", ga.ErrCode)
			}
		}},
		{name: "6.5.3/1 SETTINGS_INITIAL_WINDOW_SIZE twice in one frame: the last applies", run: func(t *testing.T, h *h2Conn) {
			if err := h.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100},
				http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}); err != nil {
				t.Fatal(err)
			}
			h.until("SETTINGS ACK", func(f http2.Frame) bool { sf, ok := f.(*http2.SettingsFrame); return ok && sf.IsAck() })
			h.get(1, false)
			h.wantStatus(1, "200")
			df := h.until("DATA", func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok }).(*http2.DataFrame)
			if n := len(df.Data()); n != 1 {
				t.Fatalf("first DATA frame of %d bytes, want 1 (the stream window)", n)
			}
		}},
		{name: "8.1.2.2/1 a connection-specific field is a stream error; the connection goes on", run: func(t *testing.T, h *h2Conn) {
			h.get(1, false, "x-seen", "before")
			h.wantStatus(1, "200")
			h.get(3, false, "x-seen", "before", "connection", "keep-alive")
			h.wantReset(3, http2.ErrCodeProtocol)
			// Split over CONTINUATION, with the dynamic table in use.
			h.get(5, true, "x-seen", "before", "upgrade", "h2c")
			h.wantReset(5, http2.ErrCodeProtocol)
			h.get(7, true, "x-seen", "before")
			h.wantStatus(7, "200")
		}},
		{name: "8.1.2.2/2 TE other than trailers is a stream error", run: func(t *testing.T, h *h2Conn) {
			h.get(1, false, "te", "gzip")
			h.wantReset(1, http2.ErrCodeProtocol)
			h.get(3, false, "te", "trailers")
			h.wantStatus(3, "200")
		}},
	}
	for _, front := range []string{"tls", "h2c"} {
		for _, tc := range tests {
			t.Run(front+"/"+tc.name, func(t *testing.T) {
				tc.run(t, dialH2(t, f, front == "tls"))
			})
		}
	}

	// 3.5/2: the h2c front ends a connection that opens with neither the
	// HTTP/2 preface nor an HTTP/1.x request line without an answer, and
	// still serves HTTP/1.1.
	t.Run("h2c/3.5/2 a bad preface ends the connection unanswered", func(t *testing.T) {
		c, err := net.Dial("tcp", f.h2c)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "INVALID CONNECTION PREFACE\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if len(got) > 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
			t.Fatalf("answered %q, %v; want the connection closed", got, err)
		}
	})
	t.Run("h2c/HTTP/1.1 on the h2c port", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+f.h2c+"/x", nil)
		req.Host = "api.acme.test"
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" {
			t.Fatalf("status %d proto %s", resp.StatusCode, resp.Proto)
		}
	})
}
