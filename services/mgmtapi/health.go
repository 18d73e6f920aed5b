package mgmtapi

import (
	"errors"
	"net/http"

	"github.com/tollgate/tollgate/services/health"
)

// getUpstreamHealth answers GET /v1/upstreams/{id}/health: the live state
// of each configured target, aggregated over the proxy workers.
func (a *api) getUpstreamHealth(r *http.Request, c *call) (UpstreamHealth, error) {
	if a.rdb == nil {
		return UpstreamHealth{}, errors.New("upstream health: the management API was built without Redis")
	}
	// The upstream is read through the catalog first: another tenant's
	// (or a missing) upstream answers 404 before Redis is touched.
	u, err := a.cat.GetUpstream(r.Context(), c.actor.TenantID, r.PathValue("id"))
	if err != nil {
		return UpstreamHealth{}, err
	}
	urls := make([]string, 0, len(u.Targets))
	for _, t := range u.Targets {
		urls = append(urls, t.URL)
	}
	hr := &health.Reader{Redis: a.rdb, Keys: a.keys}
	targets, err := hr.Upstream(r.Context(), c.actor.TenantID, u.ID, urls)
	if err != nil {
		return UpstreamHealth{}, err
	}
	return UpstreamHealth{UpstreamID: u.ID, Targets: mapSlice(targets, targetHealthOf)}, nil
}
