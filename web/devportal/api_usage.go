package devportal

import (
	"context"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/usage"
)

// The developer's usage: totals and quota per key, and series for charts,
// read from the same rollups and counters the tenant portal shows, limited
// to the developer's own keys.

const (
	// apiUsageWindow is the range of GET /api/usage without from/to.
	apiUsageWindow = 30 * 24 * time.Hour
	// apiSeriesWindow is the range of GET /api/usage/series without
	// from/to (hourly points).
	apiSeriesWindow = 24 * time.Hour
	// apiMaxUsageWindow bounds a range.
	apiMaxUsageWindow = 366 * 24 * time.Hour
	// apiMaxKeyPages bounds the pages of keys read for one answer.
	apiMaxKeyPages = 20
)

// apiQuotaView is the state of a key's quota in the current period. Quotas
// count per subscription: every key of a subscription shows the same
// counter. Limit 0 means the plan has no quota (Remaining is then null).
type apiQuotaView struct {
	Limit       int64     `json:"limit"`
	Used        int64     `json:"used"`
	Remaining   *int64    `json:"remaining"`
	Period      string    `json:"period"`
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
}

// apiKeyUsage is one key's traffic in the range and its quota now.
type apiKeyUsage struct {
	AppID          *string      `json:"app_id"`
	KeyID          string       `json:"key_id"`
	Prefix         string       `json:"prefix"`
	Status         string       `json:"status"`
	SubscriptionID *string      `json:"subscription_id"`
	PlanID         string       `json:"plan_id"`
	Requests       int64        `json:"requests"`
	Errors         int64        `json:"errors"`
	LatencyP50MS   float64      `json:"latency_p50_ms"`
	LatencyP99MS   float64      `json:"latency_p99_ms"`
	Quota          apiQuotaView `json:"quota"`
}

type apiUsageAnswer struct {
	From  time.Time     `json:"from"`
	To    time.Time     `json:"to"`
	Items []apiKeyUsage `json:"items"`
}

