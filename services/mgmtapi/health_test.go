package mgmtapi

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

func TestUpstreamHealthRoute(t *testing.T) {
	t.Parallel()
	e, rdb, keys := newUsageEnv(t)
	a := e.fixture("acme")
	b := e.fixture("other")
	url := e.must(200, "GET", "/v1/upstreams/"+a.upstream, a.token, nil)["targets"].([]any)[0].(map[string]any)["url"].(string)
	now := time.Now().UTC()
	for _, w := range []struct {
		worker string
		rep    proxycfg.TargetHealthReport
	}{
		{"w1", proxycfg.TargetHealthReport{Healthy: true, LastCheck: now, CheckedAt: now}},
		{"w2", proxycfg.TargetHealthReport{Healthy: false, LastCheck: now, LastError: "status 503", CheckedAt: now}},
		{"w-dead", proxycfg.TargetHealthReport{Healthy: false, LastError: "old", CheckedAt: now.Add(-time.Hour)}},
	} {
		raw, _ := json.Marshal(w.rep)
		if err := rdb.HSet(context.Background(), keys.TargetHealth(a.tenantID), proxycfg.TargetHealthField(a.upstream, url, w.worker), raw).Err(); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		token    string
		upstream string
		status   int
		want     string // the target's status
		workers  float64
	}{
		{name: "owner sees both live workers", token: a.token, upstream: a.upstream, status: 200, want: "degraded", workers: 2},
		{name: "other tenant gets 404", token: b.token, upstream: a.upstream, status: 404},
		{name: "other tenant's own upstream has no report", token: b.token, upstream: b.upstream, status: 200, want: "unknown"},
		{name: "no token", token: "", upstream: a.upstream, status: 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := e.must(tc.status, "GET", "/v1/upstreams/"+tc.upstream+"/health", tc.token, nil)
			if tc.status != 200 {
				return
			}
			if got["upstream_id"] != tc.upstream {
				t.Fatalf("upstream_id %v", got["upstream_id"])
			}
			targets := got["targets"].([]any)
			if len(targets) != 1 {
				t.Fatalf("targets %v", targets)
			}
			tg := targets[0].(map[string]any)
			if tg["status"] != tc.want || tg["workers"].(float64) != tc.workers {
				t.Fatalf("target %v, want status %s on %v workers", tg, tc.want, tc.workers)
			}
			if tc.want == "degraded" && (tg["last_error"] != "status 503" || tg["healthy_workers"].(float64) != 1) {
				t.Fatalf("target %v, want last_error status 503 and 1 healthy worker", tg)
			}
		})
	}
}
