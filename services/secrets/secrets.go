// Package secrets turns the one server secret (TOLLGATE_SECRET) into a key
// per purpose, so that each part of the platform holds only the key it
// needs, and refuses secrets too weak to be one.
//
// Every key is HKDF-SHA256 (RFC 5869) of the secret with the purpose in the
// info ("tollgate/v1/<purpose>"): knowing one derived key tells nothing
// about the secret or the others. Proxy workers need only the key of the
// API key digests (DigestKey); the control plane keeps the secret.
//
// # API key and admin token digests
//
// Keys and tokens are stored (Postgres, Redis) only as
// proxycfg.Digest(digest key, key), and looked up by it. Installations made
// before this package digested with the raw secret, and a digest cannot be
// recomputed without the key it was made of, so changing the digest key of
// an existing installation would lock out every key. The installation
// records which digest key it uses (table secret_versions, written once by
// migration 00009):
//
//   - version 0 (installations that held tenants when they upgraded): the
//     digest key is the raw TOLLGATE_SECRET, as before. Nothing changes;
//     workers keep getting TOLLGATE_SECRET.
//   - version 1 (new installations): the digest key is DigestKey(secret).
//     Workers get only that key (TOLLGATE_DIGEST_KEY, hex), never the secret.
//
// A version-0 installation that wants workers to stop holding the secret
// moves the secret aside instead of re-digesting: it sets
// TOLLGATE_DIGEST_KEY to the hex of its current secret on the control plane
// and the workers, and a new TOLLGATE_SECRET (openssl rand -hex 32) on the
// control plane only. Digests keep working; the other keys (sessions, CSRF,
// settings encryption) then derive from the new secret, so people sign in
// again and tenants re-enter their identity providers' client secrets
// (sealed under the old secret). A key-id scheme that re-digests lazily is
// not possible for API keys (the control plane never sees them again), and
// trying two digests per lookup on the worker's hot path was not worth it.
package secrets

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// Purposes of derived keys.
const (
	// PurposeKeyDigest keys the HMAC digests of API keys and admin tokens
	// (proxycfg.Digest); the only key workers get.
	PurposeKeyDigest = "key-digest"
	// PurposeSettings encrypts tenants' settings secrets (IdP client secrets).
	PurposeSettings = "settings-encryption"
	// PurposeCSRF keys the portals' CSRF token MACs.
	PurposeCSRF = "csrf"
	// PurposeSession keys signed cookies (the SSO flow cookie, sessions).
	PurposeSession = "session"
)

// KeyLen is the length of every derived key.
const KeyLen = 32

// Derive returns the key of purpose derived from secret (HKDF-SHA256, no
// salt, info "tollgate/v1/"+purpose, 32 bytes).
func Derive(secret []byte, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, "tollgate/v1/"+purpose, KeyLen)
	if err != nil {
		// Only a length beyond 255*32 bytes fails.
		panic("secrets: hkdf: " + err.Error())
	}
	return k
}

// DigestKey is the key of the API key and admin token digests of a digest
// version 1 installation: what workers get instead of the secret.
func DigestKey(secret []byte) []byte {
	k, err := proxycfg.DigestKey(secret, proxycfg.DigestDerived)
	if err != nil {
		panic("secrets: " + err.Error())
	}
	return k
}

// Digest key versions (table secret_versions).
const (
	// DigestRaw digests with the raw secret (installations from before).
	DigestRaw = 0
	// DigestDerived digests with DigestKey(secret).
	DigestDerived = 1
)

// DigestKeyFor returns the digest key of an installation of digest version
// v (DigestRaw or DigestDerived).
func DigestKeyFor(v int, secret []byte) ([]byte, error) {
	switch v {
	case DigestRaw:
		return append([]byte(nil), secret...), nil
	case DigestDerived:
		return DigestKey(secret), nil
	}
	return nil, fmt.Errorf("unknown digest key version %d", v)
}

// Querier reads one row; a pool, a connection and a transaction are.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// DigestVersion reads the installation's digest key version.
func DigestVersion(ctx context.Context, q Querier) (int, error) {
	var v int
	if err := q.QueryRow(ctx, `SELECT digest_version FROM secret_versions`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read digest key version (are the migrations applied?): %w", err)
	}
	return v, nil
}

// ControlDigestKey returns the digest key the control plane uses for secret:
// the one of the installation's version, or override when it is set (the
// hex TOLLGATE_DIGEST_KEY of an installation that moved its secret aside;
// see the package comment).
func ControlDigestKey(ctx context.Context, q Querier, secret []byte, override string) ([]byte, error) {
	if strings.TrimSpace(override) != "" {
		return ParseKey(override)
	}
	v, err := DigestVersion(ctx, q)
	if err != nil {
		return nil, err
	}
	return DigestKeyFor(v, secret)
}

// EncodeKey is the hex form of a key, for TOLLGATE_DIGEST_KEY.
func EncodeKey(key []byte) string { return hex.EncodeToString(key) }

