package audit

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/services/store"
)

// Service reads the audit log from its database, built once in cmd so
// that the web packages read it through an interface of their own.
// Entries are written by Record, inside each change's own transaction.
type Service struct {
	// DB is the control plane's database. Required.
	DB *pgxpool.Pool
}

// List is the package's List.
func (s *Service) List(ctx context.Context, tenantID string, page store.Page) ([]Entry, string, error) {
	return List(ctx, s.DB, tenantID, page)
}
