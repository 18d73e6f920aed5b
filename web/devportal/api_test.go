package devportal_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/catalog"
)

// TestAPIJourney walks a developer through the JSON API: signup, address
// confirmation, sign-in, an app on the free plan with its first key, more
// keys, rotation with an overlap, revocation, the approval and priced plans,
// cancellation, usage, and sign-out.
func TestAPIJourney(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	c := e.client("acme")
	const email = "ada@example.com"

	signup := c.api("POST", "/api/signup", map[string]string{"email": email, "password": "correct horse battery", "name": "Ada"}).must(202)
	if cc := signup.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("signup Cache-Control %q", cc)
	}
	dev := c.api("POST", "/api/verify", map[string]string{"token": e.mailedToken(email, "Confirm")}).must(200).obj()
	if dev["email_verified"] != true || jsonStr(dev, "email") != email {
		t.Fatalf("verified developer: %v", dev)
	}
	// The link is single-use.
	if typ := c.api("POST", "/api/verify", map[string]string{"token": e.mailedToken(email, "Confirm")}).must(422).problemType(); typ != "validation" {
		t.Errorf("reused token: %s", typ)
	}

	login := c.api("POST", "/api/login", map[string]string{"email": email, "password": "correct horse battery"}).must(200).obj()
	c.bearer = jsonStr(login, "token")
	if c.bearer == "" || jsonStr(login, "expires_at") == "" || login["developer"] == nil {
		t.Fatalf("login: %v", login)
	}
	me := c.api("GET", "/api/me", nil).must(200)
	if me.Header.Get("Cache-Control") != "no-store" || jsonStr(me.obj(), "email") != email || jsonStr(me.obj(), "status") != "active" {
		t.Fatalf("me: %v %s", me.Header, me.Body)
	}

	app := c.api("POST", "/api/apps", map[string]string{"name": "Checkout", "description": "the shop"}).must(201).obj()
	appID := jsonStr(app, "id")
	if jsonStr(app, "name") != "Checkout" || appID == "" {
		t.Fatalf("app: %v", app)
	}
	if n := len(c.api("GET", "/api/apps", nil).must(200).items()); n != 1 {
		t.Fatalf("apps: %d", n)
	}
	renamed := c.api("PATCH", "/api/apps/"+appID, map[string]string{"name": "Checkout v2"}).must(200).obj()
	if jsonStr(renamed, "name") != "Checkout v2" || jsonStr(renamed, "description") != "the shop" {
		t.Errorf("patched app: %v", renamed)
	}

	// Free plan: active at once, with the first key.
	subResp := c.api("POST", "/api/apps/"+appID+"/subscriptions", map[string]string{"plan_id": f.FreePlan.ID}).must(201)
	for _, field := range []string{`"key":{`, `"checkout_url":null`} {
		if !bytes.Contains(subResp.Body, []byte(field)) {
			t.Errorf("free subscription lacks %s: %s", field, subResp.Body)
		}
	}
	sub := subResp.obj()
	subID := jsonStr(sub, "id")
	key1 := sub["key"].(map[string]any)
	if jsonStr(sub, "status") != "active" || jsonStr(sub, "plan_id") != f.FreePlan.ID || jsonStr(sub, "app_id") != appID ||
		!strings.HasPrefix(jsonStr(key1, "key"), "tg_") || jsonStr(key1, "prefix") == "" {
		t.Fatalf("free subscription: %s", subResp.Body)
	}
	again := c.api("GET", "/api/subscriptions/"+subID, nil).must(200)
	if !bytes.Contains(again.Body, []byte(`"key":null`)) || jsonStr(again.obj(), "status") != "active" {
		t.Errorf("read subscription shows a key or wrong state: %s", again.Body)
	}
	// Subscribing the app to the same plan twice is a conflict.
	c.api("POST", "/api/apps/"+appID+"/subscriptions", map[string]string{"plan_id": f.FreePlan.ID}).must(409)

	// More keys, a rotation with an overlap, a revocation.
	key2 := c.api("POST", "/api/subscriptions/"+subID+"/keys", nil).must(201).obj()
	if !strings.HasPrefix(jsonStr(key2, "key"), "tg_") || jsonStr(key2, "id") == jsonStr(key1, "id") {
		t.Fatalf("second key: %v", key2)
	}
	before := time.Now()
	rot := c.api("POST", "/api/keys/"+jsonStr(key1, "id")+"/rotate", map[string]int{"grace_seconds": 3600}).must(201).obj()
	exp, err := time.Parse(time.RFC3339, jsonStr(rot, "previous_key_expires_at"))
	if err != nil || exp.Before(before.Add(59*time.Minute)) || exp.After(time.Now().Add(61*time.Minute)) {
		t.Fatalf("rotation: previous_key_expires_at %v (%v): %v", exp, err, rot)
	}
	if !strings.HasPrefix(jsonStr(rot, "key"), "tg_") || jsonStr(rot, "previous_key_id") != jsonStr(key1, "id") {
		t.Fatalf("rotated key: %v", rot)
	}
	keys := c.api("GET", "/api/subscriptions/"+subID+"/keys", nil).must(200)
	if bytes.Contains(keys.Body, []byte(jsonStr(key1, "key"))) || bytes.Contains(keys.Body, []byte(`"key":`)) {
		t.Fatalf("key list shows secrets: %s", keys.Body)
	}
	byID := map[string]map[string]any{}
	for _, k := range keys.items() {
		byID[jsonStr(k, "id")] = k
	}
	if len(byID) != 3 {
		t.Fatalf("keys: %s", keys.Body)
	}
	if old := byID[jsonStr(key1, "id")]; jsonStr(old, "status") != "active" || old["expires_at"] == nil ||
		jsonStr(old, "replaced_by") != jsonStr(rot, "id") {
		t.Errorf("rotated key in the list: %v", old)
	}
	c.api("DELETE", "/api/keys/"+jsonStr(key2, "id"), nil).must(204)
	if k := c.api("GET", "/api/keys/"+jsonStr(key2, "id"), nil).must(200).obj(); jsonStr(k, "status") != "revoked" || k["revoked_at"] == nil {
		t.Errorf("revoked key: %v", k)
	}
	// A rotation without overlap ends the old key at once.
	rot0 := c.api("POST", "/api/keys/"+jsonStr(rot, "id")+"/rotate", map[string]int{"grace_seconds": 0}).must(201).obj()
	if k := c.api("GET", "/api/keys/"+jsonStr(rot, "id"), nil).must(200).obj(); jsonStr(k, "status") != "revoked" {
		t.Errorf("key rotated without overlap: %v", k)
	}
	// A revoked key cannot be rotated.
	c.api("POST", "/api/keys/"+jsonStr(key2, "id")+"/rotate", map[string]int{"grace_seconds": 60}).must(409)

	// Approval and priced plans.
	partner := c.api("POST", "/api/apps/"+appID+"/subscriptions", map[string]string{"plan_id": f.ApprovalPlan.ID}).must(201)
	if !bytes.Contains(partner.Body, []byte(`"key":null`)) || jsonStr(partner.obj(), "status") != "pending" {
		t.Errorf("approval plan: %s", partner.Body)
	}
	pro := c.api("POST", "/api/apps/"+appID+"/subscriptions", map[string]string{"plan_id": f.PricedPlan.ID}).must(201)
	if !bytes.Contains(pro.Body, []byte(`"checkout_url":null`)) || !bytes.Contains(pro.Body, []byte(`"key":null`)) ||
		jsonStr(pro.obj(), "status") != "payment_required" || !strings.Contains(jsonStr(pro.obj(), "detail"), "payments are not enabled") {
		t.Errorf("priced plan: %s", pro.Body)
	}
	// Keys only while active.
	if typ := c.api("POST", "/api/subscriptions/"+jsonStr(pro.obj(), "id")+"/keys", nil).must(409).problemType(); typ != "conflict" {
		t.Errorf("key of a payment_required subscription: %s", typ)
	}
	c.api("POST", "/api/subscriptions/"+jsonStr(partner.obj(), "id")+"/keys", nil).must(409)
	// Private plans cannot be subscribed to.
	if fe := c.api("POST", "/api/apps/"+appID+"/subscriptions", map[string]string{"plan_id": f.PrivatePlan.ID}).must(422).fieldErrors(); len(fe) != 1 || fe[0] != "plan_id" {
		t.Errorf("private plan: %v", fe)
	}

	list := c.api("GET", "/api/subscriptions", nil).must(200).items()
	if len(list) != 3 {
		t.Fatalf("subscriptions: %v", list)
	}
	if n := len(c.api("GET", "/api/subscriptions?status=pending", nil).must(200).items()); n != 1 {
		t.Errorf("pending subscriptions: %d", n)
	}
	if n := len(c.api("GET", "/api/apps/"+appID+"/subscriptions", nil).must(200).items()); n != 3 {
		t.Errorf("app subscriptions: %d", n)
	}
	canceled := c.api("DELETE", "/api/subscriptions/"+jsonStr(partner.obj(), "id"), nil).must(200).obj()
	if jsonStr(canceled, "status") != "canceled" {
		t.Errorf("canceled: %v", canceled)
	}

	// Usage lists the working keys, with zero traffic and the plan's quota.
	usage := c.api("GET", "/api/usage", nil).must(200).items()
	if len(usage) != 2 {
		t.Fatalf("usage items: %v", usage)
	}
	for _, u := range usage {
		q, _ := u["quota"].(map[string]any)
		if jsonStr(u, "app_id") != appID || jsonStr(u, "subscription_id") != subID || u["requests"] != 0.0 ||
			q == nil || q["limit"] != 1000.0 || q["used"] != 0.0 || q["remaining"] != 1000.0 || jsonStr(q, "period_end") == "" {
			t.Errorf("usage item: %v", u)
		}
	}
	_ = rot0

	// Deleting the app revokes its keys, and they are gone with it.
	c.api("DELETE", "/api/apps/"+appID, nil).must(204)
	c.api("GET", "/api/apps/"+appID, nil).must(404)
	c.api("GET", "/api/subscriptions/"+subID, nil).must(404)
	c.api("GET", "/api/keys/"+jsonStr(rot0, "id"), nil).must(404)
	if n := len(c.api("GET", "/api/usage", nil).must(200).items()); n != 0 {
		t.Errorf("usage items after deleting the app: %d", n)
	}

	c.api("POST", "/api/logout", nil).must(204)
	if typ := c.api("GET", "/api/me", nil).must(401).problemType(); typ != "unauthenticated" {
		t.Errorf("after logout: %s", typ)
	}
}

