package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Querier is what both a pool and a transaction offer for reads. Read
// functions take it so that one caller can pass the pool and another its
// transaction (the publisher compiles inside one REPEATABLE READ
// transaction; a change measures the tenant inside its own).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}
