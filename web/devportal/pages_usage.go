package devportal

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/usage"
	"github.com/tollgate/tollgate/web/devportal/view"
)

// The usage page: the developer's requests, errors and latency over the
// last 24 hours (by hour) and 30 days (by day), for all apps, one app or
// one key (?app= or ?key=), tables per app and key, and the quota of each
// subscription in its current period. It reads the same rollups and quota
// counters as the tenant portal.

// pageUsageWindow is one time range of the page.
type pageUsageWindow struct {
	id, title string
	span      time.Duration
	bucket    time.Duration
}

var pageUsageWindows = []pageUsageWindow{
	{"day", "Last 24 hours", 24 * time.Hour, usage.Hour},
	{"month", "Last 30 days", 30 * 24 * time.Hour, usage.Day},
}

func (pg *pages) usage(w http.ResponseWriter, r *http.Request, q *pageReq) {
	m, err := pg.usageModel(r, q)
	if err != nil {
		pg.fail(w, r, q, err)
		return
	}
	pg.render(w, r, http.StatusOK, view.Usage(m))
}

func (pg *pages) usageModel(r *http.Request, q *pageReq) (view.UsagePage, error) {
	ctx := r.Context()
	t, dev := q.tenant, q.dev()
	m := view.UsagePage{Chrome: q.chrome(r, "Usage", "usage")}
	apps, err := pageAll(func(pgn store.Page) ([]catalog.App, string, error) {
		return pg.p.opts.Catalog.ListApps(ctx, t.ID, dev.ConsumerID, pgn)
	})
	if err != nil {
		return m, err
	}
	if len(apps) == 0 {
		m.NoApps = true
		return m, nil
	}
	keys, err := pageAll(func(pgn store.Page) ([]catalog.Key, string, error) {
		return pg.p.opts.Catalog.ListKeys(ctx, t.ID, dev.ConsumerID, pgn)
	})
	if err != nil {
		return m, err
	}
	appName := map[string]string{}
	for _, a := range apps {
		appName[a.ID] = a.Name
	}
	now := time.Now().UTC()
	totals := map[string]map[string]usage.KeyTotal{} // window id -> key id -> total
	for _, win := range pageUsageWindows {
		list, err := pg.p.opts.Usage.ByKey(ctx, t.ID, dev.ConsumerID, now.Add(-win.span), now)
		if err != nil {
			return m, err
		}
		byKey := make(map[string]usage.KeyTotal, len(list))
		for _, k := range list {
			byKey[k.KeyID] = k
		}
		totals[win.id] = byKey
	}

	// What the charts show: everything, one app or one key.
	query := usage.Query{TenantID: t.ID, ConsumerID: dev.ConsumerID}
	m.ScopeLabel = "all apps"
	appParam, keyParam := r.URL.Query().Get("app"), r.URL.Query().Get("key")
	switch {
	case keyParam != "":
		i := slices.IndexFunc(keys, func(k catalog.Key) bool { return k.ID == keyParam })
		if i < 0 {
			return m, fault.ErrNotFound
		}
		query.KeyID = keyParam
		m.ScopeLabel = "key " + keys[i].Prefix + "…"
	case appParam != "":
		if _, ok := appName[appParam]; !ok {
			return m, fault.ErrNotFound
		}
		query.KeyIDs = []string{}
		for _, k := range keys {
			if k.AppID != nil && *k.AppID == appParam {
				query.KeyIDs = append(query.KeyIDs, k.ID)
			}
		}
		m.ScopeLabel = appName[appParam]
	}
	m.Scopes = append(m.Scopes, view.Scope{Label: "All apps", Href: "/usage", Active: appParam == "" && keyParam == ""})
	for _, a := range slices.Backward(apps) {
		m.Scopes = append(m.Scopes, view.Scope{Label: a.Name, Href: "/usage?app=" + url.QueryEscape(a.ID),
			Active: keyParam == "" && appParam == a.ID})
		for _, k := range keys {
			if k.AppID == nil || *k.AppID != a.ID {
				continue
			}
			if _, used := totals["month"][k.ID]; !used && !k.Usable(now) {
				continue
			}
			m.Scopes = append(m.Scopes, view.Scope{Label: k.Prefix + "…", Href: "/usage?key=" + url.QueryEscape(k.ID),
				Active: keyParam == k.ID, Sub: true})
		}
	}

	for _, win := range pageUsageWindows {
		qw := query
		qw.From, qw.To, qw.Bucket = now.Add(-win.span), now, win.bucket
		points, err := pg.p.opts.Usage.Series(ctx, qw)
		if err != nil {
			return m, err
		}
		m.Windows = append(m.Windows, pageWindow(win, points))
	}

	// Tables per app and per key (keys that worked in the period or still work).
	appRows := map[string]*view.UsageRow{}
	for _, a := range slices.Backward(apps) {
		row := &view.UsageRow{ID: a.ID, Name: a.Name, Href: "/usage?app=" + url.QueryEscape(a.ID)}
		appRows[a.ID] = row
	}
	p50w := map[string][2]float64{} // app -> weighted p50 sum, requests
	for _, k := range keys {
		day, month := totals["day"][k.ID], totals["month"][k.ID]
		if month.Requests == 0 && !k.Usable(now) {
			continue
		}
		app := ""
		if k.AppID != nil {
			app = appName[*k.AppID]
		}
		m.Keys = append(m.Keys, view.UsageRow{ID: k.ID, Name: k.Prefix + "…", App: app,
			Href: "/usage?key=" + url.QueryEscape(k.ID), Day: pageTotals(day), Month: pageTotals(month)})
		if k.AppID == nil || appRows[*k.AppID] == nil {
			continue
		}
		ar := appRows[*k.AppID]
		ar.Day.Requests += day.Requests
		ar.Day.Errors += day.Errors
		ar.Month.Requests += month.Requests
		ar.Month.Errors += month.Errors
		// An app's p99 is its worst key's; its p50 the keys' p50s weighted
		// by requests (percentiles do not add up exactly).
		ar.Month.P99 = math.Max(ar.Month.P99, month.LatencyP99MS)
		acc := p50w[*k.AppID]
		p50w[*k.AppID] = [2]float64{acc[0] + month.LatencyP50MS*float64(month.Requests), acc[1] + float64(month.Requests)}
	}
	for _, a := range slices.Backward(apps) {
		row := appRows[a.ID]
		if acc := p50w[a.ID]; acc[1] > 0 {
			row.Month.P50 = acc[0] / acc[1]
		}
		m.Apps = append(m.Apps, *row)
	}

	quotas, err := pg.quotas(ctx, q, keys, appName, now)
	if err != nil {
		return m, err
	}
	m.Quotas = quotas
	return m, nil
}

