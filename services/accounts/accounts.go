// Package accounts manages the people who sign in to the tenant portal: users
// and their roles (owner, admin, viewer), argon2id passwords, sessions stored
// in Postgres, email verification, team invitations, password reset tokens,
// single sign-on identities with the tenant's admission rules, and the
// throttling of sign-up, sign-in and reset (services/throttle). Tenants
// themselves are made by services/tenancy; this package adds their owner and
// team.
package accounts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/services/throttle"
)

// Roles of a user in its tenant. Owners manage the team and every object;
// admins manage every object; viewers read.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// ValidRole reports whether r is one of the roles.
func ValidRole(r string) bool { return r == RoleOwner || r == RoleAdmin || r == RoleViewer }

// CanWrite reports whether role may change the tenant's gateway objects.
func CanWrite(role string) bool { return role == RoleOwner || role == RoleAdmin }

// CanManageTeam reports whether role may invite, remove and re-role users.
func CanManageTeam(role string) bool { return role == RoleOwner }

// User is one person who signs in to a tenant.
type User struct {
	ID          string `json:"id"`
	TenantID    string `json:"tenant_id"`
	Email       string `json:"email"`
	Name        string `json:"name"`
	Role        string `json:"role"`
	HasPassword bool   `json:"has_password"`
	// EmailVerified is set once the user proved the address (signup link,
	// invitation, password reset, or an identity provider vouching for it).
	// Single sign-on links only verified accounts.
	EmailVerified bool      `json:"email_verified"`
	CreatedAt     time.Time `json:"created_at"`
}

// Actor is the audit identity of what the user does.
func (u User) Actor() audit.Actor {
	return audit.Actor{TenantID: u.TenantID, Name: "user:" + u.ID + ":" + u.Email}
}

const maxNameLen = 200

// normalizeEmail validates an address and returns it lower-cased.
func normalizeEmail(v *fault.ValidationError, field, email string) string {
	email = strings.ToLower(strings.TrimSpace(email))
	switch {
	case email == "":
		v.Add(field, "is required")
	case len(email) > 254:
		v.Add(field, "must be at most 254 characters")
	default:
		a, err := mail.ParseAddress(email)
		if err != nil || a.Address != email || !strings.Contains(email[strings.LastIndex(email, "@"):], ".") {
			v.Add(field, "must be an email address such as ada@example.com")
		}
	}
	return email
}

func checkName(v *fault.ValidationError, field, name string) {
	switch {
	case strings.TrimSpace(name) == "":
		v.Add(field, "is required")
	case utf8.RuneCountInString(name) > maxNameLen:
		v.Add(field, "must be at most %d characters", maxNameLen)
	}
}

func checkPassword(v *fault.ValidationError, field, pw string) {
	switch n := utf8.RuneCountInString(pw); {
	case n < MinPasswordLen:
		v.Add(field, "must be at least %d characters", MinPasswordLen)
	case len(pw) > MaxPasswordLen:
		v.Add(field, "must be at most %d bytes", MaxPasswordLen)
	}
}

// digest is the stored form of a one-time secret (session id, invite or
// reset token): they are 256-bit random values, so a plain SHA-256 suffices.
func digest(secret string) string {
	s := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(s[:])
}

const userCols = `id, tenant_id, email, name, role, password_hash IS NOT NULL, email_verified_at IS NOT NULL, created_at`

// userColsOf is userCols qualified by a table alias.
func userColsOf(alias string) string {
	a := alias + "."
	return a + `id, ` + a + `tenant_id, ` + a + `email, ` + a + `name, ` + a + `role, ` + a + `password_hash IS NOT NULL, ` +
		a + `email_verified_at IS NOT NULL, ` + a + `created_at`
}

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.TenantID, &u.Email, &u.Name, &u.Role, &u.HasPassword, &u.EmailVerified, &u.CreatedAt)
	return u, err
}

// SignupInput is what a new tenant's owner fills in.
type SignupInput struct {
	Company  string
	Slug     string
	Name     string
	Email    string
	Password string
	// Client is the caller's address (the throttle's subject).
	Client string
}

