package main

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/settings"
)

// TestCustomDomainEndToEnd follows a tenant's custom domain from the
// portal's domain service through verification, the publisher and the
// workers: unverified it is not served, verified it reaches the tenant's API
// on both workers, and another tenant cannot claim it.
func TestCustomDomainEndToEnd(t *testing.T) {
	t.Parallel()
	p := startPlatform(t)
	back := httptest.NewServer(demoBackend("shop"))
	defer back.Close()
	shop := p.setupTenant("shop", []string{back.URL}, 1000)
	other := p.setupTenant("rival", []string{back.URL}, 1000)
	tenantID := func(token string) string {
		var tn struct{ ID string }
		p.api("GET", "/v1/tenant", token, nil, 200, &tn)
		return tn.ID
	}
	ctx := context.Background()
	who := audit.Actor{TenantID: tenantID(shop.token), Name: "e2e"}
	const host = "api.shop-e2e.example"

	d, err := settings.AddDomain(ctx, p.db, who, host, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	// An unverified claim blocks nobody: the rival may claim the name too,
	// and loses its claim when the owner verifies it.
	rival := audit.Actor{TenantID: tenantID(other.token), Name: "e2e"}
	rd, err := settings.AddDomain(ctx, p.db, rival, host, "localhost")
	if err != nil {
		t.Fatalf("an unverified claim blocked another tenant: %v", err)
	}
	p.eventually(5*time.Second, "the key works on the tenant's own host", func() bool {
		return p.call(0, "shop.localhost", "/echo/x", shop.key).status == 200
	})
	if a := p.call(0, host, "/echo/x", shop.key); a.status != 404 {
		t.Fatalf("unverified domain: status %d, want 404: %s", a.status, a.body)
	}

	// The TXT lookup is the only outside call; it answers with the token.
	lookup := func(_ context.Context, name string) ([]string, error) {
		if name != d.VerificationName() {
			return nil, nil
		}
		return []string{d.VerificationToken}, nil
	}
	if _, err := settings.VerifyDomain(ctx, p.db, who, d.ID, lookup); err != nil {
		t.Fatal(err)
	}
	// The rival's claim is gone, and it can neither claim nor verify the name now.
	if _, err := settings.VerifyDomain(ctx, p.db, rival, rd.ID, lookup); err == nil {
		t.Fatal("the rival verified a domain another tenant owns")
	}
	if _, err := settings.AddDomain(ctx, p.db, rival, host, "localhost"); err == nil {
		t.Fatal("the rival claimed a verified domain")
	}
	took := p.eventually(2*time.Second, "the verified domain is served by both workers", func() bool {
		return p.call(0, host, "/echo/x", shop.key).backend == "shop" && p.call(1, host, "/echo/x", shop.key).backend == "shop"
	})
	t.Logf("verified domain served by both workers %v after verification", took)
	// The domain belongs to the shop tenant: the rival's key is refused there.
	if a := p.call(0, host, "/echo/x", other.key); a.status != 401 {
		t.Fatalf("another tenant's key on the domain: status %d, want 401", a.status)
	}
}