// quotas reads each live subscription's quota through one of its keys (a
// subscription's keys share one counter).
func (pg *pages) quotas(ctx context.Context, q *pageReq, keys []catalog.Key, appName map[string]string, now time.Time) ([]view.QuotaRow, error) {
	t, dev := q.tenant, q.dev()
	subs, err := pageAll(func(pgn store.Page) ([]catalog.Subscription, string, error) {
		return pg.p.opts.Catalog.ListSubscriptions(ctx, t.ID, catalog.SubscriptionFilter{ConsumerID: dev.ConsumerID}, pgn)
	})
	if err != nil {
		return nil, err
	}
	plans := pagePlanNames{pg: pg, ctx: ctx, tenantID: t.ID}
	var out []view.QuotaRow
	for _, s := range slices.Backward(subs) {
		if s.Status != catalog.SubActive && s.Status != catalog.SubPastDue && s.Status != catalog.SubSuspended {
			continue
		}
		keyID := ""
		for _, k := range keys {
			if k.SubscriptionID != nil && *k.SubscriptionID == s.ID && (keyID == "" || k.Usable(now)) {
				keyID = k.ID
			}
		}
		if keyID == "" {
			continue
		}
		name, err := plans.name(s.PlanID)
		if err != nil {
			return nil, err
		}
		row := view.QuotaRow{App: appName[s.AppID], AppID: s.AppID, Plan: name, Status: s.Status}
		kq, err := pg.p.opts.Usage.Quota(ctx, t.ID, keyID, now)
		if err != nil {
			pg.p.log.Warn("devportal: read quota", "tenant", t.Slug, "key", keyID, "err", err)
			row.Unknown = true
		} else {
			row.Limit, row.Used, row.Left, row.Period, row.PeriodEnd = kq.Limit, kq.Used, kq.Left, kq.Period, kq.PeriodEnd
		}
		out = append(out, row)
	}
	return out, nil
}

