package portal

import (
	"errors"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/web/portal/view"
)

func (p *Portal) consumersPage(w http.ResponseWriter, r *http.Request, q *req, f view.Form, status int) {
	ctx := r.Context()
	list, next, err := p.cat.ListConsumers(ctx, q.tenant.ID, store.Page{After: r.URL.Query().Get("after")})
	if errors.Is(err, store.ErrBadCursor) {
		list, next, err = p.cat.ListConsumers(ctx, q.tenant.ID, store.Page{})
	}
	if err != nil {
		p.internal(w, r, err)
		return
	}
	plans, _, err := p.cat.ListPlans(ctx, q.tenant.ID, store.Page{Limit: 1})
	if err != nil {
		p.internal(w, r, err)
		return
	}
	m := view.ConsumersPage{C: q.chrome("Consumers & keys", "consumers"), Form: f, HasPlans: len(plans) > 0, Next: next}
	for _, c := range list {
		m.Consumers = append(m.Consumers, view.ConsumerRow{ID: c.ID, Name: c.Name, Email: c.Email, Status: c.Status,
			Developer: c.DeveloperID != nil, CreatedAt: c.CreatedAt})
	}
	p.renderStatus(w, r, status, view.Consumers(m))
}

func (p *Portal) consumersList(w http.ResponseWriter, r *http.Request, q *req) {
	p.consumersPage(w, r, q, blankForm(), http.StatusOK)
}

func (p *Portal) consumerCreate(w http.ResponseWriter, r *http.Request, q *req) {
	f := readForm(w, r)
	c, err := p.cat.CreateConsumer(r.Context(), q.user.Actor(), catalog.ConsumerInput{Name: f.Get("name"), Email: f.Get("email")})
	if err != nil {
		if !applyError(&f, err, "name", "email") {
			p.internal(w, r, err)
			return
		}
		p.consumersPage(w, r, q, f, http.StatusUnprocessableEntity)
		return
	}
	p.redirect(w, r, "/consumers/"+c.ID, "Consumer added. Issue it a key below.")
}

// consumerPage renders one consumer with its portal account, apps,
// subscriptions and keys; newKey is shown once when not "".
func (p *Portal) consumerPage(w http.ResponseWriter, r *http.Request, q *req, id string, f, kf view.Form, newKey string, status int) {
	ctx := r.Context()
	c, err := p.cat.GetConsumer(ctx, q.tenant.ID, id)
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	if len(f.Values) == 0 {
		f = blankForm()
		f.Values.Set("name", c.Name)
		f.Values.Set("email", c.Email)
	}
	keys, err := all(func(pg store.Page) ([]catalog.Key, string, error) { return p.cat.ListKeys(ctx, q.tenant.ID, c.ID, pg) })
	if err != nil {
		p.internal(w, r, err)
		return
	}
	plans, err := all(func(pg store.Page) ([]catalog.Plan, string, error) { return p.cat.ListPlans(ctx, q.tenant.ID, pg) })
	if err != nil {
		p.internal(w, r, err)
		return
	}
	apps, err := all(func(pg store.Page) ([]catalog.App, string, error) { return p.cat.ListApps(ctx, q.tenant.ID, c.ID, pg) })
	if err != nil {
		p.internal(w, r, err)
		return
	}
	subs, err := all(func(pg store.Page) ([]catalog.Subscription, string, error) {
		return p.cat.ListSubscriptions(ctx, q.tenant.ID, catalog.SubscriptionFilter{ConsumerID: c.ID}, pg)
	})
	if err != nil {
		p.internal(w, r, err)
		return
	}
	names := map[string]string{}
	m := view.ConsumerPage{C: q.chrome(c.Name, "consumers"), ID: c.ID, Status: c.Status, Form: f, KeyForm: kf, NewKey: newKey,
		ProxyURL: p.proxyURL(q.tenant.Slug)}
	if c.DeveloperID != nil {
		d, err := p.devs.Get(ctx, q.tenant.ID, *c.DeveloperID)
		if err != nil {
			p.internal(w, r, err)
			return
		}
		m.Developer = &view.DeveloperInfo{Status: d.Status, Verified: d.EmailVerified, CreatedAt: d.CreatedAt}
	}
	for _, pl := range plans {
		names[pl.ID] = pl.Name
		m.Plans = append(m.Plans, view.Option{Value: pl.ID, Label: pl.Name})
	}
	appNames := map[string]string{}
	for _, a := range apps {
		appNames[a.ID] = a.Name
	}
	subCount := map[string]int{}
	now := time.Now()
	// Newest first: the key just issued is at the top.
	for i := len(keys) - 1; i >= 0; i-- {
		k := keys[i]
		row := view.KeyRow{ID: k.ID, Prefix: k.Prefix, Plan: names[k.PlanID], Status: k.Status,
			CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt, ExpiresAt: k.ExpiresAt}
		if k.Status == "active" && !k.Usable(now) {
			row.Status = "expired"
		}
		if k.SubscriptionID != nil {
			row.SubscriptionID = *k.SubscriptionID
			if row.Status == "active" {
				subCount[*k.SubscriptionID]++
			}
		}
		if k.AppID != nil {
			row.App = appNames[*k.AppID]
		}
		m.Keys = append(m.Keys, row)
	}
	for _, a := range apps {
		row := view.AppRow{ID: a.ID, Name: a.Name, Description: a.Description, CreatedAt: a.CreatedAt}
		for _, s := range subs {
			if s.AppID == a.ID && s.Live() {
				row.Subscriptions++
			}
		}
		m.Apps = append(m.Apps, row)
	}
	// Newest first, like the keys.
	for i := len(subs) - 1; i >= 0; i-- {
		s := subs[i]
		m.Subscriptions = append(m.Subscriptions, view.SubscriptionRow{ID: s.ID, App: appNames[s.AppID], Plan: names[s.PlanID],
			Status: s.Status, Keys: subCount[s.ID], CreatedAt: s.CreatedAt, DecidedAt: s.DecidedAt})
	}
	p.renderStatus(w, r, status, view.Consumer(m))
}

