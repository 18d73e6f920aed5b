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
		{"GET", "/v1/portal", authTenant, noBody(http.StatusOK, a.getPortal), opDoc{"getPortal", tagPortal,
			"The developer portal's settings", "Returns the tenant's developer portal settings, with its identity provider (never its secret).", nil}},
		{"PUT", "/v1/portal", authTenant, a.putPortalEndpoint(), opDoc{"updatePortal", tagPortal,
			"Change the fields of the developer portal's settings the body names; returns the whole settings",
			"Every field the body names replaces the current value; the others stay. Returns the whole settings.", nil}},
		{"PUT", "/v1/portal/oidc", authTenant, checkedBy(withBody(http.StatusOK, a.putPortalOIDC), readerOf(a.getPortal)), opDoc{"setPortalOidc", tagPortal,
			"Set the developers' OpenID Connect provider (empty issuer and client_id turn it off)",
			"Sets the identity provider developers sign in with. The client secret is write-only: an empty one keeps the stored secret.", nil}},
		{"GET", "/v1/developers", authTenant, withQuery[DeveloperListQuery](noBody(http.StatusOK, a.listDevelopers)), opDoc{"listDevelopers", tagPortal,
			"List the developer portal's developers", "Lists the developers of the tenant's portal, oldest first, optionally by status (pending developers wait for approval).", nil}},
		{"GET", "/v1/developers/{id}", authTenant, noBody(http.StatusOK, a.getDeveloper), opDoc{"getDeveloper", tagPortal,
			"Read a developer", "Returns one developer of the tenant's portal.", nil}},
		{"POST", "/v1/developers/{id}/approve", authTenant, emptyAction(a.decideDeveloper(true)), opDoc{"approveDeveloper", tagPortal,
			"Approve a pending developer (mails them)", "Approves a developer who signed up under approval signup; they can then subscribe.", conflict}},
		{"POST", "/v1/developers/{id}/reject", authTenant, emptyAction(a.decideDeveloper(false)), opDoc{"rejectDeveloper", tagPortal,
			"Reject a pending developer (mails them)", "Rejects a developer who signed up under approval signup.", conflict}},
		{"POST", "/v1/developer-invites", authTenant, withBody(http.StatusAccepted, a.inviteDeveloper), opDoc{"inviteDeveloper", tagPortal,
			"Invite an address to sign up in the developer portal (mails a link)", "Mails the address a link to sign up in the tenant's developer portal, whatever its signup mode.", nil}},
		{"GET", "/v1/apps", authTenant, withQuery[AppListQuery](noBody(http.StatusOK, a.listApps)), opDoc{"listApps", tagPortal,
			"List developers' apps", "Lists the apps developers made in the tenant's portal, oldest first.", nil}},
		{"GET", "/v1/apps/{id}", authTenant, noBody(http.StatusOK, a.getApp), opDoc{"getApp", tagPortal,
			"Read an app", "Returns one app of a developer of the tenant.", nil}},
		{"GET", "/v1/subscriptions", authTenant, withQuery[SubscriptionListQuery](noBody(http.StatusOK, a.listSubscriptions)), opDoc{"listSubscriptions", tagPortal,
			"List subscriptions of apps to plans", "Lists the subscriptions of developers' apps to the tenant's plans, oldest first, optionally by consumer, app or status.", nil}},
		{"GET", "/v1/subscriptions/{id}", authTenant, noBody(http.StatusOK, a.getSubscription), opDoc{"getSubscription", tagPortal,
			"Read a subscription, with the status its developer sees", "Returns one subscription with the status its developer sees.", nil}},
		{"POST", "/v1/subscriptions/{id}/approve", authTenant, emptyAction(a.decideSubscription(true)), opDoc{"approveSubscription", tagPortal,
			"Approve a pending subscription (active, or payment_required for a priced plan)", "Approves a subscription to a plan that requires approval and mails its developer.", conflict}},
		{"POST", "/v1/subscriptions/{id}/reject", authTenant, emptyAction(a.decideSubscription(false)), opDoc{"rejectSubscription", tagPortal,
			"Reject a pending subscription", "Rejects a subscription that waits for approval and mails its developer.", conflict}},
		{"POST", "/v1/subscriptions/{id}/suspend", authTenant, a.setSubscription(catalog.SubSuspended,
			catalog.SubActive, catalog.SubPastDue), opDoc{"suspendSubscription", tagPortal,
			"Suspend a subscription: its keys are refused on every worker", "Suspends an active or past-due subscription: its keys get 402 at the proxy until it is resumed.", conflict}},
		{"POST", "/v1/subscriptions/{id}/resume", authTenant, a.setSubscription(catalog.SubActive, catalog.SubSuspended),
			opDoc{"resumeSubscription", tagPortal, "Resume a suspended subscription", "Makes a suspended subscription active again: its keys work again.", conflict}},
		{"POST", "/v1/subscriptions/{id}/cancel", authTenant, a.setSubscription(catalog.SubCanceled,
			catalog.SubActive, catalog.SubPending, catalog.SubPaymentRequired, catalog.SubPastDue, catalog.SubSuspended),
			opDoc{"cancelSubscription", tagPortal, "Cancel a subscription: its keys answer 403 subscription-canceled",
				"Cancels a subscription for good: its keys are refused with 403 subscription-canceled.", conflict}},
	}
}