// TestAPIUnverifiedDeveloper: an unconfirmed address may sign in and
// create apps, but not subscribe; a new link confirms it.
func TestAPIUnverifiedDeveloper(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.client("acme")
	const email = "new@example.com"
	c.api("POST", "/api/signup", map[string]string{"email": email, "password": "correct horse battery", "name": "New"}).must(202)
	c.bearer = jsonStr(c.api("POST", "/api/login", map[string]string{"email": email, "password": "correct horse battery"}).must(200).obj(), "token")
	if me := c.api("GET", "/api/me", nil).must(200).obj(); me["email_verified"] != false {
		t.Fatalf("me: %v", me)
	}
	app := c.api("POST", "/api/apps", map[string]string{"name": "Early"}).must(201).obj()
	r := c.api("POST", "/api/apps/"+jsonStr(app, "id")+"/subscriptions", map[string]string{"plan_id": e.tenants["acme"].FreePlan.ID}).must(403)
	if typ := r.problemType(); typ != "email-unverified" {
		t.Fatalf("unverified subscribe: %s", typ)
	}
	first := e.mailedToken(email, "Confirm")
	c.api("POST", "/api/verify/resend", nil).must(202)
	second := e.mailedToken(email, "Confirm")
	if first == second {
		t.Fatal("no new confirmation link")
	}
	c.api("POST", "/api/verify", map[string]string{"token": second}).must(200)
	c.api("POST", "/api/apps/"+jsonStr(app, "id")+"/subscriptions", map[string]string{"plan_id": e.tenants["acme"].FreePlan.ID}).must(201)
}

