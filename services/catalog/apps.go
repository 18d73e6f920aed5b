package catalog

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/services/store"
)

// MaxAppsPerConsumer bounds the apps one consumer (developer) may hold by
// default (the operator's limit apps_per_developer, services/limits).
const MaxAppsPerConsumer = limits.DefaultAppsPerDeveloper

const maxDescriptionLen = 1000

// AppInput is what a developer may set on an app.
type AppInput struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// App groups a consumer's subscriptions and keys: one per integration, so
// that its usage and keys can be told apart.
type App struct {
	ID          string    `json:"id"`
	ConsumerID  string    `json:"consumer_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func normalizeApp(in AppInput) (AppInput, error) {
	v := &fault.ValidationError{}
	in.Name = strings.TrimSpace(in.Name)
	in.Description = strings.TrimSpace(in.Description)
	checkName(v, "name", in.Name)
	if utf8.RuneCountInString(in.Description) > maxDescriptionLen {
		v.Add("description", "must be at most %d characters", maxDescriptionLen)
	}
	if err := v.Err(); err != nil {
		return AppInput{}, err
	}
	return in, nil
}

const appCols = `id, consumer_id, name, description, created_at, updated_at`

func scanApp(row pgx.Row) (App, error) {
	var a App
	err := row.Scan(&a.ID, &a.ConsumerID, &a.Name, &a.Description, &a.CreatedAt, &a.UpdatedAt)
	return a, err
}

// consumerCond is the SQL condition and argument that limit a query to one
// consumer's objects, or nothing when consumerID is "" (the tenant's view).
func consumerCond(consumerID string, n int) (string, []any) {
	if consumerID == "" {
		return "", nil
	}
	return fmt.Sprintf(" AND consumer_id = $%d", n), []any{consumerID}
}

func getApp(ctx context.Context, q querier, tenantID, consumerID, id, lock string) (App, error) {
	if !store.ValidID(id) || (consumerID != "" && !store.ValidID(consumerID)) {
		return App{}, fault.ErrNotFound
	}
	cond, args := consumerCond(consumerID, 3)
	a, err := scanApp(q.QueryRow(ctx, `SELECT `+appCols+` FROM apps WHERE tenant_id = $1 AND id = $2`+cond+` `+lock,
		append([]any{tenantID, id}, args...)...))
	return a, notFound(err)
}

// GetApp returns one app of the tenant; when consumerID is not "" only one
// of that consumer's (others answer not found).
func (s *Service) GetApp(ctx context.Context, tenantID, consumerID, id string) (App, error) {
	a, err := getApp(ctx, s.DB, tenantID, consumerID, id, "")
	if err != nil {
		return App{}, fmt.Errorf("get app: %w", err)
	}
	return a, nil
}

// ListApps returns one page of the tenant's apps, of one consumer when
// consumerID is not "".
func (s *Service) ListApps(ctx context.Context, tenantID, consumerID string, page store.Page) ([]App, string, error) {
	if consumerID != "" && !store.ValidID(consumerID) {
		return []App{}, "", nil
	}
	cond, args := consumerCond(consumerID, 2)
	list, next, err := listQuery(ctx, s.DB, page, `SELECT `+appCols+` FROM apps WHERE tenant_id = $1`+cond+` %s`,
		append([]any{tenantID}, args...), scanApp, func(a App) (time.Time, string) { return a.CreatedAt, a.ID })
	if err != nil {
		return nil, "", fmt.Errorf("list apps: %w", err)
	}
	return list, next, nil
}

// CreateApp stores a new app of the consumer.
func (s *Service) CreateApp(ctx context.Context, who audit.Actor, consumerID string, in AppInput) (App, error) {
	in, err := normalizeApp(in)
	if err != nil {
		return App{}, err
	}
	var a App
	err = store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		// The consumer row lock serialises the count below; the limit is
		// per consumer, so the tenant's limits lock is not needed.
		if _, err := getConsumer(ctx, tx, who.TenantID, consumerID, "FOR UPDATE"); err != nil {
			return err
		}
		lim, err := limits.For(ctx, tx, s.defaultLimits(), who.TenantID)
		if err != nil {
			return err
		}
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM apps WHERE tenant_id = $1 AND consumer_id = $2`,
			who.TenantID, consumerID).Scan(&n); err != nil {
			return fmt.Errorf("count apps: %w", err)
		}
		if err := lim.Check(limits.AppsPerDeveloper, n+1, "name"); err != nil {
			return err
		}
		a, err = scanApp(tx.QueryRow(ctx, `INSERT INTO apps (tenant_id, consumer_id, name, description)
			VALUES ($1, $2, $3, $4) RETURNING `+appCols, who.TenantID, consumerID, in.Name, in.Description))
		if err != nil {
			return fmt.Errorf("insert app: %w", err)
		}
		return audit.Record(ctx, tx, who, "app.create", "app", a.ID, map[string]any{"consumer_id": consumerID, "name": a.Name})
	})
	if err != nil {
		return App{}, fmt.Errorf("create app: %w", err)
	}
	return a, nil
}

// UpdateApp renames or re-describes an app of the consumer.
func (s *Service) UpdateApp(ctx context.Context, who audit.Actor, consumerID, id string, in AppInput) (App, error) {
	in, err := normalizeApp(in)
	if err != nil {
		return App{}, err
	}
	var a App
	err = store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		if _, err := getApp(ctx, tx, who.TenantID, consumerID, id, "FOR UPDATE"); err != nil {
			return err
		}
		a, err = scanApp(tx.QueryRow(ctx, `UPDATE apps SET name = $3, description = $4, updated_at = now()
			WHERE tenant_id = $1 AND id = $2 RETURNING `+appCols, who.TenantID, id, in.Name, in.Description))
		if err != nil {
			return fmt.Errorf("update app: %w", err)
		}
		return audit.Record(ctx, tx, who, "app.update", "app", id, map[string]any{"name": a.Name})
	})
	if err != nil {
		return App{}, fmt.Errorf("update app: %w", err)
	}
	return a, nil
}

// DeleteApp revokes the app's keys, ends its subscriptions and removes it.
func (s *Service) DeleteApp(ctx context.Context, who audit.Actor, consumerID, id string) error {
	err := store.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		a, err := getApp(ctx, tx, who.TenantID, consumerID, id, "FOR UPDATE")
		if err != nil {
			return err
		}
		n, err := s.revokeWhere(ctx, tx, who, `app_id = $2`, id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM apps WHERE tenant_id = $1 AND id = $2`, who.TenantID, id); err != nil {
			return fmt.Errorf("delete app: %w", err)
		}
		return audit.Record(ctx, tx, who, "app.delete", "app", id, map[string]any{"name": a.Name, "revoked_keys": n})
	})
	if err != nil {
		return fmt.Errorf("delete app: %w", err)
	}
	return nil
}

// revokeWhere revokes the tenant's active keys matching cond (a condition on
// keys with arguments from $2) and returns how many it revoked.
func (s *Service) revokeWhere(ctx context.Context, tx pgx.Tx, who audit.Actor, cond string, args ...any) (int, error) {
	rows, err := tx.Query(ctx, `SELECT `+keyCols+` FROM keys WHERE tenant_id = $1 AND status = 'active' AND `+cond+
		` FOR UPDATE`, append([]any{who.TenantID}, args...)...)
	if err != nil {
		return 0, fmt.Errorf("find keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyRow, error) { return scanKeyRow(r) })
	if err != nil {
		return 0, fmt.Errorf("find keys: %w", err)
	}
	for _, k := range keys {
		if err := s.revoke(ctx, tx, who, k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}
