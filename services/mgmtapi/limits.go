package mgmtapi

import (
	"net/http"

	"github.com/tollgate/tollgate/services/limits"
)

// The operator's per-tenant limits (services/limits): the operator reads and
// sets a tenant's own values; a tenant reads its limits and usage.

func (a *api) limitsRoutes() []route {
	return []route{
		{"GET", "/v1/limits", authTenant, a.getOwnLimits},
		{"GET", "/v1/tenants/{id}/limits", authOperator, a.getTenantLimits},
		{"PUT", "/v1/tenants/{id}/limits", authOperator, a.putTenantLimits},
	}
}

func (a *api) defaultLimits() limits.Limits {
	if a.limits != nil {
		return *a.limits
	}
	return limits.Defaults()
}

func (a *api) getOwnLimits(w http.ResponseWriter, r *http.Request, c *call) error {
	rep, err := limits.Get(r.Context(), a.db, a.defaultLimits(), c.actor.TenantID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (a *api) getTenantLimits(w http.ResponseWriter, r *http.Request, _ *call) error {
	rep, err := limits.Get(r.Context(), a.db, a.defaultLimits(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

// putTenantLimits replaces the tenant's own limit values: each named limit
// with a number is set, null or left out takes the operator's default ({}
// returns the tenant to the defaults).
func (a *api) putTenantLimits(w http.ResponseWriter, r *http.Request, _ *call) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var in map[limits.Name]*int64
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	o := limits.Override{}
	for n, v := range in {
		if v != nil {
			o[n] = *v
		}
	}
	if err := limits.SetOverride(r.Context(), a.db, r.PathValue("id"), o); err != nil {
		return err
	}
	rep, err := limits.Get(r.Context(), a.db, a.defaultLimits(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

// addLimitsOpenAPI documents the limits routes and their schemas.
func addLimitsOpenAPI(paths, schemas obj) {
	tenantParam := obj{"name": "id", "in": "path", "required": true, "description": "the tenant's id",
		"schema": obj{"type": "string", "format": "uuid"}}
	values := obj{}
	nullable := obj{}
	for _, d := range limits.Defs() {
		desc := d.Label + " (default " + d.Env() + ")"
		if d.Lower {
			desc += "; a lower bound"
		}
		values[string(d.Name)] = obj{"type": "integer", "minimum": 0, "description": desc}
		nullable[string(d.Name)] = obj{"type": "integer", "minimum": 0, "nullable": true, "description": desc}
	}
	schemas["Limits"] = object(values)
	schemas["LimitsOverride"] = obj{"type": "object", "additionalProperties": false, "properties": nullable,
		"description": "the tenant's own values; a limit that is null or left out takes the operator's default"}
	schemas["LimitsReport"] = object(obj{
		"tenant_id": obj{"type": "string", "format": "uuid"},
		"limits":    ref("Limits"),
		"usage": obj{"type": "object", "additionalProperties": obj{"type": "integer"},
			"description": "per limit: the count, the fullest object's count for per-object limits, the shortest health-check interval in use (0: none), the compiled config's bytes"},
		"overrides":   obj{"type": "object", "additionalProperties": obj{"type": "integer"}},
		"measured_at": obj{"type": "string", "format": "date-time"},
	})
	operator := []any{obj{"operator": []any{}}}
	paths["/v1/limits"] = obj{"get": op("The caller's limits and what it uses of each", "200", okResp(ref("LimitsReport")), nil)}
	paths["/v1/tenants/{id}/limits"] = obj{
		"parameters": []any{tenantParam},
		"get": op("A tenant's limits and usage (operator token)", "200", okResp(ref("LimitsReport")),
			obj{"security": operator}),
		"put": op("Set a tenant's own limits, replacing earlier ones (operator token)", "200", okResp(ref("LimitsReport")),
			obj{"security": operator, "requestBody": jsonBody(ref("LimitsOverride")), "responses": obj{
				"200": okResp(ref("LimitsReport")), "400": problemResp("Malformed request"),
				"401": problemResp("Missing or bad operator token"), "404": problemResp("No such tenant"),
				"422": problemResp("Validation failed")}}),
	}
}
