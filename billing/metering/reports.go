package metering

import (
	"context"
	"time"

	"github.com/tollgate/tollgate/billing/rating"
)

// Reports is the state of the meter reports read and requeued on a
// database, built once in cmd, so that the web packages reach it through
// an interface of their own and never hold a database handle. Its methods
// are the package's functions of the same names.
type Reports struct {
	// DB is the control plane's database (a pool). Required.
	DB rating.Querier
}

// Drift is the package's Drift on r's database.
func (r Reports) Drift(ctx context.Context, tenantID string, from, to time.Time) ([]DriftRow, error) {
	return Drift(ctx, r.DB, tenantID, from, to)
}

// ReportStats is the package's ReportStats on r's database.
func (r Reports) ReportStats(ctx context.Context, tenantID string, from, to time.Time, window time.Duration) (Stats, error) {
	return ReportStats(ctx, r.DB, tenantID, from, to, window)
}

// Requeue is the package's Requeue on r's database.
func (r Reports) Requeue(ctx context.Context, tenantID string, from, to time.Time) (int64, error) {
	return Requeue(ctx, r.DB, tenantID, from, to)
}
