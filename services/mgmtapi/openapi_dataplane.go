package mgmtapi

// Data-plane fields of upstreams and APIs (issue 3), documented apart so
// that the main document stays readable.

// addUpstreamDataplane documents an upstream's hash_on, outlier, retry and
// circuit_breaker.
func addUpstreamDataplane(props obj) {
	props["hash_on"] = obj{"type": "object", "nullable": true,
		"description": "consistent_hash only: what to hash; with bounded load (a target takes at most bounded_load x the average in-flight requests)",
		"properties": obj{
			"source":       enum("header", "cookie", "client_ip", "consumer"),
			"name":         obj{"type": "string", "description": "header or cookie name"},
			"bounded_load": obj{"type": "number", "minimum": 1, "maximum": 10, "default": 1.25},
		}}
	props["outlier"] = obj{"type": "object", "nullable": true,
		"description": "passive health: consecutive 5xx or connect errors eject a target for base_ejection_ms x (number of its ejections), capped; never more than max_ejection_percent of the targets",
		"properties": obj{
			"consecutive_5xx":      obj{"type": "integer", "minimum": 0},
			"consecutive_errors":   obj{"type": "integer", "minimum": 0},
			"base_ejection_ms":     obj{"type": "integer", "minimum": 0, "default": 5000},
			"max_ejection_ms":      obj{"type": "integer", "minimum": 0, "default": 300000},
			"max_ejection_percent": obj{"type": "integer", "minimum": 0, "maximum": 100, "default": 50},
		}}
	props["retry"] = obj{"type": "object", "nullable": true,
		"description": "retry idempotent requests (or those with Idempotency-Key) on another target after a connect error, timeout, 502, 503 or 504, within a retry budget",
		"properties": obj{
			"attempts":       obj{"type": "integer", "minimum": 0, "maximum": 5},
			"budget_percent": obj{"type": "integer", "minimum": 0, "maximum": 100, "default": 20},
			"min_per_second": obj{"type": "integer", "minimum": 0, "default": 3},
		}}
	props["circuit_breaker"] = obj{"type": "object", "nullable": true,
		"description": "per-target cap on in-flight requests; a full target is skipped, all full answers 503",
		"properties":  obj{"max_requests": obj{"type": "integer", "minimum": 0}}}
}

// addAPIDataplane documents an API's jwt, max_body_bytes, host and timeouts.
func addAPIDataplane(props obj) {
	props["jwt"] = obj{"type": "object", "nullable": true,
		"description": "auth jwt: tokens are verified against the issuer's OIDC discovery and JWKS; the claim's value maps to a consumer and plan through subjects, else plan_id, else 403",
		"properties": obj{
			"issuer":     obj{"type": "string", "format": "uri"},
			"audiences":  obj{"type": "array", "items": obj{"type": "string"}},
			"claim":      obj{"type": "string", "default": "sub", "description": "sub, client_id or any string claim"},
			"algorithms": obj{"type": "array", "items": enum("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA")},
			"plan_id":    obj{"type": "string", "format": "uuid", "description": "plan of callers not listed in subjects"},
			"subjects": obj{"type": "array", "items": obj{"type": "object", "properties": obj{
				"value": obj{"type": "string"}, "consumer_id": obj{"type": "string", "format": "uuid"}, "plan_id": obj{"type": "string", "format": "uuid"}}}},
			"scopes": obj{"type": "array", "items": obj{"type": "string"}, "description": "required on every request"},
			"route_scopes": obj{"type": "array", "items": obj{"type": "object", "properties": obj{
				"path_prefix": obj{"type": "string"}, "methods": obj{"type": "array", "items": obj{"type": "string"}},
				"scopes": obj{"type": "array", "items": obj{"type": "string"}}}}},
		}}
	props["max_body_bytes"] = obj{"type": "integer", "minimum": 0, "description": "request body limit (413 beyond); 0 = proxy default"}
	props["host"] = obj{"type": "string", "description": "Host sent upstream: omitted = the target's, \"preserve\" = the client's, or a host name"}
	props["connect_timeout_ms"] = obj{"type": "integer", "minimum": 0, "description": "0 = proxy default (5s)"}
	props["read_timeout_ms"] = obj{"type": "integer", "minimum": 0, "description": "bounds reading the response; 0 = timeout_ms only"}
}
