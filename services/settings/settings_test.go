package settings_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
)

var secret = []byte("settings-test-secret-0123456789")

func TestSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	ta, _, err := tenancy.Create(ctx, db, secret, "A", "set-a")
	if err != nil {
		t.Fatal(err)
	}
	tb, _, err := tenancy.Create(ctx, db, secret, "B", "set-b")
	if err != nil {
		t.Fatal(err)
	}
	a := audit.Actor{TenantID: ta.ID, Name: "test"}
	b := audit.Actor{TenantID: tb.ID, Name: "test"}

	t.Run("branding", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			in    settings.Branding
			field string
		}{
			{"colour", settings.Branding{Color: "blue"}, "portal_color"},
			{"logo not https", settings.Branding{LogoURL: "http://x.example/l.png"}, "portal_logo_url"},
			{"support email", settings.Branding{SupportEmail: "nope"}, "support_email"},
		} {
			_, err := settings.SaveBranding(ctx, db, a, tc.in)
			var ve *fault.ValidationError
			if !errors.As(err, &ve) || ve.Errors[0].Field != tc.field {
				t.Errorf("%s: err = %v, want a validation error of %s", tc.name, err, tc.field)
			}
		}
		if _, err := settings.SaveBranding(ctx, db, a, settings.Branding{Title: " Devs ", Color: "#4F46E5"}); err != nil {
			t.Fatal(err)
		}
		s, err := settings.Get(ctx, db, ta.ID)
		if err != nil || s.Branding.Title != "Devs" || s.Branding.Color != "#4f46e5" {
			t.Errorf("branding = %+v, %v", s.Branding, err)
		}
	})

	t.Run("oidc secret encrypted at rest", func(t *testing.T) {
		if err := settings.SaveOIDC(ctx, db, secret, a, settings.OIDC{Issuer: "https://idp.example", ClientID: "cid", ClientSecret: "very-secret"}); err != nil {
			t.Fatal(err)
		}
		var raw []byte
		if err := db.QueryRow(ctx, `SELECT oidc_client_secret FROM tenant_settings WHERE tenant_id = $1`, ta.ID).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if len(raw) == 0 || string(raw) == "very-secret" {
			t.Fatalf("client secret stored as %q", raw)
		}
		// An empty secret keeps the stored one.
		if err := settings.SaveOIDC(ctx, db, secret, a, settings.OIDC{Issuer: "https://idp.example", ClientID: "cid2"}); err != nil {
			t.Fatal(err)
		}
		o, ok, err := settings.TenantOIDC(ctx, db, secret, ta.ID)
		if err != nil || !ok || o.ClientSecret != "very-secret" || o.ClientID != "cid2" {
			t.Errorf("TenantOIDC = %+v, %v, %v", o, ok, err)
		}
		if _, _, err := settings.TenantOIDC(ctx, db, []byte("another-secret-of-the-server"), ta.ID); err == nil {
			t.Errorf("decrypted with the wrong key")
		}
		if _, ok, _ := settings.TenantOIDC(ctx, db, secret, tb.ID); ok {
			t.Errorf("tenant b has an IdP")
		}
		if err := settings.SaveOIDC(ctx, db, secret, a, settings.OIDC{}); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := settings.TenantOIDC(ctx, db, secret, ta.ID); ok {
			t.Errorf("IdP still on after clearing it")
		}
		var ve *fault.ValidationError
		if err := settings.SaveOIDC(ctx, db, secret, a, settings.OIDC{Issuer: "ftp://x"}); !errors.As(err, &ve) || len(ve.Errors) != 2 {
			t.Errorf("bad oidc: %v", err)
		}
		// A plain-http issuer only where the SSRF guard is off (dev, tests).
		if err := settings.SaveOIDC(ctx, db, secret, a, settings.OIDC{Issuer: "http://idp.example", ClientID: "cid"}); !errors.As(err, &ve) || ve.Errors[0].Field != "oidc_issuer" {
			t.Errorf("http issuer accepted: %v", err)
		}
		if err := settings.SaveDeveloperOIDC(ctx, db, secret, a, settings.OIDC{Issuer: "http://idp.example", ClientID: "cid"}); !errors.As(err, &ve) || ve.Errors[0].Field != "oidc.issuer" {
			t.Errorf("http developer issuer accepted: %v", err)
		}
		if err := settings.SaveOIDC(ctx, db, secret, a, settings.OIDC{Issuer: "http://127.0.0.1:9999", ClientID: "cid", AllowHTTP: true}); err != nil {
			t.Errorf("http issuer in dev: %v", err)
		}
	})

	t.Run("domains", func(t *testing.T) {
		d, err := settings.AddDomain(ctx, db, a, "API.Example.com.", "gw.test")
		if err != nil || d.Domain != "api.example.com" || d.VerificationToken == "" || d.VerificationName() != "_tollgate-challenge.api.example.com" {
			t.Fatalf("add = %+v, %v", d, err)
		}
		if _, err := settings.AddDomain(ctx, db, a, "api.example.com", "gw.test"); err == nil {
			t.Errorf("a tenant claimed one of its own domains twice")
		}
		for _, tc := range []struct{ name, domain string }{
			{"platform domain", "x.gw.test"},
			{"not a host", "no spaces.example"},
			{"bare label", "localhost"},
		} {
			if _, err := settings.AddDomain(ctx, db, b, tc.domain, "gw.test"); err == nil {
				t.Errorf("%s: accepted %q", tc.name, tc.domain)
			}
		}
		records := map[string][]string{}
		lookup := func(_ context.Context, name string) ([]string, error) {
			if r, ok := records[name]; ok {
				return r, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
		}
		var ve *fault.ValidationError
		if _, err := settings.VerifyDomain(ctx, db, a, d.ID, lookup); !errors.As(err, &ve) || !strings.Contains(ve.Errors[0].Message, d.VerificationToken) {
			t.Errorf("verify without a record: %v", err)
		}
		records[d.VerificationName()] = []string{"v=spf1 -all", "wrong-token"}
		if _, err := settings.VerifyDomain(ctx, db, a, d.ID, lookup); !errors.As(err, &ve) || !strings.Contains(ve.Errors[0].Message, "does not hold") {
			t.Errorf("verify with a wrong record: %v", err)
		}
		records[d.VerificationName()] = append(records[d.VerificationName()], d.VerificationToken)
		if _, err := settings.VerifyDomain(ctx, db, b, d.ID, lookup); !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("tenant b verified tenant a's domain: %v", err)
		}
		v, err := settings.VerifyDomain(ctx, db, a, d.ID, lookup)
		if err != nil || v.VerifiedAt == nil {
			t.Errorf("verify = %+v, %v", v, err)
		}
		if err := settings.RemoveDomain(ctx, db, b, d.ID); !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("tenant b removed tenant a's domain: %v", err)
		}
		if err := settings.RemoveDomain(ctx, db, a, d.ID); err != nil {
			t.Fatal(err)
		}
		if list, _ := settings.ListDomains(ctx, db, ta.ID); len(list) != 0 {
			t.Errorf("domain not removed")
		}
	})
}
