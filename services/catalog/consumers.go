package catalog

import (
	"context"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/store"
)

const maxEmailLen = 254

// Consumer states: a suspended consumer's keys are refused by every worker
// (403 consumer-suspended) until the tenant lifts the suspension.
const (
	ConsumerActive    = "active"
	ConsumerSuspended = "suspended"
)

// ConsumerInput is what a caller may set on a consumer.
type ConsumerInput struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	// Status is "active" (default) or "suspended".
	Status string `json:"status,omitempty"`
}

// Consumer is a developer or application that holds API keys.
type Consumer struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Email  string `json:"email"`
	Status string `json:"status"`
	// DeveloperID is the developer-portal account of the consumer, if any.
	DeveloperID *string   `json:"developer_id"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Input returns the settable fields of c.
func (c Consumer) Input() ConsumerInput {
	return ConsumerInput{Name: c.Name, Email: c.Email, Status: c.Status}
}

func normalizeConsumer(in ConsumerInput) (ConsumerInput, error) {
	v := &fault.ValidationError{}
	in.Name = strings.TrimSpace(in.Name)
	in.Email = strings.TrimSpace(in.Email)
	switch in.Status {
	case "":
		in.Status = ConsumerActive
	case ConsumerActive, ConsumerSuspended:
	default:
		v.Add("status", "must be %q or %q", ConsumerActive, ConsumerSuspended)
	}
	checkName(v, "name", in.Name)
	if in.Email == "" {
		v.Add("email", "is required")
	} else if a, err := mail.ParseAddress(in.Email); err != nil || a.Address != in.Email || len(in.Email) > maxEmailLen {
		v.Add("email", "must be a plain email address such as dev@example.com")
	}
	if err := v.Err(); err != nil {
		return ConsumerInput{}, err
	}
	return in, nil
}

const consumerCols = `id, name, email, status, created_at, updated_at,
	(SELECT d.id FROM developers d WHERE d.consumer_id = consumers.id) AS developer_id`

func scanConsumer(row pgx.Row) (Consumer, error) {
	var c Consumer
	err := row.Scan(&c.ID, &c.Name, &c.Email, &c.Status, &c.CreatedAt, &c.UpdatedAt, &c.DeveloperID)
	return c, err
}

func getConsumer(ctx context.Context, q querier, tenantID, id string, lock string) (Consumer, error) {
	if !store.ValidID(id) {
		return Consumer{}, fault.ErrNotFound
	}
	c, err := scanConsumer(q.QueryRow(ctx, `SELECT `+consumerCols+` FROM consumers
		WHERE tenant_id = $1 AND id = $2 `+lock, tenantID, id))
	return c, notFound(err)
}

// GetConsumer returns one consumer of the tenant.
func (s *Service) GetConsumer(ctx context.Context, tenantID, id string) (Consumer, error) {
	c, err := getConsumer(ctx, s.DB, tenantID, id, "")
	if err != nil {
		return Consumer{}, fmt.Errorf("get consumer: %w", err)
	}
	return c, nil
}

// ListConsumers returns one page of the tenant's consumers and the next cursor.
func (s *Service) ListConsumers(ctx context.Context, tenantID string, page store.Page) ([]Consumer, string, error) {
	list, next, err := listQuery(ctx, s.DB, page, `SELECT `+consumerCols+` FROM consumers WHERE tenant_id = $1 %s`,
		[]any{tenantID}, scanConsumer, func(c Consumer) (time.Time, string) { return c.CreatedAt, c.ID })
	if err != nil {
		return nil, "", fmt.Errorf("list consumers: %w", err)
	}
	return list, next, nil
}

// CreateConsumer validates in and stores a new consumer.
func (s *Service) CreateConsumer(ctx context.Context, who audit.Actor, in ConsumerInput) (Consumer, error) {
	in, err := normalizeConsumer(in)
	if err != nil {
		return Consumer{}, err
	}
	var c Consumer
	err = store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		c, err = s.insertConsumer(ctx, tx, who, in)
		return err
	})
	if err != nil {
		return Consumer{}, fmt.Errorf("create consumer: %w", err)
	}
	return c, nil
}

// CreateConsumerTx validates in and stores a new consumer in the caller's
// transaction (a developer signing up becomes a consumer together with its
// account). It takes the tenant's limits lock: call it before tx takes row
// locks of the tenant's catalog.
func (s *Service) CreateConsumerTx(ctx context.Context, tx pgx.Tx, who audit.Actor, in ConsumerInput) (Consumer, error) {
	in, err := normalizeConsumer(in)
	if err != nil {
		return Consumer{}, err
	}
	return s.insertConsumer(ctx, tx, who, in)
}

func (s *Service) insertConsumer(ctx context.Context, tx pgx.Tx, who audit.Actor, in ConsumerInput) (Consumer, error) {
	lim, err := s.beginLimits(ctx, tx, who.TenantID)
	if err != nil {
		return Consumer{}, err
	}
	if err := checkAdd(ctx, tx, lim, who.TenantID, limits.Consumers, 1, ""); err != nil {
		return Consumer{}, err
	}
	c, err := scanConsumer(tx.QueryRow(ctx, `INSERT INTO consumers (tenant_id, name, email, status)
		VALUES ($1, $2, $3, $4) RETURNING `+consumerCols, who.TenantID, in.Name, in.Email, in.Status))
	if err != nil {
		return Consumer{}, fmt.Errorf("insert consumer: %w", err)
	}
	if err := audit.Record(ctx, tx, who, "consumer.create", "consumer", c.ID, c.Input()); err != nil {
		return Consumer{}, err
	}
	return c, nil
}

// UpdateConsumer applies change to the consumer's current input, validates and stores it.
func (s *Service) UpdateConsumer(ctx context.Context, who audit.Actor, id string, change func(*ConsumerInput) error) (Consumer, error) {
	var c Consumer
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		cur, err := getConsumer(ctx, tx, who.TenantID, id, "FOR UPDATE")
		if err != nil {
			return err
		}
		in := cur.Input()
		if err := change(&in); err != nil {
			return err
		}
		if in, err = normalizeConsumer(in); err != nil {
			return err
		}
		c, err = scanConsumer(tx.QueryRow(ctx, `UPDATE consumers SET name = $3, email = $4, status = $5, updated_at = now()
			WHERE tenant_id = $1 AND id = $2 RETURNING `+consumerCols, who.TenantID, id, in.Name, in.Email, in.Status))
		if err != nil {
			return fmt.Errorf("update consumer: %w", err)
		}
		if c.Status != cur.Status {
			// Workers learn the new state of every key of the consumer.
			if _, err := s.requeueKeys(ctx, tx, who.TenantID, `k.consumer_id = $2`, id); err != nil {
				return err
			}
			action := "consumer.suspend"
			if c.Status == ConsumerActive {
				action = "consumer.reinstate"
			}
			if err := audit.Record(ctx, tx, who, action, "consumer", id, map[string]any{"status": c.Status}); err != nil {
				return err
			}
		}
		return audit.Record(ctx, tx, who, "consumer.update", "consumer", id,
			map[string]any{"before": cur.Input(), "after": c.Input()})
	})
	if err != nil {
		return Consumer{}, fmt.Errorf("update consumer: %w", err)
	}
	return c, nil
}

// DeleteConsumer revokes the consumer's active keys (workers learn of each
// through the key outbox) and removes the consumer with its keys.
func (s *Service) DeleteConsumer(ctx context.Context, who audit.Actor, id string) error {
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		cur, err := getConsumer(ctx, tx, who.TenantID, id, "FOR UPDATE")
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+keyCols+` FROM keys
			WHERE tenant_id = $1 AND consumer_id = $2 AND status = 'active' FOR UPDATE`, who.TenantID, id)
		if err != nil {
			return fmt.Errorf("find consumer keys: %w", err)
		}
		keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyRow, error) { return scanKeyRow(r) })
		if err != nil {
			return fmt.Errorf("find consumer keys: %w", err)
		}
		for _, k := range keys {
			if err := s.revoke(ctx, tx, who, k); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM consumers WHERE tenant_id = $1 AND id = $2`, who.TenantID, id); err != nil {
			return fmt.Errorf("delete consumer: %w", err)
		}
		return audit.Record(ctx, tx, who, "consumer.delete", "consumer", id,
			map[string]any{"name": cur.Name, "email": cur.Email, "revoked_keys": len(keys)})
	})
	if err != nil {
		return fmt.Errorf("delete consumer: %w", err)
	}
	return nil
}
