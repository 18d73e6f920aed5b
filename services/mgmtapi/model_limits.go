package mgmtapi

import (
	"time"

	"github.com/tollgate/tollgate/services/limits"
)

// LimitValues are a value per limit, by the limit's name (apis, routes,
// ..., config_bytes).
type LimitValues map[string]int64

func (LimitValues) schemaDoc() string { return "A tenant's limits: a value per limit name." }

// openAPISchema lists every limit (limits.Defs) as a property.
func (LimitValues) openAPISchema(*schemaGen) obj {
	props := obj{}
	for _, d := range limits.Defs() {
		props[string(d.Name)] = obj{"type": "integer", "format": "int64", "minimum": 0, "description": limitDoc(d)}
	}
	return obj{"type": "object", "properties": props}
}

// LimitsOverride sets a tenant's own limits (PUT /v1/tenants/{id}/limits):
// each named limit with a number is set; null or left out takes the
// operator's default.
type LimitsOverride map[string]*int64

func (LimitsOverride) schemaDoc() string {
	return "A tenant's own limit values; a limit that is null or left out takes the operator's default."
}

func (LimitsOverride) openAPISchema(*schemaGen) obj {
	props := obj{}
	for _, d := range limits.Defs() {
		props[string(d.Name)] = obj{"type": "integer", "format": "int64", "minimum": 0, "nullable": true, "description": limitDoc(d)}
	}
	return obj{"type": "object", "additionalProperties": false, "properties": props}
}

func limitDoc(d limits.Def) string {
	desc := d.Label + " (default " + d.Env() + ")"
	if d.Lower {
		desc += "; a lower bound"
	}
	return desc
}

// LimitsReport is a tenant's limits with what it uses of each.
type LimitsReport struct {
	TenantID string      `json:"tenant_id" format:"uuid"`
	Limits   LimitValues `json:"limits" doc:"the tenant's limits: the operator's defaults with the tenant's own values"`
	Usage    UsageValues `json:"usage" doc:"per limit: the count, the fullest object's count for per-object limits, the shortest health-check interval in use (0: none), the compiled config's bytes"`
	// Overrides are the values set for this tenant alone.
	Overrides  UsageValues `json:"overrides" doc:"the limits set for this tenant alone; the others are the operator's defaults"`
	MeasuredAt time.Time   `json:"measured_at"`
}

func (LimitsReport) schemaDoc() string { return "A tenant's limits and what it uses of each." }

// UsageValues are values of some limits, by name.
type UsageValues map[string]int64

func (UsageValues) schemaDoc() string { return "Values of some limits, by the limit's name." }

func limitsReportOf(r limits.Report) LimitsReport {
	out := LimitsReport{TenantID: r.TenantID, Limits: LimitValues{}, Usage: UsageValues{}, Overrides: UsageValues{},
		MeasuredAt: r.MeasuredAt}
	for _, d := range limits.Defs() {
		out.Limits[string(d.Name)] = r.Limits.Get(d.Name)
	}
	for n, v := range r.Usage {
		out.Usage[string(n)] = v
	}
	for n, v := range r.Override {
		out.Overrides[string(n)] = v
	}
	return out
}

// override maps the request to the limits' override.
func (o LimitsOverride) override() limits.Override {
	out := limits.Override{}
	for n, v := range o {
		if v != nil {
			out[limits.Name(n)] = *v
		}
	}
	return out
}
