package accounts

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
)

// ErrNoAccount means a single sign-on identity matches no user and none may
// be provisioned for it.
var ErrNoAccount = errors.New("no account for this identity")

// Identity is what an OIDC provider asserted about the person signing in.
type Identity struct {
	Issuer        string
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
}

// SSOLogin finds the user of a verified OIDC identity. A known (issuer,
// subject) pair wins; otherwise an existing user with the same verified email
// is linked to it. If provisionTenant is not "" (the login came through that
// tenant's own IdP), a verified email with no account becomes a new viewer of
// that tenant; a user of another tenant is never matched through a tenant IdP.
func SSOLogin(ctx context.Context, db *pgxpool.Pool, id Identity, provisionTenant string) (User, error) {
	if id.Issuer == "" || id.Subject == "" {
		return User{}, ErrNoAccount
	}
	var u User
	err := store.InTx(ctx, db, func(tx pgx.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `SELECT u.id, u.tenant_id, u.email, u.name, u.role, u.password_hash IS NOT NULL, u.created_at
			FROM user_identities i JOIN users u ON u.id = i.user_id WHERE i.issuer = $1 AND i.subject = $2`, id.Issuer, id.Subject))
		if err == nil {
			if provisionTenant != "" && u.TenantID != provisionTenant {
				return ErrNoAccount
			}
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("find identity: %w", err)
		}
		if !id.EmailVerified || id.Email == "" {
			return ErrNoAccount
		}
		email := strings.ToLower(strings.TrimSpace(id.Email))
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE lower(email) = $1`, email))
		switch {
		case err == nil:
			if provisionTenant != "" && u.TenantID != provisionTenant {
				return ErrNoAccount
			}
		case errors.Is(err, pgx.ErrNoRows) && provisionTenant != "":
			v := &fault.ValidationError{}
			email = normalizeEmail(v, "email", email)
			if v.Err() != nil {
				return ErrNoAccount
			}
			name := strings.TrimSpace(id.Name)
			if name == "" {
				name = email
			}
			u, err = insertUser(ctx, tx, provisionTenant, email, name, RoleViewer, "")
			if err != nil {
				return err
			}
			if err := audit.Record(ctx, tx, u.Actor(), "user.sso_provision", "user", u.ID,
				map[string]any{"email": u.Email, "issuer": id.Issuer}); err != nil {
				return err
			}
		case errors.Is(err, pgx.ErrNoRows):
			return ErrNoAccount
		default:
			return fmt.Errorf("find user: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO user_identities (issuer, subject, user_id) VALUES ($1, $2, $3)`,
			id.Issuer, id.Subject, u.ID); err != nil {
			return fmt.Errorf("link identity: %w", err)
		}
		return audit.Record(ctx, tx, u.Actor(), "user.sso_link", "user", u.ID, map[string]any{"issuer": id.Issuer})
	})
	if err != nil {
		return User{}, fmt.Errorf("sso login: %w", err)
	}
	return u, nil
}
