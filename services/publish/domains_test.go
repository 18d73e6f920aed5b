package publish_test

import (
	"context"
	"net"
	"slices"
	"testing"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/tenancy"
)

// TestCustomDomainsArePublished checks that verifying a custom domain
// publishes it in its tenant's Domains (and only then), that removing it
// unpublishes it, and that no other tenant can claim it.
func TestCustomDomainsArePublished(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	ctx := context.Background()
	other, _, err := tenancy.Create(ctx, h.db, secret, "Globex", "globex")
	if err != nil {
		t.Fatal(err)
	}
	globex := audit.Actor{TenantID: other.ID, Name: "test"}
	records := map[string][]string{}
	lookup := func(_ context.Context, name string) ([]string, error) {
		if r, ok := records[name]; ok {
			return r, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	verified, err := settings.AddDomain(ctx, h.db, h.who, "API.Shop.Example", "gw.test")
	if err != nil {
		t.Fatal(err)
	}
	pending, err := settings.AddDomain(ctx, h.db, h.who, "pending.shop.example", "gw.test")
	if err != nil {
		t.Fatal(err)
	}
	domainsOf := func(snap *proxycfg.Snapshot, tenantID string) []string {
		for _, tn := range snap.Tenants {
			if tn.ID == tenantID {
				return tn.Domains
			}
		}
		t.Fatalf("tenant %s not in the snapshot", tenantID)
		return nil
	}

	// Added, not verified: not served.
	if d := domainsOf(h.snapshot(h.dbGeneration()), h.who.TenantID); len(d) != 0 {
		t.Fatalf("unverified domains published: %v", d)
	}
	before := h.dbGeneration()
	records[verified.VerificationName()] = []string{verified.VerificationToken}
	if _, err := settings.VerifyDomain(ctx, h.db, h.who, verified.ID, lookup); err != nil {
		t.Fatal(err)
	}
	if g := h.dbGeneration(); g <= before {
		t.Fatalf("verifying did not mark the config changed (generation %d, was %d)", g, before)
	}
	snap := h.snapshot(h.dbGeneration())
	if d := domainsOf(snap, h.who.TenantID); !slices.Equal(d, []string{"api.shop.example"}) {
		t.Fatalf("acme domains %v, want the verified one only", d)
	}
	if d := domainsOf(snap, other.ID); len(d) != 0 {
		t.Fatalf("globex domains %v", d)
	}

	// Another tenant cannot claim it once verified, in any case; an
	// unverified claim blocks nobody (the first to verify takes the name).
	for _, tc := range []struct{ name, domain string }{
		{name: "verified domain", domain: "api.shop.example"},
		{name: "verified domain in other case", domain: "Api.Shop.Example."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := settings.AddDomain(ctx, h.db, globex, tc.domain, "gw.test"); err == nil {
				t.Fatalf("globex claimed %q", tc.domain)
			}
		})
	}
	if _, err := settings.AddDomain(ctx, h.db, globex, "pending.shop.example", "gw.test"); err != nil {
		t.Fatalf("an unverified claim blocks another tenant: %v", err)
	}

	// Removing an unverified domain changes nothing served; removing the
	// verified one unpublishes it.
	before = h.dbGeneration()
	if err := settings.RemoveDomain(ctx, h.db, h.who, pending.ID); err != nil {
		t.Fatal(err)
	}
	if g := h.dbGeneration(); g != before {
		t.Fatalf("removing an unverified domain bumped the generation to %d (was %d)", g, before)
	}
	if err := settings.RemoveDomain(ctx, h.db, h.who, verified.ID); err != nil {
		t.Fatal(err)
	}
	if g := h.dbGeneration(); g <= before {
		t.Fatalf("removing a verified domain did not mark the config changed")
	}
	if d := domainsOf(h.snapshot(h.dbGeneration()), h.who.TenantID); len(d) != 0 {
		t.Fatalf("removed domain still published: %v", d)
	}
	// Now free, the other tenant may claim it.
	if _, err := settings.AddDomain(ctx, h.db, globex, "api.shop.example", "gw.test"); err != nil {
		t.Fatalf("globex cannot claim a released domain: %v", err)
	}
}
