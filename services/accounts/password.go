package accounts

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/tollgate/tollgate/services/fault"
)

// Argon2id parameters: the first configuration of OWASP's password storage
// cheat sheet (46 MiB, 1 pass, 1 lane), about 50 ms on one core of a small
// server. They are stored in every hash, so they can be raised later without
// invalidating existing passwords.
const (
	argonTime    = 1
	argonMemory  = 46 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// Password length limits. The upper bound keeps hashing cost bounded.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 256
)

var errBadHash = errors.New("malformed password hash")

// hashSlots bounds how many argon2id computations run at once: each takes
// 46 MiB, so a burst of logins must queue rather than exhaust memory.
var hashSlots = make(chan struct{}, 4)

// MaxHashWait bounds how long one caller queues for a hashing slot (less
// when its context ends sooner). A caller that waits longer gets ErrBusy,
// so that a flood of attempts is turned away quickly instead of making
// everyone behind it wait without end; throttling runs before hashing, so
// the flood is also cut at its source.
const MaxHashWait = 5 * time.Second

// ErrBusy means every hashing slot stayed taken for MaxHashWait. It comes
// joined with a *fault.ThrottledError (retry after a second), which the
// edges already answer with 429 and Retry-After.
var ErrBusy = errors.New("password hashing is busy; try again in a moment")

func idKey(ctx context.Context, pw string, salt []byte, t, m uint32, p uint8, n uint32) ([]byte, error) {
	wait := time.NewTimer(MaxHashWait)
	defer wait.Stop()
	select {
	case hashSlots <- struct{}{}:
	case <-wait.C:
		return nil, errors.Join(ErrBusy, &fault.ThrottledError{RetryAfter: time.Second})
	case <-ctx.Done():
		return nil, errors.Join(ErrBusy, ctx.Err())
	}
	defer func() { <-hashSlots }()
	return argon2.IDKey([]byte(pw), salt, t, m, p, n), nil
}

// HashPassword returns the argon2id PHC string of pw:
// $argon2id$v=19$m=65536,t=3,p=2$<salt>$<key>. It waits at most
// MaxHashWait for a hashing slot (then ErrBusy).
func HashPassword(pw string) (string, error) { return hashPassword(context.Background(), pw) }

func hashPassword(ctx context.Context, pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key, err := idKey(ctx, pw, salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime,
		argonThreads, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// CheckPassword reports whether pw matches the PHC string hash, in constant
// time. It waits at most MaxHashWait for a hashing slot (then ErrBusy).
func CheckPassword(hash, pw string) (bool, error) {
	return verifyPassword(context.Background(), hash, pw)
}

func verifyPassword(ctx context.Context, hash, pw string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || t == 0 || p == 0 {
		return false, errBadHash
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errBadHash
	}
	if m > 256*1024 || t > 10 || len(want) > 64 {
		return false, errBadHash // parameters beyond what we ever write: refuse the cost
	}
	got, err := idKey(ctx, pw, salt, t, m, p, uint32(len(want)))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummyHash is checked against when the email is unknown so that a login
// takes as long for an unknown address as for a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword("tollgate-dummy-password")
	if err != nil {
		return "$argon2id$v=19$m=47104,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	}
	return h
})
