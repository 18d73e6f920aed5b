// Package tlsstore holds the TLS certificates a worker terminates with, one
// or more per host name (tenants' custom domains and the platform's wildcard),
// loaded from a directory and reloaded while the worker runs: no restart is
// needed when a certificate is added, renewed or removed.
//
// The directory holds pairs NAME.crt (PEM chain) and NAME.key (PEM private
// key); NAME is free (cert-manager secrets or an ACME client's output
// mounted as files fit). The host names a certificate serves are taken from
// the certificate itself (its DNS SANs, wildcards included), not from the
// file name. A pair that does not load is skipped and logged; the previous
// good set keeps serving until a rescan succeeds for it.
package tlsstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often the directory is rescanned.
const DefaultInterval = 10 * time.Second

// ErrNoCertificate is returned for a server name no certificate covers.
var ErrNoCertificate = errors.New("no certificate for this server name")

// Store serves certificates by SNI server name. Create it with New, call
// Load once, then Run to follow changes.
type Store struct {
	dir      string
	interval time.Duration
	logger   *slog.Logger
	set      atomic.Pointer[certSet]
}

type certSet struct {
	exact    map[string]*tls.Certificate // lower-case host name
	wildcard map[string]*tls.Certificate // parent domain of "*.domain"
	stamp    string                      // file names, sizes and mtimes
	count    int
}

// New makes a store over dir, rescanned every interval (0: 10s).
func New(dir string, interval time.Duration, logger *slog.Logger) *Store {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{dir: dir, interval: interval, logger: logger}
	s.set.Store(&certSet{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}})
	return s
}

// Load scans the directory now and swaps in what it finds. It returns an
// error only when the directory cannot be read.
func (s *Store) Load() error {
	stamp, err := s.stamp()
	if err != nil {
		return err
	}
	if cur := s.set.Load(); cur.stamp == stamp && cur.stamp != "" {
		return nil
	}
	set := &certSet{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}, stamp: stamp}
	crts, _ := filepath.Glob(filepath.Join(s.dir, "*.crt"))
	slices.Sort(crts)
	for _, crt := range crts {
		key := strings.TrimSuffix(crt, ".crt") + ".key"
		cert, err := tls.LoadX509KeyPair(crt, key)
		if err != nil {
			s.logger.Warn("tls certificate skipped", "file", crt, "err", err)
			continue
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			s.logger.Warn("tls certificate skipped", "file", crt, "err", err)
			continue
		}
		cert.Leaf = leaf
		c := cert
		for _, name := range leaf.DNSNames {
			name = strings.ToLower(strings.TrimSuffix(name, "."))
			if parent, ok := strings.CutPrefix(name, "*."); ok {
				set.wildcard[parent] = newer(set.wildcard[parent], &c)
			} else {
				set.exact[name] = newer(set.exact[name], &c)
			}
		}
		set.count++
	}
	s.set.Store(set)
	s.logger.Info("tls certificates loaded", "dir", s.dir, "certificates", set.count)
	return nil
}

// newer keeps the certificate that expires last.
func newer(a, b *tls.Certificate) *tls.Certificate {
	if a == nil || b.Leaf.NotAfter.After(a.Leaf.NotAfter) {
		return b
	}
	return a
}

// stamp fingerprints the directory's certificate files, so that an
// unchanged directory is not parsed again.
func (s *Store) stamp() (string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return "", fmt.Errorf("read tls dir: %w", err)
	}
	var b strings.Builder
	for _, e := range entries {
		n := e.Name()
		if !strings.HasSuffix(n, ".crt") && !strings.HasSuffix(n, ".key") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d;", n, info.Size(), info.ModTime().UnixNano())
	}
	return b.String(), nil
}

// Run rescans the directory every interval until ctx ends.
func (s *Store) Run(ctx context.Context) {
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := s.Load(); err != nil {
				s.logger.Warn("tls certificates not reloaded", "err", err)
			}
		}
	}
}

// Len is the number of certificates loaded.
func (s *Store) Len() int { return s.set.Load().count }

// GetCertificate picks the certificate for the client's server name: an
// exact name first, then a wildcard one label up. It fits
// tls.Config.GetCertificate.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	set := s.set.Load()
	if c := set.exact[name]; c != nil {
		return c, nil
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if c := set.wildcard[parent]; c != nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNoCertificate, hello.ServerName)
}

// TLSConfig is a server configuration using the store, offering HTTP/2 and
// HTTP/1.1 by ALPN.
func (s *Store) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}
