package worker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

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

func TestHTTP2Fronts(t *testing.T) {
	t.Parallel()
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
		{name: "h2c", url: "http://" + h2c.Addr().String() + "/x", host: "acme.localhost",
			transport: &http.Transport{Protocols: &h2cProto}, wantProto: "HTTP/2.0"},
		{name: "h2 over tls with the tenant's custom domain certificate", url: "https://api.acme.test/x",
			transport: &http.Transport{Protocols: &tlsProto, TLSClientConfig: &tls.Config{RootCAs: pool},
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, secure.Addr().String())
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
	conn, err := tls.Dial("tcp", secure.Addr().String(), &tls.Config{ServerName: "evil.test", RootCAs: pool})
	if err == nil {
		conn.Close()
		t.Fatal("TLS handshake for an unknown name succeeded")
	}
}
