package accounts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Login throttling: after MaxFailuresPerEmail failed logins for one email, or
// MaxFailuresPerIP from one client address, within FailureWindow, further
// attempts are refused with ErrThrottled until the window has passed.
const (
	FailureWindow       = 15 * time.Minute
	MaxFailuresPerEmail = 5
	MaxFailuresPerIP    = 50
)

// ErrBadCredentials means the email is unknown or the password is wrong; the
// two are not told apart.
var ErrBadCredentials = errors.New("wrong email or password")

// ThrottledError refuses a login because of too many recent failures.
type ThrottledError struct {
	// RetryAfter is how long until the oldest counted failure leaves the window.
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed sign-in attempts; try again in %s", e.RetryAfter.Round(time.Minute))
}

// Login checks an email and password. ip is the client's address, for the
// per-address throttle. Failures are counted; success clears the email's count.
func Login(ctx context.Context, db *pgxpool.Pool, email, password, ip string) (User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	subjects := []string{"email:" + email, "ip:" + ip}
	limits := []int{MaxFailuresPerEmail, MaxFailuresPerIP}
	for i, s := range subjects {
		if err := checkThrottle(ctx, db, s, limits[i]); err != nil {
			return User{}, err
		}
	}
	var hash *string
	u, err := scanUserHash(db.QueryRow(ctx, `SELECT `+userCols+`, password_hash FROM users WHERE lower(email) = $1`, email), &hash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("login: %w", err)
	}
	h := dummyHash()
	if err == nil && hash != nil {
		h = *hash
	}
	ok, cerr := CheckPassword(h, password)
	if cerr != nil {
		return User{}, fmt.Errorf("login: %w", cerr)
	}
	if err != nil || hash == nil || !ok {
		for _, s := range subjects {
			if _, err := db.Exec(ctx, `INSERT INTO login_failures (subject) VALUES ($1)`, s); err != nil {
				return User{}, fmt.Errorf("login: record failure: %w", err)
			}
		}
		return User{}, ErrBadCredentials
	}
	if _, err := db.Exec(ctx, `DELETE FROM login_failures WHERE subject = $1`, subjects[0]); err != nil {
		return User{}, fmt.Errorf("login: clear failures: %w", err)
	}
	return u, nil
}

func scanUserHash(row pgx.Row, hash **string) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.TenantID, &u.Email, &u.Name, &u.Role, &u.HasPassword, &u.CreatedAt, hash)
	return u, err
}

func checkThrottle(ctx context.Context, db *pgxpool.Pool, subject string, limit int) error {
	var n int
	var oldest *time.Time
	err := db.QueryRow(ctx, `SELECT count(*), min(at) FROM login_failures
		WHERE subject = $1 AND at > now() - $2::interval`,
		subject, fmt.Sprintf("%d seconds", int(FailureWindow.Seconds()))).Scan(&n, &oldest)
	if err != nil {
		return fmt.Errorf("login: throttle: %w", err)
	}
	if n >= limit && oldest != nil {
		wait := time.Until(oldest.Add(FailureWindow))
		if wait < time.Minute {
			wait = time.Minute
		}
		return &ThrottledError{RetryAfter: wait}
	}
	return nil
}
