package portal_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const petstore = `openapi: 3.0.3
info: {title: Orders, version: "1.2"}
paths:
  /orders:
    get: {operationId: listOrders, summary: List orders, responses: {"200": {description: ok}}}
    post: {operationId: createOrder, responses: {"201": {description: created}}}
  /orders/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    get: {operationId: getOrder, responses: {"200": {description: ok}}}
    delete: {operationId: deleteOrder, responses: {"204": {description: gone}}}
`

func TestOpenAPIImport(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.signup("oas")
	s := b.seed("http://127.0.0.1:9")
	for _, tc := range []struct {
		name   string
		doc    string
		reason string
	}{
		{"empty", "", "is required"},
		{"not a document", "{{{", "cannot be read"},
		{"swagger 2", `{"swagger": "2.0", "info": {"title": "x", "version": "1"}, "paths": {}}`, "OpenAPI 3"},
		{"invalid", "openapi: 3.0.3\ninfo: {title: x}\npaths:\n  /a:\n    get: {responses: {}}\n", "version"},
		{"no operations", "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths: {}\n", "no operations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.get("/apis/" + s.api)
			p := b.post("/apis/"+s.api+"/openapi", url.Values{"document": {tc.doc}})
			want(t, p, http.StatusUnprocessableEntity, "bad document")
			if got := fieldErr(p.body, "document"); !strings.Contains(got, tc.reason) {
				t.Errorf("reason next to the document = %q, want it to mention %q", got, tc.reason)
			}
		})
	}
	b.get("/apis/" + s.api)
	want(t, b.post("/apis/"+s.api+"/openapi", url.Values{"document": {petstore}}), http.StatusSeeOther, "import")
	p := b.get("/apis/" + s.api)
	for _, want := range []string{"listOrders", "createOrder", "getOrder", "deleteOrder", "/orders/{id}", "4 routes"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("API page lacks %q after import", want)
		}
	}
	if !strings.Contains(b.get("/apis").body, "4 imported") {
		t.Errorf("API list does not show the imported routes")
	}
}

func TestFormErrorsNextToFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.signup("forms")
	s := b.seed("http://127.0.0.1:9")
	for _, tc := range []struct {
		name   string
		path   string
		values url.Values
		field  string
		msg    string
	}{
		{"target URL", "/upstreams", url.Values{"name": {"x"}, "targets": {"http://127.0.0.1:1\nftp://nope"}}, "targets", "line 2"},
		{"target weight", "/upstreams", url.Values{"name": {"x"}, "targets": {"http://127.0.0.1:1 heavy"}}, "targets", "whole number"},
		{"no targets", "/upstreams", url.Values{"name": {"x"}, "targets": {""}}, "targets", "at least one"},
		{"health path", "/upstreams", url.Values{"name": {"x"}, "targets": {"http://127.0.0.1:1"}, "hc_enabled": {"on"}, "hc_path": {"nope"}}, "hc_path", "must start with /"},
		{"api base path", "/apis", url.Values{"name": {"x"}, "slug": {"x"}, "base_path": {"x"}, "upstream_id": {s.upstream}}, "base_path", "must start with /"},
		{"api base path taken", "/apis", url.Values{"name": {"x"}, "slug": {"x"}, "base_path": {"/orders"}, "upstream_id": {s.upstream}}, "base_path", ""},
		{"plan rate", "/plans", url.Values{"name": {"x"}, "rate_limit_requests": {"-1"}}, "rate_limit_requests", "negative"},
		{"plan price", "/plans", url.Values{"name": {"x"}, "price": {"abc"}}, "price", "amount"},
		{"plan currency", "/plans", url.Values{"name": {"x"}, "price": {"5"}, "currency": {"dollars"}}, "currency", "ISO 4217"},
		{"consumer email", "/consumers", url.Values{"name": {"x"}, "email": {"nope"}}, "email", "email"},
		{"domain", "/settings/domains", url.Values{"domain": {"forms.gw.test"}}, "domain", "platform"},
		{"portal colour", "/developer-portal", url.Values{"signup": {"open"}, "accent_color": {"red"}}, "accent_color", "colour"},
		{"portal email domains", "/developer-portal", url.Values{"signup": {"open"}, "allowed_email_domains": {"ok.example\n@bad"}}, "allowed_email_domains", "line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.get("/dashboard")
			p := b.post(tc.path, tc.values)
			want(t, p, http.StatusUnprocessableEntity, tc.name)
			got := fieldErr(p.body, tc.field)
			if got == "" || !strings.Contains(got, tc.msg) {
				t.Errorf("error next to %s = %q, want it to contain %q", tc.field, got, tc.msg)
			}
			if !strings.Contains(p.body, `aria-invalid="true"`) {
				t.Errorf("invalid field not marked aria-invalid")
			}
		})
	}
}

func TestKeysShownOnceRotateRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.signup("keys")
	s := b.seed("http://127.0.0.1:9")
	if !strings.HasPrefix(s.secret, "tg_") {
		t.Fatalf("issued key %q", s.secret)
	}
	page := b.get("/consumers/" + s.consumer)
	if strings.Contains(page.body, s.secret) {
		t.Fatalf("the key is shown again after issue")
	}
	rot := b.post("/keys/"+s.key+"/rotate", nil)
	want(t, rot, http.StatusOK, "rotate")
	m := secretRE.FindStringSubmatch(rot.body)
	if m == nil || m[1] == s.secret {
		t.Fatalf("rotation did not show a new key")
	}
	if strings.Count(rot.body, "status-revoked") != 1 || strings.Count(rot.body, "status-active") != 1 {
		t.Errorf("after rotation want one revoked and one active key")
	}
	newID := keyIDRE.FindStringSubmatch(rot.body)[1]
	want(t, b.post("/keys/"+newID+"/revoke", nil), http.StatusSeeOther, "revoke")
	if got := b.get("/consumers/" + s.consumer).body; strings.Count(got, "status-revoked") != 2 {
		t.Errorf("after revoke want two revoked keys")
	}
	audit := b.get("/audit").body
	for _, a := range []string{"key.create", "key.revoke", "api.create", "user.signup"} {
		if !strings.Contains(audit, a) {
			t.Errorf("audit log lacks %s", a)
		}
	}
}

func TestCustomDomainVerification(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	b := e.signup("domains")
	b.get("/settings")
	want(t, b.post("/settings/domains", url.Values{"domain": {"verified.domains.example"}}), http.StatusSeeOther, "add")
	want(t, b.post("/settings/domains", url.Values{"domain": {"pending.domains.example"}}), http.StatusSeeOther, "add")
	page := b.get("/settings").body
	if !strings.Contains(page, "_tollgate-challenge.pending.domains.example") || !strings.Contains(page, "tollgate-verify-") {
		t.Fatalf("settings page does not show the verification record")
	}
	for _, tc := range []struct {
		domain string
		status int
	}{
		{"pending.domains.example", http.StatusUnprocessableEntity},
		{"verified.domains.example", http.StatusSeeOther},
	} {
		body := b.get("/settings").body
		i := strings.Index(body, tc.domain+"</td>")
		id := between(body[i:], "/settings/domains/", "/verify")
		p := b.post("/settings/domains/"+id+"/verify", nil)
		want(t, p, tc.status, "verify "+tc.domain)
		if tc.status != http.StatusSeeOther && !strings.Contains(fieldErr(p.body, "domain"), "not verified yet") {
			t.Errorf("no reason next to the domain field")
		}
	}
	if got := strings.Count(b.get("/settings").body, "status-active\">verified"); got != 1 {
		t.Errorf("%d verified domains shown, want 1", got)
	}
}
