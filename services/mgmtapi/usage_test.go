package mgmtapi

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/storetest"
)

func newUsageEnv(t *testing.T) (*env, redis.UniversalClient, proxycfg.Keys) {
	t.Helper()
	rdb, keys := storetest.NewRedis(t)
	db := storetest.NewPool(t)
	h := New(Options{DB: db, Secret: testSecret, OperatorToken: testOperatorToken, Redis: rdb, Keys: keys, AllowPrivateUpstreams: true, ConfigSize: publish.TenantConfigBytes,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return &env{t: t, db: db, h: h}, rdb, keys
}

func TestUsageAndQuotaRoutes(t *testing.T) {
	t.Parallel()
	e, rdb, keys := newUsageEnv(t)
	f := e.fixture("acme")
	other := e.fixture("other")
	ctx := context.Background()

	period, _, _ := proxycfg.QuotaPeriod("month", time.Now())
	if err := rdb.Set(ctx, keys.Quota(f.key, period), 40, 0).Err(); err != nil {
		t.Fatal(err)
	}
	q := e.must(200, "GET", "/v1/keys/"+f.key+"/quota", f.token, nil)
	if q["limit"].(float64) != 1000 || q["used"].(float64) != 40 || q["left"].(float64) != 960 ||
		q["period"] != "month" || q["scope"] != "key" {
		t.Fatalf("quota %v", q)
	}
	e.must(404, "GET", "/v1/keys/"+other.key+"/quota", f.token, nil)

	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	for _, r := range []struct {
		tenant, consumer string
		at               time.Time
		class, n         int
	}{
		{f.tenantID, f.consumer, base.Add(time.Minute), 2, 30},
		{f.tenantID, f.consumer, base.Add(2 * time.Minute), 5, 3},
		{f.tenantID, f.consumer, base.Add(61 * time.Minute), 4, 7},
		{other.tenantID, other.consumer, base.Add(time.Minute), 2, 500},
	} {
		if _, err := e.db.Exec(ctx, `INSERT INTO usage_minutes (tenant_id, minute, api_id, consumer_id, key_id, plan_id,
			status_class, requests, bytes_in, bytes_out, latency_us, latency_hist)
			VALUES ($1, $2, 'api', $3, 'key', 'plan', $4, $5, 0, 0, 0, $6)`, r.tenant, r.at, r.consumer, r.class, r.n,
			make([]int64, proxycfg.LatencyBuckets)); err != nil {
			t.Fatal(err)
		}
	}
	from, to := base.Format(time.RFC3339), base.Add(2*time.Hour).Format(time.RFC3339)
	tests := []struct {
		name  string
		query string
		want  []float64 // requests per point
	}{
		{name: "hourly", query: "bucket=hour", want: []float64{33, 7}},
		{name: "daily 4xx", query: "bucket=day&status=4xx", want: nil},
		{name: "consumer filter", query: "bucket=hour&consumer_id=" + other.consumer, want: []float64{0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := e.must(200, "GET", "/v1/usage?from="+from+"&to="+to+"&"+tc.query, f.token, nil)
			pts := m["points"].([]any)
			if tc.want == nil {
				var sum float64
				for _, p := range pts {
					sum += p.(map[string]any)["requests"].(float64)
				}
				if sum != 7 {
					t.Fatalf("4xx sum %v in %v", sum, m)
				}
				return
			}
			if len(pts) != len(tc.want) {
				t.Fatalf("points %v", pts)
			}
			for i, w := range tc.want {
				if got := pts[i].(map[string]any)["requests"].(float64); got != w {
					t.Errorf("point %d: %v requests, want %v", i, got, w)
				}
			}
		})
	}
	top := e.must(200, "GET", "/v1/usage/top-consumers?from="+from+"&to="+to, f.token, nil)["items"].([]any)
	if len(top) != 1 || top[0].(map[string]any)["name"] != "Dev" || top[0].(map[string]any)["errors"].(float64) != 10 {
		t.Fatalf("top consumers %v", top)
	}
	for _, bad := range []string{"bucket=week", "from=yesterday", "status=9xx", "from=" + to + "&to=" + from} {
		if r := e.do("GET", "/v1/usage?"+bad, f.token, nil); r.Status != 400 && r.Status != 422 {
			t.Errorf("%s: status %d", bad, r.Status)
		}
	}
}

func TestThrottlingFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	f := e.fixture("acme")
	p := e.must(201, "POST", "/v1/plans", f.token, map[string]any{"name": "Team",
		"rate_limit":  map[string]any{"requests": 100, "per_seconds": 60, "burst": 20, "scope": "consumer"},
		"concurrency": 4, "api_ids": []string{f.api}})
	rl := p["rate_limit"].(map[string]any)
	if rl["burst"].(float64) != 20 || rl["scope"] != "consumer" || p["concurrency"].(float64) != 4 {
		t.Fatalf("plan %v", p)
	}
	a := e.must(200, "PATCH", "/v1/apis/"+f.api, f.token, map[string]any{"rate_limit": map[string]any{"requests": 500, "per_seconds": 1}})
	if a["rate_limit"].(map[string]any)["requests"].(float64) != 500 {
		t.Fatalf("api %v", a)
	}
	tests := []struct {
		name  string
		path  string
		body  map[string]any
		field string
	}{
		{name: "burst not below requests", path: "/v1/plans", field: "rate_limit.burst", body: map[string]any{"name": "x",
			"rate_limit": map[string]any{"requests": 10, "per_seconds": 1, "burst": 10}}},
		{name: "unknown scope", path: "/v1/plans", field: "rate_limit.scope", body: map[string]any{"name": "x",
			"rate_limit": map[string]any{"requests": 10, "per_seconds": 1, "scope": "tenant"}}},
		{name: "negative concurrency", path: "/v1/plans", field: "concurrency", body: map[string]any{"name": "x", "concurrency": -1}},
		{name: "api scope", path: "/v1/apis", field: "rate_limit.scope", body: map[string]any{"name": "y", "slug": "y",
			"base_path": "/y", "upstream_id": f.upstream, "rate_limit": map[string]any{"requests": 1, "per_seconds": 1, "scope": "key"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", tc.path, f.token, tc.body)
			if r.Status != 422 {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			fields := fieldsOf(t, r)
			if len(fields) != 1 || fields[0] != tc.field {
				t.Fatalf("fields %v, want [%s]", fields, tc.field)
			}
		})
	}
}
