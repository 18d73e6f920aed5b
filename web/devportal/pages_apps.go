package devportal

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/web/devportal/view"
)

// The signed-in pages of apps, subscriptions and keys. Every object is
// looked up through the developer's consumer, so another developer's (or
// another tenant's) id answers 404 like one that does not exist.

func (pg *pages) appsModel(r *http.Request, q *pageReq, f view.Form) (view.AppsPage, error) {
	ctx := r.Context()
	t, dev := q.tenant, q.dev()
	m := view.AppsPage{Chrome: q.chrome(r, "Apps & keys", "apps"), Form: f, Max: catalog.MaxAppsPerConsumer}
	apps, err := pageAll(func(pgn store.Page) ([]catalog.App, string, error) {
		return pg.p.opts.Catalog.ListApps(ctx, t.ID, dev.ConsumerID, pgn)
	})
	if err != nil {
		return m, err
	}
	subs, err := pageAll(func(pgn store.Page) ([]catalog.Subscription, string, error) {
		return pg.p.opts.Catalog.ListSubscriptions(ctx, t.ID, catalog.SubscriptionFilter{ConsumerID: dev.ConsumerID}, pgn)
	})
	if err != nil {
		return m, err
	}
	keys, err := pageAll(func(pgn store.Page) ([]catalog.Key, string, error) {
		return pg.p.opts.Catalog.ListKeys(ctx, t.ID, dev.ConsumerID, pgn)
	})
	if err != nil {
		return m, err
	}
	plans := pagePlanNames{pg: pg, ctx: ctx, tenantID: t.ID}
	now := time.Now()
	for _, a := range slices.Backward(apps) {
		row := view.AppRow{ID: a.ID, Name: a.Name, Description: a.Description, Created: a.CreatedAt}
		for _, s := range subs {
			if s.AppID != a.ID || !s.Live() {
				continue
			}
			row.Subscriptions++
			if s.Status == catalog.SubActive {
				row.Active++
			}
			name, err := plans.name(s.PlanID)
			if err != nil {
				return m, err
			}
			row.Plans = append(row.Plans, name+" ("+pageStatusWord(s.Status)+")")
		}
		for _, k := range keys {
			if k.AppID != nil && *k.AppID == a.ID && k.Usable(now) {
				row.Keys++
			}
		}
		m.Apps = append(m.Apps, row)
	}
	return m, nil
}

func pageStatusWord(s string) string {
	switch s {
	case catalog.SubPending:
		return "pending approval"
	case catalog.SubPaymentRequired:
		return "payment required"
	case catalog.SubPastDue:
		return "past due"
	}
	return s
}

// pagePlanNames looks plans up once per page.
type pagePlanNames struct {
	pg       *pages
	ctx      context.Context
	tenantID string
	m        map[string]catalog.Plan
}

func (pn *pagePlanNames) plan(id string) (catalog.Plan, error) {
	if pl, ok := pn.m[id]; ok {
		return pl, nil
	}
	pl, err := pn.pg.p.opts.Catalog.GetPlan(pn.ctx, pn.tenantID, id)
	if errors.Is(err, fault.ErrNotFound) {
		pl, err = catalog.Plan{ID: id, Name: "(removed plan)"}, nil
	}
	if err != nil {
		return catalog.Plan{}, err
	}
	if pn.m == nil {
		pn.m = map[string]catalog.Plan{}
	}
	pn.m[id] = pl
	return pl, nil
}

func (pn *pagePlanNames) name(id string) (string, error) {
	pl, err := pn.plan(id)
	return pl.Name, err
}

func (pg *pages) apps(w http.ResponseWriter, r *http.Request, q *pageReq) {
	m, err := pg.appsModel(r, q, pageBlankForm())
	if err != nil {
		pg.internal(w, r, q, err)
		return
	}
	pg.render(w, r, http.StatusOK, view.Apps(m))
}

