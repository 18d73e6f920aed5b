package mgmtapi

import (
	"net/http"

	"github.com/tollgate/tollgate/services/outbox"
)

// The tenant's config as the data plane has it: which change the proxy
// workers serve, and why a newer one is not (services/publish records it,
// services/outbox reads it).

func (a *api) configRoutes() []route {
	return []route{
		{"GET", "/v1/config/status", authTenant, noBody(http.StatusOK, a.getConfigStatus), opDoc{"getConfigStatus", tagConfig,
			"Whether the proxy workers serve the tenant's newest config, and why not",
			"Every change of the tenant's upstreams, APIs, routes, plans or custom domains moves generation by one; the publisher compiles the tenant's config and the workers serve it as published_generation. A change that fails (an invalid config, one over the config_bytes limit) is refused with status error and its reason, and the workers keep serving the last good one; every other tenant is unaffected. workers_too_old counts workers too old for the config (they answer 503 for the tenant's hosts until upgraded: none serves a config whose restrictions it cannot read).", nil}},
	}
}

func (a *api) getConfigStatus(r *http.Request, c *call) (ConfigStatus, error) {
	st, err := outbox.ReadStatus(r.Context(), a.db, a.rdb, a.keys, c.actor.TenantID)
	if err != nil {
		return ConfigStatus{}, err
	}
	return configStatusOf(st), nil
}