// Signup creates the tenant (through tenancy.Create, with its first admin
// token) and its owner, whose address is not verified yet: the caller mails
// a link made by NewVerification. Sign-ups are throttled per client and per
// address (a *fault.ThrottledError) before any password is hashed.
// Validation errors name the fields company, slug, name, email and password.
func Signup(ctx context.Context, db *pgxpool.Pool, secret []byte, in SignupInput) (tenancy.Tenant, User, error) {
	v := &fault.ValidationError{}
	checkName(v, "company", in.Company)
	checkName(v, "name", in.Name)
	email := normalizeEmail(v, "email", in.Email)
	checkPassword(v, "password", in.Password)
	if err := v.Err(); err != nil {
		return tenancy.Tenant{}, User{}, err
	}
	if err := hit(ctx, db, "signup:client:"+in.Client, RuleSignupClient, "signup:account:"+email, RuleSignupAccount); err != nil {
		return tenancy.Tenant{}, User{}, err
	}
	if taken, err := emailTaken(ctx, db, email); err != nil {
		return tenancy.Tenant{}, User{}, err
	} else if taken {
		return tenancy.Tenant{}, User{}, fault.Conflict("email", "an account with this email already exists; sign in instead")
	}
	hash, err := hashPassword(ctx, in.Password)
	if err != nil {
		return tenancy.Tenant{}, User{}, err
	}
	t, _, err := tenancy.Create(ctx, db, secret, in.Company, in.Slug)
	if err != nil {
		var ve *fault.ValidationError
		if errors.As(err, &ve) {
			for i := range ve.Errors {
				if ve.Errors[i].Field == "name" {
					ve.Errors[i].Field = "company"
				}
			}
		}
		return tenancy.Tenant{}, User{}, err
	}
	var u User
	err = store.InTx(ctx, db, func(tx pgx.Tx) error {
		u, err = insertUser(ctx, tx, t.ID, email, in.Name, RoleOwner, hash, false)
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, u.Actor(), "user.signup", "user", u.ID,
			map[string]any{"email": u.Email, "role": u.Role})
	})
	if err != nil {
		// The email was taken between the check and the insert: remove the
		// tenant made a moment ago so that no ownerless tenant remains.
		if _, derr := db.Exec(context.WithoutCancel(ctx), `DELETE FROM tenants WHERE id = $1`, t.ID); derr != nil {
			err = errors.Join(err, fmt.Errorf("remove ownerless tenant: %w", derr))
		}
		return tenancy.Tenant{}, User{}, fmt.Errorf("signup: %w", err)
	}
	return t, u, nil
}

func emailTaken(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, email string) (bool, error) {
	var n int
	if err := q.QueryRow(ctx, `SELECT count(*) FROM users WHERE lower(email) = $1`, email).Scan(&n); err != nil {
		return false, fmt.Errorf("check email: %w", err)
	}
	return n > 0, nil
}

// insertUser adds a user; verified says whether the address is proven
// already (an invitation, an identity provider, the operator).
func insertUser(ctx context.Context, tx pgx.Tx, tenantID, email, name, role, hash string, verified bool) (User, error) {
	var h *string
	if hash != "" {
		h = &hash
	}
	u, err := scanUser(tx.QueryRow(ctx, `INSERT INTO users (tenant_id, email, name, role, password_hash, email_verified_at)
		VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END) RETURNING `+userCols,
		tenantID, email, strings.TrimSpace(name), role, h, verified))
	if _, ok := store.UniqueViolation(err); ok {
		return User{}, fault.Conflict("email", "an account with this email already exists")
	}
	if err != nil {
		return User{}, fmt.Errorf("insert user: %w", err)
	}
	return u, nil
}

// GetUser returns one user of the tenant.
func GetUser(ctx context.Context, db *pgxpool.Pool, tenantID, id string) (User, error) {
	if !store.ValidID(id) {
		return User{}, fault.ErrNotFound
	}
	u, err := scanUser(db.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, fault.ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

// ListUsers returns the tenant's users, oldest first. Teams are small, so
// the list is not paginated beyond store.MaxLimit.
func ListUsers(ctx context.Context, db *pgxpool.Pool, tenantID string) ([]User, error) {
	rows, err := db.Query(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = $1
		ORDER BY created_at, id LIMIT $2`, tenantID, store.MaxLimit)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return list, nil
}

// SetRole changes a user's role. Only owners may do it (the caller checks
// CanManageTeam); demoting the last owner is a conflict. A user who can no
// longer write loses the admin tokens they made (tenancy.RevokeTokensOf).
func SetRole(ctx context.Context, db *pgxpool.Pool, who audit.Actor, id, role string) error {
	if !ValidRole(role) {
		return fault.Invalid("role", "must be owner, admin or viewer")
	}
	if !store.ValidID(id) {
		return fault.ErrNotFound
	}
	err := store.InTx(ctx, db, func(tx pgx.Tx) error {
		old, err := lockOwners(ctx, tx, who.TenantID, id)
		if err != nil {
			return err
		}
		if old.role == role {
			return nil
		}
		if old.role == RoleOwner && old.owners <= 1 {
			return fault.Conflict("role", "the tenant needs at least one owner; make someone else owner first")
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET role = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2`,
			who.TenantID, id, role); err != nil {
			return fmt.Errorf("update role: %w", err)
		}
		if CanWrite(old.role) && !CanWrite(role) {
			if _, err := tenancy.RevokeTokensOf(ctx, tx, who, id, "user.role"); err != nil {
				return err
			}
		}
		return audit.Record(ctx, tx, who, "user.role", "user", id, map[string]any{"from": old.role, "to": role})
	})
	if err != nil {
		return fmt.Errorf("set role: %w", err)
	}
	return nil
}

