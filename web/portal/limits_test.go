package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/limits"
)

// TestLimitsShownAndExplained checks the dashboard's limits card and that a
// change past a limit is refused with the limit's reason next to the field.
func TestLimitsShownAndExplained(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.signup("limited")
	b.seed("http://127.0.0.1:9")
	d := b.get("/dashboard")
	for _, w := range []string{"Limits", "Working API keys", "Compiled config size", "Targets per upstream"} {
		if !strings.Contains(d.body, w) {
			t.Errorf("dashboard lacks %q", w)
		}
	}
	var tenantID string
	if err := e.db.QueryRow(context.Background(), `SELECT id FROM tenants WHERE slug = 'limited'`).Scan(&tenantID); err != nil {
		t.Fatal(err)
	}
	if err := limits.SetOverride(context.Background(), e.db, tenantID, limits.Override{
		limits.TargetsPerUpstream: 1, limits.MinHealthIntervalMS: 5000, limits.APIs: 1}); err != nil {
		t.Fatal(err)
	}
	if d := b.get("/dashboard"); !strings.Contains(d.body, "at the limit") {
		t.Errorf("the dashboard does not show the API limit reached")
	}

	b.get("/upstreams/new")
	p := b.post("/upstreams", url.Values{"name": {"two"}, "algorithm": {"round_robin"},
		"targets": {"http://127.0.0.1:1\nhttp://127.0.0.1:2"}})
	want(t, p, http.StatusUnprocessableEntity, "too many targets")
	if got := fieldErr(p.body, "targets"); !strings.Contains(got, "targets_per_upstream") {
		t.Errorf("targets error = %q, want the limit named", got)
	}
	p = b.post("/upstreams", url.Values{"name": {"fast"}, "algorithm": {"round_robin"}, "targets": {"http://127.0.0.1:1"},
		"hc_enabled": {"on"}, "hc_path": {"/"}, "hc_interval": {"1000"}, "hc_timeout": {"500"}})
	want(t, p, http.StatusUnprocessableEntity, "health check too often")
	if got := fieldErr(p.body, "hc_interval"); !strings.Contains(got, "5000 ms") {
		t.Errorf("interval error = %q, want the minimum", got)
	}
	b.get("/apis/new")
	var up string
	if err := e.db.QueryRow(context.Background(), `SELECT id FROM upstreams WHERE tenant_id = $1`, tenantID).Scan(&up); err != nil {
		t.Fatal(err)
	}
	p = b.post("/apis", url.Values{"name": {"Two"}, "slug": {"two"}, "base_path": {"/two"},
		"upstream_id": {up}, "auth": {"key"}, "strip_base_path": {"on"}, "timeout_ms": {"0"}})
	want(t, p, http.StatusUnprocessableEntity, "too many APIs")
	if !strings.Contains(p.body, "at most 1 APIs") {
		t.Errorf("API form does not say why")
	}
}