// TestAPINoEnumeration: signup and forgot-password answer the same for
// known and unknown addresses (the mail differs), and sign-in refuses a
// wrong password and an unknown address alike.
func TestAPINoEnumeration(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.client("acme")
	e.apiSignupVerified("acme", "known@example.com")

	known := c.api("POST", "/api/signup", map[string]string{"email": "known@example.com", "password": "another long password", "name": "K"}).must(202)
	unknown := c.api("POST", "/api/signup", map[string]string{"email": "fresh@example.com", "password": "another long password", "name": "F"}).must(202)
	if !bytes.Equal(known.Body, unknown.Body) {
		t.Errorf("signup answers differ:\n%s\n%s", known.Body, unknown.Body)
	}
	if m, ok := e.sink.Last("known@example.com"); !ok || !strings.Contains(m.Subject, "already have an account") {
		t.Errorf("known address got %q", m.Subject)
	}
	if m, ok := e.sink.Last("fresh@example.com"); !ok || !strings.Contains(m.Subject, "Confirm") {
		t.Errorf("new address got %q", m.Subject)
	}

	fk := c.api("POST", "/api/password/forgot", map[string]string{"email": "known@example.com"}).must(202)
	fu := c.api("POST", "/api/password/forgot", map[string]string{"email": "nobody@example.com"}).must(202)
	if !bytes.Equal(fk.Body, fu.Body) {
		t.Errorf("forgot answers differ:\n%s\n%s", fk.Body, fu.Body)
	}
	if _, ok := e.sink.Last("nobody@example.com"); ok {
		t.Error("mail to an unknown address")
	}

	wrong := c.api("POST", "/api/login", map[string]string{"email": "known@example.com", "password": "not the password"}).must(401)
	none := c.api("POST", "/api/login", map[string]string{"email": "nobody@example.com", "password": "not the password"}).must(401)
	if !bytes.Equal(wrong.Body, none.Body) || wrong.Header.Get("Content-Type") != none.Header.Get("Content-Type") {
		t.Errorf("login answers differ:\n%s\n%s", wrong.Body, none.Body)
	}
	if typ := wrong.problemType(); typ != "invalid-credentials" {
		t.Errorf("login problem: %s", typ)
	}

	// Reset: the mailed token sets a new password and ends every session.
	old := e.apiSignupVerified("acme", "reset@example.com")
	c.api("POST", "/api/password/forgot", map[string]string{"email": "reset@example.com"}).must(202)
	tok := e.mailedToken("reset@example.com", "Reset")
	c.api("POST", "/api/password/reset", map[string]string{"token": tok, "password": "a brand new password"}).must(200)
	old.api("GET", "/api/me", nil).must(401)
	c.api("POST", "/api/password/reset", map[string]string{"token": tok, "password": "yet another password"}).must(422)
	c.api("POST", "/api/login", map[string]string{"email": "reset@example.com", "password": "a brand new password"}).must(200)
	c.api("POST", "/api/login", map[string]string{"email": "reset@example.com", "password": "correct horse battery"}).must(401)
}

