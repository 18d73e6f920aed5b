package devportal_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// apiResp is a JSON API answer, read whole.
type apiResp struct {
	t      *testing.T
	method string
	path   string
	Status int
	Header http.Header
	Body   []byte
}

// api sends a JSON API request (body as for client.do) with extra headers
// and reads the answer.
func (c *client) api(method, path string, body any, headers ...string) apiResp {
	c.e.t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ctype = strings.NewReader(b), "application/json"
	case []byte:
		rd, ctype = strings.NewReader(string(b)), "application/json"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.e.t.Fatal(err)
		}
		rd, ctype = strings.NewReader(string(raw)), "application/json"
	}
	req, err := http.NewRequest(method, "http://"+host(c.slug)+":"+c.e.port()+path, rd)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.transport().Do(req)
	if err != nil {
		c.e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.e.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return apiResp{t: c.e.t, method: method, path: path, Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// must fails the test unless the answer has status want, and returns it.
func (r apiResp) must(want int) apiResp {
	r.t.Helper()
	if r.Status != want {
		r.t.Fatalf("%s %s: status %d, want %d: %s", r.method, r.path, r.Status, want, r.Body)
	}
	return r
}

// obj decodes the body as a JSON object.
func (r apiResp) obj() map[string]any {
	r.t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		r.t.Fatalf("%s %s: body is not a JSON object: %v: %s", r.method, r.path, err, r.Body)
	}
	return m
}

// items decodes the body's "items".
func (r apiResp) items() []map[string]any {
	r.t.Helper()
	var m struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal(r.Body, &m); err != nil || m.Items == nil {
		r.t.Fatalf("%s %s: no items: %v: %s", r.method, r.path, err, r.Body)
	}
	return m.Items
}

// problemType returns the problem's type after the last slash, checking
// the media type.
func (r apiResp) problemType() string {
	r.t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		r.t.Fatalf("%s %s: Content-Type %q, want application/problem+json: %s", r.method, r.path, ct, r.Body)
	}
	typ, _ := r.obj()["type"].(string)
	return typ[strings.LastIndex(typ, "/")+1:]
}

// fieldErrors returns the problem's errors[].field values.
func (r apiResp) fieldErrors() []string {
	r.t.Helper()
	var p struct {
		Errors []struct {
			Field string `json:"field"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(r.Body, &p); err != nil {
		r.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	return out
}

// jsonStr returns a string field of a decoded object ("" when absent).
func jsonStr(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// apiSignupVerified signs a developer up and in through the JSON API and
// returns a client holding the bearer token.
func (e *env) apiSignupVerified(slug, email string) *client {
	e.t.Helper()
	c := e.client(slug)
	c.api("POST", "/api/signup", map[string]string{"email": email, "password": "correct horse battery", "name": "Dev"}).must(202)
	c.api("POST", "/api/verify", map[string]string{"token": e.mailedToken(email, "Confirm")}).must(200)
	tok := jsonStr(c.api("POST", "/api/login", map[string]string{"email": email, "password": "correct horse battery"}).must(200).obj(), "token")
	if tok == "" {
		e.t.Fatal("login gave no token")
	}
	c.bearer = tok
	return c
}

// apiSubscribed holds the objects of a developer apiSubscribed to the free plan.
type apiSubscribed struct {
	AppID, SubID, KeyID, Key string
}

// apiSubscribeFree creates an app and subscribes it to the tenant's free plan.
func (e *env) apiSubscribeFree(c *client) apiSubscribed {
	e.t.Helper()
	app := c.api("POST", "/api/apps", map[string]string{"name": "App of " + c.slug}).must(201).obj()
	sub := c.api("POST", "/api/apps/"+jsonStr(app, "id")+"/subscriptions",
		map[string]string{"plan_id": e.tenants[c.slug].FreePlan.ID}).must(201).obj()
	key, _ := sub["key"].(map[string]any)
	if key == nil {
		e.t.Fatalf("free subscription without key: %v", sub)
	}
	return apiSubscribed{AppID: jsonStr(app, "id"), SubID: jsonStr(sub, "id"), KeyID: jsonStr(key, "id"), Key: jsonStr(key, "key")}
}
