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

// usageSeries answers GET /v1/usage.
type usageSeries struct {
	Bucket string        `json:"bucket"`
	From   time.Time     `json:"from"`
	To     time.Time     `json:"to"`
	Points []usage.Point `json:"points"`
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

func (a *api) getUsage(w http.ResponseWriter, r *http.Request, c *call) error {
	q, name, err := usageQuery(r, c.actor.TenantID)
	if err != nil {
		return err
	}
	pts, err := usage.Series(r.Context(), a.db, q)
	if err != nil {
		return err
	}
	from, to := q.From.UTC().Truncate(q.Bucket), q.To.UTC()
	if len(pts) > 0 {
		from, to = pts[0].Start, pts[len(pts)-1].Start.Add(q.Bucket)
	}
	return writeJSON(w, http.StatusOK, usageSeries{Bucket: name, From: from, To: to, Points: pts})
}

func (a *api) getTopConsumers(w http.ResponseWriter, r *http.Request, c *call) error {
	q, _, err := usageQuery(r, c.actor.TenantID)
	if err != nil {
		return err
	}
	n := defaultTopN
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err = strconv.Atoi(s)
		if err != nil || n < 1 || n > maxTopN {
			return badRequest("limit", "must be between 1 and "+strconv.Itoa(maxTopN))
		}
	}
	top, err := usage.TopConsumers(r.Context(), a.db, q, n)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		Items []usage.ConsumerTotal `json:"items"`
	}{top})
}

func (a *api) getKeyQuota(w http.ResponseWriter, r *http.Request, c *call) error {
	if a.rdb == nil {
		return errors.New("key quota: the management API was built without Redis")
	}
	q, err := usage.QuotaOf(r.Context(), a.db, a.rdb, a.keys, c.actor.TenantID, r.PathValue("id"), time.Now())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, q)
}
