package accounts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/token"
)

// ResetTTL is how long a password reset link works.
const ResetTTL = time.Hour

// RequestReset makes a one-time password reset token for the user with this
// email. For an unknown email it returns ok=false and no error, so that the
// caller can answer the same either way and not reveal who has an account.
// Requests are throttled per client and per address, known or not (a
// *fault.ThrottledError), which bounds the mail one can make us send.
func RequestReset(ctx context.Context, db *pgxpool.Pool, email, client string) (u User, tok string, ok bool, err error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if len(email) > 254 {
		return User{}, "", false, nil
	}
	if err := hit(ctx, db, "reset:client:"+client, RuleResetClient, "reset:account:"+email, RuleResetAccount); err != nil {
		return User{}, "", false, err
	}
	u, err = scanUser(db.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE lower(email) = $1`, email))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, "", false, nil
	}
	if err != nil {
		return User{}, "", false, fmt.Errorf("request reset: %w", err)
	}
	tok, err = token.New("tgr_")
	if err != nil {
		return User{}, "", false, fmt.Errorf("request reset: %w", err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO password_resets (digest, user_id, expires_at) VALUES ($1, $2, $3)`,
		digest(tok), u.ID, time.Now().Add(ResetTTL)); err != nil {
		return User{}, "", false, fmt.Errorf("request reset: %w", err)
	}
	return u, tok, true, nil
}

// ValidResetToken reports whether tok is an unused, unexpired reset token.
func ValidResetToken(ctx context.Context, db *pgxpool.Pool, tok string) (bool, error) {
	var n int
	err := db.QueryRow(ctx, `SELECT count(*) FROM password_resets
		WHERE digest = $1 AND used_at IS NULL AND expires_at > now()`, digest(tok)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check reset token: %w", err)
	}
	return n > 0, nil
}

// ResetPassword sets a new password with a reset token, uses the token up,
// ends every session of the user and marks the address verified (the link
// reached its mailbox). An unknown, used or expired token is
// fault.ErrNotFound, found before any hashing.
func ResetPassword(ctx context.Context, db *pgxpool.Pool, tok, password string) (User, error) {
	v := &fault.ValidationError{}
	checkPassword(v, "password", password)
	if err := v.Err(); err != nil {
		return User{}, err
	}
	if ok, err := ValidResetToken(ctx, db, tok); err != nil {
		return User{}, err
	} else if !ok {
		return User{}, fault.ErrNotFound
	}
	hash, err := hashPassword(ctx, password)
	if err != nil {
		return User{}, err
	}
	var u User
	err = store.InTx(ctx, db, func(tx pgx.Tx) error {
		var userID string
		err := tx.QueryRow(ctx, `UPDATE password_resets SET used_at = now()
			WHERE digest = $1 AND used_at IS NULL AND expires_at > now() RETURNING user_id`, digest(tok)).Scan(&userID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("use reset token: %w", err)
		}
		u, err = scanUser(tx.QueryRow(ctx, `UPDATE users SET password_hash = $2,
			email_verified_at = coalesce(email_verified_at, now()), updated_at = now()
			WHERE id = $1 RETURNING `+userCols, userID, hash))
		if err != nil {
			return fmt.Errorf("set password: %w", err)
		}
		for _, q := range []string{
			`DELETE FROM sessions WHERE user_id = $1`,
			`UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL`,
		} {
			if _, err := tx.Exec(ctx, q, userID); err != nil {
				return fmt.Errorf("reset password: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM throttle_hits WHERE subject LIKE $1`,
			"tenant-portal:login:account:"+likeEscape(strings.ToLower(u.Email))+":client:%"); err != nil {
			return fmt.Errorf("reset password: %w", err)
		}
		return audit.Record(ctx, tx, u.Actor(), "user.password_reset", "user", u.ID, nil)
	})
	if err != nil {
		return User{}, fmt.Errorf("reset password: %w", err)
	}
	return u, nil
}

// likeEscape escapes LIKE's wildcards in s.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