// RemoveUser removes a user from the tenant (with its sessions) and revokes
// the admin tokens the user made. Removing the last owner is a conflict.
func RemoveUser(ctx context.Context, db *pgxpool.Pool, who audit.Actor, id string) error {
	if !store.ValidID(id) {
		return fault.ErrNotFound
	}
	err := store.InTx(ctx, db, func(tx pgx.Tx) error {
		old, err := lockOwners(ctx, tx, who.TenantID, id)
		if err != nil {
			return err
		}
		if old.role == RoleOwner && old.owners <= 1 {
			return fault.Conflict("", "the tenant needs at least one owner; make someone else owner first")
		}
		if _, err := tenancy.RevokeTokensOf(ctx, tx, who, id, "user.remove"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM users WHERE tenant_id = $1 AND id = $2`, who.TenantID, id); err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		return audit.Record(ctx, tx, who, "user.remove", "user", id, map[string]any{"email": old.email})
	})
	if err != nil {
		return fmt.Errorf("remove user: %w", err)
	}
	return nil
}

type ownerState struct {
	role, email string
	owners      int
}

// lockOwners locks the tenant's users (so that two concurrent demotions cannot
// both see another owner left) and returns the target's role and the owner count.
func lockOwners(ctx context.Context, tx pgx.Tx, tenantID, id string) (ownerState, error) {
	rows, err := tx.Query(ctx, `SELECT id, role, email FROM users WHERE tenant_id = $1 ORDER BY id FOR UPDATE`, tenantID)
	if err != nil {
		return ownerState{}, fmt.Errorf("lock users: %w", err)
	}
	var st ownerState
	found := false
	for rows.Next() {
		var uid, role, email string
		if err := rows.Scan(&uid, &role, &email); err != nil {
			rows.Close()
			return ownerState{}, fmt.Errorf("lock users: %w", err)
		}
		if role == RoleOwner {
			st.owners++
		}
		if uid == id {
			st.role, st.email, found = role, email, true
		}
	}
	if err := rows.Err(); err != nil {
		return ownerState{}, fmt.Errorf("lock users: %w", err)
	}
	if !found {
		return ownerState{}, fault.ErrNotFound
	}
	return st, nil
}

// CreateUser adds a user with a password to the actor's tenant, e.g. the
// demo owner of `tollgate dev` or an operator provisioning an owner for a
// tenant made with `tollgate tenant create`. Team members normally join by
// invitation instead.
func CreateUser(ctx context.Context, db *pgxpool.Pool, who audit.Actor, email, name, role, password string) (User, error) {
	v := &fault.ValidationError{}
	email = normalizeEmail(v, "email", email)
	checkName(v, "name", name)
	checkPassword(v, "password", password)
	if !ValidRole(role) {
		v.Add("role", "must be owner, admin or viewer")
	}
	if err := v.Err(); err != nil {
		return User{}, err
	}
	hash, err := hashPassword(ctx, password)
	if err != nil {
		return User{}, err
	}
	var u User
	err = store.InTx(ctx, db, func(tx pgx.Tx) error {
		// The operator vouches for the address.
		u, err = insertUser(ctx, tx, who.TenantID, email, name, role, hash, true)
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, who, "user.create", "user", u.ID, map[string]any{"email": u.Email, "role": u.Role})
	})
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// Throttle rules, counted atomically in Postgres (services/throttle) before
// any password is hashed. Sign-in counts per client address, per account and
// client (a short and a day-long window, so that a client that keeps
// guessing one account backs off for the rest of the day) and per account
// from anywhere (a distributed guess slows down without one client being
// able to lock an account out for everyone at the short window). A
// successful sign-in clears its account-and-client counts.
var (
	RuleLoginClient           = throttle.Rule{Max: 100, Window: 15 * time.Minute}
	RuleLoginAccountClient    = throttle.Rule{Max: 5, Window: 15 * time.Minute}
	RuleLoginAccountClientDay = throttle.Rule{Max: 20, Window: 24 * time.Hour}
	RuleLoginAccount          = throttle.Rule{Max: 100, Window: time.Hour}
	RuleSignupClient          = throttle.Rule{Max: 10, Window: time.Hour}
	RuleSignupAccount         = throttle.Rule{Max: 5, Window: time.Hour}
	RuleResetClient           = throttle.Rule{Max: 20, Window: time.Hour}
	RuleResetAccount          = throttle.Rule{Max: 5, Window: time.Hour}
	RuleVerifyMail            = throttle.Rule{Max: 5, Window: time.Hour}
	RuleVerifyClient          = throttle.Rule{Max: 50, Window: time.Hour}
)

// hit counts one attempt under each (subject, rule) pair, stopping at the
// first that is over its limit (a *fault.ThrottledError).
func hit(ctx context.Context, db *pgxpool.Pool, pairs ...any) error {
	l := throttle.Limiter{DB: db}
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := l.Hit(ctx, "tenant-portal:"+pairs[i].(string), pairs[i+1].(throttle.Rule)); err != nil {
			return err
		}
	}
	return nil
}

// resetHits forgets the attempts of subjects (after a success).
func resetHits(ctx context.Context, db *pgxpool.Pool, subjects ...string) error {
	l := throttle.Limiter{DB: db}
	for _, s := range subjects {
		if err := l.Reset(ctx, "tenant-portal:"+s); err != nil {
			return err
		}
	}
	return nil
}
