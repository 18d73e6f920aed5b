package devportal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/developers"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/web/devportal/docs"
	"github.com/tollgate/tollgate/web/devportal/view"
)

// The public pages: the front page, the catalogue and each API's page with
// its reference documentation.

// pageHomePreview is how many APIs the front page shows.
const pageHomePreview = 6

func (pg *pages) home(w http.ResponseWriter, r *http.Request, q *pageReq) {
	cards, err := pg.apiCards(r.Context(), q)
	if err != nil {
		pg.internal(w, r, q, err)
		return
	}
	m := view.HomePage{Chrome: q.chrome(r, "Developer portal", "home"), Invite: q.portal.Signup == "invite",
		Tagline: "Everything you need to build on these APIs: reference documentation you can try in the browser, keys for your apps, SDKs and your usage at a glance."}
	m.Chrome.Title = "Home"
	if len(cards) > pageHomePreview {
		cards, m.More = cards[:pageHomePreview], true
	}
	m.APIs = cards
	pg.render(w, r, http.StatusOK, view.Home(m))
}

func (pg *pages) catalog(w http.ResponseWriter, r *http.Request, q *pageReq) {
	cards, err := pg.apiCards(r.Context(), q)
	if err != nil {
		pg.internal(w, r, q, err)
		return
	}
	pg.render(w, r, http.StatusOK, view.Catalog(view.CatalogPage{Chrome: q.chrome(r, "APIs", "apis"), APIs: cards}))
}

// apiCards lists the tenant's published APIs with their summaries and the
// public plans that include them.
func (pg *pages) apiCards(ctx context.Context, q *pageReq) ([]view.APICard, error) {
	apis, err := pg.p.opts.Catalog.ListPublishedAPIs(ctx, q.tenant.ID)
	if err != nil {
		return nil, err
	}
	plans, err := pg.p.opts.Catalog.ListPublicPlans(ctx, q.tenant.ID)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	cards := make([]view.APICard, 0, len(apis))
	for _, a := range apis {
		key := q.tenant.ID + "\x00" + a.ID
		s, ok := pg.summaries.get(key, now)
		if !ok {
			doc, _, _, has, err := pg.p.opts.Catalog.GetOpenAPIDocument(ctx, q.tenant.ID, a.ID)
			if err != nil {
				return nil, err
			}
			s = pageSummary{hasDoc: has, at: now}
			if has {
				if s.sum, err = pg.docs.Summary(doc); err != nil {
					pg.p.log.Warn("devportal: summarize document", "tenant", q.tenant.Slug, "api", a.ID, "err", err)
					s.hasDoc = false
				}
			}
			pg.summaries.put(key, s)
		}
		c := pg.apiCard(q.tenant, a, plans)
		c.HasDoc, c.Operations, c.Version, c.Description = s.hasDoc, s.sum.Operations, s.sum.Version, s.sum.Description
		cards = append(cards, c)
	}
	return cards, nil
}

func (pg *pages) apiCard(t tenancy.Tenant, a catalog.API, plans []catalog.Plan) view.APICard {
	c := view.APICard{ID: a.ID, Slug: a.Slug, Name: a.Name, Href: "/apis/" + url.PathEscape(a.Slug),
		URL: pg.p.apiURL(t, a), Auth: pageAuthMode(a.Auth)}
	for _, pl := range plans {
		if slices.Contains(pl.APIIDs, a.ID) {
			c.Plans = append(c.Plans, pl.Name)
		}
	}
	return c
}

func pageAuthMode(auth string) string {
	switch auth {
	case docs.AuthJWT, docs.AuthNone:
		return auth
	}
	return docs.AuthKey
}

// pagePublishedAPI finds a published API by id or slug in the tenant's
// published APIs.
func pagePublishedAPI(apis []catalog.API, ref string) (catalog.API, error) {
	for _, a := range apis {
		if a.ID == ref || strings.EqualFold(a.Slug, ref) {
			return a, nil
		}
	}
	return catalog.API{}, fault.ErrNotFound
}

