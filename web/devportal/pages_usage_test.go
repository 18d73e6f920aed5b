package devportal_test

import (
	"regexp"
	"strings"
	"testing"
)

// TestPageUsage: before any app the page says what to do; with traffic it
// charts requests and latency for the last 24 hours and 30 days (all apps,
// one app, one key), counts per app and key, and each subscription's quota
// with a progress bar. Another developer's traffic never shows.
func TestPageUsage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	c, dev := e.pageSignedIn("acme", "charts@example.com", true)
	c.page("GET", "/usage", nil).must(t, 200).contains(t, `id="usage-empty"`, "No apps yet — create one to get a key",
		`href="/apps"`).lacks(t, `id="usage-charts"`)

	appID := c.pageNewApp("Dashboard")
	// An app without traffic: zero charts and the quota-less state.
	c.page("GET", "/usage", nil).must(t, 200).contains(t, `id="usage-charts"`, `id="chart-day-requests"`,
		`id="chart-month-latency"`, "No calls in this period yet", `id="quotas-empty"`)

	c.pageSubscribe(appID, f.FreePlan.ID).must(t, 200)
	key := pageKeys(t, e, "acme", appID)[0]
	e.pageInsertUsage("acme", key.ID, dev.ConsumerID, 2, 1200)
	e.pageInsertUsage("acme", key.ID, dev.ConsumerID, 4, 30)
	e.pageInsertUsage("acme", key.ID, dev.ConsumerID, 5, 4)
	// Another developer's traffic of the same tenant is not counted.
	other, odev := e.pageSignedIn("acme", "other@example.com", true)
	oApp := other.pageNewApp("Theirs")
	other.pageSubscribe(oApp, f.FreePlan.ID).must(t, 200)
	e.pageInsertUsage("acme", pageKeys(t, e, "acme", oApp)[0].ID, odev.ConsumerID, 2, 99999)

	for _, path := range []string{"/usage", "/usage?app=" + appID, "/usage?key=" + key.ID} {
		r := c.page("GET", path, nil).must(t, 200)
		r.contains(t, `id="usage-charts"`, `id="usage-day"`, `id="usage-month"`, `id="chart-day-requests"`,
			`id="chart-day-latency"`, `id="chart-month-requests"`, `id="chart-month-latency"`,
			`<svg class="chart"`, "<rect class=\"s1\"", `<circle class="dot s1"`, "1,234", "34", `id="quotas"`,
			`role="progressbar"`, "of 1,000 used", `id="usage-apps"`, `id="usage-keys"`, key.Prefix+"…").
			lacks(t, "99,999", "Theirs", "No calls in this period yet")
		// Both windows count the same traffic.
		if n := strings.Count(r.body, `<div class="stat-value">1,234</div>`); n != 2 {
			t.Errorf("%s: %d windows with 1,234 requests", path, n)
		}
	}
	r := c.page("GET", "/usage?app="+appID, nil)
	if !regexp.MustCompile(`class="chip active" aria-current="page"|class="chip active"`).MatchString(r.body) {
		t.Error("no active scope chip")
	}
	r.contains(t, `· Dashboard</span>`)
	// Latency from the 5-10 ms histogram bucket.
	if !regexp.MustCompile(`[5-9]\.\d ms`).MatchString(r.body) {
		t.Errorf("no latency figure in 5-10 ms\n%s", pageSnippet(r.body))
	}
	c.page("GET", "/usage?app=nope", nil).must(t, 404)
}