// checkedBy makes e honour If-Match against current, checked before e runs.
func checkedBy(e endpoint, current currentFunc) endpoint {
	e.ifMatch, e.current = true, current
	return e
}

// emptyAction is an action route (approve, suspend, ...): an optional
// empty body, the object answered.
func emptyAction[Resp any](fn func(r *http.Request, c *call) (Resp, error)) endpoint {
	e := noBody(http.StatusOK, fn)
	e.in, e.inOptional = typeOf[EmptyRequest](), true
	return e
}

func (a *api) getPortal(r *http.Request, c *call) (Portal, error) {
	p, err := settings.GetPortal(r.Context(), a.db, c.actor.TenantID)
	return portalOf(p), err
}

// putPortalEndpoint merges the fields the body names into the portal
// settings and returns the whole object. If-Match is checked against the
// settings under the lock of the write.
func (a *api) putPortalEndpoint() endpoint {
	return endpoint{in: typeOf[PortalRequest](), out: typeOf[Portal](), status: http.StatusOK, ifMatch: true,
		handle: func(w http.ResponseWriter, r *http.Request, c *call) error {
			body, err := readBody(w, r)
			if err != nil {
				return err
			}
			if err := decodeStrict(body, new(PortalRequest)); err != nil {
				return err
			}
			p, err := settings.SavePortal(r.Context(), a.db, c.actor, func(p *settings.Portal) error {
				if err := checkIfMatch(r, portalOf(*p)); err != nil {
					return err
				}
				in := portalRequestOf(*p)
				if err := mergePatch(&in, body); err != nil {
					return err
				}
				in.apply(p)
				return nil
			})
			if err != nil {
				return err
			}
			return writeJSON(w, c, http.StatusOK, portalOf(p))
		}}
}

func (a *api) putPortalOIDC(r *http.Request, c *call, in PortalOIDCRequest) (Portal, error) {
	if err := settings.SaveDeveloperOIDC(r.Context(), a.db, a.settingsSecret, c.actor,
		settings.OIDC{Issuer: in.Issuer, ClientID: in.ClientID, ClientSecret: in.ClientSecret,
			AllowHTTP: a.cat.AllowPrivateUpstreams}); err != nil {
		return Portal{}, err
	}
	return a.getPortal(r, c)
}

func (a *api) devs() (*devService, error) {
	if a.dev == nil {
		return nil, errors.New("developer portal service not configured")
	}
	return a.dev, nil
}

// DeveloperListQuery are the query parameters of GET /v1/developers.
type DeveloperListQuery struct {
	Status string `query:"status" enum:"pending,active,rejected" doc:"only developers with this status"`
	PageQuery
}