func (pg *pages) createApp(w http.ResponseWriter, r *http.Request, q *pageReq) {
	f := pageForm(r)
	dev := q.dev()
	a, err := pg.p.opts.Catalog.CreateApp(r.Context(), dev.Actor(), dev.ConsumerID,
		catalog.AppInput{Name: f.Get("name"), Description: f.Get("description")})
	if err != nil {
		status := pageApplyError(&f, err, "name", "description")
		if status == 0 {
			pg.internal(w, r, q, err)
			return
		}
		m, merr := pg.appsModel(r, q, f)
		if merr != nil {
			pg.internal(w, r, q, merr)
			return
		}
		pg.render(w, r, status, view.Apps(m))
		return
	}
	pg.redirect(w, r, "/apps/"+a.ID, "App “"+a.Name+"” created. Subscribe it to a plan to get a key.")
}

// appModel builds an app's page.
func (pg *pages) appModel(r *http.Request, q *pageReq, appID string) (view.AppPage, error) {
	ctx := r.Context()
	t, dev := q.tenant, q.dev()
	a, err := pg.p.opts.Catalog.GetApp(ctx, t.ID, dev.ConsumerID, appID)
	if err != nil {
		return view.AppPage{}, err
	}
	m := view.AppPage{Chrome: q.chrome(r, a.Name, "apps"), ID: a.ID, Name: a.Name, Description: a.Description,
		Created: a.CreatedAt, SubForm: pageBlankForm(), CheckoutNote: pageCheckoutNote(r)}
	subs, err := pageAll(func(pgn store.Page) ([]catalog.Subscription, string, error) {
		return pg.p.opts.Catalog.ListSubscriptions(ctx, t.ID, catalog.SubscriptionFilter{ConsumerID: dev.ConsumerID, AppID: a.ID}, pgn)
	})
	if err != nil {
		return m, err
	}
	public, err := pg.p.opts.Catalog.ListPublicPlans(ctx, t.ID)
	if err != nil {
		return m, err
	}
	apis, err := pg.p.opts.Catalog.ListPublishedAPIs(ctx, t.ID)
	if err != nil {
		return m, err
	}
	plans := pagePlanNames{pg: pg, ctx: ctx, tenantID: t.ID}
	taken := map[string]bool{}
	now := time.Now()
	for _, s := range slices.Backward(subs) {
		name, err := plans.name(s.PlanID)
		if err != nil {
			return m, err
		}
		sv := view.SubView{ID: s.ID, PlanID: s.PlanID, PlanName: name, Status: s.Status, Created: s.CreatedAt,
			MaxKeys: catalog.MaxKeysPerSubscription}
		if !s.Live() {
			m.Past = append(m.Past, sv)
			continue
		}
		taken[s.PlanID] = true
		plan, err := plans.plan(s.PlanID)
		if err != nil {
			return m, err
		}
		if err := pg.subBilling(ctx, q, &sv, s, plan); err != nil {
			return m, err
		}
		sv.GraceOver = sv.GraceUntil != nil && !now.Before(*sv.GraceUntil)
		keys, err := pg.p.opts.Catalog.ListSubscriptionKeys(ctx, t.ID, dev.ConsumerID, s.ID)
		if err != nil {
			return m, err
		}
		for _, k := range keys {
			row := pageKeyRow(k, now)
			if row.Usable {
				sv.Working++
			}
			sv.Keys = append(sv.Keys, row)
		}
		// Working keys first, then the history; newest first in each.
		slices.SortStableFunc(sv.Keys, func(x, y view.KeyRow) int {
			switch {
			case x.Usable == y.Usable:
				return 0
			case x.Usable:
				return -1
			}
			return 1
		})
		m.Subs = append(m.Subs, sv)
	}
	names := pageAPINames(apis)
	for _, pl := range public {
		m.Plans = append(m.Plans, view.PlanOption{PlanCard: pagePlanCard(pl, names), Taken: taken[pl.ID]})
	}
	if err := developers.CanSubscribe(dev); err != nil {
		var de *fault.DeniedError
		if !errors.As(err, &de) {
			return m, err
		}
		m.Blocked = capitalize(de.Message) + "."
	}
	return m, nil
}