func (pg *pages) apiPage(w http.ResponseWriter, r *http.Request, q *pageReq) {
	m, err := pg.apiModel(r, q, "")
	if err != nil {
		pg.fail(w, r, q, err)
		return
	}
	pg.render(w, r, http.StatusOK, view.API(m))
}

// apiPageWithKey renders an API's page with a key the developer entered
// filled into the code samples and the console. The key comes in the POST
// and goes out in its response only; it is never stored.
func (pg *pages) apiPageWithKey(w http.ResponseWriter, r *http.Request, q *pageReq) {
	f := pageForm(r)
	key := strings.TrimSpace(f.Get("key"))
	status := http.StatusOK
	switch {
	case key == "":
		f.Errors["key"] = "Paste one of your keys."
		status = http.StatusUnprocessableEntity
	case !pageKeyLike(key):
		f.Errors["key"] = "That does not look like a key: keys are letters, digits, _ and -, up to 200 characters."
		status = http.StatusUnprocessableEntity
	}
	if status != http.StatusOK {
		key = ""
	}
	m, err := pg.apiModel(r, q, key)
	if err != nil {
		pg.fail(w, r, q, err)
		return
	}
	f.Values.Set("key", key)
	m.KeyForm = f
	pg.render(w, r, status, view.API(m))
}

