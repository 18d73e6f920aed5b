package mgmtapi

import (
	"net/http"

	"github.com/tollgate/tollgate/services/limits"
)

// The operator's per-tenant limits (services/limits): the operator reads and
// sets a tenant's own values; a tenant reads its limits and usage.

func (a *api) limitsRoutes() []route {
	return []route{
		{"GET", "/v1/limits", authTenant, noBody(http.StatusOK, a.getOwnLimits), opDoc{"getLimits", tagLimits,
			"The caller's limits and what it uses of each", "Returns the tenant's limits (the operator's defaults with the tenant's own values) and what it uses of each.", nil}},
		{"GET", "/v1/tenants/{id}/limits", authOperator, noBody(http.StatusOK, a.getTenantLimits), opDoc{"getTenantLimits", tagLimits,
			"A tenant's limits and usage (operator token)", "Returns a tenant's limits and usage. Takes the operator token.", nil}},
		{"PUT", "/v1/tenants/{id}/limits", authOperator, checkedBy(withBody(http.StatusOK, a.putTenantLimits), readerOf(a.getTenantLimits)), opDoc{"setTenantLimits", tagLimits,
			"Set a tenant's own limits, replacing earlier ones (operator token)",
			"Replaces the tenant's own limit values: each named limit with a number is set, null or left out takes the operator's default ({} returns the tenant to the defaults). Lowering a limit below the tenant's usage removes nothing; changes that would grow past it are refused. Takes the operator token.", nil}},
	}
}

func (a *api) defaultLimits() limits.Limits {
	if a.limits != nil {
		return *a.limits
	}
	return limits.Defaults()
}

func (a *api) limitsOf(r *http.Request, tenantID string) (LimitsReport, error) {
	rep, err := limits.Get(r.Context(), a.db, a.defaultLimits(), tenantID, a.configSize)
	if err != nil {
		return LimitsReport{}, err
	}
	return limitsReportOf(rep), nil
}

func (a *api) getOwnLimits(r *http.Request, c *call) (LimitsReport, error) {
	return a.limitsOf(r, c.actor.TenantID)
}

func (a *api) getTenantLimits(r *http.Request, _ *call) (LimitsReport, error) {
	return a.limitsOf(r, r.PathValue("id"))
}

// putTenantLimits replaces the tenant's own limit values.
func (a *api) putTenantLimits(r *http.Request, _ *call, in LimitsOverride) (LimitsReport, error) {
	if err := limits.SetOverride(r.Context(), a.db, r.PathValue("id"), in.override()); err != nil {
		return LimitsReport{}, err
	}
	return a.limitsOf(r, r.PathValue("id"))
}