// ParseKey reads a hex key (TOLLGATE_DIGEST_KEY) of at least 16 bytes.
func ParseKey(s string) ([]byte, error) {
	k, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("the digest key must be hex (as printed by tollgate: the hex of 32 bytes or of the old secret)")
	}
	if len(k) < 16 {
		return nil, fmt.Errorf("the digest key is %d bytes; at least 16 are needed", len(k))
	}
	return k, nil
}

// ErrWeakSecret is wrapped by every CheckStrength refusal.
var ErrWeakSecret = errors.New("weak TOLLGATE_SECRET")

// DevSecret is the secret `tollgate dev` uses when none is set; it is
// refused everywhere else.
const DevSecret = "tollgate-dev-secret-not-for-production"

// MinSecretLen is the shortest secret accepted outside dev.
const MinSecretLen = 32

// known are example secrets from documentation, compose files and tests.
var known = []string{DevSecret, "local-compose-secret-change-me", "changeme", "change-me", "secret", "password", "tollgate", "test-secret",
	"op-secret", "supersecret", "mysecret", "default"}

// markers in a secret give it away as an example or placeholder.
var markers = []string{"changeme", "change-me", "change_me", "not-for-production", "example", "placeholder",
	"replace-me", "replaceme", "your-secret", "dev-secret", "xxxxxxxx"}

const hint = "generate one with: openssl rand -hex 32"

// CheckStrength refuses a secret that cannot protect an installation:
// empty; outside dev (dev false), the dev secret, a known example or
// placeholder, fewer than MinSecretLen bytes, or bytes that do not look
// random (few distinct bytes, a repeated pattern, a run of consecutive
// characters). In dev every non-empty secret is accepted. The error says how
// to make a good one.
func CheckStrength(secret []byte, dev bool) error {
	s := string(secret)
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("%w: TOLLGATE_SECRET is not set; %s", ErrWeakSecret, hint)
	}
	if dev {
		return nil
	}
	lower := strings.ToLower(strings.TrimSpace(s))
	for _, k := range known {
		if lower == k {
			if k == DevSecret {
				return fmt.Errorf("%w: TOLLGATE_SECRET is the dev secret, which is public; %s", ErrWeakSecret, hint)
			}
			return fmt.Errorf("%w: TOLLGATE_SECRET is a well-known example value; %s", ErrWeakSecret, hint)
		}
	}
	for _, m := range markers {
		if strings.Contains(lower, m) {
			return fmt.Errorf("%w: TOLLGATE_SECRET looks like a placeholder (it contains %q); %s", ErrWeakSecret, m, hint)
		}
	}
	if len(secret) < MinSecretLen {
		return fmt.Errorf("%w: TOLLGATE_SECRET is %d bytes; at least %d random bytes are needed; %s",
			ErrWeakSecret, len(secret), MinSecretLen, hint)
	}
	if why := notRandom(secret); why != "" {
		return fmt.Errorf("%w: TOLLGATE_SECRET does not look random (%s); %s", ErrWeakSecret, why, hint)
	}
	return nil
}

// notRandom says why b does not look like random bytes or their hex or
// base64 form, or "" when it does.
func notRandom(b []byte) string {
	var counts [256]int
	distinct := 0
	for _, c := range b {
		if counts[c] == 0 {
			distinct++
		}
		counts[c]++
	}
	if distinct < 10 {
		return fmt.Sprintf("only %d distinct characters", distinct)
	}
	entropy := 0.0
	for _, n := range counts {
		if n > 0 {
			p := float64(n) / float64(len(b))
			entropy -= p * math.Log2(p)
		}
	}
	// Random hex is close to 4 bits per character, base64 close to 6.
	if entropy < 3.0 {
		return fmt.Sprintf("%.1f bits of entropy per character", entropy)
	}
	for p := 1; p <= len(b)/2; p++ {
		if string(b[p:]) == string(b[:len(b)-p]) {
			return fmt.Sprintf("it repeats every %d characters", p)
		}
	}
	steps := 0
	for i := 1; i < len(b); i++ {
		if d := int(b[i]) - int(b[i-1]); d == 1 || d == -1 {
			steps++
		}
	}
	if steps*2 > len(b) {
		return "it is mostly a run of consecutive characters"
	}
	return ""
}

// IsExample reports whether secret is a well-known example or placeholder
// (the dev secret, values from documentation and compose files): such a
// secret is public, and the control plane and workers refuse to start with
// it outside dev. CheckStrength's other objections (short, not random
// looking) are advice the commands log.
func IsExample(secret []byte) bool {
	lower := strings.ToLower(strings.TrimSpace(string(secret)))
	for _, k := range known {
		if lower == k {
			return true
		}
	}
	for _, m := range markers {
		if strings.Contains(lower, m) {
			return true
		}
	}
	return false
}