func pageKeyLike(k string) bool {
	if len(k) > 200 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// apiModel builds an API's page; key, when not "", is filled into the
// samples and the console.
func (pg *pages) apiModel(r *http.Request, q *pageReq, key string) (view.APIPage, error) {
	ctx := r.Context()
	apis, err := pg.p.opts.Catalog.ListPublishedAPIs(ctx, q.tenant.ID)
	if err != nil {
		return view.APIPage{}, err
	}
	a, err := pagePublishedAPI(apis, r.PathValue("ref"))
	if err != nil {
		return view.APIPage{}, err
	}
	plans, err := pg.p.opts.Catalog.ListPublicPlans(ctx, q.tenant.ID)
	if err != nil {
		return view.APIPage{}, err
	}
	doc, _, _, hasDoc, err := pg.p.opts.Catalog.GetOpenAPIDocument(ctx, q.tenant.ID, a.ID)
	if err != nil {
		return view.APIPage{}, err
	}
	card := pg.apiCard(q.tenant, a, plans)
	card.HasDoc = hasDoc
	m := view.APIPage{Chrome: q.chrome(r, a.Name, "apis"), API: card, Auth: docs.AuthFor(card.Auth),
		KeyForm: pageBlankForm(), Subscribe: "/signup"}
	m.Chrome.Docs = true
	names := pageAPINames(apis)
	for _, pl := range plans {
		if slices.Contains(pl.APIIDs, a.ID) {
			m.Plans = append(m.Plans, pagePlanCard(pl, names))
		}
	}
	if hasDoc {
		ref, err := pg.docs.Reference(doc, docs.Options{BaseURL: card.URL, Auth: card.Auth, Key: key})
		if err != nil {
			pg.p.log.Warn("devportal: build reference", "tenant", q.tenant.Slug, "api", a.ID, "err", err)
			m.DocBroken = true
		} else {
			m.Ref = ref
			m.API.Operations, m.API.Version = ref.Operations, ref.Info.Version
			if pg.p.opts.SDKs != nil {
				base := "/api/apis/" + url.PathEscape(a.ID) + "/sdk/"
				m.SDKGo, m.SDKTypeScript = base+"go", base+"typescript"
			}
		}
	}
	if err := pg.tryIt(r, q, a, &m, key); err != nil {
		return view.APIPage{}, err
	}
	return m, nil
}

// tryIt decides whether the page's console is on: for a signed-in,
// confirmed and approved developer with a working key for the API (any
// developer's own key filled in counts, and an open API needs none).
func (pg *pages) tryIt(r *http.Request, q *pageReq, a catalog.API, m *view.APIPage, key string) error {
	next := "/login?next=" + url.QueryEscape(m.API.Href)
	if q.session == nil {
		m.TryNote = "The console sends real requests to the API with your own key."
		m.TryLink, m.TryAction = next, "Sign in to try it"
		return nil
	}
	m.Subscribe = "/apps"
	dev := q.session.Developer
	if err := developers.CanSubscribe(dev); err != nil {
		var de *fault.DeniedError
		if errors.As(err, &de) && de.Code == "email-unverified" {
			m.TryNote = "Confirm your email address to get a key and try the API: use the link we mailed you."
		} else if errors.As(err, &de) {
			m.TryNote = capitalize(de.Message) + "."
		} else {
			return err
		}
		return nil
	}
	keys, err := pg.workingKeys(r.Context(), q, a.ID)
	if err != nil {
		return err
	}
	m.Keys = keys
	m.ShowKeyForm = m.API.Auth != docs.AuthNone
	on := len(keys) > 0 || key != "" || m.API.Auth == docs.AuthNone
	if m.Ref != nil && on {
		m.Try = docs.TryItConfig{Enabled: true, RelayURL: "/api/try/" + url.PathEscape(a.ID), CSRFToken: q.session.CSRF, Key: key}
		if len(keys) > 0 && key == "" {
			prefixes := make([]string, 0, len(keys))
			for _, k := range keys {
				prefixes = append(prefixes, k.Prefix+"… ("+k.App+")")
			}
			m.Try.KeyHint = "Paste one of your keys: " + strings.Join(prefixes, ", ") + ". Keys are shown only once, when they are made."
		}
	}
	switch {
	case key != "":
		m.KeyFilled = true
		m.TryNote = "Your key is filled into the code samples and every console on this page. It is not stored: reloading the page forgets it."
	case m.API.Auth == docs.AuthNone:
		m.TryNote = "This API needs no key: open any operation's console below and send a request."
	case len(keys) > 0 && m.Ref != nil:
		m.TryNote = "Open an operation's console below and paste your key, or fill it in here to put it into the code samples too."
	case len(keys) > 0:
		m.TryNote = "Call the base URL with one of your keys."
	default:
		m.TryNote = "You need a key for a plan that includes this API."
		m.TryLink, m.TryAction = "/apps", "Subscribe an app to a plan"
	}
	return nil
}

// workingKeys lists the developer's keys that can call the API now: usable,
// of an active (or past-due) subscription whose plan includes the API.
func (pg *pages) workingKeys(ctx context.Context, q *pageReq, apiID string) ([]view.KeyChoice, error) {
	t, dev := q.tenant, q.session.Developer
	keys, err := pageAll(func(pgn store.Page) ([]catalog.Key, string, error) {
		return pg.p.opts.Catalog.ListKeys(ctx, t.ID, dev.ConsumerID, pgn)
	})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	keys = slices.DeleteFunc(keys, func(k catalog.Key) bool { return !k.Usable(now) || k.SubscriptionID == nil })
	if len(keys) == 0 {
		return nil, nil
	}
	subs, err := pageAll(func(pgn store.Page) ([]catalog.Subscription, string, error) {
		return pg.p.opts.Catalog.ListSubscriptions(ctx, t.ID, catalog.SubscriptionFilter{ConsumerID: dev.ConsumerID}, pgn)
	})
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, s := range subs {
		live[s.ID] = s.Status == catalog.SubActive || s.Status == catalog.SubPastDue
	}
	apps, err := pg.appNames(ctx, t.ID, dev.ConsumerID)
	if err != nil {
		return nil, err
	}
	plans := map[string]catalog.Plan{}
	var out []view.KeyChoice
	for _, k := range keys {
		if !live[*k.SubscriptionID] {
			continue
		}
		pl, ok := plans[k.PlanID]
		if !ok {
			if pl, err = pg.p.opts.Catalog.GetPlan(ctx, t.ID, k.PlanID); err != nil {
				if errors.Is(err, fault.ErrNotFound) {
					continue
				}
				return nil, err
			}
			plans[k.PlanID] = pl
		}
		if !slices.Contains(pl.APIIDs, apiID) {
			continue
		}
		app := ""
		if k.AppID != nil {
			app = apps[*k.AppID]
		}
		out = append(out, view.KeyChoice{Prefix: k.Prefix, App: app, Plan: pl.Name})
	}
	return out, nil
}

func (pg *pages) appNames(ctx context.Context, tenantID, consumerID string) (map[string]string, error) {
	apps, err := pageAll(func(pgn store.Page) ([]catalog.App, string, error) {
		return pg.p.opts.Catalog.ListApps(ctx, tenantID, consumerID, pgn)
	})
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(apps))
	for _, a := range apps {
		m[a.ID] = a.Name
	}
	return m, nil
}

