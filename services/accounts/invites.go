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

// InviteTTL is how long an invitation can be accepted.
const InviteTTL = 7 * 24 * time.Hour

// Invite is a pending, accepted or revoked invitation to join a tenant.
type Invite struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenant_id"`
	Email      string     `json:"email"`
	Role       string     `json:"role"`
	InvitedBy  string     `json:"invited_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	AcceptedAt *time.Time `json:"accepted_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// Pending reports whether the invite can still be accepted.
func (i Invite) Pending() bool {
	return i.AcceptedAt == nil && i.RevokedAt == nil && time.Now().Before(i.ExpiresAt)
}

const inviteCols = `id, tenant_id, email, role, invited_by, created_at, expires_at, accepted_at, revoked_at`

func scanInvite(row pgx.Row) (Invite, error) {
	var i Invite
	err := row.Scan(&i.ID, &i.TenantID, &i.Email, &i.Role, &i.InvitedBy, &i.CreatedAt, &i.ExpiresAt, &i.AcceptedAt, &i.RevokedAt)
	return i, err
}

// CreateInvite invites email to the actor's tenant with role and returns the
// invite and its secret token (to be mailed; only its digest is stored).
func CreateInvite(ctx context.Context, db *pgxpool.Pool, who audit.Actor, email, role string) (Invite, string, error) {
	v := &fault.ValidationError{}
	email = normalizeEmail(v, "email", email)
	if !ValidRole(role) {
		v.Add("role", "must be owner, admin or viewer")
	}
	if err := v.Err(); err != nil {
		return Invite{}, "", err
	}
	if taken, err := emailTaken(ctx, db, email); err != nil {
		return Invite{}, "", err
	} else if taken {
		return Invite{}, "", fault.Conflict("email", "%s already has a Tollgate account", email)
	}
	tok, err := token.New("tgi_")
	if err != nil {
		return Invite{}, "", fmt.Errorf("create invite: %w", err)
	}
	var inv Invite
	err = store.InTx(ctx, db, func(tx pgx.Tx) error {
		inv, err = scanInvite(tx.QueryRow(ctx, `INSERT INTO invites (tenant_id, email, role, digest, invited_by, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+inviteCols,
			who.TenantID, email, role, digest(tok), who.Name, time.Now().Add(InviteTTL)))
		if err != nil {
			return fmt.Errorf("insert invite: %w", err)
		}
		return audit.Record(ctx, tx, who, "invite.create", "invite", inv.ID, map[string]any{"email": email, "role": role})
	})
	if err != nil {
		return Invite{}, "", fmt.Errorf("create invite: %w", err)
	}
	return inv, tok, nil
}

// ListInvites returns the tenant's invitations, newest first.
func ListInvites(ctx context.Context, db *pgxpool.Pool, tenantID string) ([]Invite, error) {
	rows, err := db.Query(ctx, `SELECT `+inviteCols+` FROM invites WHERE tenant_id = $1
		ORDER BY created_at DESC, id LIMIT $2`, tenantID, store.MaxLimit)
	if err != nil {
		return nil, fmt.Errorf("list invites: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Invite, error) { return scanInvite(r) })
	if err != nil {
		return nil, fmt.Errorf("list invites: %w", err)
	}
	return list, nil
}

// RevokeInvite withdraws a pending invitation of the actor's tenant.
func RevokeInvite(ctx context.Context, db *pgxpool.Pool, who audit.Actor, id string) error {
	if !store.ValidID(id) {
		return fault.ErrNotFound
	}
	err := store.InTx(ctx, db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE invites SET revoked_at = coalesce(revoked_at, now())
			WHERE tenant_id = $1 AND id = $2`, who.TenantID, id)
		if err != nil {
			return fmt.Errorf("revoke invite: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fault.ErrNotFound
		}
		return audit.Record(ctx, tx, who, "invite.revoke", "invite", id, nil)
	})
	if err != nil {
		return fmt.Errorf("revoke invite: %w", err)
	}
	return nil
}

// LookupInvite returns the pending invitation with this token, or fault.ErrNotFound.
func LookupInvite(ctx context.Context, db *pgxpool.Pool, tok string) (Invite, error) {
	inv, err := scanInvite(db.QueryRow(ctx, `SELECT `+inviteCols+` FROM invites WHERE digest = $1`, digest(tok)))
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !inv.Pending()) {
		return Invite{}, fault.ErrNotFound
	}
	if err != nil {
		return Invite{}, fmt.Errorf("lookup invite: %w", err)
	}
	return inv, nil
}

// AcceptInvite creates the invited user with a name and password (its
// address verified: the invitation reached it) and marks the invitation
// used. An unknown, used, revoked or expired token is not found, before any
// password is hashed.
func AcceptInvite(ctx context.Context, db *pgxpool.Pool, tok, name, password string) (User, error) {
	v := &fault.ValidationError{}
	checkName(v, "name", name)
	checkPassword(v, "password", password)
	if err := v.Err(); err != nil {
		return User{}, err
	}
	if _, err := LookupInvite(ctx, db, tok); err != nil {
		return User{}, err
	}
	hash, err := hashPassword(ctx, password)
	if err != nil {
		return User{}, err
	}
	var u User
	err = store.InTx(ctx, db, func(tx pgx.Tx) error {
		inv, err := scanInvite(tx.QueryRow(ctx, `SELECT `+inviteCols+` FROM invites WHERE digest = $1 FOR UPDATE`, digest(tok)))
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && !inv.Pending()) {
			return fault.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lookup invite: %w", err)
		}
		u, err = insertUser(ctx, tx, inv.TenantID, inv.Email, name, inv.Role, hash, true)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE invites SET accepted_at = now() WHERE id = $1`, inv.ID); err != nil {
			return fmt.Errorf("mark invite accepted: %w", err)
		}
		return audit.Record(ctx, tx, u.Actor(), "invite.accept", "user", u.ID, map[string]any{"email": u.Email, "role": u.Role})
	})
	if err != nil {
		return User{}, fmt.Errorf("accept invite: %w", err)
	}
	return u, nil
}

// takeInvite marks the newest pending invitation of email to the tenant
// accepted and returns it; ok is false when there is none.
func takeInvite(ctx context.Context, tx pgx.Tx, tenantID, email string) (inv Invite, ok bool, err error) {
	inv, err = scanInvite(tx.QueryRow(ctx, `UPDATE invites SET accepted_at = now() WHERE id = (
		SELECT id FROM invites WHERE tenant_id = $1 AND lower(email) = $2
		AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()
		ORDER BY created_at DESC LIMIT 1 FOR UPDATE) RETURNING `+inviteCols, tenantID, email))
	if errors.Is(err, pgx.ErrNoRows) {
		return Invite{}, false, nil
	}
	if err != nil {
		return Invite{}, false, fmt.Errorf("take invite: %w", err)
	}
	return inv, true, nil
}
