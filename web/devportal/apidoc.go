package devportal

import (
	"encoding/json"
	"net/http"
	"sort"
	"sync"
)

// The OpenAPI 3.0 document of the portal's JSON API, served at
// /api/openapi.json. It is written out operation by operation,
// independently of apiRouteTable; a test checks that both list the same
// (method, path) pairs and that kin-openapi accepts the document.

type oaObj = map[string]any

func oaRef(name string) oaObj { return oaObj{"$ref": "#/components/schemas/" + name} }

func oaStr() oaObj  { return oaObj{"type": "string"} }
func oaUUID() oaObj { return oaObj{"type": "string", "format": "uuid"} }
func oaTime() oaObj { return oaObj{"type": "string", "format": "date-time"} }
func oaInt() oaObj  { return oaObj{"type": "integer", "format": "int64"} }
func oaNum() oaObj  { return oaObj{"type": "number"} }
func oaBool() oaObj { return oaObj{"type": "boolean"} }

func oaNullable(o oaObj) oaObj {
	out := oaObj{"nullable": true}
	for k, v := range o {
		out[k] = v
	}
	return out
}

func oaNullableRef(name string) oaObj {
	return oaObj{"nullable": true, "allOf": []any{oaRef(name)}}
}

func oaEnum(vals ...string) oaObj { return oaObj{"type": "string", "enum": vals} }

func oaArray(items oaObj) oaObj { return oaObj{"type": "array", "items": items} }

// oaObject is a schema with properties, every one of them required (the
// answers always hold every field, null when empty).
func oaObject(props oaObj) oaObj {
	req := make([]string, 0, len(props))
	for k := range props {
		req = append(req, k)
	}
	sort.Strings(req)
	return oaObj{"type": "object", "required": req, "properties": props}
}