func (p *Portal) consumerShow(w http.ResponseWriter, r *http.Request, q *req) {
	p.consumerPage(w, r, q, r.PathValue("id"), view.Form{}, blankForm(), "", http.StatusOK)
}

func (p *Portal) consumerUpdate(w http.ResponseWriter, r *http.Request, q *req) {
	id := r.PathValue("id")
	f := readForm(w, r)
	_, err := p.cat.UpdateConsumer(r.Context(), q.user.Actor(), id, func(cur *catalog.ConsumerInput) error {
		// Only the fields this form shows: the status has its own buttons.
		cur.Name, cur.Email = f.Get("name"), f.Get("email")
		return nil
	})
	if err != nil {
		if errors.Is(err, fault.ErrNotFound) || !applyError(&f, err, "name", "email") {
			p.fail(w, r, q, err)
			return
		}
		p.consumerPage(w, r, q, id, f, blankForm(), "", http.StatusUnprocessableEntity)
		return
	}
	p.redirect(w, r, "/consumers/"+id, "Saved.")
}

func (p *Portal) consumerDelete(w http.ResponseWriter, r *http.Request, q *req) {
	if err := p.cat.DeleteConsumer(r.Context(), q.user.Actor(), r.PathValue("id")); err != nil {
		p.fail(w, r, q, err)
		return
	}
	p.redirect(w, r, "/consumers", "Consumer deleted and its keys revoked.")
}

// keyIssue issues a key and shows it once, in the answer to the POST itself:
// it is never put in a URL, a cookie or the database.
func (p *Portal) keyIssue(w http.ResponseWriter, r *http.Request, q *req) {
	id := r.PathValue("id")
	kf := readForm(w, r)
	_, key, err := p.cat.CreateKey(r.Context(), q.user.Actor(), catalog.KeyInput{ConsumerID: id, PlanID: kf.Get("plan_id")})
	if err != nil {
		var ve *fault.ValidationError
		if errors.As(err, &ve) && len(ve.Errors) > 0 && ve.Errors[0].Field == "consumer_id" {
			p.notFound(w, r, q)
			return
		}
		if !applyError(&kf, err, "plan_id") {
			p.fail(w, r, q, err)
			return
		}
		p.consumerPage(w, r, q, id, view.Form{}, kf, "", http.StatusUnprocessableEntity)
		return
	}
	p.consumerPage(w, r, q, id, view.Form{}, blankForm(), key, http.StatusOK)
}