func (a *api) listDevelopers(r *http.Request, c *call) (ListPage[Developer], error) {
	d, err := a.devs()
	if err != nil {
		return ListPage[Developer]{}, err
	}
	page, err := pageOf(r)
	if err != nil {
		return ListPage[Developer]{}, err
	}
	status := r.URL.Query().Get("status")
	switch status {
	case "", "pending", "active", "rejected":
	default:
		return ListPage[Developer]{}, badRequest("status", "must be pending, active or rejected")
	}
	items, next, err := d.List(r.Context(), c.actor.TenantID, status, page)
	if err != nil {
		return ListPage[Developer]{}, err
	}
	return listOf(items, next, developerOf), nil
}

func (a *api) getDeveloper(r *http.Request, c *call) (Developer, error) {
	d, err := a.devs()
	if err != nil {
		return Developer{}, err
	}
	dev, err := d.Get(r.Context(), c.actor.TenantID, r.PathValue("id"))
	return developerOf(dev), err
}

func (a *api) tenantOf(ctx context.Context, who audit.Actor) (tenancy.Tenant, error) {
	return tenancy.Get(ctx, a.db, who.TenantID)
}

func (a *api) decideDeveloper(approve bool) func(r *http.Request, c *call) (Developer, error) {
	return func(r *http.Request, c *call) (Developer, error) {
		d, err := a.devs()
		if err != nil {
			return Developer{}, err
		}
		t, err := a.tenantOf(r.Context(), c.actor)
		if err != nil {
			return Developer{}, err
		}
		dev, err := d.Decide(r.Context(), c.actor, t, r.PathValue("id"), approve)
		return developerOf(dev), err
	}
}

func (a *api) inviteDeveloper(r *http.Request, c *call, in DeveloperInvite) (DeveloperInvited, error) {
	d, err := a.devs()
	if err != nil {
		return DeveloperInvited{}, err
	}
	t, err := a.tenantOf(r.Context(), c.actor)
	if err != nil {
		return DeveloperInvited{}, err
	}
	if err := d.Invite(r.Context(), c.actor, t, in.Email); err != nil {
		return DeveloperInvited{}, err
	}
	return DeveloperInvited{Email: in.Email, Status: "invited"}, nil
}

// AppListQuery are the query parameters of GET /v1/apps.
type AppListQuery struct {
	ConsumerID string `query:"consumer_id" format:"uuid" doc:"only this consumer's (developer's) apps"`
	PageQuery
}

func (a *api) listApps(r *http.Request, c *call) (ListPage[App], error) {
	page, err := pageOf(r)
	if err != nil {
		return ListPage[App]{}, err
	}
	items, next, err := a.cat.ListApps(r.Context(), c.actor.TenantID, r.URL.Query().Get("consumer_id"), page)
	if err != nil {
		return ListPage[App]{}, err
	}
	return listOf(items, next, appOf), nil
}

func (a *api) getApp(r *http.Request, c *call) (App, error) {
	app, err := a.cat.GetApp(r.Context(), c.actor.TenantID, "", r.PathValue("id"))
	return appOf(app), err
}

var subStatuses = map[string]bool{catalog.SubPending: true, catalog.SubActive: true, catalog.SubPaymentRequired: true,
	catalog.SubPastDue: true, catalog.SubSuspended: true, catalog.SubCanceled: true, catalog.SubRejected: true}

// SubscriptionListQuery are the query parameters of GET /v1/subscriptions.
type SubscriptionListQuery struct {
	ConsumerID string `query:"consumer_id" format:"uuid" doc:"only this consumer's subscriptions"`
	AppID      string `query:"app_id" format:"uuid" doc:"only this app's subscriptions"`
	Status     string `query:"status" enum:"pending,active,payment_required,past_due,suspended,canceled,rejected" doc:"only subscriptions with this status"`
	PageQuery
}

