package portal

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/health"
	"github.com/tollgate/tollgate/web/portal/view"
)

// liveHealth reads the tenant's live target health; nil (and no error)
// when the portal runs without Redis. A Redis failure is logged and shown
// as "not available" rather than failing the page.
func (p *Portal) liveHealth(ctx context.Context, tenantID string) health.View {
	if p.opts.Health == nil {
		return nil
	}
	v, err := p.opts.Health.Tenant(ctx, tenantID)
	if err != nil {
		p.log.Warn("live target health unavailable", "tenant", tenantID, "err", err)
		return nil
	}
	return v
}

// applyLive fills the live state of an upstream's target rows (made by
// upstreamRow, in the order of u.Targets) from v.
func applyLive(row *view.UpstreamRow, v health.View, u catalog.Upstream, now time.Time) {
	urls := make([]string, len(u.Targets))
	for i, t := range u.Targets {
		urls[i] = t.URL
	}
	up := 0
	for i, t := range v.Targets(u.ID, urls) {
		tr := &row.Targets[i]
		tr.Live = t.Status
		switch t.Status {
		case health.StatusHealthy:
			up++
			tr.LiveText = fmt.Sprintf("Healthy on %s", workers(t.HealthyWorkers, t.Workers))
		case health.StatusDegraded:
			tr.LiveText = fmt.Sprintf("Healthy on %s", workers(t.HealthyWorkers, t.Workers))
		case health.StatusDown:
			tr.LiveText = fmt.Sprintf("Down on %s", workers(t.Workers, t.Workers))
		default:
			tr.LiveText = "No proxy worker has reported on this target yet"
		}
		if t.EjectedWorkers > 0 {
			tr.LiveText += fmt.Sprintf(", ejected for errors on %d", t.EjectedWorkers)
		}
		if t.LastSeen != nil {
			tr.Seen = "reported " + since(now, *t.LastSeen)
		}
		if t.LastError != "" {
			tr.LastError = t.LastError
			if t.LastCheck != nil {
				tr.LastError += " (" + since(now, *t.LastCheck) + ")"
			}
		}
	}
	row.Live = true
	row.LiveSummary = fmt.Sprintf("%d of %d targets healthy", up, len(urls))
}

func workers(n, of int) string {
	if of == 1 {
		return fmt.Sprintf("%d of 1 worker", n)
	}
	return fmt.Sprintf("%d of %d workers", n, of)
}

// since says how long ago t was, to the second.
func since(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}
