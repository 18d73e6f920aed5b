package mgmtapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/services/usage"
)

// Defaults of the usage endpoints.
const (
	defaultUsageRange = 24 * time.Hour
	defaultTopN       = 10
	maxTopN           = 100
)

// UsageQuery are the query parameters of GET /v1/usage.
type UsageQuery struct {
	From       time.Time `query:"from" doc:"start (RFC 3339, rounded down to the bucket); default to - 24h"`
	To         time.Time `query:"to" doc:"end, exclusive (RFC 3339, rounded up to the bucket); default now"`
	Bucket     string    `query:"bucket" enum:"minute,hour,day" default:"hour" doc:"the length of each point"`
	APIID      string    `query:"api_id" format:"uuid" doc:"only this API's requests"`
	ConsumerID string    `query:"consumer_id" format:"uuid" doc:"only this consumer's requests"`
	KeyID      string    `query:"key_id" format:"uuid" doc:"only this key's requests"`
	PlanID     string    `query:"plan_id" format:"uuid" doc:"only requests under this plan"`
	Status     string    `query:"status" enum:"1xx,2xx,3xx,4xx,5xx" doc:"a status class"`
}

// TopConsumersQuery are the query parameters of GET /v1/usage/top-consumers.
type TopConsumersQuery struct {
	UsageQuery
	Limit int `query:"limit" min:"1" max:"100" default:"10" doc:"the most consumers listed"`
}

var bucketNames = map[string]time.Duration{"minute": usage.Minute, "hour": usage.Hour, "day": usage.Day}

// usageQuery reads the query parameters shared by the usage endpoints:
// from and to (RFC 3339; default the last 24 hours), bucket (minute, hour
// or day; default hour), api_id, consumer_id, key_id, plan_id and status
// ("2xx" or 2).
func usageQuery(r *http.Request, tenantID string) (usage.Query, string, error) {
	v := r.URL.Query()
	q := usage.Query{TenantID: tenantID, APIID: v.Get("api_id"), ConsumerID: v.Get("consumer_id"),
		KeyID: v.Get("key_id"), PlanID: v.Get("plan_id")}
	q.To = time.Now().UTC()
	if s := v.Get("to"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return q, "", badRequest("to", "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		q.To = t
	}
	q.From = q.To.Add(-defaultUsageRange)
	if s := v.Get("from"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return q, "", badRequest("from", "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		q.From = t
	}
	name := v.Get("bucket")
	if name == "" {
		name = "hour"
	}
	b, ok := bucketNames[name]
	if !ok {
		return q, "", badRequest("bucket", `must be "minute", "hour" or "day"`)
	}
	q.Bucket = b
	if s := strings.TrimSuffix(strings.ToLower(v.Get("status")), "xx"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 5 {
			return q, "", badRequest("status", `must be a status class: "1xx" to "5xx"`)
		}
		q.StatusClass = n
	}
	return q, name, nil
}

func (a *api) getUsage(r *http.Request, c *call) (UsageSeries, error) {
	q, name, err := usageQuery(r, c.actor.TenantID)
	if err != nil {
		return UsageSeries{}, err
	}
	pts, err := usage.Series(r.Context(), a.db, q)
	if err != nil {
		return UsageSeries{}, err
	}
	from, to := q.From.UTC().Truncate(q.Bucket), q.To.UTC()
	if len(pts) > 0 {
		from, to = pts[0].Start, pts[len(pts)-1].Start.Add(q.Bucket)
	}
	return usageSeriesOf(name, from, to, pts), nil
}

func (a *api) getTopConsumers(r *http.Request, c *call) (TopConsumers, error) {
	q, _, err := usageQuery(r, c.actor.TenantID)
	if err != nil {
		return TopConsumers{}, err
	}
	n := defaultTopN
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err = strconv.Atoi(s)
		if err != nil || n < 1 || n > maxTopN {
			return TopConsumers{}, badRequest("limit", "must be between 1 and "+strconv.Itoa(maxTopN))
		}
	}
	top, err := usage.TopConsumers(r.Context(), a.db, q, n)
	if err != nil {
		return TopConsumers{}, err
	}
	return TopConsumers{Items: mapSlice(top, consumerTotalOf)}, nil
}

func (a *api) getKeyQuota(r *http.Request, c *call) (KeyQuota, error) {
	if a.rdb == nil {
		return KeyQuota{}, errors.New("key quota: the management API was built without Redis")
	}
	q, err := usage.QuotaOf(r.Context(), a.db, a.rdb, a.keys, c.actor.TenantID, r.PathValue("id"), time.Now())
	if err != nil {
		return KeyQuota{}, err
	}
	return keyQuotaOf(q), nil
}
