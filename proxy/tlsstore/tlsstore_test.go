package tlsstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for names as dir/file.{crt,key}.
func writePair(t *testing.T, dir, file string, serial int64, names ...string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Duration(serial) * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func serial(c *tls.Certificate) int64 { return c.Leaf.SerialNumber.Int64() }

func TestGetCertificateAndReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writePair(t, dir, "acme", 10, "api.acme.example")
	writePair(t, dir, "platform", 20, "*.gw.example")
	if err := os.WriteFile(filepath.Join(dir, "broken.crt"), []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := New(dir, time.Hour, nil)
	if err := s.Load(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		serverName string
		wantSerial int64
		wantErr    error
	}{
		{name: "exact custom domain", serverName: "api.acme.example", wantSerial: 10},
		{name: "case and trailing dot", serverName: "API.Acme.Example.", wantSerial: 10},
		{name: "wildcard tenant host", serverName: "globex.gw.example", wantSerial: 20},
		{name: "wildcard covers one label only", serverName: "a.b.gw.example", wantErr: ErrNoCertificate},
		{name: "unknown", serverName: "evil.example", wantErr: ErrNoCertificate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: tc.serverName})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || serial(c) != tc.wantSerial {
				t.Fatalf("cert %v, %v; want serial %d", c, err, tc.wantSerial)
			}
		})
	}
	if s.Len() != 2 {
		t.Fatalf("loaded %d certificates, want 2 (the broken one skipped)", s.Len())
	}
	// Renewal and a new custom domain are picked up without a restart.
	writePair(t, dir, "acme", 30, "api.acme.example")
	writePair(t, dir, "initech", 40, "api.initech.example")
	if err := s.Load(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int64{"api.acme.example": 30, "api.initech.example": 40} {
		c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil || serial(c) != want {
			t.Fatalf("%s after reload: %v, %v; want serial %d", name, c, err, want)
		}
	}
	// A removed certificate stops being served.
	os.Remove(filepath.Join(dir, "initech.crt"))
	os.Remove(filepath.Join(dir, "initech.key"))
	if err := s.Load(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "api.initech.example"}); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("removed certificate still served: %v", err)
	}
}
