package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// portal calls a tenant's developer portal JSON API on the control plane
// (Host <slug>.developers.localhost) and decodes the answer, failing the test
// on an unexpected status.
func (p *platform) portal(slug, method, path, token string, body any, want int, out any) {
	p.t.Helper()
	status, data := p.portalRaw(slug, method, path, token, body)
	if status != want {
		p.t.Fatalf("portal %s %s %s: status %d, want %d: %s", slug, method, path, status, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			p.t.Fatalf("portal %s %s: decode %q: %v", method, path, data, err)
		}
	}
}

func (p *platform) portalRaw(slug, method, path, token string, body any) (int, []byte) {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, p.control+path, rd)
	req.Host = slug + ".developers.localhost"
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatalf("portal %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

var mailTokenRE = regexp.MustCompile(`token=([A-Za-z0-9_]+)`)

// portalDeveloper signs a developer up in slug's portal, opens the
// verification link from the SMTP server, signs in and returns the token.
func (p *platform) portalDeveloper(slug, email string) string {
	p.t.Helper()
	p.portal(slug, "POST", "/api/signup", "", map[string]any{"email": email, "password": "correct horse battery",
		"name": "Ada Lovelace"}, 202, nil)
	m := p.smtp.WaitFor(p.t, email, 10*time.Second)
	if m.Text == "" || m.HTML == "" || !strings.Contains(m.Subject, "Confirm") {
		p.t.Fatalf("verification mail: subject %q, text %d bytes, html %d bytes", m.Subject, len(m.Text), len(m.HTML))
	}
	tok := mailTokenRE.FindStringSubmatch(m.Text)
	if tok == nil || !strings.Contains(m.Text, "http://"+slug+".developers.localhost") {
		p.t.Fatalf("no verification link for %s's portal in %q", slug, m.Text)
	}
	p.portal(slug, "POST", "/api/verify", "", map[string]any{"token": tok[1]}, 200, nil)
	var login struct{ Token string }
	p.portal(slug, "POST", "/api/login", "", map[string]any{"email": email, "password": "correct horse battery"}, 200, &login)
	return login.Token
}

// portalTenant enables a tenant's developer portal and publishes its API
// with a free public plan; it returns the plan's id.
func (p *platform) portalTenant(s tenantSetup, quota int) string {
	p.t.Helper()
	p.api("PUT", "/v1/portal", s.token, map[string]any{"enabled": true, "signup": "open", "display_name": "Echo Developers"}, 200, nil)
	p.api("PATCH", "/v1/apis/"+s.api, s.token, map[string]any{"published": true}, 200, nil)
	var plan idOf
	p.api("POST", "/v1/plans", s.token, map[string]any{"name": "Free", "public": true,
		"rate_limit": map[string]any{"requests": 100, "per_seconds": 1},
		"quota":      map[string]any{"requests": quota, "period": "month"}, "api_ids": []string{s.api}}, 201, &plan)
	return plan.ID
}

type subscribed struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Key    *struct {
		ID, Key, Prefix string
	} `json:"key"`
	CheckoutURL *string `json:"checkout_url"`
}