// TestAPIThrottle: repeated sign-ins from one client are refused with 429
// and Retry-After, for a known and an unknown address alike.
func TestAPIThrottle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{throttle: true})
	e.apiSignupVerified("acme", "target@example.com")
	for _, email := range []string{"target@example.com", "ghost@example.com"} {
		c := e.client("acme")
		var last apiResp
		for i := 0; i < 12; i++ {
			last = c.api("POST", "/api/login", map[string]string{"email": email, "password": "guess " + fmt.Sprint(i)})
			if last.Status == 429 {
				break
			}
			if last.Status != 401 {
				t.Fatalf("attempt %d: %d %s", i, last.Status, last.Body)
			}
		}
		if last.Status != 429 || last.Header.Get("Retry-After") == "" || last.problemType() != "too-many-attempts" {
			t.Fatalf("%s: no throttling: %d %v %s", email, last.Status, last.Header, last.Body)
		}
	}
}

// TestAPIStrictRequests: unknown fields, wrong types, wrong media types,
// oversized bodies and out-of-range values are refused with a problem that
// names the field; unknown routes and methods answer problems too.
func TestAPIStrictRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := e.apiSignupVerified("acme", "strict@example.com")
	s := e.apiSubscribeFree(c)
	anon := e.client("acme")

	tests := []struct {
		name    string
		c       *client
		method  string
		path    string
		body    any
		headers []string
		status  int
		typ     string
		field   string
	}{
		{"unknown field", c, "POST", "/api/apps", `{"name":"x","colour":"red"}`, nil, 400, "bad-request", "colour"},
		{"unknown signup field", anon, "POST", "/api/signup", `{"email":"a@example.com","password":"long enough pw","name":"A","admin":true}`, nil, 400, "bad-request", "admin"},
		{"wrong type", c, "POST", "/api/apps", `{"name":5}`, nil, 400, "bad-request", "name"},
		{"not an object", c, "POST", "/api/apps", `[]`, nil, 400, "bad-request", ""},
		{"two objects", c, "POST", "/api/apps", `{"name":"a"}{"name":"b"}`, nil, 400, "bad-request", ""},
		{"malformed", c, "POST", "/api/apps", `{"name":`, nil, 400, "bad-request", ""},
		{"empty body", c, "POST", "/api/apps", ``, nil, 400, "bad-request", ""},
		{"form body", anon, "POST", "/api/login", `email=a&password=b`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported-media-type", ""},
		{"text/plain body", anon, "POST", "/api/signup", `{"email":"a@example.com"}`, []string{"Content-Type", "text/plain"}, 415, "unsupported-media-type", ""},
		{"too large", c, "POST", "/api/apps", `{"name":"` + strings.Repeat("a", 1<<20) + `"}`, nil, 413, "too-large", ""},
		{"invalid name", c, "POST", "/api/apps", `{"name":"  "}`, nil, 422, "validation", "name"},
		{"negative grace", c, "POST", "/api/keys/" + s.KeyID + "/rotate", `{"grace_seconds":-1}`, nil, 422, "validation", "grace_seconds"},
		{"grace over 30 days", c, "POST", "/api/keys/" + s.KeyID + "/rotate", `{"grace_seconds":2592001}`, nil, 422, "validation", "grace_seconds"},
		{"huge grace", c, "POST", "/api/keys/" + s.KeyID + "/rotate", `{"grace_seconds":9223372036854775807}`, nil, 422, "validation", "grace_seconds"},
		{"fractional grace", c, "POST", "/api/keys/" + s.KeyID + "/rotate", `{"grace_seconds":1.5}`, nil, 400, "bad-request", "grace_seconds"},
		{"missing plan", c, "POST", "/api/apps/" + s.AppID + "/subscriptions", `{}`, nil, 422, "validation", "plan_id"},
		{"bad limit", c, "GET", "/api/apps?limit=0", nil, nil, 400, "bad-request", "limit"},
		{"bad cursor", c, "GET", "/api/apps?cursor=zzz", nil, nil, 400, "bad-request", "cursor"},
		{"bad usage time", c, "GET", "/api/usage?from=yesterday", nil, nil, 400, "bad-request", "from"},
		{"inverted usage range", c, "GET", "/api/usage?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", nil, nil, 422, "validation", "from"},
		{"bad bucket", c, "GET", "/api/usage/series?bucket=week", nil, nil, 400, "bad-request", "bucket"},
		{"signed out", anon, "GET", "/api/apps", nil, nil, 401, "unauthenticated", ""},
		{"bad token", &client{e: e, slug: "acme", hc: anon.hc, bearer: "tgp_nonsense"}, "GET", "/api/me", nil, nil, 401, "unauthenticated", ""},
		{"unknown route", anon, "GET", "/api/nothing", nil, nil, 404, "not-found", ""},
		{"unknown id", c, "GET", "/api/apps/not-a-uuid", nil, nil, 404, "not-found", ""},
		{"wrong method", c, "PUT", "/api/apps", `{}`, nil, 405, "method-not-allowed", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.api(tc.method, tc.path, tc.body, tc.headers...)
			r.t = t
			r.must(tc.status)
			if typ := r.problemType(); typ != tc.typ {
				t.Errorf("type %q, want %q: %s", typ, tc.typ, r.Body)
			}
			if fe := r.fieldErrors(); tc.field != "" && (len(fe) != 1 || fe[0] != tc.field) {
				t.Errorf("fields %v, want [%s]: %s", fe, tc.field, r.Body)
			}
		})
	}
	if allow := c.api("PUT", "/api/apps", `{}`).Header.Get("Allow"); allow != "GET, POST" {
		t.Errorf("Allow %q", allow)
	}
}