// pageKeyRow describes a key: "revoked", "expired" (past its rotation
// overlap), "expiring" (in its overlap) or "active".
func pageKeyRow(k catalog.Key, now time.Time) view.KeyRow {
	row := view.KeyRow{ID: k.ID, Prefix: k.Prefix, Created: k.CreatedAt, Expires: k.ExpiresAt, Usable: k.Usable(now),
		Rotate: pageBlankForm()}
	switch {
	case k.Status != proxycfg.KeyActive:
		row.Status = "revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		row.Status = "expired"
	case k.ExpiresAt != nil:
		row.Status = "expiring"
	default:
		row.Status = "active"
	}
	return row
}

func (pg *pages) app(w http.ResponseWriter, r *http.Request, q *pageReq) {
	m, err := pg.appModel(r, q, r.PathValue("app"))
	if err != nil {
		pg.fail(w, r, q, err)
		return
	}
	pg.render(w, r, http.StatusOK, view.App(m))
}

func (pg *pages) deleteApp(w http.ResponseWriter, r *http.Request, q *pageReq) {
	dev := q.dev()
	a, err := pg.p.opts.Catalog.GetApp(r.Context(), q.tenant.ID, dev.ConsumerID, r.PathValue("app"))
	if err != nil {
		pg.fail(w, r, q, err)
		return
	}
	if err := pg.p.opts.Catalog.DeleteApp(r.Context(), dev.Actor(), dev.ConsumerID, a.ID); err != nil {
		pg.fail(w, r, q, err)
		return
	}
	pg.redirect(w, r, "/apps", "App “"+a.Name+"” deleted; its keys no longer work.")
}

func (pg *pages) subscribe(w http.ResponseWriter, r *http.Request, q *pageReq) {
	ctx := r.Context()
	f := pageForm(r)
	dev := q.dev()
	a, err := pg.p.opts.Catalog.GetApp(ctx, q.tenant.ID, dev.ConsumerID, r.PathValue("app"))
	if err != nil {
		pg.fail(w, r, q, err)
		return
	}
	planID := f.Get("plan_id")
	var out catalog.Subscribed
	if planID == "" {
		err = fault.Invalid("plan_id", "choose a plan")
	} else {
		out, err = pg.p.opts.Developers.Subscribe(ctx, dev, a.ID, planID)
	}
	if err != nil {
		status := pageApplyError(&f, err, "plan_id")
		if status == 0 {
			pg.internal(w, r, q, err)
			return
		}
		m, merr := pg.appModel(r, q, a.ID)
		if merr != nil {
			pg.fail(w, r, q, merr)
			return
		}
		m.SubForm = f
		pg.render(w, r, status, view.App(m))
		return
	}
	plan, err := pg.p.opts.Catalog.GetPlan(ctx, q.tenant.ID, out.Subscription.PlanID)
	if err != nil {
		pg.internal(w, r, q, err)
		return
	}
	switch {
	case out.Key != nil:
		pg.showKey(w, r, q, a, plan, *out.Key, out.Secret, nil)
	case out.Subscription.Status == catalog.SubPending:
		pg.redirect(w, r, "/apps/"+a.ID, "Subscribed to "+plan.Name+": waiting for approval. The API provider reviews it; we mail you when it is decided.")
	case out.Subscription.Status == catalog.SubPaymentRequired:
		// Straight on to Stripe Checkout; without it, the app's page
		// says why the plan cannot be paid now.
		u, detail := pg.p.startCheckout(r, q.tenant.ID, out.Subscription)
		if u != "" {
			http.Redirect(w, r, u, http.StatusSeeOther)
			return
		}
		pg.redirect(w, r, "/apps/"+a.ID, "Subscribed to "+plan.Name+": payment required, and it cannot be paid yet: "+
			detail+". No key is issued until it is paid.")
	default:
		pg.redirect(w, r, "/apps/"+a.ID, "Subscribed to "+plan.Name+".")
	}
}

