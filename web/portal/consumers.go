package portal

import (
	"errors"
	"net/http"

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
		m.Consumers = append(m.Consumers, view.ConsumerRow{ID: c.ID, Name: c.Name, Email: c.Email, CreatedAt: c.CreatedAt})
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

// consumerPage renders one consumer; newKey is shown once when not "".
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
	names := map[string]string{}
	m := view.ConsumerPage{C: q.chrome(c.Name, "consumers"), ID: c.ID, Form: f, KeyForm: kf, NewKey: newKey,
		ProxyURL: p.proxyURL(q.tenant.Slug)}
	for _, pl := range plans {
		names[pl.ID] = pl.Name
		m.Plans = append(m.Plans, view.Option{Value: pl.ID, Label: pl.Name})
	}
	// Newest first: the key just issued is at the top.
	for i := len(keys) - 1; i >= 0; i-- {
		k := keys[i]
		m.Keys = append(m.Keys, view.KeyRow{ID: k.ID, Prefix: k.Prefix, Plan: names[k.PlanID], Status: k.Status,
			CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt})
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
		*cur = catalog.ConsumerInput{Name: f.Get("name"), Email: f.Get("email")}
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
	if old.Status != "active" {
		p.redirect(w, r, "/consumers/"+old.ConsumerID, "Only active keys can be rotated.")
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
