package portal_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/storetest"
)

// TestUpstreamLiveHealthInBrowser shows the upstreams page with two proxy
// workers' reports in Chromium, saves a screenshot, and checks that the
// page's own script (allowed by its CSP) refreshes a badge when a target
// recovers. It skips without Chromium, except in CI.
func TestUpstreamLiveHealthInBrowser(t *testing.T) {
	t.Parallel()
	ctx := startChromium(t)
	rdb, keys := storetest.NewRedis(t)
	e := newEnv(t, envOpts{rdb: rdb, keys: keys})
	b := e.signup("acme")
	const (
		a1, a2, a3 = "https://orders-1.internal:8443", "https://orders-2.internal:8443", "https://orders-3.internal:8443"
		p1, p2     = "http://10.0.4.21:9000", "http://10.0.4.22:9000"
	)
	mk := func(name, targets string) string {
		b.get("/upstreams/new")
		want(t, b.post("/upstreams", map[string][]string{"name": {name}, "algorithm": {"round_robin"}, "targets": {targets},
			"hc_enabled": {"on"}, "hc_path": {"/healthz"}, "hc_interval": {"2000"}, "hc_timeout": {"1000"},
			"hc_healthy": {"2"}, "hc_unhealthy": {"3"}}), http.StatusSeeOther, "create upstream "+name)
		list := b.get("/upstreams")
		m := regexp.MustCompile(`href="/upstreams/([0-9a-f-]{36})">` + name + `<`).FindStringSubmatch(list.body)
		if m == nil {
			t.Fatalf("upstream %s not listed", name)
		}
		return m[1]
	}
	orders := mk("orders", a1+"\n"+a2+"\n"+a3)
	payments := mk("payments", p1+"\n"+p2)
	var tenantID string
	if err := e.db.QueryRow(context.Background(), "SELECT id FROM tenants WHERE slug = 'acme'").Scan(&tenantID); err != nil {
		t.Fatal(err)
	}
	// publish writes both workers' views, fresh (as the workers would every
	// two seconds), with the second payments target failing or not.
	publish := func(p2Down bool) {
		now := time.Now().UTC()
		ok := proxycfg.TargetHealthReport{Healthy: true, LastCheck: now, CheckedAt: now}
		second := ok
		if p2Down {
			second = proxycfg.TargetHealthReport{Healthy: false, LastCheck: now.Add(-4 * time.Second), CheckedAt: now,
				LastError: "dial tcp 10.0.4.22:9000: connect: connection refused"}
		}
		for _, w := range []string{"worker-a", "worker-b"} {
			report(t, rdb, keys, tenantID, orders, a1, w, ok)
			report(t, rdb, keys, tenantID, orders, a2, w, ok)
			report(t, rdb, keys, tenantID, payments, p1, w, ok)
			report(t, rdb, keys, tenantID, payments, p2, w, second)
		}
		report(t, rdb, keys, tenantID, orders, a3, "worker-a", ok)
		report(t, rdb, keys, tenantID, orders, a3, "worker-b", proxycfg.TargetHealthReport{Healthy: false, LastCheck: now, CheckedAt: now,
			LastError: "status 503"})
	}

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	do("log in",
		chromedp.Navigate(e.srv.URL+"/login"), chromedp.WaitVisible(chromedp.CSS(`#f-email`)),
		chromedp.SendKeys(chromedp.CSS(`#f-email`), "owner@acme.example"),
		chromedp.SendKeys(chromedp.CSS(`#f-password`), "correct horse battery"),
		chromedp.Click(chromedp.CSS(`main button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`nav`)),
	)
	publish(true)
	do("upstreams page", chromedp.Navigate(e.srv.URL+"/upstreams"), chromedp.WaitVisible(chromedp.CSS(`.badge.live-down`)))
	shoot := func(name string) { screenshot(t, ctx, name) }
	shoot("upstreams-live-health")
	txt, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#live-health`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Healthy on 2 of 2 workers", "Healthy on 1 of 2 workers", "Down on 2 of 2 workers", "connection refused"} {
		if !strings.Contains(txt, s) {
			t.Errorf("live section lacks %q:\n%s", s, txt)
		}
	}
	// The upstream's own page: the live section above the form. The
	// payments target recovers on both workers: live.js swaps the new state
	// in without a reload.
	publish(true)
	do("upstream page", chromedp.Navigate(e.srv.URL+"/upstreams/"+payments), chromedp.WaitVisible(chromedp.CSS(`#live-health .badge.live-down`)))
	shoot("upstream-live-health")
	publish(false)
	do("badge refreshed", chromedp.WaitNotPresent(chromedp.CSS(`.badge.live-down`)), chromedp.WaitVisible(chromedp.CSS(`#f-name`)))
}
