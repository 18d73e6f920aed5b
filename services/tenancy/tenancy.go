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
	"github.com/tollgate/tollgate/services/publish"
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
		return publish.MarkChanged(ctx, tx)
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
// returned once.
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
	t, err := scanToken(tx.QueryRow(ctx, `INSERT INTO admin_tokens (tenant_id, name, digest, prefix)
		VALUES ($1, $2, $3, $4) RETURNING `+tokenCols,
		who.TenantID, name, proxycfg.Digest(secret, tok), token.Prefix(tok)))
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
