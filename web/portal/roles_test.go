package portal_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/accounts"
)

// invite has the owner invite email with role and returns the invitee's
// browser, signed in after accepting through the emailed link.
func (e *env) invite(owner *browser, email, role string) *browser {
	e.t.Helper()
	owner.get("/team")
	want(e.t, owner.post("/team/invites", url.Values{"email": {email}, "role": {role}}), http.StatusSeeOther, "invite")
	link := lastLink(e.t, e.sink, email, "/invite")
	b := e.browser()
	p := b.get(link)
	want(e.t, p, http.StatusOK, "invite page")
	if !strings.Contains(p.body, role) {
		e.t.Errorf("invite page does not name the role %s", role)
	}
	tok, _ := url.ParseQuery(strings.SplitN(link, "?", 2)[1])
	want(e.t, b.post("/invite", url.Values{"token": {tok.Get("token")}, "name": {"Invitee"}, "password": {"invitee password"}}),
		http.StatusSeeOther, "accept invite")
	// A used invitation cannot be used again.
	again := e.browser()
	again.get("/login")
	want(e.t, again.post("/invite", url.Values{"token": {tok.Get("token")}, "name": {"Again"}, "password": {"invitee password"}}),
		http.StatusNotFound, "reuse invite")
	b.get("/dashboard")
	return b
}

// mutations lists every mutating route with the ids of seeded objects.
func mutations(s seeded, d devSeed, userID, inviteID, tokenID, domainID string) []string {
	return append([]string{
		"/apis", "/apis/" + s.api, "/apis/" + s.api + "/delete", "/apis/" + s.api + "/openapi",
		"/upstreams", "/upstreams/" + s.upstream, "/upstreams/" + s.upstream + "/delete",
		"/plans", "/plans/" + s.plan, "/plans/" + s.plan + "/delete",
		"/consumers", "/consumers/" + s.consumer, "/consumers/" + s.consumer + "/delete", "/consumers/" + s.consumer + "/keys",
		"/keys/" + s.key + "/rotate", "/keys/" + s.key + "/revoke",
		"/team/invites", "/team/invites/" + inviteID + "/revoke", "/team/users/" + userID + "/role", "/team/users/" + userID + "/remove",
		"/tokens", "/tokens/" + tokenID + "/revoke",
		"/settings/branding", "/settings/sso", "/settings/domains", "/settings/domains/" + domainID + "/verify",
		"/settings/domains/" + domainID + "/delete",
	}, devMutations(s, d)...)
}

