// Package tenancy manages tenants and their admin tokens: creating a tenant
// with its first token, authenticating a bearer token to its tenant, and
// issuing and revoking further tokens.
package tenancy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/outbox"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/token"
)

// TokenKind starts every admin token.
const TokenKind = "tga_"

// Tenant is one company using the platform.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Slug      string    `json:"slug"`
	CreatedAt time.Time `json:"created_at"`
}

// AdminToken describes an admin token; the token itself is only returned once,
// by Create and CreateToken.
type AdminToken struct {
	ID        string     `json:"id"`
	TenantID  string     `json:"tenant_id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// Actor is the audit identity of calls made with this token.
func (t AdminToken) Actor() audit.Actor {
	return audit.Actor{TenantID: t.TenantID, Name: "admin_token:" + t.ID + ":" + t.Prefix}
}

var slugRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// reservedSlugs are names no tenant may take: labels the platform's own
// domains use (the developer portals live under developers.<domain>, the
// laptop default being developers.localhost beside tenants at
// <slug>.localhost) and names people would read as the platform's own.
var reservedSlugs = map[string]bool{
	"www": true, "api": true, "admin": true, "portal": true, "developers": true, "developer": true,
	"gw": true, "gateway": true, "app": true, "dashboard": true, "console": true, "status": true,
	"docs": true, "help": true, "support": true, "mail": true, "smtp": true, "static": true, "assets": true,
	"cdn": true, "auth": true, "login": true, "signup": true, "sso": true, "oauth": true, "billing": true,
	"metrics": true, "localhost": true, "tollgate": true, "control": true, "proxy": true,
}

// Reserved reports whether slug is reserved for the platform.
func Reserved(slug string) bool { return reservedSlugs[slug] }

const maxNameLen = 200

func checkName(v *fault.ValidationError, field, name string) {
	switch {
	case strings.TrimSpace(name) == "":
		v.Add(field, "is required")
	case utf8.RuneCountInString(name) > maxNameLen:
		v.Add(field, "must be at most %d characters", maxNameLen)
	}
}

// Create makes a tenant and its first admin token, returned once. The audit
// entry names the operator as actor. slug must be a lowercase DNS label
// (it becomes <slug>.<proxy domain>) and unique; a taken slug is a conflict.
func Create(ctx context.Context, db *pgxpool.Pool, secret []byte, name, slug string) (Tenant, string, error) {
	v := &fault.ValidationError{}
	checkName(v, "name", name)
	if !slugRE.MatchString(slug) {
		v.Add("slug", "must be a lowercase DNS label: 1-63 characters a-z, 0-9 and '-', not starting or ending with '-'")
	} else if Reserved(slug) {
		v.Add("slug", "%q is reserved; choose another", slug)
	}
	if err := v.Err(); err != nil {
		return Tenant{}, "", err
	}
	tok, err := token.New(TokenKind)
	if err != nil {
		return Tenant{}, "", fmt.Errorf("create tenant: %w", err)
	}
	var t Tenant
	err = store.InTx(ctx, db, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO tenants (name, slug) VALUES ($1, $2)
			RETURNING id, name, slug, created_at`, strings.TrimSpace(name), slug).
			Scan(&t.ID, &t.Name, &t.Slug, &t.CreatedAt)
		if _, ok := store.UniqueViolation(err); ok {
			return fault.Conflict("slug", "slug %q is taken", slug)
		}
		if err != nil {
			return fmt.Errorf("insert tenant: %w", err)
		}
		who := audit.Actor{TenantID: t.ID, Name: audit.Operator}
		if err := audit.Record(ctx, tx, who, "tenant.create", "tenant", t.ID,
			map[string]any{"name": t.Name, "slug": t.Slug}); err != nil {
			return err
		}
		if _, err := insertToken(ctx, tx, secret, who, "initial", tok); err != nil {
			return err
		}
		return outbox.MarkChanged(ctx, tx, t.ID)
	})
	if err != nil {
		return Tenant{}, "", fmt.Errorf("create tenant: %w", err)
	}
	return t, tok, nil
}

// Get returns the tenant with this id.
func Get(ctx context.Context, db *pgxpool.Pool, tenantID string) (Tenant, error) {
	if !store.ValidID(tenantID) {
		return Tenant{}, fault.ErrNotFound
	}
	var t Tenant
	err := db.QueryRow(ctx, `SELECT id, name, slug, created_at FROM tenants WHERE id = $1`, tenantID).
		Scan(&t.ID, &t.Name, &t.Slug, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, fault.ErrNotFound
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("get tenant: %w", err)
	}
	return t, nil
}

