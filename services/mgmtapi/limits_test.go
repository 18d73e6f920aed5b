package mgmtapi

import (
	"encoding/json"
	"testing"

	"github.com/tollgate/tollgate/services/limits"
)

// TestLimitsAPI covers the operator's limits routes, the tenant's view and
// the limit-exceeded problem: 409, stable type, the limit and its value,
// nothing written.
func TestLimitsAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	f := e.fixture("limited")
	other, _ := e.tenant("other")

	// The tenant sees its limits and usage.
	got := e.must(200, "GET", "/v1/limits", f.token, nil)
	lim := got["limits"].(map[string]any)
	use := got["usage"].(map[string]any)
	if lim["apis"].(float64) != limits.DefaultAPIs || use["apis"].(float64) != 1 || use["keys"].(float64) != 1 ||
		use["config_bytes"].(float64) <= 0 {
		t.Errorf("GET /v1/limits = %v", got)
	}

	// Only the operator sets them.
	body := map[string]any{"apis": 1, "plans": nil}
	if r := e.do("PUT", "/v1/tenants/"+f.tenantID+"/limits", f.token, body); r.Status != 401 {
		t.Errorf("tenant token set limits: %d", r.Status)
	}
	set := e.must(200, "PUT", "/v1/tenants/"+f.tenantID+"/limits", testOperatorToken, body)
	if set["limits"].(map[string]any)["apis"].(float64) != 1 || len(set["overrides"].(map[string]any)) != 1 {
		t.Errorf("PUT limits = %v", set)
	}
	if r := e.do("PUT", "/v1/tenants/"+f.tenantID+"/limits", testOperatorToken, map[string]any{"apis": -1, "bogus": 3}); r.Status != 422 {
		t.Errorf("bad limits: %d %s", r.Status, r.Body)
	} else if fields := fieldsOf(t, r); len(fields) != 2 {
		t.Errorf("bad limits fields %v", fields)
	}
	e.must(404, "PUT", "/v1/tenants/00000000-0000-0000-0000-000000000000/limits", testOperatorToken, body)
	e.must(404, "GET", "/v1/tenants/not-an-id/limits", testOperatorToken, nil)
	if g := e.must(200, "GET", "/v1/tenants/"+f.tenantID+"/limits", testOperatorToken, nil); g["limits"].(map[string]any)["apis"].(float64) != 1 {
		t.Errorf("operator GET = %v", g)
	}

	before := e.counts()
	r := e.do("POST", "/v1/apis", f.token, map[string]any{"name": "Two", "slug": "two", "base_path": "/two", "upstream_id": f.upstream})
	if r.Status != 409 {
		t.Fatalf("over the limit: %d %s", r.Status, r.Body)
	}
	fieldsOf(t, r)
	var p Problem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != ProblemBase+"limit-exceeded" || p.Limit != "apis" || p.Max == nil || *p.Max != 1 || p.Value == nil || *p.Value != 2 {
		t.Errorf("problem %s", r.Body)
	}
	if after := e.counts(); !equalCounts(before, after) {
		t.Errorf("a refused change wrote: %v -> %v", before, after)
	}
	// Other tenants keep the defaults.
	e.must(201, "POST", "/v1/upstreams", other, map[string]any{"name": "b", "targets": []any{map[string]any{"url": "http://127.0.0.1:9"}}})
	if g := e.must(200, "GET", "/v1/limits", other, nil); g["limits"].(map[string]any)["apis"].(float64) != limits.DefaultAPIs {
		t.Errorf("other tenant's limits %v", g)
	}
	// {} returns the tenant to the defaults.
	e.must(200, "PUT", "/v1/tenants/"+f.tenantID+"/limits", testOperatorToken, map[string]any{})
	e.must(201, "POST", "/v1/apis", f.token, map[string]any{"name": "Two", "slug": "two", "base_path": "/two", "upstream_id": f.upstream})
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
