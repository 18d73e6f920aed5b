package settings

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// TestSealKeyIDs checks that new values carry the key id of the HKDF key
// and that values sealed before (legacy HMAC-derived key, no key id) still
// open.
func TestSealKeyIDs(t *testing.T) {
	t.Parallel()
	secret := []byte("seal-test-secret-0123456789abcdef")
	sealed, err := seal(secret, []byte("client-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(sealed, sealV2) {
		t.Fatalf("sealed value %x lacks the key id", sealed)
	}
	if got, err := open(secret, sealed); err != nil || string(got) != "client-secret" {
		t.Fatalf("open = %q, %v", got, err)
	}
	if _, err := open([]byte("another-secret-0123456789abcdef!!"), sealed); err == nil {
		t.Error("opened with another secret")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := open(secret, tampered); err == nil {
		t.Error("opened a tampered value")
	}

	// A value sealed by the previous version, including one whose random
	// nonce starts with the key id.
	legacy, err := legacyAEAD(secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, nonce := range [][]byte{nil, append(append([]byte(nil), sealV2...), make([]byte, legacy.NonceSize()-len(sealV2))...)} {
		if nonce == nil {
			nonce = make([]byte, legacy.NonceSize())
			_, _ = rand.Read(nonce)
		}
		old := legacy.Seal(bytes.Clone(nonce), nonce, []byte("old-secret"), nil)
		if got, err := open(secret, old); err != nil || string(got) != "old-secret" {
			t.Errorf("legacy value (nonce %x): %q, %v", nonce, got, err)
		}
	}
}
