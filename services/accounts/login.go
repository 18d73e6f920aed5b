package accounts

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrBadCredentials means the email is unknown or the password is wrong; the
// two are not told apart.
var ErrBadCredentials = errors.New("wrong email or password")

// Login checks an email and password. client is the caller's address (see
// the trusted proxies of the portal), for throttling: every attempt is
// counted atomically under the RuleLogin* rules before the password is
// hashed, and one over a limit fails with a *fault.ThrottledError. A
// success clears the account-and-client counts. A hashing queue that stays
// full fails with ErrBusy.
func Login(ctx context.Context, db *pgxpool.Pool, email, password, client string) (User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if len(email) > 254 || len(password) > MaxPasswordLen {
		return User{}, ErrBadCredentials
	}
	acct := "login:account:" + email
	acctClient := acct + ":client:" + client
	if err := hit(ctx, db,
		"login:client:"+client, RuleLoginClient,
		acctClient, RuleLoginAccountClient,
		acctClient+":day", RuleLoginAccountClientDay,
		acct, RuleLoginAccount); err != nil {
		return User{}, err
	}
	var hash *string
	u, err := scanUserHash(db.QueryRow(ctx, `SELECT `+userCols+`, password_hash FROM users WHERE lower(email) = $1`, email), &hash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("login: %w", err)
	}
	// An unknown address costs the same hashing as a wrong password.
	var h string
	if err == nil && hash != nil {
		h = *hash
	} else {
		h = dummyHash()
	}
	ok, cerr := verifyPassword(ctx, h, password)
	if cerr != nil {
		return User{}, fmt.Errorf("login: %w", cerr)
	}
	if err != nil || hash == nil || !ok {
		return User{}, ErrBadCredentials
	}
	if err := resetHits(ctx, db, acctClient, acctClient+":day"); err != nil {
		return User{}, fmt.Errorf("login: %w", err)
	}
	return u, nil
}

func scanUserHash(row pgx.Row, hash **string) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.TenantID, &u.Email, &u.Name, &u.Role, &u.HasPassword, &u.EmailVerified, &u.CreatedAt, hash)
	return u, err
}