func pageTotals(k usage.KeyTotal) view.Totals {
	return view.Totals{Requests: k.Requests, Errors: k.Errors, P50: k.LatencyP50MS, P99: k.LatencyP99MS}
}

// pageWindow turns a series into a window's figures and charts.
func pageWindow(win pageUsageWindow, points []usage.Point) view.Window {
	n := len(points)
	times := make([]time.Time, n)
	ok, c4, c5, other := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	p50, p99 := make([]float64, n), make([]float64, n)
	var total, errs int64
	var latSum, peak99 float64
	for i, pt := range points {
		times[i] = pt.Start
		ok[i], c4[i], c5[i] = float64(pt.Status2xx), float64(pt.Status4xx), float64(pt.Status5xx)
		other[i] = float64(max(pt.Requests-pt.Status2xx-pt.Status4xx-pt.Status5xx, 0))
		total += pt.Requests
		errs += pt.Status4xx + pt.Status5xx
		if pt.Requests == 0 {
			p50[i], p99[i] = math.NaN(), math.NaN()
			continue
		}
		p50[i], p99[i] = pt.LatencyP50MS, pt.LatencyP99MS
		latSum += pt.LatencyAvgMS * float64(pt.Requests)
		peak99 = math.Max(peak99, pt.LatencyP99MS)
	}
	w := view.Window{ID: win.id, Title: win.title, Empty: total == 0}
	rate, avg := "–", "–"
	if total > 0 {
		rate = fmt.Sprintf("%.1f%% of requests", float64(errs)*100/float64(total))
		avg = pageMS(latSum / float64(total))
	}
	w.Stats = []view.Stat{
		{Label: "Requests", Value: pageCount(total)},
		{Label: "Errors", Value: pageCount(errs), Note: rate},
		{Label: "Avg latency", Value: avg},
		{Label: "Peak p99", Value: pageMS(peak99)},
	}
	unit := "hour"
	if win.bucket == usage.Day {
		unit = "day"
	}
	w.Requests = view.Chart{ID: "chart-" + win.id + "-requests", Title: "Requests per " + unit + ", " + win.title,
		Summary: fmt.Sprintf("%s requests, %s errors.", pageCount(total), pageCount(errs)), Times: times, Stacked: true,
		Series: []view.Series{{Name: "2xx", Class: "s1", Values: ok}, {Name: "4xx", Class: "s2", Values: c4},
			{Name: "5xx", Class: "s3", Values: c5}, {Name: "other", Class: "s4", Values: other}}}
	w.Latency = view.Chart{ID: "chart-" + win.id + "-latency", Title: "Latency per " + unit + ", " + win.title,
		Summary: "Average " + avg + ", peak p99 " + pageMS(peak99) + ".", Times: times,
		Series: []view.Series{{Name: "p50", Class: "s1", Values: p50}, {Name: "p99", Class: "s3", Values: p99}}}
	return w
}

func pageMS(v float64) string {
	switch {
	case v <= 0:
		return "–"
	case v < 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}