// pageAllMax bounds the items pageAll collects (a developer has at most
// 25 apps of 20 subscriptions of 10 working keys, plus history).
const pageAllMax = 5000

// pageAll collects every page of a list.
func pageAll[T any](list func(store.Page) ([]T, string, error)) ([]T, error) {
	var out []T
	pgn := store.Page{Limit: store.MaxLimit}
	for {
		items, next, err := list(pgn)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if next == "" || len(out) >= pageAllMax {
			return out, nil
		}
		pgn.After = next
	}
}

func pageAPINames(apis []catalog.API) map[string]string {
	m := make(map[string]string, len(apis))
	for _, a := range apis {
		m[a.ID] = a.Name
	}
	return m
}

// pagePlanCard describes a plan; published names the published APIs (the
// plan's others are not shown).
func pagePlanCard(pl catalog.Plan, published map[string]string) view.PlanCard {
	c := view.PlanCard{ID: pl.ID, Name: pl.Name, Price: "Free", Approval: pl.ApprovalRequired, Priced: pl.Priced(),
		Rate: pageRate(pl.RateLimit), Quota: pageQuota(pl.Quota)}
	if pl.Priced() {
		c.Price = pagePrice(pl.Price.AmountCents, pl.Price.Currency)
	}
	for _, id := range pl.APIIDs {
		if n, ok := published[id]; ok {
			c.APIs = append(c.APIs, n)
		}
	}
	slices.Sort(c.APIs)
	return c
}

func pageRate(rl catalog.RateLimit) string {
	if rl.Requests <= 0 || rl.PerSeconds <= 0 {
		return ""
	}
	per := ""
	switch rl.PerSeconds {
	case 1:
		per = "second"
	case 60:
		per = "minute"
	case 3600:
		per = "hour"
	case 86400:
		per = "day"
	default:
		per = strconv.FormatInt(rl.PerSeconds, 10) + " seconds"
	}
	return pageCount(rl.Requests) + " " + pagePlural(rl.Requests, "request", "requests") + " per " + per
}

func pageQuota(qt catalog.Quota) string {
	if qt.Requests <= 0 {
		return ""
	}
	period := qt.Period
	if period == "" {
		period = "month"
	}
	return pageCount(qt.Requests) + " " + pagePlural(qt.Requests, "request", "requests") + " per " + period
}

func pagePlural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// pageCount formats a count with thousands separators.
func pageCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// pagePrice formats an amount in a currency's minor unit ("$19.00").
func pagePrice(minor int64, currency string) string {
	cur := strings.ToUpper(currency)
	zeroDecimal := map[string]bool{"JPY": true, "KRW": true, "VND": true, "CLP": true, "ISK": true, "UGX": true}
	amount := fmt.Sprintf("%s.%02d", pageCount(minor/100), minor%100)
	if zeroDecimal[cur] {
		amount = pageCount(minor)
	}
	switch cur {
	case "USD":
		return "$" + amount
	case "EUR":
		return "€" + amount
	case "GBP":
		return "£" + amount
	}
	return amount + " " + cur
}
