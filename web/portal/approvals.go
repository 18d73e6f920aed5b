package portal

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/web/portal/view"
)

// The approval queue: developers and subscriptions that wait for the
// tenant, decided through services/developers (which mails the developer),
// like POST /v1/developers/{id}/approve and /v1/subscriptions/{id}/approve.

func (p *Portal) approvalsPage(w http.ResponseWriter, r *http.Request, q *req, inv view.Form, status int) {
	ctx := r.Context()
	pt, err := p.opts.Settings.GetPortal(ctx, q.tenant.ID)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	// The oldest first: whoever waited longest is decided first.
	devs, moreDevs, err := p.devs.List(ctx, q.tenant.ID, developers.StatusPending, store.Page{Limit: store.MaxLimit})
	if err != nil {
		p.internal(w, r, err)
		return
	}
	subs, moreSubs, err := p.cat.ListSubscriptions(ctx, q.tenant.ID, catalog.SubscriptionFilter{Status: catalog.SubPending},
		store.Page{Limit: store.MaxLimit})
	if err != nil {
		p.internal(w, r, err)
		return
	}
	m := view.ApprovalsPage{C: q.chrome("Approvals", "approvals"), InviteForm: inv, PortalEnabled: pt.Enabled,
		Signup: pt.Signup, MoreDevelopers: moreDevs != "", MoreSubscriptions: moreSubs != ""}
	for _, d := range devs {
		m.Developers = append(m.Developers, view.PendingDeveloper{ID: d.ID, ConsumerID: d.ConsumerID, Name: d.Name,
			Email: d.Email, Verified: d.EmailVerified, CreatedAt: d.CreatedAt})
	}
	if len(subs) > 0 {
		plans, err := all(func(pg store.Page) ([]catalog.Plan, string, error) { return p.cat.ListPlans(ctx, q.tenant.ID, pg) })
		if err != nil {
			p.internal(w, r, err)
			return
		}
		planNames := map[string]string{}
		for _, pl := range plans {
			planNames[pl.ID] = pl.Name
		}
		consumers := map[string]catalog.Consumer{}
		apps := map[string]catalog.App{}
		for _, s := range subs {
			c, ok := consumers[s.ConsumerID]
			if !ok {
				if c, err = p.cat.GetConsumer(ctx, q.tenant.ID, s.ConsumerID); err != nil {
					p.internal(w, r, err)
					return
				}
				consumers[s.ConsumerID] = c
			}
			a, ok := apps[s.AppID]
			if !ok {
				if a, err = p.cat.GetApp(ctx, q.tenant.ID, "", s.AppID); err != nil {
					p.internal(w, r, err)
					return
				}
				apps[s.AppID] = a
			}
			m.Subscriptions = append(m.Subscriptions, view.PendingSubscription{ID: s.ID, ConsumerID: c.ID,
				Developer: c.Name, Email: c.Email, App: a.Name, Plan: planNames[s.PlanID], CreatedAt: s.CreatedAt})
		}
	}
	p.renderStatus(w, r, status, view.Approvals(m))
}

func (p *Portal) approvals(w http.ResponseWriter, r *http.Request, q *req) {
	p.approvalsPage(w, r, q, blankForm(), http.StatusOK)
}

// decided answers a decision: a conflict (decided meanwhile, by someone
// else or through /v1) goes back to the queue with its reason, not found is
// 404, anything else internal.
func (p *Portal) decided(w http.ResponseWriter, r *http.Request, q *req, err error, done string) {
	if why, ok := refusal(err); ok {
		p.redirect(w, r, "/approvals", "Nothing changed: "+why+".")
		return
	}
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	p.redirect(w, r, "/approvals", done)
}

func (p *Portal) decideDeveloper(w http.ResponseWriter, r *http.Request, q *req, approve bool) {
	d, err := p.devs.Decide(r.Context(), q.user.Actor(), q.tenant, r.PathValue("id"), approve)
	msg := fmt.Sprintf("%s is approved and can now subscribe to plans. We mailed them.", d.Email)
	if !approve {
		msg = fmt.Sprintf("%s is rejected. We mailed them.", d.Email)
	}
	p.decided(w, r, q, err, msg)
}

func (p *Portal) developerApprove(w http.ResponseWriter, r *http.Request, q *req) {
	p.decideDeveloper(w, r, q, true)
}

func (p *Portal) developerReject(w http.ResponseWriter, r *http.Request, q *req) {
	p.decideDeveloper(w, r, q, false)
}

func (p *Portal) decideSubscription(w http.ResponseWriter, r *http.Request, q *req, approve bool) {
	sub, err := p.devs.DecideSubscription(r.Context(), q.user.Actor(), q.tenant, r.PathValue("id"), approve)
	var msg string
	switch {
	case !approve:
		msg = "Subscription rejected. The developer is told by mail."
	case sub.Status == catalog.SubPaymentRequired:
		msg = "Subscription approved. The plan is priced: it starts once the developer pays."
	default:
		msg = "Subscription approved and active. The developer gets their key in the developer portal."
	}
	p.decided(w, r, q, err, msg)
}

func (p *Portal) subscriptionApprove(w http.ResponseWriter, r *http.Request, q *req) {
	p.decideSubscription(w, r, q, true)
}

func (p *Portal) subscriptionReject(w http.ResponseWriter, r *http.Request, q *req) {
	p.decideSubscription(w, r, q, false)
}

func (p *Portal) developerInvite(w http.ResponseWriter, r *http.Request, q *req) {
	f := readForm(w, r)
	if err := p.devs.Invite(r.Context(), q.user.Actor(), q.tenant, f.Get("email")); err != nil {
		if !applyError(&f, err, "email") {
			p.internal(w, r, err)
			return
		}
		p.approvalsPage(w, r, q, f, http.StatusUnprocessableEntity)
		return
	}
	p.redirect(w, r, "/approvals", "Invitation sent to "+strings.ToLower(strings.TrimSpace(f.Get("email")))+". The link works for 7 days.")
}
