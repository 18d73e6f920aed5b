package portal

import (
	"context"
	"net/http"

	"github.com/tollgate/tollgate/services/outbox"
	"github.com/tollgate/tollgate/web/portal/view"
)

// gatewayChrome is the chrome of the pages where the tenant changes its
// gateway config (and of the dashboard, which it sees first): with what
// became of its config changes, so that a refused change is seen where it
// was made.
func (p *Portal) gatewayChrome(r *http.Request, q *req, title, active string) view.Chrome {
	c := q.chrome(title, active)
	c.Config = p.configNotice(r.Context(), q.tenant.ID)
	return c
}

// configNotice reads the tenant's config status; nil (nothing shown)
// without Options.Config or when it cannot be read, which is logged and
// does not fail the page.
func (p *Portal) configNotice(ctx context.Context, tenantID string) *view.ConfigNotice {
	if p.opts.Config == nil {
		return nil
	}
	st, err := p.opts.Config.ConfigStatus(ctx, tenantID)
	if err != nil {
		p.log.Warn("portal: config status unavailable", "tenant", tenantID, "err", err)
		return nil
	}
	return configNoticeOf(st)
}

// configNoticeOf is the page model of a config status.
func configNoticeOf(st outbox.ConfigStatus) *view.ConfigNotice {
	n := &view.ConfigNotice{Live: st.PublishedGeneration, Workers: st.Workers, TooOld: st.WorkersTooOld}
	if st.Status == outbox.StatusError {
		n.Refused, n.Reason = st.ErrorGeneration, st.Error
	}
	if st.Generation > st.PublishedGeneration && st.Generation > n.Refused {
		n.Pending = st.Generation
	}
	return n
}
