package devportal_test

import (
	"bytes"
	"net/url"
	"testing"
)

func apiMustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestAPIIsolation: every object of a developer is 404 for another
// developer of the same portal and for any developer of another tenant's
// portal (with the same ids), and a token of one portal is unknown on
// another.
func TestAPIIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	acme := e.tenants["acme"]
	a := e.apiSignupVerified("acme", "a@example.com")
	b := e.apiSignupVerified("acme", "b@example.com")
	g := e.apiSignupVerified("globex", "g@example.com")
	sa := e.apiSubscribeFree(a)
	e.apiSubscribeFree(b)
	e.apiSubscribeFree(g)

	// A's token is unknown on globex's portal.
	aOnGlobex := e.client("globex")
	aOnGlobex.bearer = a.bearer
	aOnGlobex.api("GET", "/api/me", nil).must(401)
	aOnGlobex.api("GET", "/api/apps/"+sa.AppID, nil).must(401)

	reads := []string{
		"/api/apps/" + sa.AppID,
		"/api/apps/" + sa.AppID + "/subscriptions",
		"/api/subscriptions/" + sa.SubID,
		"/api/subscriptions/" + sa.SubID + "/keys",
		"/api/keys/" + sa.KeyID,
		"/api/usage/series?app_id=" + sa.AppID,
		"/api/usage/series?key_id=" + sa.KeyID,
	}
	writes := []struct {
		method, path string
		body         any
	}{
		{"PATCH", "/api/apps/" + sa.AppID, map[string]string{"name": "mine now"}},
		{"POST", "/api/apps/" + sa.AppID + "/subscriptions", map[string]string{"plan_id": acme.FreePlan.ID}},
		{"POST", "/api/subscriptions/" + sa.SubID + "/keys", nil},
		{"POST", "/api/keys/" + sa.KeyID + "/rotate", map[string]int{"grace_seconds": 60}},
		{"DELETE", "/api/keys/" + sa.KeyID, nil},
		{"DELETE", "/api/subscriptions/" + sa.SubID, nil},
		{"DELETE", "/api/apps/" + sa.AppID, nil},
	}
	for _, other := range []struct {
		name string
		c    *client
	}{{"same tenant", b}, {"other tenant", g}} {
		t.Run(other.name, func(t *testing.T) {
			for _, p := range reads {
				r := other.c.api("GET", p, nil)
				r.t = t
				if typ := r.must(404).problemType(); typ != "not-found" {
					t.Errorf("GET %s: %s", p, typ)
				}
			}
			for _, w := range writes {
				r := other.c.api(w.method, w.path, w.body)
				r.t = t
				r.must(404)
			}
			for _, p := range []string{"/api/apps", "/api/subscriptions", "/api/usage"} {
				body := other.c.api("GET", p, nil).must(200).Body
				for _, id := range []string{sa.AppID, sa.SubID, sa.KeyID} {
					if bytes.Contains(body, []byte(id)) {
						t.Errorf("GET %s shows %s: %s", p, id, body)
					}
				}
			}
		})
	}
	// Nothing of A's changed.
	if k := a.api("GET", "/api/keys/"+sa.KeyID, nil).must(200).obj(); jsonStr(k, "status") != "active" || k["expires_at"] != nil {
		t.Errorf("A's key after the others tried: %v", k)
	}
	if app := a.api("GET", "/api/apps/"+sa.AppID, nil).must(200).obj(); jsonStr(app, "name") != "App of acme" {
		t.Errorf("A's app after the others tried: %v", app)
	}

	// acme's catalogue ids on globex's portal, signed in or not.
	for _, c := range []*client{g, e.client("globex")} {
		for _, p := range []string{"/api/apis/" + acme.API.ID, "/api/apis/" + acme.API.ID + "/openapi.json",
			"/api/apis/" + acme.API.ID + "/sdk/go", "/api/apis/" + acme.API.ID + "/sdk/typescript",
			"/api/plans/" + acme.FreePlan.ID} {
			c.api("GET", p, nil).must(404)
		}
		list := c.api("GET", "/api/apis", nil).must(200).Body
		plans := c.api("GET", "/api/plans", nil).must(200).Body
		for _, id := range []string{acme.API.ID, acme.FreePlan.ID, acme.ApprovalPlan.ID} {
			if bytes.Contains(list, []byte(id)) || bytes.Contains(plans, []byte(id)) {
				t.Errorf("globex's catalogue shows acme's %s", id)
			}
		}
	}
	g.api("POST", "/api/try/"+acme.API.ID, map[string]string{"method": "GET", "path": "/"}).must(404)
	// A globex app cannot take an acme plan.
	gApp := g.api("POST", "/api/apps", map[string]string{"name": "G"}).must(201).obj()
	if fe := g.api("POST", "/api/apps/"+jsonStr(gApp, "id")+"/subscriptions",
		map[string]string{"plan_id": acme.FreePlan.ID}).must(422).fieldErrors(); len(fe) != 1 || fe[0] != "plan_id" {
		t.Errorf("foreign plan: %v", fe)
	}

	// An unknown portal host has no API at all.
	none := &client{e: e, slug: "initech", hc: e.client("acme").hc}
	if typ := none.api("GET", "/api/apis", nil).must(404).problemType(); typ != "not-found" {
		t.Errorf("unknown portal: %s", typ)
	}
}