// TestAPICookieSession: a browser's session cookie works on the JSON API,
// with the session's CSRF token in X-CSRF-Token on state-changing calls.
func TestAPICookieSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	_, dev := e.signupVerified("acme", "browser@example.com")
	sess, err := e.devs.StartSession(context.Background(), dev)
	if err != nil {
		t.Fatal(err)
	}
	c := e.client("acme")
	u := apiMustURL(t, "http://"+host("acme")+":"+e.port()+"/")
	c.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "tgp_session", Value: sess.ID}})

	c.api("GET", "/api/me", nil).must(200)
	if typ := c.api("POST", "/api/apps", map[string]string{"name": "x"}).must(403).problemType(); typ != "csrf" {
		t.Errorf("without token: %s", typ)
	}
	c.api("POST", "/api/apps", map[string]string{"name": "x"}, "X-CSRF-Token", "wrong").must(403)
	c.api("POST", "/api/apps", map[string]string{"name": "x"}, "X-CSRF-Token", sess.CSRF, "Origin", "http://evil.example").must(403)
	app := c.api("POST", "/api/apps", map[string]string{"name": "x"}, "X-CSRF-Token", sess.CSRF).must(201).obj()
	c.api("DELETE", "/api/apps/"+jsonStr(app, "id"), nil).must(403)
	c.api("DELETE", "/api/apps/"+jsonStr(app, "id"), nil, "X-CSRF-Token", sess.CSRF).must(204)

	// The same cookie means nothing on another tenant's portal.
	g := e.client("globex")
	g.hc.Jar.SetCookies(apiMustURL(t, "http://"+host("globex")+":"+e.port()+"/"), []*http.Cookie{{Name: "tgp_session", Value: sess.ID}})
	g.api("GET", "/api/me", nil).must(401)

	c.api("POST", "/api/logout", nil, "X-CSRF-Token", sess.CSRF).must(204)
	c.api("GET", "/api/me", nil).must(401)
}

