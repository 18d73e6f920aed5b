package catalog

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/services/limits"
)

// The operator's per-tenant limits (services/limits) are checked in the
// transaction of each change that could grow past one, after taking the
// tenant's limits lock first thing in the transaction (before any row
// lock), so that two concurrent changes cannot both take the last unit and
// lock order is the same everywhere. Deletions are never refused. A change
// of an existing object is refused only if it grows what a limit counts
// past the limit: a tenant left over a limit the operator lowered can still
// shrink.

func (s *Service) defaultLimits() limits.Limits {
	if s.Limits != nil {
		return *s.Limits
	}
	return limits.Defaults()
}

// beginLimits takes the tenant's limits lock in tx and returns its limits.
func (s *Service) beginLimits(ctx context.Context, tx pgx.Tx, tenantID string) (limits.Limits, error) {
	return limits.Begin(ctx, tx, s.defaultLimits(), tenantID)
}

// TenantLimits returns the tenant's limits and what it uses of each (GET
// /v1/limits and the tenant portal's card).
func (s *Service) TenantLimits(ctx context.Context, tenantID string) (limits.Report, error) {
	return limits.Get(ctx, s.DB, s.defaultLimits(), tenantID, s.ConfigSize)
}

// checkAdd refuses adding `adding` more of what the tenant-wide count limit
// n counts.
func checkAdd(ctx context.Context, tx pgx.Tx, lim limits.Limits, tenantID string, n limits.Name, adding int64, field string) error {
	have, err := limits.Count(ctx, tx, tenantID, n)
	if err != nil {
		return err
	}
	return lim.Check(n, have+adding, field)
}

// checkGrowth refuses going from before to after only if it grows past the
// limit (for a lower bound: goes further below it).
func checkGrowth(lim limits.Limits, n limits.Name, before, after int64, field string) error {
	d, _ := limits.Lookup(n)
	if (!d.Lower && after <= before) || (d.Lower && after >= before) {
		return nil
	}
	return lim.Check(n, after, field)
}

// configSize returns the tenant's compiled config size as tx sees it (0
// without Service.ConfigSize).
func (s *Service) configSize(ctx context.Context, tx pgx.Tx, tenantID string) (int64, error) {
	if s.ConfigSize == nil {
		return 0, nil
	}
	return s.ConfigSize(ctx, tx, tenantID)
}

// checkConfigGrowth compiles the tenant as tx sees it after a change and
// refuses the change if the compiled config grew past the limit (before is
// its size before the change; -1 for a new object, which always grows it).
// Without Service.ConfigSize it checks nothing.
func (s *Service) checkConfigGrowth(ctx context.Context, tx pgx.Tx, lim limits.Limits, tenantID string, before int64) error {
	if s.ConfigSize == nil {
		return nil
	}
	after, err := s.configSize(ctx, tx, tenantID)
	if err != nil {
		return err
	}
	if before < 0 {
		return lim.Check(limits.ConfigBytes, after, "")
	}
	return checkGrowth(lim, limits.ConfigBytes, before, after, "")
}