// keyRotate issues a new key under the same consumer and plan, then revokes
// the old one, and shows the new key once.
func (p *Portal) keyRotate(w http.ResponseWriter, r *http.Request, q *req) {
	ctx := r.Context()
	old, err := p.cat.GetKey(ctx, q.tenant.ID, r.PathValue("id"))
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	if !old.Usable(time.Now()) {
		p.redirect(w, r, "/consumers/"+old.ConsumerID, "Only working keys can be rotated.")
		return
	}
	if old.SubscriptionID != nil {
		// A developer's key stays in its subscription (and its quota); the
		// old one stops at once (developers pick an overlap in their portal).
		rot, err := p.cat.RotateKey(ctx, q.user.Actor(), old.ConsumerID, old.ID, 0)
		if why, ok := refusal(err); ok {
			p.redirect(w, r, "/consumers/"+old.ConsumerID, "The key was not rotated: "+why+".")
			return
		}
		if err != nil {
			p.fail(w, r, q, err)
			return
		}
		p.consumerPage(w, r, q, old.ConsumerID, view.Form{}, blankForm(), rot.Secret, http.StatusOK)
		return
	}
	_, key, err := p.cat.CreateKey(ctx, q.user.Actor(), catalog.KeyInput{ConsumerID: old.ConsumerID, PlanID: old.PlanID})
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	if err := p.cat.RevokeKey(ctx, q.user.Actor(), old.ID); err != nil {
		p.fail(w, r, q, err)
		return
	}
	p.consumerPage(w, r, q, old.ConsumerID, view.Form{}, blankForm(), key, http.StatusOK)
}

func (p *Portal) keyRevoke(w http.ResponseWriter, r *http.Request, q *req) {
	ctx := r.Context()
	k, err := p.cat.GetKey(ctx, q.tenant.ID, r.PathValue("id"))
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	if err := p.cat.RevokeKey(ctx, q.user.Actor(), k.ID); err != nil {
		p.fail(w, r, q, err)
		return
	}
	p.redirect(w, r, "/consumers/"+k.ConsumerID, "Key "+k.Prefix+"… revoked. The proxy refuses it within seconds.")
}

// setConsumerStatus suspends or reinstates a consumer: the records of its
// keys are re-published, so every worker refuses (403) or accepts them again
// within seconds. A portal developer is suspended the same way.
func (p *Portal) setConsumerStatus(w http.ResponseWriter, r *http.Request, q *req, status string) {
	id := r.PathValue("id")
	f := readForm(w, r)
	c, err := p.cat.UpdateConsumer(r.Context(), q.user.Actor(), id, func(in *catalog.ConsumerInput) error {
		in.Status = status
		return nil
	})
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	back := "/consumers/" + c.ID
	if f.Get("from") == "list" {
		back = "/consumers"
	}
	msg := c.Name + " is suspended: the proxy refuses its keys (403) within seconds, and it cannot subscribe or get keys."
	if status == catalog.ConsumerActive {
		msg = c.Name + " is reinstated: its keys work again within seconds."
	}
	p.redirect(w, r, back, msg)
}

func (p *Portal) consumerSuspend(w http.ResponseWriter, r *http.Request, q *req) {
	p.setConsumerStatus(w, r, q, catalog.ConsumerSuspended)
}

func (p *Portal) consumerReinstate(w http.ResponseWriter, r *http.Request, q *req) {
	p.setConsumerStatus(w, r, q, catalog.ConsumerActive)
}

// setSubscriptionStatus moves one of a consumer's subscriptions to status
// (from one of from); its keys' records follow on every worker.
func (p *Portal) setSubscriptionStatus(w http.ResponseWriter, r *http.Request, q *req, status, done string, from ...string) {
	ctx := r.Context()
	sub, err := p.cat.GetSubscription(ctx, q.tenant.ID, "", r.PathValue("id"))
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	back := "/consumers/" + sub.ConsumerID
	_, err = p.cat.SetSubscriptionStatus(ctx, q.user.Actor(), "", sub.ID, status, from...)
	if why, ok := refusal(err); ok {
		p.redirect(w, r, back, "Nothing changed: "+why+".")
		return
	}
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	p.redirect(w, r, back, done)
}

func (p *Portal) subscriptionSuspend(w http.ResponseWriter, r *http.Request, q *req) {
	p.setSubscriptionStatus(w, r, q, catalog.SubSuspended,
		"Subscription suspended: the proxy refuses its keys within seconds.", catalog.SubActive, catalog.SubPastDue)
}

func (p *Portal) subscriptionResume(w http.ResponseWriter, r *http.Request, q *req) {
	p.setSubscriptionStatus(w, r, q, catalog.SubActive, "Subscription active again: its keys work within seconds.",
		catalog.SubSuspended)
}

func (p *Portal) subscriptionCancel(w http.ResponseWriter, r *http.Request, q *req) {
	p.setSubscriptionStatus(w, r, q, catalog.SubCanceled,
		"Subscription canceled: its keys are refused (403 subscription-canceled) within seconds.",
		catalog.SubPending, catalog.SubActive, catalog.SubPaymentRequired, catalog.SubPastDue, catalog.SubSuspended)
}
