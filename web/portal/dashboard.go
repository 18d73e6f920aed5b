package portal

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"time"

	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/usage"
	"github.com/tollgate/tollgate/web/portal/view"
)

// dashRange is a selectable period and its bucket width.
type dashRange struct {
	key, label string
	span       time.Duration
	bucket     time.Duration
}

var dashRanges = []dashRange{
	{"1h", "1 hour", time.Hour, time.Minute},
	{"24h", "24 hours", 24 * time.Hour, 15 * time.Minute},
	{"7d", "7 days", 7 * 24 * time.Hour, 3 * time.Hour},
	{"30d", "30 days", 30 * 24 * time.Hour, 24 * time.Hour},
}

func (p *Portal) dashboard(w http.ResponseWriter, r *http.Request, q *req) {
	ctx := r.Context()
	rg := dashRanges[1]
	m := view.DashboardPage{C: p.gatewayChrome(r, q, "Dashboard", "dashboard"), ProxyURL: p.proxyURL(q.tenant.Slug)}
	for _, d := range dashRanges {
		if d.key == r.URL.Query().Get("range") {
			rg = d
		}
	}
	// An API filter, when the tenant has more than one API.
	apiID := r.URL.Query().Get("api")
	apis, _, err := p.cat.ListAPIs(ctx, q.tenant.ID, store.Page{Limit: 20})
	if err != nil {
		p.internal(w, r, err)
		return
	}
	known := false
	for _, a := range apis {
		known = known || a.ID == apiID
	}
	if !known {
		apiID = ""
	}
	link := func(rangeKey, api string) string {
		v := url.Values{"range": {rangeKey}}
		if api != "" {
			v.Set("api", api)
		}
		return "/dashboard?" + v.Encode()
	}
	for _, d := range dashRanges {
		m.Ranges = append(m.Ranges, view.Range{Key: d.key, Label: d.label, Href: link(d.key, apiID), Active: d.key == rg.key})
	}
	m.APIs = append(m.APIs, view.APIFilter{Label: "All APIs", Href: link(rg.key, ""), Active: apiID == ""})
	for _, a := range apis {
		m.APIs = append(m.APIs, view.APIFilter{Label: a.Name, Href: link(rg.key, a.ID), Active: a.ID == apiID})
	}

	steps, started, err := p.gettingStarted(r, q)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	m.Steps, m.Started = steps, started
	m.Limits = p.limitRows(ctx, q.tenant.ID)

	to := time.Now().UTC().Truncate(rg.bucket).Add(rg.bucket)
	uq := usage.Query{TenantID: q.tenant.ID, From: to.Add(-rg.span), To: to, Bucket: rg.bucket, APIID: apiID}
	points, err := p.opts.Usage.Series(ctx, uq)
	if err != nil {
		p.log.Error("portal: usage series", "tenant", q.tenant.ID, "err", err)
		m.Error = "Traffic data is not available right now."
	}
	top, err := p.opts.Usage.TopConsumers(ctx, uq, 8)
	if err != nil {
		p.log.Error("portal: top consumers", "tenant", q.tenant.ID, "err", err)
		m.Error = "Traffic data is not available right now."
	}

	var total, s4, s5 int64
	var latSum, p99Max float64
	req := view.Chart{Title: "Requests per " + bucketText(rg.bucket), Stacked: true}
	lat := view.Chart{Title: "Latency in milliseconds"}
	ok2, c4, c5, other := make([]float64, len(points)), make([]float64, len(points)), make([]float64, len(points)), make([]float64, len(points))
	p50, p99 := make([]float64, len(points)), make([]float64, len(points))
	for i, pt := range points {
		req.Times = append(req.Times, pt.Start)
		ok2[i], c4[i], c5[i] = float64(pt.Status2xx), float64(pt.Status4xx), float64(pt.Status5xx)
		other[i] = float64(pt.Requests - pt.Status2xx - pt.Status4xx - pt.Status5xx)
		p50[i], p99[i] = pt.LatencyP50MS, pt.LatencyP99MS
		if pt.Requests == 0 {
			p50[i], p99[i] = math.NaN(), math.NaN()
		}
		total += pt.Requests
		s4 += pt.Status4xx
		s5 += pt.Status5xx
		latSum += pt.LatencyAvgMS * float64(pt.Requests)
		p99Max = max(p99Max, pt.LatencyP99MS)
	}
	lat.Times = req.Times
	req.Series = []view.Series{{Name: "2xx", Class: "s1", Values: ok2}, {Name: "4xx", Class: "s2", Values: c4},
		{Name: "5xx", Class: "s3", Values: c5}, {Name: "other", Class: "s4", Values: other}}
	lat.Series = []view.Series{{Name: "p50", Class: "s1", Values: p50}, {Name: "p99", Class: "s3", Values: p99}}
	req.Summary = fmt.Sprintf("%d requests in the last %s, %d client errors, %d server errors.", total, rg.label, s4, s5)
	avg := 0.0
	if total > 0 {
		avg = latSum / float64(total)
	}
	lat.Summary = fmt.Sprintf("Average latency %.1f ms, highest p99 %.1f ms.", avg, p99Max)
	m.Requests, m.Latency = req, lat
	m.NoData = total == 0

	errRate := "–"
	if total > 0 {
		errRate = fmt.Sprintf("%.2f%%", float64(s4+s5)*100/float64(total))
	}
	latText, p99Text := "–", "–"
	if total > 0 {
		latText, p99Text = fmt.Sprintf("%.1f ms", avg), fmt.Sprintf("%.1f ms", p99Max)
	}
	m.Stats = []view.Stat{
		{Label: "Requests", Value: fmt.Sprint(total), Note: "last " + rg.label},
		{Label: "Error rate", Value: errRate, Note: fmt.Sprintf("%d 4xx · %d 5xx", s4, s5)},
		{Label: "Average latency", Value: latText, Note: "proxy to upstream and back"},
		{Label: "p99 latency", Value: p99Text, Note: "worst " + bucketText(rg.bucket)},
	}
	var most int64
	for _, t := range top {
		most = max(most, t.Requests)
	}
	for _, t := range top {
		share := 0
		if most > 0 {
			share = int(t.Requests*20/most) * 5
		}
		m.Top = append(m.Top, view.TopConsumer{ID: t.ConsumerID, Name: t.Name, Requests: t.Requests, Errors: t.Errors, Share: share})
	}
	p.render(w, r, view.Dashboard(m))
}

