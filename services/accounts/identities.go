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
	// HostedDomain is Google's "hd" claim ("" when absent).
	HostedDomain string
}

// SSOLogin finds the user of a verified OIDC identity:
//   - a known (issuer, subject) pair signs its user in;
//   - else the user with the same verified email is linked to it. A user
//     whose own address was never verified is taken over: its password and
//     sessions are dropped first, so whoever registered the address without
//     proving it (a pre-registered account) keeps no access;
//   - else, if provisionTenant is not "" (the login came through that
//     tenant's own IdP), a new user of that tenant is made when an open
//     invitation names the address (with the invited role), or when the
//     tenant allows the address's domain (SSODomains; a viewer; Google's
//     hosted domain must be allowed too). Anyone else needs an invitation.
//
// A user of another tenant is never matched through a tenant IdP.
func SSOLogin(ctx context.Context, db *pgxpool.Pool, id Identity, provisionTenant string) (User, error) {
	if id.Issuer == "" || id.Subject == "" {
		return User{}, ErrNoAccount
	}
	var u User
	err := store.InTx(ctx, db, func(tx pgx.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColsOf("u")+`
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
		v := &fault.ValidationError{}
		email := normalizeEmail(v, "email", id.Email)
		if v.Err() != nil {
			return ErrNoAccount
		}
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE lower(email) = $1 FOR UPDATE`, email))
		switch {
		case err == nil:
			if provisionTenant != "" && u.TenantID != provisionTenant {
				return ErrNoAccount
			}
			if !u.EmailVerified {
				if err := takeOver(ctx, tx, &u, id.Issuer); err != nil {
					return err
				}
			}
		case errors.Is(err, pgx.ErrNoRows) && provisionTenant != "":
			u, err = provision(ctx, tx, provisionTenant, id, email)
			if err != nil {
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

// takeOver gives an unverified account to the identity provider's user of
// its address: the password, sessions and pending one-time links of
// whoever registered it go, and the address counts as verified.
func takeOver(ctx context.Context, tx pgx.Tx, u *User, issuer string) error {
	for _, q := range []string{
		`UPDATE users SET password_hash = NULL, email_verified_at = now(), updated_at = now() WHERE id = $1`,
		`DELETE FROM sessions WHERE user_id = $1`,
		`DELETE FROM password_resets WHERE user_id = $1`,
		`DELETE FROM email_verifications WHERE user_id = $1`,
	} {
		if _, err := tx.Exec(ctx, q, u.ID); err != nil {
			return fmt.Errorf("take over unverified account: %w", err)
		}
	}
	u.HasPassword, u.EmailVerified = false, true
	return audit.Record(ctx, tx, u.Actor(), "user.sso_takeover", "user", u.ID,
		map[string]any{"email": u.Email, "issuer": issuer})
}

// provision makes the user of a tenant IdP's identity with no account: by
// invitation (its role) or by allowed domain (a viewer); otherwise
// ErrNoAccount.
func provision(ctx context.Context, tx pgx.Tx, tenantID string, id Identity, email string) (User, error) {
	role, how := "", ""
	inv, invited, err := takeInvite(ctx, tx, tenantID, email)
	if err != nil {
		return User{}, err
	}
	if invited {
		role, how = inv.Role, "invite"
	} else {
		allowed, err := ssoDomains(ctx, tx, tenantID)
		if err != nil {
			return User{}, err
		}
		if !admitsByDomain(allowed, id, email) {
			return User{}, ErrNoAccount
		}
		role, how = RoleViewer, "domain"
	}
	name := strings.TrimSpace(id.Name)
	if name == "" {
		name = email
	}
	if len([]rune(name)) > maxNameLen {
		name = string([]rune(name)[:maxNameLen])
	}
	u, err := insertUser(ctx, tx, tenantID, email, name, role, "", true)
	if err != nil {
		return User{}, err
	}
	if err := audit.Record(ctx, tx, u.Actor(), "user.sso_provision", "user", u.ID,
		map[string]any{"email": u.Email, "issuer": id.Issuer, "role": role, "admitted_by": how}); err != nil {
		return User{}, err
	}
	return u, nil
}