func TestViewerCannotChangeAnything(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	owner := e.signup("roles")
	s := owner.seed("http://127.0.0.1:9")
	d := e.seedDeveloper(owner, "roles", s, "dev@example.com")
	viewer := e.invite(owner, "viewer@roles.example", accounts.RoleViewer)
	admin := e.invite(owner, "admin@roles.example", accounts.RoleAdmin)

	// Ids of the other kinds of objects, made by the owner.
	owner.get("/team")
	want(t, owner.post("/team/invites", url.Values{"email": {"pending@roles.example"}, "role": {"viewer"}}), http.StatusSeeOther, "invite")
	team := owner.get("/team").body
	inviteID := between(team, "/team/invites/", "/revoke")
	userID := between(team, "/team/users/", "/role")
	owner.get("/tokens")
	tokens := owner.post("/tokens", url.Values{"name": {"ci"}}).body
	tokenID := between(tokens, "/tokens/", "/revoke")
	owner.get("/settings")
	want(t, owner.post("/settings/domains", url.Values{"domain": {"api.roles.example"}}), http.StatusSeeOther, "add domain")
	domainID := between(owner.get("/settings").body, "/settings/domains/", "/verify")
	for _, id := range []string{inviteID, userID, tokenID, domainID} {
		if len(id) != 36 {
			t.Fatalf("could not find object ids on the pages: %q", id)
		}
	}

	for _, path := range mutations(s, d, userID, inviteID, tokenID, domainID) {
		t.Run("viewer "+path, func(t *testing.T) {
			viewer.get("/dashboard")
			p := viewer.post(path, url.Values{"name": {"x"}, "role": {"owner"}, "email": {"x@y.example"}})
			want(t, p, http.StatusForbidden, "viewer POST "+path)
		})
	}
	// Admins manage objects but not the team or SSO.
	for _, path := range []string{"/team/invites", "/team/users/" + userID + "/role", "/team/users/" + userID + "/remove", "/settings/sso"} {
		t.Run("admin "+path, func(t *testing.T) {
			admin.get("/dashboard")
			want(t, admin.post(path, url.Values{"role": {"owner"}, "email": {"x@y.example"}}), http.StatusForbidden, "admin POST "+path)
		})
	}
	admin.get("/consumers")
	want(t, admin.post("/consumers", url.Values{"name": {"by admin"}, "email": {"a@y.example"}}), http.StatusSeeOther, "admin creates consumer")

	// Everything is still there, and viewers read every page.
	for _, path := range []string{"/dashboard", "/apis", "/apis/" + s.api, "/upstreams", "/upstreams/" + s.upstream, "/plans",
		"/plans/" + s.plan, "/consumers", "/consumers/" + s.consumer, "/consumers/" + d.consumer, "/team", "/tokens", "/audit", "/settings",
		"/developer-portal", "/approvals"} {
		p := viewer.get(path)
		want(t, p, http.StatusOK, "viewer GET "+path)
		if strings.Contains(p.body, `class="btn btn-danger"`) {
			t.Errorf("viewer sees a delete button on %s", path)
		}
	}
	if !strings.Contains(viewer.get("/consumers/"+s.consumer).body, "status-active") {
		t.Errorf("the key was changed by a viewer")
	}
	// Viewers see the queue but no decision buttons.
	if q := viewer.get("/approvals").body; !strings.Contains(q, "dev@example.com") || strings.Contains(q, "/approve") {
		t.Errorf("viewer's approval queue: want the developer without decision buttons")
	}
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	j := strings.Index(s, to)
	if j < 0 {
		return ""
	}
	return s[:j]
}

func TestOtherTenantsObjectsAreNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	a := e.signup("tenant-a")
	s := a.seed("http://127.0.0.1:9")
	d := e.seedDeveloper(a, "tenant-a", s, "dev@example.com")
	b := e.signup("tenant-b")
	a.get("/settings")
	want(t, a.post("/settings/domains", url.Values{"domain": {"api.a.example"}}), http.StatusSeeOther, "add domain")
	domainID := between(a.get("/settings").body, "/settings/domains/", "/verify")
	a.get("/tokens")
	tokenID := between(a.post("/tokens", url.Values{"name": {"ci"}}).body, "/tokens/", "/revoke")
	a.get("/team")
	want(t, a.post("/team/invites", url.Values{"email": {"p@a.example"}, "role": {"viewer"}}), http.StatusSeeOther, "invite")
	team := a.get("/team").body
	inviteID := between(team, "/team/invites/", "/revoke")
	userID := between(team, "/team/users/", "/role")

	for _, path := range []string{"/apis/" + s.api, "/upstreams/" + s.upstream, "/plans/" + s.plan, "/consumers/" + s.consumer} {
		t.Run("GET "+path, func(t *testing.T) {
			want(t, b.get(path), http.StatusNotFound, "tenant b GET "+path)
		})
	}
	for _, path := range mutations(s, d, userID, inviteID, tokenID, domainID) {
		if !idRE.MatchString(path) {
			continue // routes without an object id act in the caller's own tenant
		}
		t.Run("POST "+path, func(t *testing.T) {
			b.get("/dashboard")
			p := b.post(path, url.Values{"name": {"x"}, "email": {"x@y.example"}, "role": {"viewer"}, "plan_id": {s.plan},
				"slug": {"x"}, "base_path": {"/x"}, "upstream_id": {s.upstream}, "targets": {"http://127.0.0.1:9"},
				"document": {"openapi: 3.0.3"}})
			want(t, p, http.StatusNotFound, "tenant b POST "+path)
		})
	}
	// Tenant A's objects are untouched.
	for _, path := range []string{"/apis/" + s.api, "/upstreams/" + s.upstream, "/plans/" + s.plan, "/consumers/" + s.consumer} {
		want(t, a.get(path), http.StatusOK, "tenant a GET "+path)
	}
	if !strings.Contains(a.get("/consumers/"+s.consumer).body, "status-active") {
		t.Errorf("tenant a's key was revoked by tenant b")
	}
}
