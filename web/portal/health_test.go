package portal_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/storetest"
)

// report writes a worker's view of a target the way the proxy does.
func report(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys, tenantID, upstreamID, url, worker string, rep proxycfg.TargetHealthReport) {
	t.Helper()
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(context.Background(), keys.TargetHealth(tenantID), proxycfg.TargetHealthField(upstreamID, url, worker), raw).Err(); err != nil {
		t.Fatal(err)
	}
}

var targetLIRE = regexp.MustCompile(`(?s)<li>(.*?)</li>`)

// targetItem returns the list item of the target url on an upstreams page.
func targetItem(t *testing.T, body, url string) string {
	t.Helper()
	for _, m := range targetLIRE.FindAllStringSubmatch(body, -1) {
		if strings.Contains(m[1], "<code>"+url+"</code>") {
			return m[1]
		}
	}
	t.Fatalf("no target %s on the page", url)
	return ""
}

func TestUpstreamLiveHealth(t *testing.T) {
	t.Parallel()
	rdb, keys := storetest.NewRedis(t)
	e := newEnv(t, envOpts{rdb: rdb, keys: keys})
	const (
		good, half, dead, quiet = "http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://10.0.0.3:8080", "http://10.0.0.4:8080"
	)
	b := e.signup("livehealth")
	b.get("/upstreams/new")
	want(t, b.post("/upstreams", map[string][]string{"name": {"orders"}, "algorithm": {"round_robin"},
		"targets": {strings.Join([]string{good, half, dead, quiet}, "\n")}}), http.StatusSeeOther, "create upstream")
	list := b.get("/upstreams")
	m := regexp.MustCompile(`/upstreams/([0-9a-f-]{36})`).FindStringSubmatch(list.body)
	if m == nil {
		t.Fatal("no upstream in the list")
	}
	upstreamID := m[1]
	var tenantID string
	if err := e.db.QueryRow(context.Background(), "SELECT id FROM tenants WHERE slug = $1", "livehealth").Scan(&tenantID); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	ok := proxycfg.TargetHealthReport{Healthy: true, LastCheck: now, CheckedAt: now}
	bad := proxycfg.TargetHealthReport{Healthy: false, LastCheck: now.Add(-3 * time.Minute),
		LastError: "dial tcp 10.0.0.3:8080: connect: connection refused", CheckedAt: now}
	for _, w := range []string{"w1", "w2"} {
		report(t, rdb, keys, tenantID, upstreamID, good, w, ok)
		report(t, rdb, keys, tenantID, upstreamID, dead, w, bad)
	}
	report(t, rdb, keys, tenantID, upstreamID, half, "w1", ok)
	report(t, rdb, keys, tenantID, upstreamID, half, "w2", proxycfg.TargetHealthReport{Healthy: true, Ejected: true, CheckedAt: now})
	// A dead worker's stale view of the quiet target is not shown.
	report(t, rdb, keys, tenantID, upstreamID, quiet, "w-gone", proxycfg.TargetHealthReport{Healthy: true, CheckedAt: now.Add(-time.Hour)})

	p := b.get("/upstreams")
	want(t, p, http.StatusOK, "upstreams page")
	tests := []struct {
		name   string
		url    string
		badge  string
		detail []string
	}{
		{name: "healthy on all workers", url: good, badge: `live-healthy" title="Healthy on 2 of 2 workers">Healthy<`, detail: []string{"reported "}},
		{name: "degraded", url: half, badge: `>Degraded<`, detail: []string{"Healthy on 1 of 2 workers, ejected for errors on 1"}},
		{name: "down", url: dead, badge: `>Down<`, detail: []string{"Down on 2 of 2 workers", "Last error: dial tcp 10.0.0.3:8080: connect: connection refused (3 min ago)"}},
		{name: "no report yet", url: quiet, badge: `>No report yet<`, detail: []string{"No proxy worker has reported"}},
	}
	for _, tc := range tests {
		item := targetItem(t, p.body, tc.url)
		if !strings.Contains(item, tc.badge) {
			t.Errorf("%s: target item lacks the badge %q:\n%s", tc.name, tc.badge, item)
		}
		for _, d := range tc.detail {
			if !strings.Contains(item, d) {
				t.Errorf("%s: target item lacks %q:\n%s", tc.name, d, item)
			}
		}
	}
	for _, s := range []string{"1 of 4 targets healthy", `<script src="/static/live.js" defer></script>`, `id="live-health"`} {
		if !strings.Contains(p.body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if csp := p.resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q does not allow the page's own script", csp)
	}
	// The upstream's own page has the same live section above its form.
	up := b.get("/upstreams/" + upstreamID)
	want(t, up, http.StatusOK, "upstream page")
	for _, s := range []string{`id="live-health"`, "Live health", "1 of 4 targets healthy", ">Down<", "connection refused (3 min ago)", "live.js"} {
		if !strings.Contains(up.body, s) {
			t.Errorf("upstream page lacks %q", s)
		}
	}
	js := b.get("/static/live.js")
	want(t, js, http.StatusOK, "live.js")
	if !strings.Contains(js.body, "live-health") {
		t.Errorf("live.js does not refresh the live-health element")
	}

	// Another tenant sees none of it: the upstream answers 404 and its own
	// page shows no report.
	other := e.signup("otherco")
	if got := other.get("/upstreams/" + upstreamID); got.status != http.StatusNotFound {
		t.Errorf("other tenant's GET of the upstream: %d, want 404", got.status)
	}
	other.get("/upstreams/new")
	want(t, other.post("/upstreams", map[string][]string{"name": {"mine"}, "algorithm": {"round_robin"},
		"targets": {good}}), http.StatusSeeOther, "create other upstream")
	op := other.get("/upstreams")
	item := targetItem(t, op.body, good)
	if !strings.Contains(item, ">No report yet<") || strings.Contains(op.body, "connection refused") || strings.Contains(op.body, ">Healthy<") {
		t.Errorf("other tenant's page shows live health it does not own:\n%s", item)
	}
}

func TestUpstreamsWithoutRedis(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.signup("noredis")
	b.seed("http://127.0.0.1:9")
	p := b.get("/upstreams")
	want(t, p, http.StatusOK, "upstreams page")
	if strings.Contains(p.body, "live.js") || strings.Contains(p.body, "No report yet") || !strings.Contains(p.body, "not probed") {
		t.Errorf("without Redis the page must show the configured state only")
	}
}