func bucketText(d time.Duration) string {
	switch {
	case d == time.Minute:
		return "minute"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	case d == time.Hour:
		return "hour"
	case d < 24*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return "day"
}

// gettingStarted is the new tenant's checklist: upstream, API, plan,
// consumer, key. started is true once a key exists.
func (p *Portal) gettingStarted(r *http.Request, q *req) ([]view.Step, bool, error) {
	ctx := r.Context()
	one := store.Page{Limit: 1}
	ups, _, err := p.cat.ListUpstreams(ctx, q.tenant.ID, one)
	if err != nil {
		return nil, false, err
	}
	apis, _, err := p.cat.ListAPIs(ctx, q.tenant.ID, one)
	if err != nil {
		return nil, false, err
	}
	plans, _, err := p.cat.ListPlans(ctx, q.tenant.ID, one)
	if err != nil {
		return nil, false, err
	}
	cons, _, err := p.cat.ListConsumers(ctx, q.tenant.ID, one)
	if err != nil {
		return nil, false, err
	}
	keys, _, err := p.cat.ListKeys(ctx, q.tenant.ID, "", one)
	if err != nil {
		return nil, false, err
	}
	steps := []view.Step{
		{Label: "Add an upstream: where your API runs", Href: "/upstreams/new", Done: len(ups) > 0},
		{Label: "Create an API with a base path", Href: "/apis/new", Done: len(apis) > 0},
		{Label: "Create a plan with limits", Href: "/plans/new", Done: len(plans) > 0},
		{Label: "Add a consumer", Href: "/consumers", Done: len(cons) > 0},
		{Label: "Issue a key and call " + p.proxyURL(q.tenant.Slug), Href: "/consumers", Done: len(keys) > 0},
	}
	if len(cons) > 0 {
		steps[4].Href = "/consumers/" + cons[0].ID
	}
	return steps, len(keys) > 0, nil
}