// showKey renders a new key in the response of the POST that made it.
func (pg *pages) showKey(w http.ResponseWriter, r *http.Request, q *pageReq, a catalog.App, plan catalog.Plan,
	k catalog.Key, secret string, rotated *catalog.Key) {
	ctx := r.Context()
	m := view.KeyIssuedPage{Chrome: q.chrome(r, "Your new key", "apps"), AppID: a.ID, AppName: a.Name, Plan: plan.Name,
		Key: secret, Prefix: k.Prefix}
	m.Chrome.Script = true
	if rotated != nil {
		m.Rotated, m.OldPrefix, m.OldExpires = true, rotated.Prefix, rotated.ExpiresAt
	}
	apis, err := pg.p.opts.Catalog.ListPublishedAPIs(ctx, q.tenant.ID)
	if err != nil {
		pg.internal(w, r, q, err)
		return
	}
	for _, api := range apis {
		if slices.Contains(plan.APIIDs, api.ID) {
			m.APIs = append(m.APIs, pg.apiCard(q.tenant, api, nil))
		}
	}
	pg.render(w, r, http.StatusOK, view.KeyIssued(m))
}

// appSub returns the developer's app of the URL and its subscription sub,
// 404 unless the subscription belongs to the app.
func (pg *pages) appSub(r *http.Request, q *pageReq) (catalog.App, catalog.Subscription, error) {
	dev := q.dev()
	a, err := pg.p.opts.Catalog.GetApp(r.Context(), q.tenant.ID, dev.ConsumerID, r.PathValue("app"))
	if err != nil {
		return catalog.App{}, catalog.Subscription{}, err
	}
	s, err := pg.p.opts.Catalog.GetSubscription(r.Context(), q.tenant.ID, dev.ConsumerID, r.PathValue("sub"))
	if err != nil {
		return catalog.App{}, catalog.Subscription{}, err
	}
	if s.AppID != a.ID {
		return catalog.App{}, catalog.Subscription{}, fault.ErrNotFound
	}
	return a, s, nil
}

// appKey returns the developer's app of the URL and its key, 404 unless
// the key belongs to the app.
func (pg *pages) appKey(r *http.Request, q *pageReq) (catalog.App, catalog.Key, error) {
	dev := q.dev()
	a, err := pg.p.opts.Catalog.GetApp(r.Context(), q.tenant.ID, dev.ConsumerID, r.PathValue("app"))
	if err != nil {
		return catalog.App{}, catalog.Key{}, err
	}
	k, err := pg.p.opts.Catalog.GetConsumerKey(r.Context(), q.tenant.ID, dev.ConsumerID, r.PathValue("key"))
	if err != nil {
		return catalog.App{}, catalog.Key{}, err
	}
	if k.AppID == nil || *k.AppID != a.ID {
		return catalog.App{}, catalog.Key{}, fault.ErrNotFound
	}
	return a, k, nil
}

func (pg *pages) cancelSubscription(w http.ResponseWriter, r *http.Request, q *pageReq) {
	a, s, err := pg.appSub(r, q)
	if err != nil {
		pg.fail(w, r, q, err)
		return
	}
	out, err := pg.p.cancelSubscription(r.Context(), q.dev(), q.tenant.ID, s.ID)
	if err != nil {
		pg.fail(w, r, q, err)
		return
	}
	name := "The subscription"
	if pl, err := pg.p.opts.Catalog.GetPlan(r.Context(), q.tenant.ID, s.PlanID); err == nil {
		name = "The " + pl.Name + " subscription"
	}
	flash := name + " is canceled; its keys no longer work."
	if out.Status == catalog.SubCanceled && s.Status != catalog.SubCanceled && pg.p.opts.Billing != nil {
		if b, err := pg.p.ownBillingSubscription(r.Context(), q.tenant.ID, q.dev().ConsumerID, s.ID); err == nil && b.StripeSubscriptionID != "" {
			flash += pagePaidCancelNote
		}
	}
	pg.redirect(w, r, "/apps/"+a.ID, flash)
}

func (pg *pages) newKey(w http.ResponseWriter, r *http.Request, q *pageReq) {
	a, s, err := pg.appSub(r, q)
	if err != nil {
		pg.fail(w, r, q, err)
		return
	}
	dev := q.dev()
	if err := developers.CanSubscribe(dev); err != nil {
		pg.fail(w, r, q, err)
		return
	}
	k, secret, err := pg.p.opts.Catalog.CreateSubscriptionKey(r.Context(), dev.Actor(), dev.ConsumerID, s.ID)
	if err != nil {
		pg.fail(w, r, q, err)
		return
	}
	plan, err := pg.p.opts.Catalog.GetPlan(r.Context(), q.tenant.ID, s.PlanID)
	if err != nil {
		pg.internal(w, r, q, err)
		return
	}
	pg.showKey(w, r, q, a, plan, k, secret, nil)
}

