package jwtauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// startIssuer runs a real in-process OIDC server.
func startIssuer(t *testing.T) *mockoidc.MockOIDC {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatalf("start mockoidc: %v", err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

func claims(iss, aud, sub string, exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": iss, "aud": aud, "sub": sub, "client_id": "svc-" + sub,
		"iat": time.Now().Add(-time.Minute).Unix(), "exp": exp.Unix(),
		"scope": "orders:read orders:write",
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	m := startIssuer(t)
	iss := m.Issuer()
	exp := time.Now().Add(10 * time.Minute)
	sign := func(c jwt.Claims) string {
		s, err := m.Keypair.SignJWT(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherKid := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(iss, "orders-api", "alice", exp))
	otherKid.Header["kid"] = "not-a-known-kid"
	unknownKid, err := otherKid.SignedString(other)
	if err != nil {
		t.Fatal(err)
	}
	// The issuer's own kid, but another key: a forgery.
	kid, _ := m.Keypair.KeyID()
	forged := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(iss, "orders-api", "alice", exp))
	forged.Header["kid"] = kid
	forgedTok, err := forged.SignedString(other)
	if err != nil {
		t.Fatal(err)
	}
	// HS256 keyed with the issuer's public key (the algorithm confusion attack).
	der, err := x509.MarshalPKIXPublicKey(m.Keypair.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(iss, "orders-api", "alice", exp))
	hs.Header["kid"] = kid
	hsTok, err := hs.SignedString(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(iss, "orders-api", "alice", exp)).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// alg none with the real signature kept: the header is swapped.
	valid := sign(claims(iss, "orders-api", "alice", exp))
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	swapped := noneHeader + valid[indexDot(valid):]

	v := New(Options{})
	tests := []struct {
		name    string
		cfg     Config
		token   string
		wantErr error
		wantSub string
	}{
		{name: "valid", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}}, token: valid, wantSub: "alice"},
		{name: "valid second audience", cfg: Config{Issuer: iss, Audiences: []string{"x", "orders-api"}}, token: valid, wantSub: "alice"},
		{name: "client_id claim", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}, Claim: "client_id"}, token: valid, wantSub: "svc-alice"},
		{name: "missing claim", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}, Claim: "tenant"}, token: valid, wantErr: ErrInvalid},
		{name: "alg none", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}}, token: noneTok, wantErr: ErrInvalid},
		{name: "alg none header on a real signature", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}}, token: swapped, wantErr: ErrInvalid},
		{name: "wrong issuer", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}},
			token: sign(claims("https://evil.example", "orders-api", "alice", exp)), wantErr: ErrInvalid},
		{name: "wrong audience", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}},
			token: sign(claims(iss, "billing-api", "alice", exp)), wantErr: ErrInvalid},
		{name: "expired", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}},
			token: sign(claims(iss, "orders-api", "alice", time.Now().Add(-time.Minute))), wantErr: ErrInvalid},
		{name: "no exp", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}},
			token: sign(jwt.MapClaims{"iss": iss, "aud": "orders-api", "sub": "alice"}), wantErr: ErrInvalid},
		{name: "unknown kid", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}}, token: unknownKid, wantErr: ErrInvalid},
		{name: "known kid other key", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}}, token: forgedTok, wantErr: ErrInvalid},
		{name: "HS256 signed with the public key", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}}, token: hsTok, wantErr: ErrInvalid},
		{name: "RS256 not in allow-list", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}, Algorithms: []string{"ES256"}}, token: valid, wantErr: ErrInvalid},
		{name: "garbage", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}}, token: "a.b.c", wantErr: ErrInvalid},
		{name: "empty", cfg: Config{Issuer: iss, Audiences: []string{"orders-api"}}, token: "", wantErr: ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Policy(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			id, err := p.Verify(context.Background(), []byte(tc.token))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if id.Subject != tc.wantSub {
				t.Errorf("subject = %q, want %q", id.Subject, tc.wantSub)
			}
			if !id.HasScopes([]string{"orders:read"}) || id.HasScopes([]string{"admin"}) {
				t.Errorf("scopes = %v", id.Scopes)
			}
		})
	}
}

func indexDot(s string) int {
	for i := range len(s) {
		if s[i] == '.' {
			return i
		}
	}
	return len(s)
}

func TestPolicyRefusesSymmetricAlgorithms(t *testing.T) {
	t.Parallel()
	v := New(Options{})
	for _, alg := range []string{"HS256", "none"} {
		if _, err := v.Policy(Config{Issuer: "https://idp.example", Audiences: []string{"a"}, Algorithms: []string{alg}}); err == nil {
			t.Errorf("algorithm %s accepted", alg)
		}
	}
}

