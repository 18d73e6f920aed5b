package accounts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/token"
)

// VerifyTTL is how long an email confirmation link works.
const VerifyTTL = 48 * time.Hour

// ErrAlreadyVerified refuses a confirmation link for a verified address.
var ErrAlreadyVerified = errors.New("the email address is already verified")

// NewVerification makes a single-use confirmation token for the user's
// address (to be mailed as a link; only its digest is stored). Requests are
// throttled per user (a *fault.ThrottledError) so that the button cannot be
// used to flood a mailbox.
func NewVerification(ctx context.Context, db *pgxpool.Pool, u User) (string, error) {
	if u.EmailVerified {
		return "", ErrAlreadyVerified
	}
	if err := hit(ctx, db, "verify-mail:user:"+u.ID, RuleVerifyMail); err != nil {
		return "", err
	}
	tok, err := token.New("tgv_")
	if err != nil {
		return "", fmt.Errorf("new verification: %w", err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO email_verifications (digest, user_id, email, expires_at) VALUES ($1, $2, $3, $4)`,
		digest(tok), u.ID, u.Email, time.Now().Add(VerifyTTL)); err != nil {
		return "", fmt.Errorf("new verification: %w", err)
	}
	return tok, nil
}

// VerifyEmail uses up a confirmation token and marks the address verified.
// A token for an address the user no longer has, or an unknown, used or
// expired token, is fault.ErrNotFound. client is the caller's address, for
// throttling.
func VerifyEmail(ctx context.Context, db *pgxpool.Pool, tok, client string) (User, error) {
	if tok == "" || len(tok) > 128 {
		return User{}, fault.ErrNotFound
	}
	if err := hit(ctx, db, "verify:client:"+client, RuleVerifyClient); err != nil {
		return User{}, err
	}
	var u User
	err := store.InTx(ctx, db, func(tx pgx.Tx) error {
		var userID, email string
		err := tx.QueryRow(ctx, `UPDATE email_verifications SET used_at = now()
			WHERE digest = $1 AND used_at IS NULL AND expires_at > now() RETURNING user_id, email`, digest(tok)).
			Scan(&userID, &email)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("use verification token: %w", err)
		}
		u, err = scanUser(tx.QueryRow(ctx, `UPDATE users SET email_verified_at = coalesce(email_verified_at, now()),
			updated_at = now() WHERE id = $1 AND lower(email) = lower($2) RETURNING `+userCols, userID, email))
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("mark verified: %w", err)
		}
		return audit.Record(ctx, tx, u.Actor(), "user.verify_email", "user", u.ID, map[string]any{"email": u.Email})
	})
	if err != nil {
		return User{}, fmt.Errorf("verify email: %w", err)
	}
	return u, nil
}
