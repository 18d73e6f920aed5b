package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/token"
)

// KeyKind starts every API key.
const KeyKind = "tg_"

// KeyInput is what a caller sets to issue a key.
type KeyInput struct {
	ConsumerID string `json:"consumer_id"`
	PlanID     string `json:"plan_id"`
}

// Key describes an API key. The key itself is never stored: only its digest
// and Prefix, enough to recognise it.
type Key struct {
	ID         string     `json:"id"`
	ConsumerID string     `json:"consumer_id"`
	PlanID     string     `json:"plan_id"`
	Prefix     string     `json:"prefix"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	// SubscriptionID and AppID are set on keys issued in the developer
	// portal (nil for keys the tenant issued directly).
	SubscriptionID *string `json:"subscription_id"`
	AppID          *string `json:"app_id"`
	// ExpiresAt is when a rotated key stops working (nil: never).
	ExpiresAt *time.Time `json:"expires_at"`
	// ReplacedBy is the key that replaced this one in a rotation.
	ReplacedBy *string `json:"replaced_by"`
}

// Usable reports whether the key still works at now (not revoked, not past
// its rotation overlap). Its subscription and consumer may still refuse it.
func (k Key) Usable(now time.Time) bool {
	return k.Status == proxycfg.KeyActive && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// keyRow is a Key with the tenant and digest, for the outbox.
type keyRow struct {
	Key
	TenantID string
	Digest   string
}

const keyCols = `id, tenant_id, consumer_id, plan_id, digest, prefix, status, created_at, revoked_at,
	subscription_id, app_id, expires_at, replaced_by`

func scanKeyRow(row pgx.Row) (keyRow, error) {
	var k keyRow
	err := row.Scan(&k.ID, &k.TenantID, &k.ConsumerID, &k.PlanID, &k.Digest, &k.Prefix, &k.Status, &k.CreatedAt, &k.RevokedAt,
		&k.SubscriptionID, &k.AppID, &k.ExpiresAt, &k.ReplacedBy)
	return k, err
}

func scanKey(row pgx.Row) (Key, error) {
	k, err := scanKeyRow(row)
	return k.Key, err
}

// GetKey returns one key of the tenant (never the key itself).
func (s *Service) GetKey(ctx context.Context, tenantID, id string) (Key, error) {
	if !store.ValidID(id) {
		return Key{}, fmt.Errorf("get key: %w", fault.ErrNotFound)
	}
	k, err := scanKey(s.DB.QueryRow(ctx, `SELECT `+keyCols+` FROM keys WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return Key{}, fmt.Errorf("get key: %w", notFound(err))
	}
	return k, nil
}

// ListKeys returns one page of the tenant's keys, of one consumer if
// consumerID is not "", and the next cursor.
func (s *Service) ListKeys(ctx context.Context, tenantID, consumerID string, page store.Page) ([]Key, string, error) {
	query := `SELECT ` + keyCols + ` FROM keys WHERE tenant_id = $1 %s`
	args := []any{tenantID}
	if consumerID != "" {
		if !store.ValidID(consumerID) {
			return []Key{}, "", nil
		}
		query = `SELECT ` + keyCols + ` FROM keys WHERE tenant_id = $1 AND consumer_id = $2 %s`
		args = append(args, consumerID)
	}
	list, next, err := listQuery(ctx, s.DB, page, query, args, scanKey,
		func(k Key) (time.Time, string) { return k.CreatedAt, k.ID })
	if err != nil {
		return nil, "", fmt.Errorf("list keys: %w", err)
	}
	return list, next, nil
}

