// Package outbox records, in the transaction of a change, what the data
// plane must learn of it: that a tenant's gateway configuration changed
// (MarkChanged) and the new record of an API key (EnqueueKey). Postgres
// wakes the publisher on commit; services/publish reads what was recorded
// and carries it to Redis, and records what became of each tenant's
// changes, which ReadStatus reads back (status.go).
//
// Domain packages (catalog, settings, tenancy, ...) write here and never
// import the publisher, so that the publisher can read the domain through
// the domain packages' own queries (see cmd/tollgate/importrules_test.go).
package outbox

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/store"
)

// Channel is the Postgres NOTIFY channel that wakes the publisher. A
// configuration change is announced as "config:<tenant's generation>:<tenant
// id>", a key record as "key"; the publisher reads the tables, not the
// payload, so a lost or merged notification costs at most one poll
// interval.
const Channel = "tollgate_config"

// MarkChanged records, in the caller's transaction, that the gateway
// configuration of the tenant changed: what the data plane is compiled from
// (its upstreams, APIs, routes, plans, verified domains). Every transaction
// that changes any of it must call MarkChanged once for each tenant it
// changes.
//
// It bumps the tenant's own generation (its row of config_changes), and
// nothing shared by all tenants: one tenant's writes never wait on
// another's (the platform-wide count of changes is a sequence, which takes
// no lock). The publisher compiles the tenants whose generation moved past
// the one it handled (config_changes.published_generation). The
// notification is delivered on commit.
func MarkChanged(ctx context.Context, tx pgx.Tx, tenantID string) error {
	if !store.ValidID(tenantID) {
		return fmt.Errorf("mark config changed: %q is not a tenant id", tenantID)
	}
	var gen int64
	if err := tx.QueryRow(ctx, `INSERT INTO config_changes (tenant_id, generation)
		SELECT $1::uuid, 1 FROM (SELECT nextval('config_change_seq')) AS counted
		ON CONFLICT (tenant_id) DO UPDATE SET generation = config_changes.generation + 1, changed_at = now()
		RETURNING generation`, tenantID).Scan(&gen); err != nil {
		return fmt.Errorf("record config change of tenant: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, fmt.Sprintf("config:%d:%s", gen, tenantID)); err != nil {
		return fmt.Errorf("notify config change: %w", err)
	}
	return nil
}

// EnqueueKey records, in the caller's transaction, that the key with this
// digest now has this record (a new key, or one revoked, suspended, ...).
// The publisher copies it to Redis after commit; a crash in between only
// delays it.
func EnqueueKey(ctx context.Context, tx pgx.Tx, digest string, rec proxycfg.KeyRecord) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("marshal key record: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO key_outbox (digest, record) VALUES ($1, $2)`, digest, raw); err != nil {
		return fmt.Errorf("enqueue key record: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, 'key')`, Channel); err != nil {
		return fmt.Errorf("notify key change: %w", err)
	}
	return nil
}
