// Package audit records who changed what in a tenant, in the transaction of
// the change, and lists those records.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/store"
)

// Actor is the caller of a domain operation: the tenant it acts in and a
// printable identity for the audit log.
type Actor struct {
	// TenantID scopes every read and write of the operation.
	TenantID string
	// Name identifies the caller, e.g. "admin_token:<id>" or "operator". Never a secret.
	Name string
}

// Operator is the actor name of calls made with the operator token or the CLI.
const Operator = "operator"

// Entry is one audit record.
type Entry struct {
	ID           string          `json:"id"`
	TenantID     string          `json:"tenant_id"`
	Actor        string          `json:"actor"`
	Action       string          `json:"action"`
	ResourceType string          `json:"resource_type"`
	ResourceID   string          `json:"resource_id"`
	Data         json.RawMessage `json:"data"`
	At           time.Time       `json:"at"`
}

// Record writes an entry in tx. data is a summary of the change (marshalled to
// JSON); callers must leave secrets out of it.
func Record(ctx context.Context, tx pgx.Tx, who Actor, action, resourceType, resourceID string, data any) error {
	if data == nil {
		data = map[string]any{}
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("audit %s: marshal data: %w", action, err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO audit_log (tenant_id, actor, action, resource_type, resource_id, data)
		VALUES ($1, $2, $3, $4, $5, $6)`, who.TenantID, who.Name, action, resourceType, resourceID, raw)
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// List returns one page of the tenant's audit entries, oldest first, and the
// cursor of the next page ("" when this is the last).
func List(ctx context.Context, db *pgxpool.Pool, tenantID string, page store.Page) ([]Entry, string, error) {
	pos, err := page.Decode()
	if err != nil {
		return nil, "", err
	}
	limit := page.Size()
	at, id := pos.Args()
	rows, err := db.Query(ctx, `SELECT id, tenant_id, actor, action, resource_type, resource_id, data, at
		FROM audit_log
		WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (at, id) > ($2, $3::uuid))
		ORDER BY at, id LIMIT $4`, tenantID, at, id, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := r.Scan(&e.ID, &e.TenantID, &e.Actor, &e.Action, &e.ResourceType, &e.ResourceID, &e.Data, &e.At)
		return e, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	next := ""
	if len(entries) > limit {
		entries = entries[:limit]
		last := entries[limit-1]
		next = store.Cursor(last.At, last.ID)
	}
	return entries, next, nil
}