// Authenticate returns the active admin token whose digest matches tok, or
// fault.ErrUnauthenticated. The token alone decides the tenant.
func Authenticate(ctx context.Context, db *pgxpool.Pool, secret []byte, tok string) (AdminToken, error) {
	if !strings.HasPrefix(tok, TokenKind) {
		return AdminToken{}, fault.ErrUnauthenticated
	}
	t, err := scanToken(db.QueryRow(ctx, `SELECT `+tokenCols+` FROM admin_tokens
		WHERE digest = $1 AND revoked_at IS NULL`, proxycfg.Digest(secret, tok)))
	if errors.Is(err, pgx.ErrNoRows) {
		return AdminToken{}, fault.ErrUnauthenticated
	}
	if err != nil {
		return AdminToken{}, fmt.Errorf("authenticate admin token: %w", err)
	}
	return t, nil
}

// CreateToken issues a further admin token of the actor's tenant; the token is
// returned once. A token made by a portal user, or by a token such a user
// made, records that user, so that it is revoked with the user's admin
// rights (RevokeTokensOf).
func CreateToken(ctx context.Context, db *pgxpool.Pool, secret []byte, who audit.Actor, name string) (AdminToken, string, error) {
	v := &fault.ValidationError{}
	checkName(v, "name", name)
	if err := v.Err(); err != nil {
		return AdminToken{}, "", err
	}
	tok, err := token.New(TokenKind)
	if err != nil {
		return AdminToken{}, "", fmt.Errorf("create admin token: %w", err)
	}
	var t AdminToken
	err = store.InTx(ctx, db, func(tx pgx.Tx) error {
		t, err = insertToken(ctx, tx, secret, who, strings.TrimSpace(name), tok)
		return err
	})
	if err != nil {
		return AdminToken{}, "", fmt.Errorf("create admin token: %w", err)
	}
	return t, tok, nil
}

func insertToken(ctx context.Context, tx pgx.Tx, secret []byte, who audit.Actor, name, tok string) (AdminToken, error) {
	creator, err := creatorOf(ctx, tx, who)
	if err != nil {
		return AdminToken{}, err
	}
	t, err := scanToken(tx.QueryRow(ctx, `INSERT INTO admin_tokens (tenant_id, name, digest, prefix, created_by_user)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+tokenCols,
		who.TenantID, name, proxycfg.Digest(secret, tok), token.Prefix(tok), creator))
	if err != nil {
		return AdminToken{}, fmt.Errorf("insert admin token: %w", err)
	}
	if err := audit.Record(ctx, tx, who, "admin_token.create", "admin_token", t.ID,
		map[string]any{"name": t.Name, "prefix": t.Prefix}); err != nil {
		return AdminToken{}, err
	}
	return t, nil
}

const tokenCols = `id, tenant_id, name, prefix, created_at, revoked_at`

func scanToken(row pgx.Row) (AdminToken, error) {
	var t AdminToken
	err := row.Scan(&t.ID, &t.TenantID, &t.Name, &t.Prefix, &t.CreatedAt, &t.RevokedAt)
	return t, err
}

// ListTokens returns one page of the tenant's admin tokens (revoked ones
// included) and the next cursor ("" on the last page).
func ListTokens(ctx context.Context, db *pgxpool.Pool, tenantID string, page store.Page) ([]AdminToken, string, error) {
	pos, err := page.Decode()
	if err != nil {
		return nil, "", err
	}
	at, id := pos.Args()
	limit := page.Size()
	rows, err := db.Query(ctx, `SELECT `+tokenCols+` FROM admin_tokens
		WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
		ORDER BY created_at, id LIMIT $4`, tenantID, at, id, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list admin tokens: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AdminToken, error) { return scanToken(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list admin tokens: %w", err)
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		next = store.Cursor(list[limit-1].CreatedAt, list[limit-1].ID)
	}
	return list, next, nil
}

// GetToken returns one admin token of the tenant.
func GetToken(ctx context.Context, db *pgxpool.Pool, tenantID, id string) (AdminToken, error) {
	if !store.ValidID(id) {
		return AdminToken{}, fault.ErrNotFound
	}
	t, err := scanToken(db.QueryRow(ctx, `SELECT `+tokenCols+` FROM admin_tokens
		WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return AdminToken{}, fault.ErrNotFound
	}
	if err != nil {
		return AdminToken{}, fmt.Errorf("get admin token: %w", err)
	}
	return t, nil
}

// RevokeToken revokes an admin token of the actor's tenant. Revoking the
// tenant's last active token is a conflict: it would lock the tenant out.
// Revoking an already revoked token succeeds and changes nothing.
func RevokeToken(ctx context.Context, db *pgxpool.Pool, who audit.Actor, id string) error {
	if !store.ValidID(id) {
		return fault.ErrNotFound
	}
	err := store.InTx(ctx, db, func(tx pgx.Tx) error {
		// Lock the tenant's active tokens so that two concurrent revocations
		// cannot both see "another one is left".
		rows, err := tx.Query(ctx, `SELECT id FROM admin_tokens
			WHERE tenant_id = $1 AND revoked_at IS NULL ORDER BY id FOR UPDATE`, who.TenantID)
		if err != nil {
			return fmt.Errorf("lock admin tokens: %w", err)
		}
		active, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("lock admin tokens: %w", err)
		}
		var revokedAt *time.Time
		err = tx.QueryRow(ctx, `SELECT revoked_at FROM admin_tokens WHERE tenant_id = $1 AND id = $2`,
			who.TenantID, id).Scan(&revokedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("get admin token: %w", err)
		}
		if revokedAt != nil {
			return nil
		}
		if len(active) <= 1 {
			return fault.Conflict("", "cannot revoke the last active admin token of the tenant; create another one first")
		}
		if _, err := tx.Exec(ctx, `UPDATE admin_tokens SET revoked_at = now() WHERE tenant_id = $1 AND id = $2`,
			who.TenantID, id); err != nil {
			return fmt.Errorf("revoke admin token: %w", err)
		}
		return audit.Record(ctx, tx, who, "admin_token.revoke", "admin_token", id, nil)
	})
	if err != nil {
		return fmt.Errorf("revoke admin token: %w", err)
	}
	return nil
}

