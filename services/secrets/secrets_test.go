package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/tollgate/tollgate/migrations"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/secrets"
	"github.com/tollgate/tollgate/services/storetest"
)

func TestDerive(t *testing.T) {
	t.Parallel()
	secret := []byte("f3a1c9e07b5d2e8846aa1c0f9d3b7e52a4c6e8f0b2d4a6c8e0f2a4b6c8d0e2f4")
	d := secrets.DigestKey(secret)
	if len(d) != secrets.KeyLen || !bytes.Equal(d, secrets.DigestKey(secret)) {
		t.Fatalf("digest key %x is not a stable 32-byte key", d)
	}
	seen := map[string]bool{string(secret): true}
	for _, p := range []string{secrets.PurposeKeyDigest, secrets.PurposeSettings, secrets.PurposeCSRF, secrets.PurposeSession} {
		k := string(secrets.Derive(secret, p))
		if seen[k] {
			t.Errorf("purpose %s shares a key", p)
		}
		seen[k] = true
	}
	if bytes.Equal(secrets.DigestKey([]byte("another-secret")), d) {
		t.Error("two secrets give one digest key")
	}
	// Version 0 keeps the raw secret, so stored digests stay valid.
	raw, _ := secrets.DigestKeyFor(secrets.DigestRaw, secret)
	if proxycfg.Digest(raw, "tg_key") != proxycfg.Digest(secret, "tg_key") {
		t.Error("version 0 changed the digests")
	}
	derived, _ := secrets.DigestKeyFor(secrets.DigestDerived, secret)
	if !bytes.Equal(derived, d) {
		t.Error("version 1 is not DigestKey")
	}
	if _, err := secrets.DigestKeyFor(7, secret); err == nil {
		t.Error("unknown version accepted")
	}
	// The hex form round-trips (TOLLGATE_DIGEST_KEY).
	if k, err := secrets.ParseKey(secrets.EncodeKey(d)); err != nil || !bytes.Equal(k, d) {
		t.Errorf("parse = %x, %v", k, err)
	}
	for _, bad := range []string{"zz", "abcd"} {
		if _, err := secrets.ParseKey(bad); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
}

func TestCheckStrength(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		secret string
		dev    bool
		why    string // "" accepts
	}{
		{name: "openssl hex 32", secret: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		{name: "openssl base64 32", secret: "q0v3B0m2Yl5pX8cQ9sW1eT7uR4iO6pA2sD8fG0hJ3kL="},
		{name: "openssl hex 16", secret: "5d41402abc4b2a76b9719d911017c592"},
		{name: "empty", secret: "", why: "not set"},
		{name: "empty in dev", secret: " ", dev: true, why: "not set"},
		{name: "dev secret in dev", secret: secrets.DevSecret, dev: true},
		{name: "short in dev", secret: "x", dev: true},
		{name: "dev secret outside dev", secret: secrets.DevSecret, why: "dev secret"},
		{name: "changeme", secret: "changeme", why: "example"},
		{name: "compose default", secret: "local-compose-secret-change-me", why: "example"},
		{name: "placeholder", secret: "please-CHANGEME-0123456789abcdefghijklmnop", why: "placeholder"},
		{name: "short", secret: "d2a84f4b8b650937ec8f73cd8be2c74a"[:20], why: "at least 32"},
		{name: "repeated", secret: "abcdefghijklabcdefghijklabcdefghijkl", why: "repeats"},
		{name: "few characters", secret: strings.Repeat("ab", 20), why: "distinct"},
		{name: "sequence", secret: "0123456789abcdefghijklmnopqrstuvwxyz", why: "consecutive"},
		{name: "low entropy", secret: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabcdefghij", why: "entropy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := secrets.CheckStrength([]byte(tc.secret), tc.dev)
			if tc.why == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, secrets.ErrWeakSecret) || !strings.Contains(err.Error(), tc.why) ||
				!strings.Contains(err.Error(), "openssl rand -hex 32") {
				t.Fatalf("err = %v, want a weak-secret error about %q with the openssl hint", err, tc.why)
			}
		})
	}
}

// TestDigestVersion checks the version migration 00009 records: 1 for a
// new installation, 0 for one that already held tenants.
func TestDigestVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := storetest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if v, err := secrets.DigestVersion(ctx, conn); err != nil || v != secrets.DigestDerived {
		t.Fatalf("new installation: version %d, %v", v, err)
	}
	secret := []byte("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
	if k, err := secrets.ControlDigestKey(ctx, conn, secret, ""); err != nil || !bytes.Equal(k, secrets.DigestKey(secret)) {
		t.Errorf("control digest key %x, %v", k, err)
	}
	if k, err := secrets.ControlDigestKey(ctx, conn, secret, secrets.EncodeKey([]byte("an-old-secret-moved-aside"))); err != nil ||
		string(k) != "an-old-secret-moved-aside" {
		t.Errorf("override: %q, %v", k, err)
	}

	// An installation from before: migrate down past 00009, add a tenant,
	// migrate up again.
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 8); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO tenants (name, slug) VALUES ('Old', 'old')`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := secrets.DigestVersion(ctx, conn); err != nil || v != secrets.DigestRaw {
		t.Fatalf("upgraded installation: version %d, %v", v, err)
	}
	if k, err := secrets.ControlDigestKey(ctx, conn, secret, ""); err != nil || !bytes.Equal(k, secret) {
		t.Errorf("upgraded installation digests with %x, %v; want the raw secret", k, err)
	}
}
