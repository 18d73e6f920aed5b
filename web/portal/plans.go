package portal

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/web/portal/view"
)

func rateText(rl catalog.RateLimit) string {
	if rl.Requests == 0 {
		return "unlimited"
	}
	n := grouped(rl.Requests)
	switch rl.PerSeconds {
	case 1:
		return n + " / second"
	case 60:
		return n + " / minute"
	case 3600:
		return n + " / hour"
	case 86400:
		return n + " / day"
	}
	return fmt.Sprintf("%s / %d s", n, rl.PerSeconds)
}

// grouped writes n with thousands separators: 100000 -> 100,000.
func grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func priceText(pr *catalog.Price) string {
	if pr == nil || pr.AmountCents == 0 {
		return "Free"
	}
	return fmt.Sprintf("%s %s", strconv.FormatFloat(float64(pr.AmountCents)/100, 'f', 2, 64), strings.ToUpper(pr.Currency))
}

func (p *Portal) apiOptions(r *http.Request, q *req) ([]view.Option, map[string]string, error) {
	apis, err := all(func(pg store.Page) ([]catalog.API, string, error) {
		return p.cat.ListAPIs(r.Context(), q.tenant.ID, pg)
	})
	if err != nil {
		return nil, nil, err
	}
	opts := make([]view.Option, 0, len(apis))
	names := map[string]string{}
	for _, a := range apis {
		opts = append(opts, view.Option{Value: a.ID, Label: a.Name + " (" + a.BasePath + ")"})
		names[a.ID] = a.Name
	}
	return opts, names, nil
}

func (p *Portal) plansList(w http.ResponseWriter, r *http.Request, q *req) {
	plans, err := all(func(pg store.Page) ([]catalog.Plan, string, error) {
		return p.cat.ListPlans(r.Context(), q.tenant.ID, pg)
	})
	if err != nil {
		p.internal(w, r, err)
		return
	}
	opts, names, err := p.apiOptions(r, q)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	m := view.PlansPage{C: p.gatewayChrome(r, q, "Plans", "plans"), HasAPIs: len(opts) > 0}
	for _, pl := range plans {
		row := view.PlanRow{ID: pl.ID, Name: pl.Name, Rate: rateText(pl.RateLimit), Price: priceText(pl.Price),
			Quota: "unlimited", Public: pl.Public, ApprovalRequired: pl.ApprovalRequired}
		if pl.Quota.Requests > 0 {
			row.Quota = grouped(pl.Quota.Requests) + " / " + pl.Quota.Period
		}
		for _, id := range pl.APIIDs {
			row.APIs = append(row.APIs, names[id])
		}
		m.Plans = append(m.Plans, row)
	}
	p.render(w, r, view.Plans(m))
}

func planForm(pl catalog.Plan) view.Form {
	f := blankForm()
	f.Values.Set("name", pl.Name)
	f.Values.Set("rate_limit_requests", strconv.FormatInt(pl.RateLimit.Requests, 10))
	f.Values.Set("rate_limit_per_seconds", strconv.FormatInt(pl.RateLimit.PerSeconds, 10))
	f.Values.Set("quota_requests", strconv.FormatInt(pl.Quota.Requests, 10))
	f.Values.Set("quota_period", pl.Quota.Period)
	if pl.Price != nil {
		f.Values.Set("price", strconv.FormatFloat(float64(pl.Price.AmountCents)/100, 'f', 2, 64))
		f.Values.Set("currency", pl.Price.Currency)
	}
	f.Values["api_ids"] = pl.APIIDs
	if pl.Public {
		f.Values.Set("public", "on")
	}
	if pl.ApprovalRequired {
		f.Values.Set("approval_required", "on")
	}
	return f
}

func planInput(f *view.Form) (catalog.PlanInput, bool) {
	ok := true
	num := func(name string) int64 {
		n, good := intField(f, name)
		ok = ok && good
		return n
	}
	in := catalog.PlanInput{
		Name:             f.Get("name"),
		RateLimit:        catalog.RateLimit{Requests: num("rate_limit_requests"), PerSeconds: num("rate_limit_per_seconds")},
		Quota:            catalog.Quota{Requests: num("quota_requests"), Period: f.Get("quota_period")},
		APIIDs:           f.Values["api_ids"],
		Public:           f.Get("public") == "on",
		ApprovalRequired: f.Get("approval_required") == "on",
	}
	if in.APIIDs == nil {
		in.APIIDs = []string{}
	}
	if s := strings.TrimSpace(f.Get("price")); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 0 || v > 1e9 || math.IsNaN(v) {
			f.Errors["price"] = "must be an amount such as 19.00"
			ok = false
		} else {
			cur := strings.ToLower(strings.TrimSpace(f.Get("currency")))
			if cur == "" {
				cur = "usd"
			}
			in.Price = &catalog.Price{AmountCents: int64(math.Round(v * 100)), Currency: cur}
		}
	}
	return in, ok
}