func (a *api) listSubscriptions(r *http.Request, c *call) (ListPage[Subscription], error) {
	page, err := pageOf(r)
	if err != nil {
		return ListPage[Subscription]{}, err
	}
	q := r.URL.Query()
	f := catalog.SubscriptionFilter{ConsumerID: q.Get("consumer_id"), AppID: q.Get("app_id"), Status: q.Get("status")}
	if f.Status != "" && !subStatuses[f.Status] {
		return ListPage[Subscription]{}, badRequest("status", "must be one of pending, active, payment_required, past_due, suspended, canceled, rejected")
	}
	items, next, err := a.cat.ListSubscriptions(r.Context(), c.actor.TenantID, f, page)
	if err != nil {
		return ListPage[Subscription]{}, err
	}
	return listOf(items, next, subscriptionOf), nil
}

func (a *api) getSubscription(r *http.Request, c *call) (Subscription, error) {
	sub, err := a.cat.GetSubscription(r.Context(), c.actor.TenantID, "", r.PathValue("id"))
	return subscriptionOf(sub), err
}

func (a *api) decideSubscription(approve bool) func(r *http.Request, c *call) (Subscription, error) {
	return func(r *http.Request, c *call) (Subscription, error) {
		d, err := a.devs()
		if err != nil {
			return Subscription{}, err
		}
		t, err := a.tenantOf(r.Context(), c.actor)
		if err != nil {
			return Subscription{}, err
		}
		sub, err := d.DecideSubscription(r.Context(), c.actor, t, r.PathValue("id"), approve)
		return subscriptionOf(sub), err
	}
}

// setSubscription moves a subscription to status from one of from. The
// body may be left out or be {}.
func (a *api) setSubscription(status string, from ...string) endpoint {
	e := emptyAction(func(r *http.Request, c *call) (Subscription, error) {
		sub, err := a.cat.SetSubscriptionStatus(r.Context(), c.actor, "", r.PathValue("id"), status, from...)
		return subscriptionOf(sub), err
	})
	handle := e.handle
	e.handle = func(w http.ResponseWriter, r *http.Request, c *call) error {
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
		return handle(w, r, c)
	}
	return e
}

// devService is the developer portal service the handlers use.
type devService = developers.Service

// externalRoutes are the /v1 routes that other packages serve (billing's,
// mounted beside this API by the control plane): documented here, served
// there.
func externalRoutes() []route {
	return []route{
		{"GET", "/v1/billing/stripe", authTenant, external[struct{}, BillingConnection](http.StatusOK, false), opDoc{"getBillingConnection", tagBilling,
			"The tenant's Stripe connection", "Returns whether billing is on for the platform and the tenant's connected Stripe account, if any.", nil}},
		{"PUT", "/v1/billing/stripe", authTenant, external[BillingConnectRequest, BillingConnection](http.StatusOK, true), opDoc{"connectBilling", tagBilling,
			"Connect an existing Stripe account (Connect) and set the grace period of failed payments",
			"Connects a Stripe account that is connected to the platform, after checking it with Stripe; changing accounts is refused while subscriptions are billed on the current one.", conflict}},
		{"POST", "/v1/billing/stripe/onboarding", authTenant, external[BillingOnboardRequest, BillingOnboarding](http.StatusOK, true), opDoc{"startBillingOnboarding", tagBilling,
			"Create a connected account and an onboarding link",
			"Creates a Stripe connected account for the tenant when it has none and returns a link to Stripe-hosted onboarding.", conflict}},
	}
}

// external is the endpoint of a route another package serves: its types
// only (hasBody: it takes a Req body).
func external[Req, Resp any](status int, hasBody bool) endpoint {
	e := endpoint{out: typeOf[Resp](), status: status, external: true}
	if hasBody {
		e.in = typeOf[Req]()
	}
	return e
}

// ExternalRoutes are the /v1 routes this document describes that other
// packages serve (billing's), as "METHOD /path"; a test in cmd checks them
// against what the control plane mounts.
var ExternalRoutes = func() []string {
	var out []string
	for _, rt := range externalRoutes() {
		out = append(out, rt.method+" "+rt.path)
	}
	return out
}()