// TestDeveloperPortalEndToEnd drives a developer through the portal's JSON
// API on a running control plane with two workers: sign up, verify from a
// real SMTP server, subscribe to a free plan, call the API on both workers,
// share one quota between two keys, rotate with an overlap (the old key
// works on both workers until it ends), revoke (refused on both workers
// within a second), and a suspension by the tenant.
func TestDeveloperPortalEndToEnd(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	back := httptest.NewServer(demoBackend("a"))
	defer back.Close()
	acme := p.setupTenant("acme", []string{back.URL}, 100)
	globex := p.setupTenant("globex", []string{back.URL}, 100)
	free := p.portalTenant(acme, 6)
	p.portalTenant(globex, 6)
	const host = "acme.localhost"

	tok := p.portalDeveloper("acme", "ada@example.com")
	var apis struct {
		Items []struct{ ID, URL string }
	}
	p.portal("acme", "GET", "/api/apis", "", nil, 200, &apis)
	if len(apis.Items) != 1 || apis.Items[0].ID != acme.api || !strings.HasPrefix(apis.Items[0].URL, "http://acme.localhost:") ||
		!strings.HasSuffix(apis.Items[0].URL, "/echo") {
		t.Fatalf("catalogue: %+v", apis)
	}
	var app idOf
	p.portal("acme", "POST", "/api/apps", tok, map[string]any{"name": "My integration"}, 201, &app)
	var sub subscribed
	p.portal("acme", "POST", "/api/apps/"+app.ID+"/subscriptions", tok, map[string]any{"plan_id": free}, 201, &sub)
	if sub.Status != "active" || sub.Key == nil || !strings.HasPrefix(sub.Key.Key, "tg_") || sub.CheckoutURL != nil {
		t.Fatalf("subscription: %+v", sub)
	}
	key1 := sub.Key.Key
	for w := range p.workers {
		took := p.eventually(5*time.Second, "the portal key works", func() bool { return p.call(w, host, "/echo/a", key1).status == 200 })
		t.Logf("worker %d served the new portal key after %v", w, took)
	}

	// A second key shares the subscription's quota (6 a month): 2 calls are
	// used above; 2 more with each key use it up, on either worker.
	var k2 struct{ ID, Key string }
	p.portal("acme", "POST", "/api/subscriptions/"+sub.ID+"/keys", tok, nil, 201, &k2)
	p.eventually(5*time.Second, "the second key works", func() bool { return p.call(0, host, "/echo/b", k2.Key).status == 200 })
	if a := p.call(1, host, "/echo/c", key1); a.status != 200 {
		t.Fatalf("key 1: %d %s", a.status, a.body)
	}
	if a := p.call(1, host, "/echo/d", k2.Key); a.status != 200 {
		t.Fatalf("key 2: %d %s", a.status, a.body)
	}
	// 5 used; the 6th passes, then both keys are out on both workers.
	if a := p.call(0, host, "/echo/e", key1); a.status != 200 {
		t.Fatalf("6th request: %d %s", a.status, a.body)
	}
	for w := range p.workers {
		for _, k := range []string{key1, k2.Key} {
			if a := p.call(w, host, "/echo/f", k); a.status != 429 || !strings.Contains(a.body, "quota-exceeded") {
				t.Fatalf("over quota on worker %d: %d %s", w, a.status, a.body)
			}
		}
	}
	var usage struct {
		Items []struct {
			KeyID    string `json:"key_id"`
			Requests int64  `json:"requests"`
			Quota    struct {
				Limit, Used int64
				Remaining   *int64
			} `json:"quota"`
		}
	}
	p.portal("acme", "GET", "/api/usage", tok, nil, 200, &usage)
	if len(usage.Items) != 2 {
		t.Fatalf("usage items: %+v", usage)
	}
	for _, it := range usage.Items {
		if it.Quota.Limit != 6 || it.Quota.Used != 6 || it.Quota.Remaining == nil || *it.Quota.Remaining != 0 {
			t.Errorf("quota of key %s: %+v (the subscription's, shared by its keys)", it.KeyID, it.Quota)
		}
	}

	// Rotation on a subscription to a plan with room in its quota.
	var big idOf
	p.api("POST", "/v1/plans", acme.token, map[string]any{"name": "Big", "public": true,
		"quota": map[string]any{"requests": 1000, "period": "month"}, "api_ids": []string{acme.api}}, 201, &big)
	var sub2 subscribed
	var app2 idOf
	p.portal("acme", "POST", "/api/apps", tok, map[string]any{"name": "Second"}, 201, &app2)
	p.portal("acme", "POST", "/api/apps/"+app2.ID+"/subscriptions", tok, map[string]any{"plan_id": big.ID}, 201, &sub2)
	old := sub2.Key
	p.eventually(5*time.Second, "the key works", func() bool { return p.call(0, host, "/echo/g", old.Key).status == 200 })
	var rot struct {
		ID, Key              string
		PreviousKeyExpiresAt time.Time `json:"previous_key_expires_at"`
	}
	p.portal("acme", "POST", "/api/keys/"+old.ID+"/rotate", tok, map[string]any{"grace_seconds": 3}, 201, &rot)
	if rot.Key == "" || rot.Key == old.Key || time.Until(rot.PreviousKeyExpiresAt) > 3*time.Second {
		t.Fatalf("rotation: %+v", rot)
	}
	for w := range p.workers {
		p.eventually(5*time.Second, "the new key works", func() bool { return p.call(w, host, "/echo/h", rot.Key).status == 200 })
		if time.Now().Before(rot.PreviousKeyExpiresAt.Add(-200 * time.Millisecond)) {
			if a := p.call(w, host, "/echo/i", old.Key); a.status != 200 {
				t.Errorf("old key during the overlap on worker %d: %d %s", w, a.status, a.body)
			}
		}
	}
	time.Sleep(time.Until(rot.PreviousKeyExpiresAt) + 50*time.Millisecond)
	for w := range p.workers {
		if a := p.call(w, host, "/echo/j", old.Key); a.status != 401 {
			t.Errorf("old key after the overlap on worker %d: %d %s", w, a.status, a.body)
		}
	}

	// Revoke: refused on every worker within a second.
	p.portal("acme", "DELETE", "/api/keys/"+rot.ID, tok, nil, 204, nil)
	for w := range p.workers {
		took := p.eventually(time.Second, "the revoked key is refused", func() bool { return p.call(w, host, "/echo/k", rot.Key).status == 401 })
		t.Logf("worker %d refused the revoked key after %v", w, took)
	}

	// The tenant suspends the developer: 403 consumer-suspended everywhere.
	var me struct {
		ConsumerID string `json:"consumer_id"`
	}
	p.portal("acme", "GET", "/api/me", tok, nil, 200, &me)
	var k3 struct{ ID, Key string }
	p.portal("acme", "POST", "/api/subscriptions/"+sub2.ID+"/keys", tok, nil, 201, &k3)
	p.eventually(5*time.Second, "the third key works", func() bool { return p.call(1, host, "/echo/l", k3.Key).status == 200 })
	p.api("PATCH", "/v1/consumers/"+me.ConsumerID, acme.token, map[string]any{"status": "suspended"}, 200, nil)
	for w := range p.workers {
		p.eventually(time.Second, "the suspended consumer's key is refused", func() bool {
			a := p.call(w, host, "/echo/m", k3.Key)
			return a.status == 403 && strings.Contains(a.body, "consumer-suspended")
		})
	}

	// Isolation: acme's token and ids mean nothing on globex's portal.
	if st, body := p.portalRaw("globex", "GET", "/api/apps", tok, nil); st != 401 {
		t.Errorf("acme's token on globex's portal: %d %s", st, body)
	}
	gtok := p.portalDeveloper("globex", "grace@example.com")
	for _, path := range []string{"/api/apps/" + app.ID, "/api/subscriptions/" + sub.ID, "/api/apis/" + acme.api,
		"/api/apis/" + acme.api + "/openapi.json", "/api/subscriptions/" + sub.ID + "/keys"} {
		if st, body := p.portalRaw("globex", "GET", path, gtok, nil); st != 404 {
			t.Errorf("globex GET %s: %d %s", path, st, body)
		}
	}
	if st, body := p.portalRaw("globex", "POST", "/api/keys/"+k2.ID+"/rotate", gtok, map[string]any{"grace_seconds": 0}); st != 404 {
		t.Errorf("globex rotates acme's key: %d %s", st, body)
	}
	if st, _ := p.portalRaw("nobody", "GET", "/api/apis", "", nil); st != 404 {
		t.Errorf("a portal of no tenant: %d", st)
	}
}
