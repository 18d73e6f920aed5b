package portal

import (
	"context"
	"fmt"

	"github.com/tollgate/tollgate/services/limits"
	"github.com/tollgate/tollgate/web/portal/view"
)

// limitRows builds the dashboard's limits card; nil (no card) when the
// limits cannot be read, which is logged and does not fail the page.
func (p *Portal) limitRows(ctx context.Context, tenantID string) []view.LimitRow {
	rep, err := p.cat.TenantLimits(ctx, tenantID)
	if err != nil {
		p.log.Error("portal: tenant limits", "tenant", tenantID, "err", err)
		return nil
	}
	return limitRows(rep)
}

// perObject says which object a per-object limit's usage is of.
var perObject = map[limits.Name]string{
	limits.TargetsPerUpstream:  "the fullest upstream",
	limits.AppsPerDeveloper:    "the developer with most apps",
	limits.SubscriptionsPerApp: "the app with most subscriptions",
	limits.KeysPerSubscription: "the subscription with most keys",
	limits.MinHealthIntervalMS: "the shortest in use",
}

func limitRows(rep limits.Report) []view.LimitRow {
	var rows []view.LimitRow
	for _, d := range limits.Defs() {
		used, max := rep.Usage[d.Name], rep.Limits.Get(d.Name)
		r := view.LimitRow{Label: d.Label, Used: limitText(d.Name, used), Limit: limitText(d.Name, max), Note: perObject[d.Name]}
		switch {
		case d.Lower:
			r.Limit = "at most every " + r.Limit
			if used == 0 {
				r.Used = "none"
			}
			r.Full = used > 0 && used <= max
		case max <= 0:
			r.Share, r.Full = 100, true
		default:
			r.Share = int(min(used*20/max, 20)) * 5
			r.Full = used >= max
		}
		rows = append(rows, r)
	}
	return rows
}

func limitText(n limits.Name, v int64) string {
	switch n {
	case limits.ConfigBytes:
		if v >= 1<<20 {
			return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20))
		}
		if v >= 1<<10 {
			return fmt.Sprintf("%.1f KiB", float64(v)/(1<<10))
		}
		return fmt.Sprintf("%d bytes", v)
	case limits.MinHealthIntervalMS:
		return fmt.Sprintf("%d ms", v)
	}
	return fmt.Sprint(v)
}