func TestKeyRotationAndFetchBudget(t *testing.T) {
	t.Parallel()
	m := startIssuer(t)
	now := time.Now()
	clock := func() time.Time { return now }
	v := New(Options{Now: clock, RefreshInterval: time.Minute})
	p, err := v.Policy(Config{Issuer: m.Issuer(), Audiences: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok, err := m.Keypair.SignJWT(claims(m.Issuer(), "api", "bob", now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := p.Verify(ctx, []byte(tok)); err != nil {
			t.Fatalf("verify: %v", err)
		}
	}
	if got := v.JWKSFetches.Load(); got != 1 {
		t.Fatalf("jwks fetches after 3 verifications = %d, want 1 (cached)", got)
	}
	// Forged tokens with made-up kids do not make the gateway fetch again
	// within the refresh interval.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	for i := range 5 {
		f := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(m.Issuer(), "api", "bob", now.Add(time.Hour)))
		f.Header["kid"] = "made-up-" + string(rune('a'+i))
		s, _ := f.SignedString(other)
		if _, err := p.Verify(ctx, []byte(s)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("forged token: err = %v", err)
		}
	}
	if got := v.JWKSFetches.Load(); got != 1 {
		t.Fatalf("jwks fetches after forged tokens = %d, want 1", got)
	}
	// The IdP rotates its key: after the interval a token with the new kid
	// makes one fetch and verifies.
	rotated, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	m.Keypair = rotated
	now = now.Add(2 * time.Minute)
	tok2, err := rotated.SignJWT(claims(m.Issuer(), "api", "carol", now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.Verify(ctx, []byte(tok2))
	if err != nil {
		t.Fatalf("token of rotated key: %v", err)
	}
	if id.Subject != "carol" || v.JWKSFetches.Load() != 2 {
		t.Fatalf("subject %q fetches %d", id.Subject, v.JWKSFetches.Load())
	}
}

func TestIssuerUnavailable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	v := New(Options{})
	p, err := v.Policy(Config{Issuer: "http://" + addr + "/oidc", Audiences: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify(context.Background(), []byte("a.b.c")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if err := p.Warm(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("warm err = %v, want ErrUnavailable (remembered failure)", err)
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	m, err := mockoidc.Run()
	if err != nil {
		b.Fatal(err)
	}
	defer m.Shutdown()
	v := New(Options{})
	p, _ := v.Policy(Config{Issuer: m.Issuer(), Audiences: []string{"api"}})
	tok, _ := m.Keypair.SignJWT(claims(m.Issuer(), "api", "bob", time.Now().Add(time.Hour)))
	raw := []byte(tok)
	if _, err := p.Verify(context.Background(), raw); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Verify(context.Background(), raw); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIssuerExactURL is the regression test of issuers grouped by their URL
// without the trailing slash and checked by the first API's string: each
// exact URL is its own issuer, whichever API comes first.
func TestIssuerExactURL(t *testing.T) {
	t.Parallel()
	m := startIssuer(t)
	iss := m.Issuer() // no trailing slash: what the IdP names itself
	v := New(Options{})
	// The API with the slash first: under the old grouping, its string
	// became the one every API of this IdP was checked against.
	slashed, err := v.Policy(Config{Issuer: iss + "/", Audiences: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	exact, err := v.Policy(Config{Issuer: iss, Audiences: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	if slashed.iss == exact.iss {
		t.Fatal("two issuer URLs share one issuer")
	}
	tok, err := m.Keypair.SignJWT(claims(iss, "api", "alice", time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if id, err := exact.Verify(ctx, []byte(tok)); err != nil || id.Subject != "alice" {
		t.Fatalf("exact issuer: %v, %v", id, err)
	}
	// The IdP does not call itself iss+"/": discovery of that issuer fails,
	// and its tokens are not accepted for it.
	if _, err := slashed.Verify(ctx, []byte(tok)); err == nil {
		t.Fatal("a token of issuer without slash verified for the issuer with slash")
	}
}

func TestPruneIssuers(t *testing.T) {
	t.Parallel()
	m := startIssuer(t)
	v := New(Options{})
	keep, err := v.Policy(Config{Issuer: m.Issuer(), Audiences: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := v.Policy(Config{Issuer: "https://removed.example/", Audiences: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := m.Keypair.SignJWT(claims(m.Issuer(), "api", "bob", time.Now().Add(time.Hour)))
	if _, err := keep.Verify(context.Background(), []byte(tok)); err != nil {
		t.Fatal(err)
	}
	// A verified token of the removed issuer's policy sits in the cache.
	v.remember([32]byte{1}, cached{policy: gone, id: Identity{Subject: "x", Expiry: time.Now().Add(time.Hour)}})
	if got := v.Issuers(); len(got) != 2 {
		t.Fatalf("issuers before reload %v", got)
	}
	// After a reload that removed the second API, only the first issuer
	// is held, with its key set and cached tokens.
	if n := v.Prune([]string{m.Issuer()}); n != 1 {
		t.Fatalf("pruned %d issuers, want 1", n)
	}
	if got := v.Issuers(); len(got) != 1 || got[0] != m.Issuer() {
		t.Fatalf("issuers after reload %v", got)
	}
	v.cacheMu.RLock()
	_, stale := v.cache[[32]byte{1}]
	n := len(v.cache)
	v.cacheMu.RUnlock()
	if stale || n != 1 {
		t.Fatalf("cache after prune: removed issuer's token kept %v, %d entries", stale, n)
	}
	fetches := v.JWKSFetches.Load()
	if _, err := keep.Verify(context.Background(), []byte(tok)); err != nil || v.JWKSFetches.Load() != fetches {
		t.Fatalf("kept issuer after prune: %v (fetches %d -> %d)", err, fetches, v.JWKSFetches.Load())
	}
}
