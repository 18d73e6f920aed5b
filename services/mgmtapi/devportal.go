package mgmtapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/tenancy"
)

// The tenant's side of its developer portal: the portal settings, the
// developers (approval, invitations), apps and subscriptions (approval,
// suspension). The same service code serves the tenant portal's pages.

func (a *api) devPortalRoutes() []route {
	return []route{
		{"GET", "/v1/portal", authTenant, a.getPortal},
		{"PUT", "/v1/portal", authTenant, a.putPortal},
		{"PUT", "/v1/portal/oidc", authTenant, a.putPortalOIDC},
		{"GET", "/v1/developers", authTenant, a.listDevelopers},
		{"GET", "/v1/developers/{id}", authTenant, a.getDeveloper},
		{"POST", "/v1/developers/{id}/approve", authTenant, a.decideDeveloper(true)},
		{"POST", "/v1/developers/{id}/reject", authTenant, a.decideDeveloper(false)},
		{"POST", "/v1/developer-invites", authTenant, a.inviteDeveloper},
		{"GET", "/v1/apps", authTenant, a.listApps},
		{"GET", "/v1/apps/{id}", authTenant, a.getApp},
		{"GET", "/v1/subscriptions", authTenant, a.listSubscriptions},
		{"GET", "/v1/subscriptions/{id}", authTenant, a.getSubscription},
		{"POST", "/v1/subscriptions/{id}/approve", authTenant, a.decideSubscription(true)},
		{"POST", "/v1/subscriptions/{id}/reject", authTenant, a.decideSubscription(false)},
		{"POST", "/v1/subscriptions/{id}/suspend", authTenant, a.setSubscription(catalog.SubSuspended,
			catalog.SubActive, catalog.SubPastDue)},
		{"POST", "/v1/subscriptions/{id}/resume", authTenant, a.setSubscription(catalog.SubActive, catalog.SubSuspended)},
		{"POST", "/v1/subscriptions/{id}/cancel", authTenant, a.setSubscription(catalog.SubCanceled,
			catalog.SubActive, catalog.SubPending, catalog.SubPaymentRequired, catalog.SubPastDue, catalog.SubSuspended)},
	}
}

