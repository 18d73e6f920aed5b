package publish

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// Channel is the Postgres NOTIFY channel that wakes the publisher.
const Channel = "tollgate_config"

// MarkChanged records, in the caller's transaction, that the data-plane
// configuration changed: it bumps config_state.generation and notifies the
// publisher (Postgres delivers the notification on commit). Every transaction
// that changes what the snapshot compiles from must call it.
func MarkChanged(ctx context.Context, tx pgx.Tx) error {
	var gen int64
	if err := tx.QueryRow(ctx,
		`UPDATE config_state SET generation = generation + 1 RETURNING generation`).Scan(&gen); err != nil {
		return fmt.Errorf("bump config generation: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, fmt.Sprintf("config:%d", gen)); err != nil {
		return fmt.Errorf("notify config change: %w", err)
	}
	return nil
}

// EnqueueKey records, in the caller's transaction, that the key with this
// digest now has this record (a new key, or one revoked). The publisher
// copies it to Redis after commit; a crash in between only delays it.
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
