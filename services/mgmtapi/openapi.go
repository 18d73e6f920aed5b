package mgmtapi

import (
	"encoding/json"
	"net/http"
	"sync"
)

// The OpenAPI 3.0 document of the API. It is written out operation by
// operation, independently of routes(); a test checks that both list the same
// (method, path) pairs and that kin-openapi accepts the document.

type obj = map[string]any

func ref(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

func jsonBody(schema obj) obj {
	return obj{"content": obj{"application/json": obj{"schema": schema}}}
}

func problemResp(desc string) obj {
	return obj{"description": desc, "content": obj{"application/problem+json": obj{"schema": ref("Problem")}}}
}

var idParam = obj{"name": "id", "in": "path", "required": true, "schema": obj{"type": "string", "format": "uuid"}}

var pageParams = []any{
	obj{"name": "limit", "in": "query", "schema": obj{"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
	obj{"name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": obj{"type": "string"}},
}

func op(summary string, status string, resp obj, extra obj) obj {
	o := obj{
		"summary":   summary,
		"responses": obj{status: resp, "400": problemResp("Malformed request"), "401": problemResp("Missing or bad token"), "default": problemResp("Error")},
	}
	for k, v := range extra {
		o[k] = v
	}
	return o
}

func okResp(schema obj) obj {
	return obj{"description": "OK", "content": obj{"application/json": obj{"schema": schema}}}
}
func createdResp(schema obj) obj {
	return obj{"description": "Created", "content": obj{"application/json": obj{"schema": schema}}}
}

var noContent = obj{"description": "No Content"}

func listOf(name string) obj {
	return obj{"type": "object", "required": []string{"items", "next_cursor"}, "properties": obj{
		"items":       obj{"type": "array", "items": ref(name)},
		"next_cursor": obj{"type": "string", "nullable": true},
	}}
}

// collection documents POST + GET on a collection and GET, PATCH, DELETE on its items.
func collection(paths obj, base, name, inputName string, patch bool) {
	paths[base] = obj{
		"post": op("Create a "+name, "201", createdResp(ref(name)), obj{"requestBody": jsonBody(ref(inputName)),
			"responses": obj{"201": createdResp(ref(name)), "400": problemResp("Malformed request"), "401": problemResp("Missing or bad token"),
				"409": problemResp("Conflict"), "422": problemResp("Validation failed")}}),
		"get": op("List "+name+"s", "200", okResp(listOf(name)), obj{"parameters": pageParams}),
	}
	item := obj{
		"parameters": []any{idParam},
		"get":        op("Read a "+name, "200", okResp(ref(name)), nil),
		"delete":     op("Delete a "+name, "204", noContent, nil),
	}
	if patch {
		item["patch"] = op("Replace the named fields of a "+name, "200", okResp(ref(name)),
			obj{"requestBody": jsonBody(ref(inputName))})
	}
	paths[base+"/{id}"] = item
}

func str() obj                { return obj{"type": "string"} }
func integer() obj            { return obj{"type": "integer"} }
func object(props obj) obj    { return obj{"type": "object", "properties": props} }
func enum(vals ...string) obj { return obj{"type": "string", "enum": vals} }

func buildOpenAPI() obj {
	paths := obj{}
	paths["/v1/openapi.json"] = obj{"get": obj{"summary": "This document", "security": []any{},
		"responses": obj{"200": obj{"description": "OpenAPI 3.0 document", "content": obj{"application/json": obj{"schema": obj{"type": "object"}}}}}}}
	paths["/v1/tenants"] = obj{"post": op("Create a tenant and its first admin token (operator token)", "201",
		createdResp(ref("TenantCreated")), obj{"security": []any{obj{"operator": []any{}}}, "requestBody": jsonBody(ref("TenantInput"))})}
	paths["/v1/tenant"] = obj{"get": op("The caller's tenant", "200", okResp(ref("Tenant")), nil)}
	paths["/v1/admin-tokens"] = obj{
		"post": op("Create an admin token (shown once)", "201", createdResp(ref("AdminTokenCreated")),
			obj{"requestBody": jsonBody(object(obj{"name": str()}))}),
		"get": op("List admin tokens", "200", okResp(listOf("AdminToken")), obj{"parameters": pageParams}),
	}
	paths["/v1/admin-tokens/{id}"] = obj{
		"parameters": []any{idParam},
		"get":        op("Read an admin token", "200", okResp(ref("AdminToken")), nil),
		"delete":     op("Revoke an admin token", "204", noContent, nil),
	}
	collection(paths, "/v1/upstreams", "Upstream", "UpstreamInput", true)
	collection(paths, "/v1/apis", "API", "APIInput", true)
	collection(paths, "/v1/plans", "Plan", "PlanInput", true)
	collection(paths, "/v1/consumers", "Consumer", "ConsumerInput", true)
	collection(paths, "/v1/keys", "Key", "KeyInput", false)
	keys := paths["/v1/keys"].(obj)
	keys["post"].(obj)["responses"].(obj)["201"] = createdResp(ref("KeyCreated"))
	keys["post"].(obj)["summary"] = "Issue a key (the key is shown once)"
	keys["get"].(obj)["parameters"] = append([]any{obj{"name": "consumer_id", "in": "query", "schema": obj{"type": "string", "format": "uuid"}}}, pageParams...)
	paths["/v1/keys/{id}"].(obj)["delete"].(obj)["summary"] = "Revoke a key"
	usageParams := []any{
		obj{"name": "from", "in": "query", "description": "start (RFC 3339, rounded down to the bucket); default to - 24h", "schema": obj{"type": "string", "format": "date-time"}},
		obj{"name": "to", "in": "query", "description": "end, exclusive (RFC 3339, rounded up to the bucket); default now", "schema": obj{"type": "string", "format": "date-time"}},
		obj{"name": "bucket", "in": "query", "schema": obj{"type": "string", "enum": []string{"minute", "hour", "day"}, "default": "hour"}},
		obj{"name": "api_id", "in": "query", "schema": obj{"type": "string", "format": "uuid"}},
		obj{"name": "consumer_id", "in": "query", "schema": obj{"type": "string", "format": "uuid"}},
		obj{"name": "key_id", "in": "query", "schema": obj{"type": "string", "format": "uuid"}},
		obj{"name": "plan_id", "in": "query", "schema": obj{"type": "string", "format": "uuid"}},
		obj{"name": "status", "in": "query", "description": "a status class: 1xx to 5xx", "schema": obj{"type": "string", "enum": []string{"1xx", "2xx", "3xx", "4xx", "5xx"}}},
	}
	paths["/v1/usage"] = obj{"get": op("Proxied requests per time bucket (empty buckets included), from per-minute rollups", "200",
		okResp(ref("UsageSeries")), obj{"parameters": usageParams, "responses": obj{"200": okResp(ref("UsageSeries")),
			"400": problemResp("Malformed request"), "401": problemResp("Missing or bad token"), "422": problemResp("Validation failed")}})}
	paths["/v1/usage/top-consumers"] = obj{"get": op("The consumers with the most requests in the range", "200",
		okResp(object(obj{"items": obj{"type": "array", "items": ref("ConsumerTotal")}})),
		obj{"parameters": append(append([]any{}, usageParams...),
			obj{"name": "limit", "in": "query", "schema": obj{"type": "integer", "minimum": 1, "maximum": 100, "default": 10}})})}
	paths["/v1/keys/{id}/quota"] = obj{"parameters": []any{idParam},
		"get": op("The key's quota in the current billing period: used and left", "200", okResp(ref("KeyQuota")), nil)}
	paths["/v1/upstreams/{id}/health"] = obj{"parameters": []any{idParam},
		"get": op("Live health of the upstream's targets, aggregated over the proxy workers' reports", "200", okResp(ref("UpstreamHealth")), nil)}
	addOpenAPIImportPaths(paths)
	paths["/v1/audit"] = obj{"get": op("List audit entries, oldest first", "200", okResp(listOf("AuditEntry")), obj{"parameters": pageParams})}

	ts := obj{"type": "string", "format": "date-time"}
	target := object(obj{"url": obj{"type": "string", "format": "uri"}, "weight": obj{"type": "integer", "minimum": 1, "default": 1}})
	target["required"] = []string{"url"}
	health := object(obj{"path": str(), "interval_ms": integer(), "timeout_ms": integer(), "healthy_threshold": integer(),
		"unhealthy_threshold": integer(), "expected_status": integer()})
	health["nullable"] = true
	upIn := obj{"name": str(), "algorithm": enum("round_robin", "weighted", "least_conn", "consistent_hash", "random"),
		"targets": obj{"type": "array", "items": target}, "health_check": health}
	addUpstreamDataplane(upIn)
	apiIn := obj{"name": str(), "slug": str(), "base_path": str(), "upstream_id": obj{"type": "string", "format": "uuid"},
		"auth": enum("key", "jwt", "none"), "strip_base_path": obj{"type": "boolean", "default": true}, "timeout_ms": integer()}
	addAPIDataplane(apiIn)
	price := object(obj{"amount": obj{"type": "integer", "description": "flat amount per period, in the currency's minor unit"},
		"amount_cents": obj{"type": "integer", "description": "alias of amount"}, "currency": str(),
		"interval":            enum("day", "week", "month", "year"),
		"per_request_decimal": obj{"type": "string", "description": "price of one request in the minor unit, e.g. \"0.05\""},
		"included_requests":   obj{"type": "integer", "description": "free requests per period before per-request pricing"}})
	price["nullable"] = true
	apiIn["rate_limit"] = object(obj{"requests": integer(), "per_seconds": integer(),
		"burst": obj{"type": "integer", "description": "also at most burst requests per per_seconds*burst/requests; 0 = no cap"}})
	planIn := obj{"name": str(), "rate_limit": object(obj{"requests": integer(), "per_seconds": integer(),
		"burst": obj{"type": "integer", "description": "also at most burst requests per per_seconds*burst/requests; 0 = no cap"},
		"scope": enum("key", "consumer")}),
		"concurrency": obj{"type": "integer", "minimum": 0, "description": "most requests in flight per key (or consumer); 0 = no limit"},
		"quota":       object(obj{"requests": integer(), "period": enum("day", "month")}),
		"api_ids":     obj{"type": "array", "items": obj{"type": "string", "format": "uuid"}}, "price": price}
	consIn := obj{"name": str(), "email": obj{"type": "string", "format": "email"}}
	keyIn := obj{"consumer_id": obj{"type": "string", "format": "uuid"}, "plan_id": obj{"type": "string", "format": "uuid"}}
	withMeta := func(props obj) obj {
		out := obj{"id": obj{"type": "string", "format": "uuid"}, "created_at": ts, "updated_at": ts}
		for k, v := range props {
			out[k] = v
		}
		return object(out)
	}
	key := obj{"id": obj{"type": "string", "format": "uuid"}, "consumer_id": obj{"type": "string", "format": "uuid"},
		"plan_id": obj{"type": "string", "format": "uuid"}, "prefix": str(), "status": enum("active", "revoked"),
		"created_at": ts, "revoked_at": obj{"type": "string", "format": "date-time", "nullable": true}}
	keyCreated := obj{"key": obj{"type": "string", "description": "the API key; shown only here"}}
	for k, v := range key {
		keyCreated[k] = v
	}
	adminTok := obj{"id": obj{"type": "string", "format": "uuid"}, "tenant_id": obj{"type": "string", "format": "uuid"},
		"name": str(), "prefix": str(), "created_at": ts, "revoked_at": obj{"type": "string", "format": "date-time", "nullable": true}}
	adminTokCreated := obj{"token": obj{"type": "string", "description": "the admin token; shown only here"}}
	for k, v := range adminTok {
		adminTokCreated[k] = v
	}
	tenant := object(obj{"id": obj{"type": "string", "format": "uuid"}, "name": str(), "slug": str(), "created_at": ts})
	upOut := withMeta(upIn)
	apiOut := withMeta(apiIn)
	planOut := withMeta(planIn)

	schemas := obj{
		"Problem": object(obj{"type": str(), "title": str(), "status": integer(), "detail": str(),
			"errors": obj{"type": "array", "items": object(obj{"field": str(), "message": str()})},
			"limit":  obj{"type": "string", "description": "limit-exceeded: the limit's name (see Limits)"},
			"max":    obj{"type": "integer", "description": "limit-exceeded: the limit's value for the tenant (for a lower bound, the least allowed)"},
			"value":  obj{"type": "integer", "description": "limit-exceeded: what the change would have made it"}}),
		"TenantInput":       object(obj{"name": str(), "slug": str()}),
		"Tenant":            tenant,
		"TenantCreated":     object(obj{"tenant": ref("Tenant"), "admin_token": str()}),
		"AdminToken":        object(adminTok),
		"AdminTokenCreated": object(adminTokCreated),
		"UpstreamInput":     object(upIn),
		"Upstream":          upOut,
		"APIInput":          object(apiIn),
		"API":               apiOut,
		"PlanInput":         object(planIn),
		"Plan":              planOut,
		"ConsumerInput":     object(consIn),
		"Consumer":          withMeta(consIn),
		"KeyInput":          object(keyIn),
		"Key":               object(key),
		"KeyCreated":        object(keyCreated),
		"UsageSeries": object(obj{"bucket": enum("minute", "hour", "day"), "from": ts, "to": ts,
			"points": obj{"type": "array", "items": object(obj{"start": ts, "requests": integer(), "status_2xx": integer(),
				"status_4xx": integer(), "status_5xx": integer(), "bytes_in": integer(), "bytes_out": integer(),
				"latency_avg_ms": obj{"type": "number"}, "latency_p50_ms": obj{"type": "number"}, "latency_p99_ms": obj{"type": "number"}})}}),
		"ConsumerTotal": object(obj{"consumer_id": obj{"type": "string", "format": "uuid"}, "name": str(),
			"requests": integer(), "errors": obj{"type": "integer", "description": "4xx and 5xx answers"}}),
		"UpstreamHealth": upstreamHealthSchema(),
		"KeyQuota": object(obj{"key_id": obj{"type": "string", "format": "uuid"}, "plan_id": obj{"type": "string", "format": "uuid"},
			"scope": enum("key", "consumer"), "limit": obj{"type": "integer", "description": "0 = no quota"},
			"period": enum("day", "month"), "period_start": ts, "period_end": ts, "used": integer(), "left": integer()}),
		"AuditEntry": object(obj{"id": obj{"type": "string", "format": "uuid"}, "tenant_id": str(), "actor": str(),
			"action": str(), "resource_type": str(), "resource_id": str(), "data": obj{"type": "object"}, "at": ts}),
	}
	addDevPortalOpenAPI(paths, schemas)
	addBillingOpenAPI(paths, schemas)
	addLimitsOpenAPI(paths, schemas)
	return obj{
		"openapi": "3.0.3",
		"info": obj{"title": "Tollgate management API", "version": "1",
			"description": "Manage a tenant's upstreams, APIs, plans, consumers and keys. Errors are RFC 9457 problem details."},
		"servers":  []any{obj{"url": "/"}},
		"security": []any{obj{"bearer": []any{}}},
		"paths":    paths,
		"components": obj{
			"securitySchemes": obj{
				"bearer":   obj{"type": "http", "scheme": "bearer", "description": "a tenant admin token"},
				"operator": obj{"type": "http", "scheme": "bearer", "description": "the operator token (TOLLGATE_OPERATOR_TOKEN)"},
			},
			"schemas": schemas,
		},
	}
}

var openAPIDoc = sync.OnceValue(func() []byte {
	b, err := json.MarshalIndent(buildOpenAPI(), "", "  ")
	if err != nil {
		panic("mgmtapi: marshal openapi document: " + err.Error())
	}
	return b
})

// OpenAPI returns the OpenAPI 3.0 document of the API as JSON.
func OpenAPI() []byte { return openAPIDoc() }

func (a *api) openAPI(w http.ResponseWriter, _ *http.Request, _ *call) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(OpenAPI())
	return err
}