// Actor name prefixes of the two kinds of actor that make tokens: portal
// users (accounts.User.Actor: "user:<id>:<email>") and admin tokens
// (AdminToken.Actor: "admin_token:<id>:<prefix>").
const (
	userActorPrefix  = "user:"
	tokenActorPrefix = "admin_token:"
)

// creatorOf is the portal user answerable for a token that who makes: who
// itself when a user, the user answerable for who's token when a token;
// nil for the operator and for tokens no user answers for.
func creatorOf(ctx context.Context, tx pgx.Tx, who audit.Actor) (*string, error) {
	if rest, ok := strings.CutPrefix(who.Name, userActorPrefix); ok {
		id, _, _ := strings.Cut(rest, ":")
		if store.ValidID(id) {
			return &id, nil
		}
		return nil, nil
	}
	if rest, ok := strings.CutPrefix(who.Name, tokenActorPrefix); ok {
		id, _, _ := strings.Cut(rest, ":")
		if !store.ValidID(id) {
			return nil, nil
		}
		var creator *string
		err := tx.QueryRow(ctx, `SELECT created_by_user::text FROM admin_tokens WHERE tenant_id = $1 AND id = $2`,
			who.TenantID, id).Scan(&creator)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("token creator: %w", err)
		}
		return creator, nil
	}
	return nil, nil
}

// RevokeTokensOf revokes, in tx, every active admin token of who's tenant
// that userID answers for (made by the user, or by such a token), because
// the user left the team or lost admin rights (reason names the audit
// action that caused it). The last-token rule of RevokeToken does not
// apply: the tenant's owners can make new tokens. It returns how many were
// revoked.
func RevokeTokensOf(ctx context.Context, tx pgx.Tx, who audit.Actor, userID, reason string) (int, error) {
	if !store.ValidID(userID) {
		return 0, nil
	}
	rows, err := tx.Query(ctx, `UPDATE admin_tokens SET revoked_at = now()
		WHERE tenant_id = $1 AND created_by_user = $2 AND revoked_at IS NULL RETURNING id`, who.TenantID, userID)
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of user: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("revoke tokens of user: %w", err)
	}
	for _, id := range ids {
		if err := audit.Record(ctx, tx, who, "admin_token.revoke", "admin_token", id,
			map[string]any{"reason": reason, "user_id": userID}); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}
