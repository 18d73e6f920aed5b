package developers

import (
	"context"
	"fmt"
)

// MaxPendingCounted bounds the counts of PendingCounts: a queue longer than
// that reads "100+", and counting stops there so that a page view never
// scans a large table.
const MaxPendingCounted = 100

// PendingCounts returns how many developers and subscriptions of the tenant
// wait for its decision (each at most MaxPendingCounted), for the approval
// queue's badge in the tenant portal.
func (s *Service) PendingCounts(ctx context.Context, tenantID string) (developers, subscriptions int, err error) {
	err = s.DB.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM (SELECT 1 FROM developers WHERE tenant_id = $1 AND status = 'pending' LIMIT $2) d),
		(SELECT count(*) FROM (SELECT 1 FROM subscriptions WHERE tenant_id = $1 AND status = 'pending' LIMIT $2) s)`,
		tenantID, MaxPendingCounted).Scan(&developers, &subscriptions)
	if err != nil {
		return 0, 0, fmt.Errorf("count pending: %w", err)
	}
	return developers, subscriptions, nil
}