// pageOverlaps are the rotate form's overlap choices.
var pageOverlaps = map[string]time.Duration{
	"0": 0, "3600": time.Hour, "86400": 24 * time.Hour, "604800": 7 * 24 * time.Hour, "2592000": 30 * 24 * time.Hour,
}

// pageOverlap reads the rotate form: a listed choice, or "custom" with
// custom_hours (whole hours, up to 30 days).
func pageOverlap(f *view.Form) (time.Duration, bool) {
	choice := f.Get("overlap")
	if d, ok := pageOverlaps[choice]; ok {
		return d, true
	}
	if choice != "custom" {
		f.Errors["overlap"] = "Choose how long the old key keeps working."
		return 0, false
	}
	maxHours := int64(catalog.MaxRotationOverlap / time.Hour)
	h, err := strconv.ParseInt(strings.TrimSpace(f.Get("custom_hours")), 10, 64)
	if err != nil || h < 0 || h > maxHours {
		f.Errors["custom_hours"] = "Enter whole hours from 0 to " + strconv.FormatInt(maxHours, 10) + " (30 days)."
		return 0, false
	}
	return time.Duration(h) * time.Hour, true
}

func (pg *pages) rotateKey(w http.ResponseWriter, r *http.Request, q *pageReq) {
	a, k, err := pg.appKey(r, q)
	if err != nil {
		pg.fail(w, r, q, err)
		return
	}
	dev := q.dev()
	if err := developers.CanSubscribe(dev); err != nil {
		pg.fail(w, r, q, err)
		return
	}
	f := pageForm(r)
	overlap, ok := pageOverlap(&f)
	var out catalog.Rotated
	if ok {
		out, err = pg.p.opts.Catalog.RotateKey(r.Context(), dev.Actor(), dev.ConsumerID, k.ID, overlap)
	}
	var ve *fault.ValidationError
	if err != nil && !errors.As(err, &ve) {
		// A key that is no longer working, a subscription that is not
		// active, the key limit: the page says why.
		pg.fail(w, r, q, err)
		return
	}
	if !ok || err != nil {
		status := http.StatusUnprocessableEntity
		if err != nil {
			pageApplyError(&f, err, "overlap", "grace_seconds")
			if msg := f.Errors["grace_seconds"]; msg != "" {
				f.Errors["custom_hours"] = msg
			}
		}
		m, merr := pg.appModel(r, q, a.ID)
		if merr != nil {
			pg.fail(w, r, q, merr)
			return
		}
		for i := range m.Subs {
			for j := range m.Subs[i].Keys {
				if m.Subs[i].Keys[j].ID == k.ID {
					m.Subs[i].Keys[j].Rotate = f
				}
			}
		}
		m.OpenRotate = k.ID
		pg.render(w, r, status, view.App(m))
		return
	}
	plan, err := pg.p.opts.Catalog.GetPlan(r.Context(), q.tenant.ID, k.PlanID)
	if err != nil {
		pg.internal(w, r, q, err)
		return
	}
	old := k
	if overlap > 0 {
		exp := out.PreviousExpiresAt
		old.ExpiresAt = &exp
	} else {
		old.ExpiresAt = nil
	}
	pg.showKey(w, r, q, a, plan, out.Key, out.Secret, &old)
}

func (pg *pages) revokeKey(w http.ResponseWriter, r *http.Request, q *pageReq) {
	a, k, err := pg.appKey(r, q)
	if err != nil {
		pg.fail(w, r, q, err)
		return
	}
	dev := q.dev()
	if err := pg.p.opts.Catalog.RevokeConsumerKey(r.Context(), dev.Actor(), dev.ConsumerID, k.ID); err != nil {
		pg.fail(w, r, q, err)
		return
	}
	pg.redirect(w, r, "/apps/"+a.ID, "Key "+k.Prefix+"… revoked: calls with it are refused.")
}