// TestAPICatalogue: published APIs with their gateway URLs, documents and
// SDKs; public plans; nothing hidden or private.
func TestAPICatalogue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	c := e.client("acme") // signed out: the catalogue is public
	gwPort := e.gateway.URL[strings.LastIndex(e.gateway.URL, ":")+1:]

	apis := c.api("GET", "/api/apis", nil).must(200).items()
	if len(apis) != 1 {
		t.Fatalf("apis: %v", apis)
	}
	a := apis[0]
	wantURL := "http://acme.gw.test:" + gwPort + "/pets"
	if jsonStr(a, "id") != f.API.ID || jsonStr(a, "name") != "Pets" || jsonStr(a, "slug") != "pets" ||
		jsonStr(a, "base_path") != "/pets" || jsonStr(a, "url") != wantURL || jsonStr(a, "auth") != "key" ||
		a["has_document"] != true || jsonStr(a, "version") != "1.2.0" {
		t.Fatalf("api item: %v", a)
	}
	one := c.api("GET", "/api/apis/"+f.API.ID, nil).must(200).obj()
	if jsonStr(one, "url") != wantURL {
		t.Errorf("api: %v", one)
	}

	doc := c.api("GET", "/api/apis/"+f.API.ID+"/openapi.json", nil).must(200)
	var d struct {
		Info    struct{ Title, Version string }
		Servers []struct{ URL string }
		Paths   map[string]any
	}
	if err := json.Unmarshal(doc.Body, &d); err != nil {
		t.Fatal(err)
	}
	if d.Info.Title != "Pets" || len(d.Servers) != 1 || d.Servers[0].URL != wantURL || d.Paths["/pets/{id}"] == nil {
		t.Errorf("document: %s", doc.Body)
	}
	if etag := doc.Header.Get("ETag"); etag == "" {
		t.Error("document without ETag")
	} else {
		c.api("GET", "/api/apis/"+f.API.ID+"/openapi.json", nil, "If-None-Match", etag).must(304)
	}

	for _, lang := range []string{"go", "typescript"} {
		r := c.api("GET", "/api/apis/"+f.API.ID+"/sdk/"+lang, nil).must(200)
		sum := sha256.Sum256(r.Body)
		hexSum := hex.EncodeToString(sum[:])
		cd := r.Header.Get("Content-Disposition")
		if r.Header.Get("Content-Type") != "application/zip" || r.Header.Get("X-Checksum-SHA256") != hexSum ||
			r.Header.Get("ETag") != `"`+hexSum+`"` || !strings.HasPrefix(r.Header.Get("X-SDK-Version"), "1.2.0+") ||
			!strings.Contains(cd, `filename="pets-`+lang+`-sdk-`) {
			t.Errorf("%s sdk headers: %v", lang, r.Header)
		}
		zr, err := zip.NewReader(bytes.NewReader(r.Body), int64(len(r.Body)))
		if err != nil || len(zr.File) == 0 {
			t.Errorf("%s sdk is not a zip: %v", lang, err)
		}
		c.api("GET", "/api/apis/"+f.API.ID+"/sdk/"+lang, nil, "If-None-Match", r.Header.Get("ETag")).must(304)
	}
	c.api("GET", "/api/apis/"+f.API.ID+"/sdk/rust", nil).must(404)

	// A published API without a document: listed, but no document or SDK.
	bare, err := e.cat.CreateAPI(context.Background(), f.Actor, catalog.APIInput{Name: "Bare", Slug: "bare", BasePath: "/bare",
		UpstreamID: f.API.UpstreamID, Auth: "none", Published: true})
	if err != nil {
		t.Fatal(err)
	}
	if b := c.api("GET", "/api/apis/"+bare.ID, nil).must(200).obj(); b["has_document"] != false || b["document_url"] != nil {
		t.Errorf("api without document: %v", b)
	}
	c.api("GET", "/api/apis/"+bare.ID+"/openapi.json", nil).must(404)
	c.api("GET", "/api/apis/"+bare.ID+"/sdk/go", nil).must(404)
	if n := len(c.api("GET", "/api/apis", nil).must(200).items()); n != 2 {
		t.Errorf("apis after publishing another: %d", n)
	}

	// The hidden API and the private plan do not exist here.
	for _, p := range []string{"/api/apis/" + f.Hidden.ID, "/api/apis/" + f.Hidden.ID + "/openapi.json",
		"/api/apis/" + f.Hidden.ID + "/sdk/go", "/api/plans/" + f.PrivatePlan.ID} {
		c.api("GET", p, nil).must(404)
	}
	plans := c.api("GET", "/api/plans", nil).must(200)
	if bytes.Contains(plans.Body, []byte(f.PrivatePlan.ID)) || bytes.Contains(plans.Body, []byte(f.Hidden.ID)) {
		t.Errorf("plans show private things: %s", plans.Body)
	}
	names := map[string]map[string]any{}
	for _, p := range plans.items() {
		names[jsonStr(p, "name")] = p
		for _, k := range []string{"id", "name", "rate_limit", "quota", "price", "approval_required", "api_ids"} {
			if _, ok := p[k]; !ok {
				t.Errorf("plan lacks %s: %v", k, p)
			}
		}
	}
	if len(names) != 3 || names["Partner"]["approval_required"] != true || names["Pro"]["price"] == nil ||
		names["Free"]["price"] != nil {
		t.Errorf("plans: %s", plans.Body)
	}
	if ids, _ := names["Free"]["api_ids"].([]any); len(ids) != 1 || ids[0] != f.API.ID {
		t.Errorf("free plan api_ids: %v", names["Free"]["api_ids"])
	}
	c.api("GET", "/api/plans/"+f.FreePlan.ID, nil).must(200)

	// The API's own description.
	self := c.api("GET", "/api/openapi.json", nil).must(200)
	if !bytes.Contains(self.Body, []byte(`"/api/apps/{id}/subscriptions"`)) {
		t.Errorf("api document: %.200s", self.Body)
	}
}