var planFields = []string{"name", "rate_limit_requests", "rate_limit_per_seconds", "quota_requests", "quota_period", "price", "currency", "api_ids", "public", "approval_required"}

func (p *Portal) planPage(w http.ResponseWriter, r *http.Request, q *req, id string, f view.Form, status int) {
	opts, _, err := p.apiOptions(r, q)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	title := "New plan"
	if id != "" {
		title = f.Get("name")
	}
	p.renderStatus(w, r, status, view.PlanForm(view.PlanFormPage{C: q.chrome(title, "plans"), ID: id, Form: f, APIs: opts}))
}

func (p *Portal) planNew(w http.ResponseWriter, r *http.Request, q *req) {
	opts, _, err := p.apiOptions(r, q)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	pl := catalog.Plan{RateLimit: catalog.RateLimit{Requests: 10, PerSeconds: 1}, Quota: catalog.Quota{Period: "month"}}
	for _, o := range opts {
		pl.APIIDs = append(pl.APIIDs, o.Value)
	}
	p.planPage(w, r, q, "", planForm(pl), http.StatusOK)
}

func (p *Portal) planCreate(w http.ResponseWriter, r *http.Request, q *req) {
	f := readForm(w, r)
	in, ok := planInput(&f)
	var err error
	var pl catalog.Plan
	if ok {
		pl, err = p.cat.CreatePlan(r.Context(), q.user.Actor(), in)
	}
	if !ok || err != nil {
		if err != nil && !applyError(&f, err, planFields...) {
			p.internal(w, r, err)
			return
		}
		p.planPage(w, r, q, "", f, http.StatusUnprocessableEntity)
		return
	}
	p.redirect(w, r, "/plans", "Plan "+pl.Name+" created. Next: add a consumer and issue it a key.")
}

func (p *Portal) planEdit(w http.ResponseWriter, r *http.Request, q *req) {
	pl, err := p.cat.GetPlan(r.Context(), q.tenant.ID, r.PathValue("id"))
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	p.planPage(w, r, q, pl.ID, planForm(pl), http.StatusOK)
}

func (p *Portal) planUpdate(w http.ResponseWriter, r *http.Request, q *req) {
	id := r.PathValue("id")
	f := readForm(w, r)
	in, ok := planInput(&f)
	var err error
	if ok {
		_, err = p.cat.UpdatePlan(r.Context(), q.user.Actor(), id, func(cur *catalog.PlanInput) error {
			// Only the fields this form shows: settings it does not know stay as they are.
			cur.Name, cur.APIIDs, cur.Price = in.Name, in.APIIDs, in.Price
			cur.RateLimit.Requests, cur.RateLimit.PerSeconds = in.RateLimit.Requests, in.RateLimit.PerSeconds
			cur.Quota.Requests, cur.Quota.Period = in.Quota.Requests, in.Quota.Period
			cur.Public, cur.ApprovalRequired = in.Public, in.ApprovalRequired
			return nil
		})
	}
	if errors.Is(err, fault.ErrNotFound) {
		p.notFound(w, r, q)
		return
	}
	if !ok || err != nil {
		if err != nil && !applyError(&f, err, planFields...) {
			p.internal(w, r, err)
			return
		}
		p.planPage(w, r, q, id, f, http.StatusUnprocessableEntity)
		return
	}
	p.redirect(w, r, "/plans", "Saved.")
}

func (p *Portal) planDelete(w http.ResponseWriter, r *http.Request, q *req) {
	id := r.PathValue("id")
	err := p.cat.DeletePlan(r.Context(), q.user.Actor(), id)
	var ce *fault.ConflictError
	if errors.As(err, &ce) {
		p.redirect(w, r, "/plans/"+id, ce.Message)
		return
	}
	if err != nil {
		p.fail(w, r, q, err)
		return
	}
	p.redirect(w, r, "/plans", "Plan deleted.")
}
