package mgmtapi

import "testing"

// TestJWTSubjectConsumerOfTheTenant: a JWT API's subjects may only name the
// tenant's own consumers (workers cannot check it: consumers are not in the
// snapshot).
func TestJWTSubjectConsumerOfTheTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	a := e.fixture("acme")
	b := e.fixture("globex")
	api := func(consumer string) map[string]any {
		return map[string]any{"name": "JWT", "slug": "jwt", "base_path": "/jwt", "upstream_id": a.upstream, "auth": "jwt",
			"jwt": map[string]any{"issuer": "https://idp.example.com", "audiences": []string{"api"},
				"subjects": []any{map[string]any{"value": "svc-1", "consumer_id": consumer, "plan_id": a.plan}}}}
	}
	r := e.do("POST", "/v1/apis", a.token, api(b.consumer))
	if r.Status != 422 {
		t.Fatalf("another tenant's consumer: %d %s", r.Status, r.Body)
	}
	if f := fieldsOf(t, r); len(f) != 1 || f[0] != "jwt.subjects[0].consumer_id" {
		t.Fatalf("fields %v", f)
	}
	e.must(201, "POST", "/v1/apis", a.token, api(a.consumer))
}