// TestAPITryIt: the relay calls the gateway URL of the host's tenant's
// published API, for signed-in developers only.
func TestAPITryIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	acme, globex := e.tenants["acme"], e.tenants["globex"]
	c := e.apiSignupVerified("acme", "try@example.com")
	req := map[string]any{"method": "GET", "path": "/pets/7", "query": map[string]string{"limit": "2"},
		"headers": map[string]string{"X-API-Key": "tg_test"}}

	res := c.api("POST", "/api/try/"+acme.API.ID, req).must(200).obj()
	var echo map[string]any
	if err := json.Unmarshal([]byte(jsonStr(res, "body")), &echo); err != nil {
		t.Fatalf("relay result: %v: %v", err, res)
	}
	gwPort := e.gateway.URL[strings.LastIndex(e.gateway.URL, ":")+1:]
	if res["status"] != 200.0 || jsonStr(echo, "host") != "acme.gw.test:"+gwPort || jsonStr(echo, "path") != "/pets/pets/7" ||
		jsonStr(echo, "key") != "tg_test" || jsonStr(echo, "query") != "limit=2" {
		t.Errorf("relayed: %v", res)
	}
	e.client("acme").api("POST", "/api/try/"+acme.API.ID, req).must(401)
	c.api("POST", "/api/try/"+acme.Hidden.ID, req).must(404)
	c.api("POST", "/api/try/"+globex.API.ID, req).must(404)
}