func (a *api) getPortal(w http.ResponseWriter, r *http.Request, c *call) error {
	p, err := settings.GetPortal(r.Context(), a.db, c.actor.TenantID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// portalInput is what PUT /v1/portal may name; the OIDC part is set with
// PUT /v1/portal/oidc.
type portalInput struct {
	Enabled             bool     `json:"enabled"`
	Signup              string   `json:"signup"`
	DisplayName         string   `json:"display_name"`
	AccentColor         string   `json:"accent_color"`
	LogoURL             string   `json:"logo_url"`
	SupportEmail        string   `json:"support_email"`
	AllowedEmailDomains []string `json:"allowed_email_domains"`
}

// putPortal merges the fields the body names into the portal settings and
// returns the whole object.
func (a *api) putPortal(w http.ResponseWriter, r *http.Request, c *call) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if err := decodeStrict(body, new(portalInput)); err != nil {
		return err
	}
	p, err := settings.SavePortal(r.Context(), a.db, c.actor, func(p *settings.Portal) error {
		in := portalInput{Enabled: p.Enabled, Signup: p.Signup, DisplayName: p.DisplayName, AccentColor: p.AccentColor,
			LogoURL: p.LogoURL, SupportEmail: p.SupportEmail, AllowedEmailDomains: p.AllowedEmailDomains}
		if err := mergePatch(&in, body); err != nil {
			return err
		}
		p.Enabled, p.Signup, p.DisplayName, p.AccentColor = in.Enabled, in.Signup, in.DisplayName, in.AccentColor
		p.LogoURL, p.SupportEmail, p.AllowedEmailDomains = in.LogoURL, in.SupportEmail, in.AllowedEmailDomains
		if p.AllowedEmailDomains == nil {
			p.AllowedEmailDomains = []string{}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

type portalOIDCInput struct {
	Issuer       string `json:"issuer"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

func (a *api) putPortalOIDC(w http.ResponseWriter, r *http.Request, c *call) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var in portalOIDCInput
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	if err := settings.SaveDeveloperOIDC(r.Context(), a.db, a.settingsSecret, c.actor,
		settings.OIDC{Issuer: in.Issuer, ClientID: in.ClientID, ClientSecret: in.ClientSecret,
			AllowHTTP: a.cat.AllowPrivateUpstreams}); err != nil {
		return err
	}
	return a.getPortal(w, r, c)
}

func (a *api) devs() (*devService, error) {
	if a.dev == nil {
		return nil, errors.New("developer portal service not configured")
	}
	return a.dev, nil
}

func (a *api) listDevelopers(w http.ResponseWriter, r *http.Request, c *call) error {
	d, err := a.devs()
	if err != nil {
		return err
	}
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	status := r.URL.Query().Get("status")
	switch status {
	case "", "pending", "active", "rejected":
	default:
		return badRequest("status", "must be pending, active or rejected")
	}
	items, next, err := d.List(r.Context(), c.actor.TenantID, status, page)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newListPage(items, next))
}

func (a *api) getDeveloper(w http.ResponseWriter, r *http.Request, c *call) error {
	d, err := a.devs()
	if err != nil {
		return err
	}
	dev, err := d.Get(r.Context(), c.actor.TenantID, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, dev)
}

func (a *api) tenantOf(ctx context.Context, who audit.Actor) (tenancy.Tenant, error) {
	return tenancy.Get(ctx, a.db, who.TenantID)
}

func (a *api) decideDeveloper(approve bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		d, err := a.devs()
		if err != nil {
			return err
		}
		t, err := a.tenantOf(r.Context(), c.actor)
		if err != nil {
			return err
		}
		dev, err := d.Decide(r.Context(), c.actor, t, r.PathValue("id"), approve)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, dev)
	}
}

type inviteInput struct {
	Email string `json:"email"`
}

func (a *api) inviteDeveloper(w http.ResponseWriter, r *http.Request, c *call) error {
	d, err := a.devs()
	if err != nil {
		return err
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var in inviteInput
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	t, err := a.tenantOf(r.Context(), c.actor)
	if err != nil {
		return err
	}
	if err := d.Invite(r.Context(), c.actor, t, in.Email); err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, map[string]string{"email": in.Email, "status": "invited"})
}

func (a *api) listApps(w http.ResponseWriter, r *http.Request, c *call) error {
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	items, next, err := a.cat.ListApps(r.Context(), c.actor.TenantID, r.URL.Query().Get("consumer_id"), page)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newListPage(items, next))
}

func (a *api) getApp(w http.ResponseWriter, r *http.Request, c *call) error {
	app, err := a.cat.GetApp(r.Context(), c.actor.TenantID, "", r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, app)
}

var subStatuses = map[string]bool{catalog.SubPending: true, catalog.SubActive: true, catalog.SubPaymentRequired: true,
	catalog.SubPastDue: true, catalog.SubSuspended: true, catalog.SubCanceled: true, catalog.SubRejected: true}

func (a *api) listSubscriptions(w http.ResponseWriter, r *http.Request, c *call) error {
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := catalog.SubscriptionFilter{ConsumerID: q.Get("consumer_id"), AppID: q.Get("app_id"), Status: q.Get("status")}
	if f.Status != "" && !subStatuses[f.Status] {
		return badRequest("status", "must be one of pending, active, payment_required, past_due, suspended, canceled, rejected")
	}
	items, next, err := a.cat.ListSubscriptions(r.Context(), c.actor.TenantID, f, page)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newListPage(items, next))
}

func (a *api) getSubscription(w http.ResponseWriter, r *http.Request, c *call) error {
	sub, err := a.cat.GetSubscription(r.Context(), c.actor.TenantID, "", r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sub)
}

func (a *api) decideSubscription(approve bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		d, err := a.devs()
		if err != nil {
			return err
		}
		t, err := a.tenantOf(r.Context(), c.actor)
		if err != nil {
			return err
		}
		sub, err := d.DecideSubscription(r.Context(), c.actor, t, r.PathValue("id"), approve)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, sub)
	}
}

func (a *api) setSubscription(status string, from ...string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		if r.ContentLength > 0 {
			var empty struct{}
			body, err := readBody(w, r)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(body, &empty); err != nil {
				return badRequest("", "the body must be empty or {}")
			}
		}
		sub, err := a.cat.SetSubscriptionStatus(r.Context(), c.actor, "", r.PathValue("id"), status, from...)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, sub)
	}
}

// devService is the developer portal service the handlers use.
type devService = developers.Service

// addDevPortalOpenAPI documents the routes above and the new fields of the
// existing inputs.
func addDevPortalOpenAPI(paths, schemas obj) {
	ts := obj{"type": "string", "format": "date-time"}
	uuid := obj{"type": "string", "format": "uuid"}
	nullableUUID := obj{"type": "string", "format": "uuid", "nullable": true}
	oidc := object(obj{"issuer": str(), "client_id": str(), "has_secret": obj{"type": "boolean"}})
	portalIn := obj{"enabled": obj{"type": "boolean"}, "signup": enum("open", "approval", "invite"),
		"display_name": str(), "accent_color": obj{"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
		"logo_url": obj{"type": "string", "format": "uri"}, "support_email": obj{"type": "string", "format": "email"},
		"allowed_email_domains": obj{"type": "array", "items": str()}}
	portalOut := obj{"oidc": oidc}
	for k, v := range portalIn {
		portalOut[k] = v
	}
	schemas["PortalInput"] = object(portalIn)
	schemas["Portal"] = object(portalOut)
	schemas["PortalOIDCInput"] = object(obj{"issuer": str(), "client_id": str(),
		"client_secret": obj{"type": "string", "description": "write-only; empty keeps the stored one"}})
	schemas["Developer"] = object(obj{"id": uuid, "consumer_id": uuid, "email": str(), "name": str(),
		"status": enum("pending", "active", "rejected"), "email_verified": obj{"type": "boolean"}, "created_at": ts})
	schemas["App"] = object(obj{"id": uuid, "consumer_id": uuid, "name": str(), "description": str(),
		"created_at": ts, "updated_at": ts})
	schemas["Subscription"] = object(obj{"id": uuid, "app_id": uuid, "consumer_id": uuid, "plan_id": uuid,
		"status":     enum("pending", "active", "payment_required", "past_due", "suspended", "canceled", "rejected"),
		"created_at": ts, "updated_at": ts, "decided_at": obj{"type": "string", "format": "date-time", "nullable": true}})

	noBody := obj{"required": false, "content": obj{"application/json": obj{"schema": obj{"type": "object"}}}}
	decide := func(summary, schema string) obj {
		return obj{"parameters": []any{idParam}, "post": op(summary, "200", okResp(ref(schema)),
			obj{"requestBody": noBody, "responses": obj{"200": okResp(ref(schema)), "401": problemResp("Missing or bad token"),
				"404": problemResp("No such object"), "409": problemResp("Not in a state that allows it")}})}
	}
	statusParam := func(vals ...string) obj {
		return obj{"name": "status", "in": "query", "schema": enum(vals...)}
	}
	paths["/v1/portal"] = obj{
		"get": op("The developer portal's settings", "200", okResp(ref("Portal")), nil),
		"put": op("Change the fields of the developer portal's settings the body names; returns the whole settings", "200",
			okResp(ref("Portal")), obj{"requestBody": jsonBody(ref("PortalInput")), "responses": obj{"200": okResp(ref("Portal")),
				"400": problemResp("Malformed request"), "401": problemResp("Missing or bad token"), "422": problemResp("Validation failed")}}),
	}
	paths["/v1/portal/oidc"] = obj{"put": op("Set the developers' OpenID Connect provider (empty issuer and client_id turn it off)",
		"200", okResp(ref("Portal")), obj{"requestBody": jsonBody(ref("PortalOIDCInput"))})}
	paths["/v1/developers"] = obj{"get": op("List the developer portal's developers", "200", okResp(listOf("Developer")),
		obj{"parameters": append([]any{statusParam("pending", "active", "rejected")}, pageParams...)})}
	paths["/v1/developers/{id}"] = obj{"parameters": []any{idParam},
		"get": op("Read a developer", "200", okResp(ref("Developer")), nil)}
	paths["/v1/developers/{id}/approve"] = decide("Approve a pending developer (mails them)", "Developer")
	paths["/v1/developers/{id}/reject"] = decide("Reject a pending developer (mails them)", "Developer")
	paths["/v1/developer-invites"] = obj{"post": op("Invite an address to sign up in the developer portal (mails a link)", "202",
		obj{"description": "Invited", "content": obj{"application/json": obj{"schema": object(obj{"email": str(), "status": str()})}}},
		obj{"requestBody": jsonBody(object(obj{"email": obj{"type": "string", "format": "email"}}))})}
	consumerParam := obj{"name": "consumer_id", "in": "query", "schema": uuid}
	paths["/v1/apps"] = obj{"get": op("List developers' apps", "200", okResp(listOf("App")),
		obj{"parameters": append([]any{consumerParam}, pageParams...)})}
	paths["/v1/apps/{id}"] = obj{"parameters": []any{idParam}, "get": op("Read an app", "200", okResp(ref("App")), nil)}
	paths["/v1/subscriptions"] = obj{"get": op("List subscriptions of apps to plans", "200", okResp(listOf("Subscription")),
		obj{"parameters": append([]any{consumerParam, obj{"name": "app_id", "in": "query", "schema": uuid},
			statusParam("pending", "active", "payment_required", "past_due", "suspended", "canceled", "rejected")}, pageParams...)})}
	paths["/v1/subscriptions/{id}"] = obj{"parameters": []any{idParam},
		"get": op("Read a subscription, with the status its developer sees", "200", okResp(ref("Subscription")), nil)}
	paths["/v1/subscriptions/{id}/approve"] = decide("Approve a pending subscription (active, or payment_required for a priced plan)", "Subscription")
	paths["/v1/subscriptions/{id}/reject"] = decide("Reject a pending subscription", "Subscription")
	paths["/v1/subscriptions/{id}/suspend"] = decide("Suspend a subscription: its keys are refused on every worker", "Subscription")
	paths["/v1/subscriptions/{id}/resume"] = decide("Resume a suspended subscription", "Subscription")
	paths["/v1/subscriptions/{id}/cancel"] = decide("Cancel a subscription: its keys answer 403 subscription-canceled", "Subscription")

	// New fields of existing objects.
	for _, name := range []string{"APIInput", "API"} {
		schemas[name].(obj)["properties"].(obj)["published"] = obj{"type": "boolean", "description": "listed in the developer portal"}
	}
	for _, name := range []string{"PlanInput", "Plan"} {
		props := schemas[name].(obj)["properties"].(obj)
		props["public"] = obj{"type": "boolean", "description": "offered in the developer portal"}
		props["approval_required"] = obj{"type": "boolean", "description": "developers' subscriptions wait for the tenant"}
	}
	for _, name := range []string{"ConsumerInput", "Consumer"} {
		schemas[name].(obj)["properties"].(obj)["status"] = enum("active", "suspended")
	}
	schemas["Consumer"].(obj)["properties"].(obj)["developer_id"] = nullableUUID
	for _, name := range []string{"Key", "KeyCreated"} {
		props := schemas[name].(obj)["properties"].(obj)
		props["subscription_id"], props["app_id"], props["replaced_by"] = nullableUUID, nullableUUID, nullableUUID
		props["expires_at"] = obj{"type": "string", "format": "date-time", "nullable": true}
	}
}

// addBillingOpenAPI documents billing's /v1 routes (served by billing/,
// mounted beside this API by the control plane).
func addBillingOpenAPI(paths, schemas obj) {
	ts := obj{"type": "string", "format": "date-time", "nullable": true}
	schemas["BillingConnection"] = object(obj{"enabled": obj{"type": "boolean", "description": "billing is on for the platform"},
		"connected": obj{"type": "boolean"}, "account_id": obj{"type": "string", "nullable": true},
		"grace_period_seconds": integer(), "livemode": obj{"type": "boolean"}, "connected_at": ts, "deauthorized_at": ts,
		"platform_fee_percent": obj{"type": "number"}})
	schemas["BillingConnectInput"] = object(obj{"account_id": obj{"type": "string", "description": "the tenant's connected account, acct_…"},
		"grace_period_seconds": obj{"type": "integer", "minimum": 0, "maximum": 2592000, "default": 259200}})
	schemas["BillingOnboardInput"] = object(obj{"type": enum("express", "standard"), "country": str(),
		"email": obj{"type": "string", "format": "email"}, "return_url": obj{"type": "string", "format": "uri"},
		"refresh_url": obj{"type": "string", "format": "uri"}})
	paths["/v1/billing/stripe"] = obj{
		"get": op("The tenant's Stripe connection", "200", okResp(ref("BillingConnection")), nil),
		"put": op("Connect an existing Stripe account (Connect) and set the grace period of failed payments", "200",
			okResp(ref("BillingConnection")), obj{"requestBody": jsonBody(ref("BillingConnectInput"))}),
	}
	paths["/v1/billing/stripe/onboarding"] = obj{"post": op("Create a connected account and an onboarding link", "201",
		createdResp(object(obj{"account_id": str(), "url": obj{"type": "string", "format": "uri"},
			"expires_at": obj{"type": "string", "format": "date-time"}})),
		obj{"requestBody": jsonBody(ref("BillingOnboardInput"))})}
}

// ExternalRoutes are the /v1 routes this document describes that other
// packages serve (billing's), as "METHOD /path"; a test in cmd checks them
// against what the control plane mounts.
var ExternalRoutes = []string{"GET /v1/billing/stripe", "PUT /v1/billing/stripe", "POST /v1/billing/stripe/onboarding"}
