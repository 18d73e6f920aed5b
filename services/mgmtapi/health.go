package mgmtapi

import (
	"errors"
	"net/http"

	"github.com/tollgate/tollgate/services/health"
)

// UpstreamHealth is the answer of GET /v1/upstreams/{id}/health: the live
// state of each configured target, aggregated over the proxy workers.
type UpstreamHealth struct {
	UpstreamID string          `json:"upstream_id"`
	Targets    []health.Target `json:"targets"`
}

func (a *api) getUpstreamHealth(w http.ResponseWriter, r *http.Request, c *call) error {
	if a.rdb == nil {
		return errors.New("upstream health: the management API was built without Redis")
	}
	// The upstream is read through the catalog first: another tenant's
	// (or a missing) upstream answers 404 before Redis is touched.
	u, err := a.cat.GetUpstream(r.Context(), c.actor.TenantID, r.PathValue("id"))
	if err != nil {
		return err
	}
	urls := make([]string, 0, len(u.Targets))
	for _, t := range u.Targets {
		urls = append(urls, t.URL)
	}
	hr := &health.Reader{Redis: a.rdb, Keys: a.keys}
	targets, err := hr.Upstream(r.Context(), c.actor.TenantID, u.ID, urls)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, UpstreamHealth{UpstreamID: u.ID, Targets: targets})
}

// upstreamHealthSchema is the OpenAPI schema of UpstreamHealth.
func upstreamHealthSchema() obj {
	ts := obj{"type": "string", "format": "date-time"}
	target := object(obj{
		"url": obj{"type": "string", "format": "uri"},
		"status": obj{"type": "string", "enum": []string{health.StatusHealthy, health.StatusDegraded, health.StatusDown, health.StatusUnknown},
			"description": "healthy: on every reporting worker; degraded: on some; down: on none; unknown: no worker reported recently"},
		"workers":         obj{"type": "integer", "description": "proxy workers with a fresh report on the target"},
		"healthy_workers": obj{"type": "integer", "description": "workers that find it healthy and send it traffic"},
		"ejected_workers": obj{"type": "integer", "description": "workers whose outlier detection ejected it"},
		"failing_workers": obj{"type": "integer", "description": "workers whose active health check finds it failing"},
		"last_error":      obj{"type": "string", "description": "the latest probe error of a failing worker"},
		"last_check":      ts,
		"last_seen":       ts,
	})
	return object(obj{"upstream_id": obj{"type": "string", "format": "uuid"},
		"targets": obj{"type": "array", "items": target}})
}