// TestAPIUsage: traffic per key from the rollups, and series per app and
// key, of the developer's own keys only.
func TestAPIUsage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	f := e.tenants["acme"]
	c := e.apiSignupVerified("acme", "usage@example.com")
	s := e.apiSubscribeFree(c)
	other := e.apiSubscribeFree(e.apiSignupVerified("acme", "other@example.com"))
	me := c.api("GET", "/api/me", nil).must(200).obj()

	minute := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute)
	insert := func(keyID, consumerID string, class, n int) {
		t.Helper()
		hist := make([]string, 14)
		for i := range hist {
			hist[i] = "0"
		}
		hist[3] = fmt.Sprint(n) // 5-10 ms
		if _, err := e.db.Exec(context.Background(), `INSERT INTO usage_minutes (tenant_id, minute, api_id, consumer_id,
			key_id, plan_id, status_class, requests, bytes_in, bytes_out, latency_us, latency_hist)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, $9, $10::bigint[])`, f.Tenant.ID, minute, f.API.ID, consumerID,
			keyID, f.FreePlan.ID, class, n, n*7000, "{"+strings.Join(hist, ",")+"}"); err != nil {
			t.Fatal(err)
		}
	}
	insert(s.KeyID, jsonStr(me, "consumer_id"), 2, 9)
	insert(s.KeyID, jsonStr(me, "consumer_id"), 5, 1)
	otherKey, err := e.cat.GetKey(context.Background(), f.Tenant.ID, other.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	insert(other.KeyID, otherKey.ConsumerID, 2, 50)

	items := c.api("GET", "/api/usage", nil).must(200).items()
	if len(items) != 1 {
		t.Fatalf("usage: %v", items)
	}
	u := items[0]
	if jsonStr(u, "key_id") != s.KeyID || jsonStr(u, "app_id") != s.AppID || u["requests"] != 10.0 || u["errors"] != 1.0 ||
		u["latency_p50_ms"].(float64) < 5 || u["latency_p99_ms"].(float64) > 10 {
		t.Errorf("usage item: %v", u)
	}
	// A range without the traffic shows zeros.
	old := c.api("GET", "/api/usage?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z", nil).must(200).items()
	if len(old) != 1 || old[0]["requests"] != 0.0 {
		t.Errorf("usage of an empty range: %v", old)
	}

	for _, q := range []string{"", "?app_id=" + s.AppID, "?key_id=" + s.KeyID, "?app_id=" + s.AppID + "&key_id=" + s.KeyID} {
		series := c.api("GET", "/api/usage/series"+q, nil).must(200).obj()
		var total float64
		for _, p := range series["points"].([]any) {
			total += p.(map[string]any)["requests"].(float64)
		}
		if total != 10 || jsonStr(series, "bucket") != "hour" {
			t.Errorf("series %q: total %v: %v", q, total, series["bucket"])
		}
	}
	// Minute points over the default 24 hours (the range is rounded out to
	// whole buckets).
	if n := len(c.api("GET", "/api/usage/series?bucket=minute", nil).must(200).obj()["points"].([]any)); n < 24*60 || n > 24*60+1 {
		t.Errorf("minute points: %d", n)
	}
}

// TestAPIAccountStates: a developer waiting for the tenant's approval, and
// a consumer the tenant suspended, get no subscriptions or keys (403 with
// the reason as the problem type).
func TestAPIAccountStates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{signup: "approval"})
	f := e.tenants["acme"]

	pending := e.apiSignupVerified("acme", "waiting@example.com")
	if me := pending.api("GET", "/api/me", nil).must(200).obj(); jsonStr(me, "status") != "pending" {
		t.Fatalf("me: %v", me)
	}
	app := pending.api("POST", "/api/apps", map[string]string{"name": "Soon"}).must(201).obj()
	r := pending.api("POST", "/api/apps/"+jsonStr(app, "id")+"/subscriptions", map[string]string{"plan_id": f.FreePlan.ID}).must(403)
	if typ := r.problemType(); typ != "developer-pending" {
		t.Errorf("pending developer: %s", typ)
	}

	// Approved, subscribed, then suspended by the tenant.
	ctx := context.Background()
	me := pending.api("GET", "/api/me", nil).must(200).obj()
	if _, err := e.devs.Decide(ctx, f.Actor, f.Tenant, jsonStr(me, "id"), true); err != nil {
		t.Fatal(err)
	}
	s := e.apiSubscribeFree(pending)
	if _, err := e.cat.UpdateConsumer(ctx, f.Actor, jsonStr(me, "consumer_id"), func(in *catalog.ConsumerInput) error {
		in.Status = catalog.ConsumerSuspended
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, call := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/apps/" + s.AppID + "/subscriptions", map[string]string{"plan_id": f.ApprovalPlan.ID}},
		{"POST", "/api/subscriptions/" + s.SubID + "/keys", nil},
		{"POST", "/api/keys/" + s.KeyID + "/rotate", map[string]int{"grace_seconds": 10}},
	} {
		if typ := pending.api(call.method, call.path, call.body).must(403).problemType(); typ != "consumer-suspended" {
			t.Errorf("%s %s while suspended: %s", call.method, call.path, typ)
		}
	}
	// Reading still works: the developer sees what they have.
	pending.api("GET", "/api/subscriptions/"+s.SubID+"/keys", nil).must(200)
}
