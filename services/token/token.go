// Package token makes the random bearer secrets the control plane hands out
// once (API keys and admin tokens) and the short prefixes it keeps to show
// them later.
package token

import (
	"crypto/rand"
	"fmt"
	"math/big"
)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// New returns kind + the base62 encoding of 32 random bytes (256 bits), e.g.
// "tg_3kX...". The kind makes leaked secrets easy to recognise and scan for.
func New(kind string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	n := new(big.Int).SetBytes(b[:])
	// 43 base62 digits hold 256 bits; pad so that every secret has one length.
	out := make([]byte, 43)
	base := big.NewInt(62)
	mod := new(big.Int)
	for i := len(out) - 1; i >= 0; i-- {
		n.DivMod(n, base, mod)
		out[i] = alphabet[mod.Int64()]
	}
	return kind + string(out), nil
}

// PrefixLen is how many leading characters of a secret are stored and shown.
const PrefixLen = 10

// Prefix is the displayable start of a secret: enough to tell keys apart,
// far too little to guess the rest.
func Prefix(secret string) string {
	if len(secret) <= PrefixLen {
		return secret
	}
	return secret[:PrefixLen]
}