// CreateKey issues a key to a consumer under a plan, both of the actor's
// tenant, and returns it once. Workers learn of it through the key outbox.
func (s *Service) CreateKey(ctx context.Context, who audit.Actor, in KeyInput) (Key, string, error) {
	v := &fault.ValidationError{}
	if in.ConsumerID == "" {
		v.Add("consumer_id", "is required")
	}
	if in.PlanID == "" {
		v.Add("plan_id", "is required")
	}
	if err := v.Err(); err != nil {
		return Key{}, "", err
	}
	secret, err := token.New(KeyKind)
	if err != nil {
		return Key{}, "", fmt.Errorf("create key: %w", err)
	}
	var k keyRow
	err = store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		lim, err := s.beginLimits(ctx, tx, who.TenantID)
		if err != nil {
			return err
		}
		// Share-lock the consumer and plan so that neither is deleted under the new key.
		if _, err := getConsumer(ctx, tx, who.TenantID, in.ConsumerID, "FOR SHARE"); err != nil {
			if errors.Is(err, fault.ErrNotFound) {
				v.Add("consumer_id", "no such consumer")
			} else {
				return err
			}
		}
		if store.ValidID(in.PlanID) {
			var ok bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM plans WHERE tenant_id = $1 AND id = $2 FOR SHARE)`,
				who.TenantID, in.PlanID).Scan(&ok); err != nil {
				return fmt.Errorf("check plan: %w", err)
			}
			if !ok {
				v.Add("plan_id", "no such plan")
			}
		} else {
			v.Add("plan_id", "no such plan")
		}
		if err := v.Err(); err != nil {
			return err
		}
		if err := checkAdd(ctx, tx, lim, who.TenantID, limits.Keys, 1, ""); err != nil {
			return err
		}
		k, err = scanKeyRow(tx.QueryRow(ctx, `INSERT INTO keys (tenant_id, consumer_id, plan_id, digest, prefix)
			VALUES ($1, $2, $3, $4, $5) RETURNING `+keyCols,
			who.TenantID, in.ConsumerID, in.PlanID, proxycfg.Digest(s.Secret, secret), token.Prefix(secret)))
		if err != nil {
			return fmt.Errorf("insert key: %w", err)
		}
		if err := audit.Record(ctx, tx, who, "key.create", "key", k.ID, map[string]any{
			"consumer_id": k.ConsumerID, "plan_id": k.PlanID, "prefix": k.Prefix}); err != nil {
			return err
		}
		return s.enqueueKey(ctx, tx, k)
	})
	if err != nil {
		return Key{}, "", fmt.Errorf("create key: %w", err)
	}
	return k.Key, secret, nil
}

// RevokeKey revokes a key of the actor's tenant. Revoking a revoked key
// succeeds and changes nothing.
func (s *Service) RevokeKey(ctx context.Context, who audit.Actor, id string) error {
	if !store.ValidID(id) {
		return fmt.Errorf("revoke key: %w", fault.ErrNotFound)
	}
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		k, err := scanKeyRow(tx.QueryRow(ctx, `SELECT `+keyCols+` FROM keys WHERE tenant_id = $1 AND id = $2 FOR UPDATE`,
			who.TenantID, id))
		if err != nil {
			return notFound(err)
		}
		if k.Status == proxycfg.KeyRevoked {
			return nil
		}
		return s.revoke(ctx, tx, who, k)
	})
	if err != nil {
		return fmt.Errorf("revoke key: %w", err)
	}
	return nil
}

// revoke marks an active key revoked, audits it and queues its record.
func (s *Service) revoke(ctx context.Context, tx pgx.Tx, who audit.Actor, k keyRow) error {
	if err := tx.QueryRow(ctx, `UPDATE keys SET status = 'revoked', revoked_at = now()
		WHERE tenant_id = $1 AND id = $2 RETURNING status, revoked_at`, who.TenantID, k.ID).Scan(&k.Status, &k.RevokedAt); err != nil {
		return fmt.Errorf("revoke key %s: %w", k.ID, err)
	}
	if err := audit.Record(ctx, tx, who, "key.revoke", "key", k.ID, map[string]any{
		"consumer_id": k.ConsumerID, "plan_id": k.PlanID, "prefix": k.Prefix}); err != nil {
		return err
	}
	return s.enqueueKey(ctx, tx, k)
}