// apiTimeRange reads from and to (RFC 3339) with defaults: to now, from window
// before to.
func apiTimeRange(r *http.Request, window time.Duration) (from, to time.Time, err error) {
	q := r.URL.Query()
	to = time.Now().UTC()
	if s := q.Get("to"); s != "" {
		if to, err = time.Parse(time.RFC3339, s); err != nil {
			return from, to, apiBadRequest("to", "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
	}
	from = to.Add(-window)
	if s := q.Get("from"); s != "" {
		if from, err = time.Parse(time.RFC3339, s); err != nil {
			return from, to, apiBadRequest("from", "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
	}
	switch {
	case !from.Before(to):
		return from, to, fault.Invalid("from", "must be before to")
	case to.Sub(from) > apiMaxUsageWindow:
		return from, to, fault.Invalid("from", "the range may span at most 366 days")
	}
	return from.UTC(), to.UTC(), nil
}

// apiDeveloperKeys returns every key of the consumer (portal keys and keys the
// tenant issued to it), bounded.
func (p *Portal) apiDeveloperKeys(ctx context.Context, tenantID, consumerID string) ([]catalog.Key, error) {
	var all []catalog.Key
	pg := store.Page{Limit: store.MaxLimit}
	for range apiMaxKeyPages {
		list, next, err := p.opts.Catalog.ListKeys(ctx, tenantID, consumerID, pg)
		if err != nil {
			return nil, err
		}
		all = append(all, list...)
		if next == "" {
			break
		}
		pg.After = next
	}
	return all, nil
}

// apiUsage answers each key's requests, errors and latency between from
// and to (default the last 30 days) and its quota now. Working keys are
// listed also without traffic; revoked and expired ones only with traffic
// in the range.
func (p *Portal) apiUsage(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	ctx := r.Context()
	from, to, err := apiTimeRange(r, apiUsageWindow)
	if err != nil {
		return err
	}
	dev := c.dev()
	keys, err := p.apiDeveloperKeys(ctx, c.tenant.ID, dev.ConsumerID)
	if err != nil {
		return err
	}
	totals, err := p.opts.Usage.ByKey(ctx, c.tenant.ID, dev.ConsumerID, from, to)
	if err != nil {
		return err
	}
	byKey := make(map[string]usage.KeyTotal, len(totals))
	for _, t := range totals {
		byKey[t.KeyID] = t
	}
	now := time.Now()
	out := apiUsageAnswer{From: from, To: to, Items: []apiKeyUsage{}}
	for _, k := range keys {
		t, traffic := byKey[k.ID]
		status := apiKeyStatus(k, now)
		if status != apiKeyActive && !traffic {
			continue
		}
		q, err := p.opts.Usage.Quota(ctx, c.tenant.ID, k.ID, now)
		if err != nil {
			return err
		}
		qv := apiQuotaView{Limit: q.Limit, Used: q.Used, Period: q.Period, PeriodStart: q.PeriodStart, PeriodEnd: q.PeriodEnd}
		if q.Limit > 0 {
			left := q.Left
			qv.Remaining = &left
		}
		out.Items = append(out.Items, apiKeyUsage{AppID: k.AppID, KeyID: k.ID, Prefix: k.Prefix, Status: status,
			SubscriptionID: k.SubscriptionID, PlanID: k.PlanID, Requests: t.Requests, Errors: t.Errors,
			LatencyP50MS: t.LatencyP50MS, LatencyP99MS: t.LatencyP99MS, Quota: qv})
	}
	return apiWriteJSON(w, http.StatusOK, out)
}

// apiSeriesAnswer is a usage series for charts.
type apiSeriesAnswer struct {
	Bucket string        `json:"bucket"`
	From   time.Time     `json:"from"`
	To     time.Time     `json:"to"`
	Points []usage.Point `json:"points"`
}

var apiBucketNames = map[string]time.Duration{"minute": usage.Minute, "hour": usage.Hour, "day": usage.Day}

// apiUsageSeries answers the developer's traffic per bucket (minute, hour
// or day; default hour) between from and to (default the last 24 hours),
// of one app (app_id) or key (key_id) of theirs, or of all their keys.
func (p *Portal) apiUsageSeries(w http.ResponseWriter, r *http.Request, c *apiCall) error {
	ctx := r.Context()
	v := r.URL.Query()
	from, to, err := apiTimeRange(r, apiSeriesWindow)
	if err != nil {
		return err
	}
	name := v.Get("bucket")
	if name == "" {
		name = "hour"
	}
	bucket, ok := apiBucketNames[name]
	if !ok {
		return apiBadRequest("bucket", `must be "minute", "hour" or "day"`)
	}
	dev := c.dev()
	q := usage.Query{TenantID: c.tenant.ID, ConsumerID: dev.ConsumerID, From: from, To: to, Bucket: bucket}
	appID, keyID := v.Get("app_id"), v.Get("key_id")
	switch {
	case keyID != "":
		k, err := p.opts.Catalog.GetConsumerKey(ctx, c.tenant.ID, dev.ConsumerID, keyID)
		if err != nil {
			return err
		}
		if appID != "" && (k.AppID == nil || *k.AppID != appID) {
			return fault.ErrNotFound
		}
		q.KeyIDs = []string{k.ID}
	case appID != "":
		a, err := p.opts.Catalog.GetApp(ctx, c.tenant.ID, dev.ConsumerID, appID)
		if err != nil {
			return err
		}
		keys, err := p.apiDeveloperKeys(ctx, c.tenant.ID, dev.ConsumerID)
		if err != nil {
			return err
		}
		q.KeyIDs = []string{}
		for _, k := range keys {
			if k.AppID != nil && *k.AppID == a.ID {
				q.KeyIDs = append(q.KeyIDs, k.ID)
			}
		}
	}
	pts, err := p.opts.Usage.Series(ctx, q)
	if err != nil {
		return err
	}
	if pts == nil {
		pts = []usage.Point{}
	}
	outFrom, outTo := from.Truncate(bucket), to
	if len(pts) > 0 {
		outFrom, outTo = pts[0].Start, pts[len(pts)-1].Start.Add(bucket)
	}
	return apiWriteJSON(w, http.StatusOK, apiSeriesAnswer{Bucket: name, From: outFrom, To: outTo, Points: pts})
}