// oaInput is a request schema: fields listed in required are required, the
// others optional; unknown fields are refused.
func oaInput(props oaObj, required ...string) oaObj {
	o := oaObj{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func oaJSON(schema oaObj) oaObj { return oaObj{"application/json": oaObj{"schema": schema}} }

func oaProblem(desc string) oaObj {
	return oaObj{"description": desc, "content": oaObj{"application/problem+json": oaObj{"schema": oaRef("Problem")}}}
}

func oaAnswer(desc string, schema oaObj) oaObj {
	return oaObj{"description": desc, "content": oaJSON(schema)}
}

var (
	oaIDParam    = oaObj{"name": "id", "in": "path", "required": true, "schema": oaUUID()}
	oaPageParams = []any{
		oaObj{"name": "limit", "in": "query", "schema": oaObj{"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
		oaObj{"name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": oaStr()},
	}
	oaRangeParams = []any{
		oaObj{"name": "from", "in": "query", "description": "start (RFC 3339, inclusive)", "schema": oaTime()},
		oaObj{"name": "to", "in": "query", "description": "end (RFC 3339, exclusive); default now", "schema": oaTime()},
	}
	// Security requirements: signed-in calls take a bearer token or the
	// session cookie (with X-CSRF-Token on state-changing calls); public
	// ones take nothing.
	oaSignedIn = []any{oaObj{"bearer": []any{}}, oaObj{"session": []any{}}}
	oaPublic   = []any{}
)

// oaOperation builds one operation with its success answer and the problem
// answers every call may give.
func oaOperation(summary string, security []any, status string, success oaObj, extra oaObj) oaObj {
	responses := oaObj{status: success, "default": oaProblem("Error")}
	if len(security) > 0 {
		responses["401"] = oaProblem("Not signed in")
	}
	o := oaObj{"summary": summary, "security": security, "responses": responses}
	for k, v := range extra {
		if k == "responses" {
			for code, r := range v.(oaObj) {
				responses[code] = r
			}
			continue
		}
		o[k] = v
	}
	return o
}

func oaWithBody(schema oaObj, more oaObj) oaObj {
	o := oaObj{"requestBody": oaObj{"required": true, "content": oaJSON(schema)}}
	resp := oaObj{"400": oaProblem("Malformed request (bad JSON, unknown field, wrong type)"),
		"415": oaProblem("The body is not application/json"), "422": oaProblem("Invalid fields; see errors")}
	for k, v := range more {
		resp[k] = v
	}
	o["responses"] = resp
	return o
}

func oaIDParams(extra ...any) oaObj { return oaObj{"parameters": append([]any{oaIDParam}, extra...)} }

func oaMerge(objs ...oaObj) oaObj {
	out := oaObj{}
	for _, o := range objs {
		for k, v := range o {
			if k == "responses" {
				if cur, ok := out[k].(oaObj); ok {
					for code, r := range v.(oaObj) {
						cur[code] = r
					}
					continue
				}
				cp := oaObj{}
				for code, r := range v.(oaObj) {
					cp[code] = r
				}
				out[k] = cp
				continue
			}
			out[k] = v
		}
	}
	return out
}

var (
	oaNotFound  = oaObj{"responses": oaObj{"404": oaProblem("No such object (or not yours, or another portal's)")}}
	oaConflict  = oaObj{"responses": oaObj{"409": oaProblem("Conflict with the object's state")}}
	oaForbidden = oaObj{"responses": oaObj{"403": oaProblem("Denied: see type (email-unverified, developer-pending, consumer-suspended, csrf)")}}
	oaThrottled = oaObj{"responses": oaObj{"429": oaProblem("Too many attempts; see Retry-After")}}
	oaNoContent = oaObj{"description": "No Content"}
)

func apiBuildDoc() oaObj {
	paths := oaObj{
		"/api/openapi.json": oaObj{"get": oaOperation("This document", oaPublic, "200",
			oaObj{"description": "The OpenAPI 3 document", "content": oaObj{"application/json": oaObj{"schema": oaObj{"type": "object"}}}}, nil)},

		"/api/signup": oaObj{"post": oaOperation("Sign up", oaPublic, "202", oaAnswer("Accepted, whether or not the address has an account", oaRef("Accepted")),
			oaMerge(oaWithBody(oaRef("SignupInput"), nil), oaThrottled, oaForbidden, oaObj{"description": "Creates an account and mails a " +
				"confirmation link with token=<token>; an address that has an account gets a mail saying so. The answer is the same either way."}))},
		"/api/verify": oaObj{"post": oaOperation("Confirm the email address", oaPublic, "200", oaAnswer("The developer", oaRef("Developer")),
			oaMerge(oaWithBody(oaRef("TokenInput"), nil), oaThrottled))},
		"/api/verify/resend": oaObj{"post": oaOperation("Mail a new confirmation link", oaSignedIn, "202", oaAnswer("Accepted", oaRef("Accepted")),
			oaMerge(oaThrottled, oaForbidden))},
		"/api/login": oaObj{"post": oaOperation("Sign in", oaPublic, "200", oaAnswer("A bearer token for the JSON API", oaRef("Login")),
			oaMerge(oaWithBody(oaRef("LoginInput"), oaObj{"401": oaProblem("Wrong email or password (the same answer for an unknown address)")}),
				oaThrottled, oaForbidden))},
		"/api/logout": oaObj{"post": oaOperation("Sign out (end this token's session)", oaSignedIn, "204", oaNoContent, oaForbidden)},
		"/api/password/forgot": oaObj{"post": oaOperation("Mail a password reset link", oaPublic, "202",
			oaAnswer("Accepted, whether or not the address has an account", oaRef("Accepted")), oaMerge(oaWithBody(oaRef("ForgotInput"), nil), oaThrottled))},
		"/api/password/reset": oaObj{"post": oaOperation("Choose a new password with a reset link's token (ends every session)", oaPublic, "200",
			oaAnswer("The developer", oaRef("Developer")), oaMerge(oaWithBody(oaRef("ResetInput"), nil), oaThrottled))},
		"/api/me": oaObj{"get": oaOperation("The signed-in developer", oaSignedIn, "200", oaAnswer("The developer", oaRef("Developer")), nil)},

		"/api/apis": oaObj{"get": oaOperation("List the published APIs", oaPublic, "200", oaAnswer("The catalogue", oaItems("API")), nil)},
		"/api/apis/{id}": oaObj{"get": oaOperation("Read a published API", oaPublic, "200", oaAnswer("The API", oaRef("API")),
			oaMerge(oaIDParams(), oaNotFound))},
		"/api/apis/{id}/openapi.json": oaObj{"get": oaOperation("The API's OpenAPI document (servers set to its gateway URL)", oaPublic, "200",
			oaObj{"description": "The document", "headers": oaObj{"ETag": oaObj{"schema": oaStr()}},
				"content": oaObj{"application/json": oaObj{"schema": oaObj{"type": "object"}}}},
			oaMerge(oaIDParams(), oaNotFound, oaObj{"responses": oaObj{"304": oaObj{"description": "Not modified (If-None-Match)"}}}))},
		"/api/apis/{id}/sdk/go":         oaObj{"get": oaSDKOperation("Go")},
		"/api/apis/{id}/sdk/typescript": oaObj{"get": oaSDKOperation("TypeScript")},
		"/api/try/{id}": oaObj{"post": oaOperation("Send a request to the API through the try-it relay (the tenant's gateway only)", oaSignedIn, "200",
			oaAnswer("The gateway's answer", oaRef("TryResult")),
			oaMerge(oaIDParams(), oaWithBody(oaRef("TryRequest"), oaObj{"404": oaProblem("No such API"), "413": oaProblem("Too large"),
				"502": oaProblem("Gateway unreachable"), "504": oaProblem("Gateway timeout")}), oaForbidden))},
		"/api/plans": oaObj{"get": oaOperation("List the public plans", oaPublic, "200", oaAnswer("The plans", oaItems("Plan")), nil)},
		"/api/plans/{id}": oaObj{"get": oaOperation("Read a public plan", oaPublic, "200", oaAnswer("The plan", oaRef("Plan")),
			oaMerge(oaIDParams(), oaNotFound))},

		"/api/apps": oaObj{
			"post": oaOperation("Create an app", oaSignedIn, "201", oaAnswer("Created", oaRef("App")),
				oaMerge(oaWithBody(oaRef("AppInput"), nil), oaConflict, oaForbidden)),
			"get": oaOperation("List your apps", oaSignedIn, "200", oaAnswer("Your apps", oaPage("App")), oaObj{"parameters": oaPageParams}),
		},
		"/api/apps/{id}": oaObj{
			"get": oaOperation("Read an app", oaSignedIn, "200", oaAnswer("The app", oaRef("App")), oaMerge(oaIDParams(), oaNotFound)),
			"patch": oaOperation("Change the fields the body names", oaSignedIn, "200", oaAnswer("The app", oaRef("App")),
				oaMerge(oaIDParams(), oaWithBody(oaRef("AppPatch"), nil), oaNotFound, oaForbidden)),
			"delete": oaOperation("Delete an app (revokes its keys, ends its subscriptions)", oaSignedIn, "204", oaNoContent,
				oaMerge(oaIDParams(), oaNotFound, oaForbidden)),
		},
		"/api/apps/{id}/subscriptions": oaObj{
			"post": oaOperation("Subscribe the app to a public plan", oaSignedIn, "201",
				oaAnswer("active with the first key (shown once), pending (approval) or payment_required", oaRef("Subscription")),
				oaMerge(oaIDParams(), oaWithBody(oaRef("SubscribeInput"), nil), oaNotFound, oaConflict, oaForbidden)),
			"get": oaOperation("List the app's subscriptions", oaSignedIn, "200", oaAnswer("The subscriptions", oaPage("Subscription")),
				oaMerge(oaIDParams(append(append([]any{}, oaPageParams...), oaStatusParam)...), oaNotFound)),
		},
		"/api/subscriptions": oaObj{"get": oaOperation("List your subscriptions", oaSignedIn, "200",
			oaAnswer("The subscriptions", oaPage("Subscription")),
			oaObj{"parameters": append(append([]any{}, oaPageParams...), oaStatusParam,
				oaObj{"name": "app_id", "in": "query", "schema": oaUUID()})})},
		"/api/subscriptions/{id}": oaObj{
			"get": oaOperation("Read a subscription", oaSignedIn, "200", oaAnswer("The subscription", oaRef("Subscription")),
				oaMerge(oaIDParams(), oaNotFound)),
			"delete": oaOperation("Cancel a subscription at once (its keys stop working)", oaSignedIn, "200",
				oaAnswer("The canceled subscription", oaRef("Subscription")), oaMerge(oaIDParams(), oaNotFound, oaConflict, oaForbidden,
					oaObj{"description": "A paid subscription is canceled in Stripe first: Stripe invoices the usage so far and " +
						"credits the unused part of the period's flat price. To keep it until the period ends, cancel in the " +
						"Customer Portal instead (GET /api/subscriptions/{id}/billing)."})),
		},
		"/api/subscriptions/{id}/invoices": oaObj{"get": oaOperation("The subscription's invoices, newest first", oaSignedIn, "200",
			oaAnswer("The invoices (none while the platform runs without billing)", oaItems("Invoice")), oaMerge(oaIDParams(), oaNotFound))},
		"/api/subscriptions/{id}/estimate": oaObj{"get": oaOperation("The estimate of the subscription's next invoice", oaSignedIn, "200",
			oaAnswer("The plan's price rated with the requests served so far in the billing period", oaRef("InvoiceEstimate")),
			oaMerge(oaIDParams(), oaNotFound, oaObj{"responses": oaObj{"409": oaProblem("Billing unavailable (billing-unavailable)")}}))},
		"/api/subscriptions/{id}/billing": oaObj{"get": oaOperation("Where to pay or manage the subscription", oaSignedIn, "200",
			oaAnswer("A fresh Stripe Checkout (payment_required) or Customer Portal URL, or null and why", oaRef("Billing")),
			oaMerge(oaIDParams(), oaNotFound))},
		"/api/subscriptions/{id}/keys": oaObj{
			"post": oaOperation("Issue another key (while the subscription is active)", oaSignedIn, "201",
				oaAnswer("The key, shown once", oaRef("NewKey")), oaMerge(oaIDParams(), oaNotFound, oaConflict, oaForbidden)),
			"get": oaOperation("List the subscription's keys (without secrets)", oaSignedIn, "200", oaAnswer("The keys", oaItems("Key")),
				oaMerge(oaIDParams(), oaNotFound)),
		},
		"/api/keys/{id}": oaObj{
			"get":    oaOperation("Read a key (without its secret)", oaSignedIn, "200", oaAnswer("The key", oaRef("Key")), oaMerge(oaIDParams(), oaNotFound)),
			"delete": oaOperation("Revoke a key at once", oaSignedIn, "204", oaNoContent, oaMerge(oaIDParams(), oaNotFound, oaForbidden)),
		},
		"/api/keys/{id}/rotate": oaObj{"post": oaOperation("Replace a key; the old one works for grace_seconds more", oaSignedIn, "201",
			oaAnswer("The new key, shown once", oaRef("RotatedKey")),
			oaMerge(oaIDParams(), oaWithBody(oaRef("RotateInput"), nil), oaNotFound, oaConflict, oaForbidden))},

		"/api/usage": oaObj{"get": oaOperation("Traffic and quota per key (default range: the last 30 days)", oaSignedIn, "200",
			oaAnswer("Usage per key", oaRef("Usage")), oaObj{"parameters": oaRangeParams})},
		"/api/usage/series": oaObj{"get": oaOperation("Traffic per time bucket, for charts (default: the last 24 hours by hour)", oaSignedIn, "200",
			oaAnswer("The series", oaRef("UsageSeries")), oaMerge(oaNotFound, oaObj{"parameters": append(append([]any{}, oaRangeParams...),
				oaObj{"name": "bucket", "in": "query", "schema": oaEnum("minute", "hour", "day")},
				oaObj{"name": "app_id", "in": "query", "schema": oaUUID()},
				oaObj{"name": "key_id", "in": "query", "schema": oaUUID()})}))},
	}
	return oaObj{
		"openapi": "3.0.3",
		"info": oaObj{"title": "Tollgate developer portal API", "version": "1",
			"description": "The JSON API of a tenant's developer portal: sign up, browse the catalogue, manage apps, " +
				"subscriptions and keys, and read usage. The host decides the tenant. Sign in with POST /api/login and send " +
				"Authorization: Bearer <token>; a browser's session cookie works too, with its CSRF token in X-CSRF-Token " +
				"on every state-changing call. Bodies are JSON, at most 1 MiB, unknown fields refused. Errors are RFC 9457 " +
				"problem details. Another developer's or another portal's objects answer 404."},
		"servers":  []any{oaObj{"url": "/"}},
		"security": oaSignedIn,
		"paths":    paths,
		"components": oaObj{
			"securitySchemes": oaObj{
				"bearer":  oaObj{"type": "http", "scheme": "bearer", "description": "a token from POST /api/login"},
				"session": oaObj{"type": "apiKey", "in": "cookie", "name": "tgp_session", "description": "the browser's session cookie (__Host-tgp_session over https); state-changing calls also need the X-CSRF-Token header"},
			},
			"schemas": oaSchemas(),
		},
	}
}

var oaStatusParam = oaObj{"name": "status", "in": "query", "schema": oaEnum("pending", "active", "payment_required", "past_due",
	"suspended", "canceled", "rejected")}

func oaSDKOperation(lang string) oaObj {
	return oaOperation("Download the API's "+lang+" SDK", oaPublic, "200",
		oaObj{"description": "A zip archive", "headers": oaObj{
			"Content-Disposition": oaObj{"schema": oaStr(), "description": "attachment; filename=<api>-<language>-sdk-<version>.zip"},
			"ETag":                oaObj{"schema": oaStr(), "description": "the quoted SHA-256 of the zip"},
			"X-Checksum-SHA256":   oaObj{"schema": oaStr(), "description": "the hex SHA-256 of the zip"},
			"X-SDK-Version":       oaObj{"schema": oaStr(), "description": "the document's version + a hash of its content"},
		}, "content": oaObj{"application/zip": oaObj{"schema": oaObj{"type": "string", "format": "binary"}}}},
		oaMerge(oaIDParams(), oaObj{"responses": oaObj{"304": oaObj{"description": "Not modified (If-None-Match)"},
			"404": oaProblem("No such API, or it has no OpenAPI document"),
			"422": oaProblem("The API's document cannot be turned into an SDK")}}))
}

func oaItems(name string) oaObj { return oaObject(oaObj{"items": oaArray(oaRef(name))}) }

func oaPage(name string) oaObj {
	return oaObject(oaObj{"items": oaArray(oaRef(name)), "next_cursor": oaNullable(oaStr())})
}

func oaSchemas() oaObj {
	rateLimit := oaObject(oaObj{"requests": oaInt(), "per_seconds": oaInt(), "burst": oaInt()})
	rateLimit["properties"].(oaObj)["scope"] = oaEnum("key", "consumer")
	newKey := oaObj{"id": oaUUID(), "key": oaObj{"type": "string", "description": "the key (tg_...), shown only in this answer"},
		"prefix": oaStr(), "subscription_id": oaNullable(oaUUID()), "app_id": oaNullable(oaUUID()), "plan_id": oaUUID(),
		"created_at": oaTime(), "expires_at": oaNullable(oaTime())}
	rotated := oaObj{"previous_key_id": oaUUID(), "previous_key_expires_at": oaTime()}
	for k, v := range newKey {
		rotated[k] = v
	}
	tryReq := oaInput(oaObj{
		"api_id": oaStr(), "method": oaEnum("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
		"path":    oaObj{"type": "string", "description": "relative to the API's base URL"},
		"query":   oaObj{"type": "object", "additionalProperties": oaObj{"oneOf": []any{oaStr(), oaArray(oaStr())}}},
		"headers": oaObj{"type": "object", "additionalProperties": oaStr()},
		"body":    oaStr(),
	}, "method", "path")
	return oaObj{
		"Problem": oaObj{"type": "object", "required": []string{"type", "title", "status"}, "properties": oaObj{
			"type": oaStr(), "title": oaStr(), "status": oaObj{"type": "integer"}, "detail": oaStr(),
			"errors": oaArray(oaObject(oaObj{"field": oaStr(), "message": oaStr()}))}},
		"Accepted": oaObject(oaObj{"detail": oaStr()}),
		"SignupInput": oaInput(oaObj{"email": oaObj{"type": "string", "format": "email"}, "password": oaObj{"type": "string", "minLength": 1},
			"name": oaStr(), "invite": oaObj{"type": "string", "description": "the token of an invitation link"}}, "email", "password", "name"),
		"TokenInput":  oaInput(oaObj{"token": oaStr()}, "token"),
		"LoginInput":  oaInput(oaObj{"email": oaStr(), "password": oaStr()}, "email", "password"),
		"ForgotInput": oaInput(oaObj{"email": oaStr()}, "email"),
		"ResetInput":  oaInput(oaObj{"token": oaStr(), "password": oaStr()}, "token", "password"),
		"Developer": oaObject(oaObj{"id": oaUUID(), "consumer_id": oaUUID(), "email": oaStr(), "name": oaStr(),
			"status": oaEnum("pending", "active", "rejected"), "email_verified": oaBool(), "created_at": oaTime()}),
		"Login": oaObject(oaObj{"token": oaStr(), "token_type": oaEnum("Bearer"), "expires_at": oaTime(), "developer": oaRef("Developer")}),
		"API": oaObject(oaObj{"id": oaUUID(), "name": oaStr(), "slug": oaStr(), "base_path": oaStr(),
			"url":  oaObj{"type": "string", "description": "the API's gateway base URL"},
			"auth": oaEnum("key", "jwt", "none"), "has_document": oaBool(),
			"version":      oaObj{"type": "string", "description": "the document's info.version; empty without a document"},
			"document_url": oaNullable(oaStr()),
			"sdks":         oaObj{"type": "object", "description": "download URL per language", "additionalProperties": oaStr()},
			"plan_ids":     oaArray(oaUUID())}),
		"Plan": oaObject(oaObj{"id": oaUUID(), "name": oaStr(), "rate_limit": rateLimit,
			"quota":       oaObject(oaObj{"requests": oaInt(), "period": oaEnum("day", "month")}),
			"price":       oaNullable(oaObj{"type": "object", "description": "null for a free plan; amounts in the currency's minor unit", "additionalProperties": true}),
			"concurrency": oaInt(), "approval_required": oaBool(), "api_ids": oaArray(oaUUID())}),
		"AppInput": oaInput(oaObj{"name": oaStr(), "description": oaStr()}, "name"),
		"AppPatch": oaInput(oaObj{"name": oaStr(), "description": oaStr()}),
		"App": oaObject(oaObj{"id": oaUUID(), "consumer_id": oaUUID(), "name": oaStr(), "description": oaStr(),
			"created_at": oaTime(), "updated_at": oaTime()}),
		"SubscribeInput": oaInput(oaObj{"plan_id": oaUUID()}, "plan_id"),
		"Subscription": func() oaObj {
			o := oaObject(oaObj{"id": oaUUID(), "app_id": oaUUID(), "plan_id": oaUUID(),
				"status":       oaEnum("active", "pending", "payment_required", "past_due", "suspended", "canceled", "rejected"),
				"key":          oaNullableRef("NewKey"),
				"checkout_url": oaNullable(oaObj{"type": "string", "description": "a Stripe Checkout URL while payment_required; null when it cannot be paid now (detail says why)"}),
				"created_at":   oaTime(), "updated_at": oaTime(), "decided_at": oaNullable(oaTime())})
			o["properties"].(oaObj)["detail"] = oaObj{"type": "string", "description": "why the subscription is not active, when it is not"}
			return o
		}(),
		"NewKey":      oaObject(newKey),
		"RotateInput": oaInput(oaObj{"grace_seconds": oaObj{"type": "integer", "minimum": 0, "maximum": 2592000, "default": 0}}),
		"RotatedKey":  oaObject(rotated),
		"Key": oaObject(oaObj{"id": oaUUID(), "prefix": oaStr(), "status": oaEnum("active", "expired", "revoked"),
			"subscription_id": oaNullable(oaUUID()), "app_id": oaNullable(oaUUID()), "plan_id": oaUUID(), "created_at": oaTime(),
			"expires_at": oaNullable(oaTime()), "revoked_at": oaNullable(oaTime()), "replaced_by": oaNullable(oaUUID())}),
		"Usage": oaObject(oaObj{"from": oaTime(), "to": oaTime(), "items": oaArray(oaObject(oaObj{
			"app_id": oaNullable(oaUUID()), "key_id": oaUUID(), "prefix": oaStr(), "status": oaEnum("active", "expired", "revoked"),
			"subscription_id": oaNullable(oaUUID()), "plan_id": oaUUID(), "requests": oaInt(),
			"errors":         oaObj{"type": "integer", "format": "int64", "description": "4xx and 5xx answers"},
			"latency_p50_ms": oaNum(), "latency_p99_ms": oaNum(),
			"quota": oaObject(oaObj{"limit": oaObj{"type": "integer", "format": "int64", "description": "0 = no quota"},
				"used": oaInt(), "remaining": oaNullable(oaInt()), "period": oaStr(), "period_start": oaTime(), "period_end": oaTime()}),
		}))}),
		"UsageSeries": oaObject(oaObj{"bucket": oaEnum("minute", "hour", "day"), "from": oaTime(), "to": oaTime(),
			"points": oaArray(oaObject(oaObj{"start": oaTime(), "requests": oaInt(), "status_2xx": oaInt(), "status_4xx": oaInt(),
				"status_5xx": oaInt(), "bytes_in": oaInt(), "bytes_out": oaInt(), "latency_avg_ms": oaNum(),
				"latency_p50_ms": oaNum(), "latency_p99_ms": oaNum()}))}),
		"Invoice": oaObject(oaObj{"id": oaStr(), "subscription_id": oaStr(),
			"status":   oaObj{"type": "string", "description": "Stripe's: paid, open (a payment failed), uncollectible, void"},
			"currency": oaStr(), "amount_due": oaInt(), "amount_paid": oaInt(),
			"period_start": oaNullable(oaTime()), "period_end": oaNullable(oaTime()),
			"hosted_invoice_url": oaNullable(oaObj{"type": "string", "description": "Stripe's page of the invoice"}),
			"created":            oaTime()}),
		"InvoiceEstimate": oaObject(oaObj{"subscription_id": oaUUID(), "plan_id": oaUUID(), "plan_version": oaInt(),
			"period_start": oaTime(), "period_end": oaTime(),
			"stripe_period": oaObj{"type": "boolean", "description": "the period is Stripe's billing period (else the calendar period of the price's interval)"},
			"as_of":         oaTime(), "currency": oaObj{"type": "string", "description": "empty for a free plan"},
			"served": oaObj{"type": "integer", "format": "int64", "description": "requests served (1xx-3xx) in the period so far"},
			"lines": oaArray(oaObject(oaObj{"kind": oaEnum("flat", "included", "requests"), "description": oaStr(),
				"quantity": oaInt(), "unit_amount_decimal": oaStr(), "exact_amount": oaStr(),
				"amount": oaObj{"type": "integer", "format": "int64", "description": "in the currency's minor unit"}})),
			"total": oaObj{"type": "integer", "format": "int64", "description": "in the currency's minor unit"}}),
		"Billing": func() oaObj {
			o := oaObject(oaObj{"subscription_id": oaUUID(),
				"status":               oaEnum("active", "pending", "payment_required", "past_due", "suspended", "canceled", "rejected"),
				"action":               oaNullable(oaEnum(billingActionCheckout, billingActionPortal)),
				"url":                  oaNullable(oaObj{"type": "string", "description": "a fresh Stripe URL for action; it expires, so ask again rather than store it"}),
				"page_url":             oaObj{"type": "string", "description": "the portal's stable link that opens url for a signed-in developer"},
				"grace_until":          oaNullable(oaTime()),
				"current_period_start": oaNullable(oaTime()), "current_period_end": oaNullable(oaTime()),
				"cancel_at_period_end": oaBool()})
			o["properties"].(oaObj)["detail"] = oaObj{"type": "string", "description": "why there is no url, when there is none"}
			return o
		}(),
		"TryRequest": tryReq,
		"TryResult": oaObj{"type": "object", "required": []string{"status", "headers", "body", "truncated", "duration_ms"},
			"properties": oaObj{"status": oaObj{"type": "integer"}, "headers": oaObj{"type": "object", "additionalProperties": oaStr()},
				"body": oaStr(), "body_base64": oaStr(), "truncated": oaBool(), "duration_ms": oaNum()}},
	}
}

var apiDocJSON = sync.OnceValue(func() []byte {
	b, err := json.MarshalIndent(apiBuildDoc(), "", "  ")
	if err != nil {
		panic("devportal: marshal openapi document: " + err.Error())
	}
	return b
})

// APIDocument returns the OpenAPI 3.0 document of the portal's JSON API.
func APIDocument() []byte { return apiDocJSON() }

func (p *Portal) apiOpenAPI(w http.ResponseWriter, _ *http.Request, _ *apiCall) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(APIDocument())
	return err
}
