package catalog_test

import (
	"context"
	"testing"

	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
)

// TestReadGateways reads every tenant's gateway objects, or one tenant's,
// through the catalog's own queries; and each change marks its own
// tenant's config changed (config_changes) and no other's.
func TestReadGateways(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	secret := []byte("read-gateways-secret-0123456789")
	s := catalog.New(db, secret, true)
	generation := func(tenantID string) int64 {
		var g int64
		if err := db.QueryRow(ctx, `SELECT generation FROM config_changes WHERE tenant_id = $1`, tenantID).Scan(&g); err != nil {
			t.Fatalf("config_changes of %s: %v", tenantID, err)
		}
		return g
	}
	// Tenants made in the order zeta, alpha: read back by slug.
	type objs struct {
		who  audit.Actor
		up   catalog.Upstream
		api  catalog.API
		plan catalog.Plan
	}
	made := map[string]objs{}
	for _, slug := range []string{"zeta", "alpha"} {
		tn, _, err := tenancy.Create(ctx, db, secret, slug, slug)
		if err != nil {
			t.Fatal(err)
		}
		who := audit.Actor{TenantID: tn.ID, Name: "test"}
		w := 3
		up, err := s.CreateUpstream(ctx, who, catalog.UpstreamInput{Name: "u", Targets: []catalog.Target{
			{URL: "http://127.0.0.1:9"}, {URL: "http://127.0.0.1:10", Weight: &w}}})
		if err != nil {
			t.Fatal(err)
		}
		api, err := s.CreateAPI(ctx, who, catalog.APIInput{Name: "A", Slug: "a", BasePath: "/a", UpstreamID: up.ID})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ImportOpenAPI(ctx, who, api.ID, []byte("openapi: 3.0.3\ninfo: {title: A, version: '1'}\npaths:\n  /b:\n    get: {responses: {'200': {description: ok}}}\n  /a:\n    get: {responses: {'200': {description: ok}}}\n")); err != nil {
			t.Fatal(err)
		}
		plan, err := s.CreatePlan(ctx, who, catalog.PlanInput{Name: "P", APIIDs: []string{api.ID}})
		if err != nil {
			t.Fatal(err)
		}
		made[slug] = objs{who, up, api, plan}
	}

	all, err := catalog.ReadGateways(ctx, db, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].TenantSlug != "alpha" || all[1].TenantSlug != "zeta" {
		t.Fatalf("read %d tenants: %+v", len(all), all)
	}
	for _, g := range all {
		m := made[g.TenantSlug]
		if g.TenantID != m.who.TenantID || len(g.Upstreams) != 1 || g.Upstreams[0].ID != m.up.ID ||
			len(g.Upstreams[0].Targets) != 2 || *g.Upstreams[0].Targets[1].Weight != 3 ||
			len(g.APIs) != 1 || g.APIs[0].ID != m.api.ID || len(g.Plans) != 1 || g.Plans[0].ID != m.plan.ID ||
			len(g.Plans[0].APIIDs) != 1 || g.Plans[0].APIIDs[0] != m.api.ID {
			t.Errorf("tenant %s read as %+v", g.TenantSlug, g)
		}
		routes := g.Routes[m.api.ID]
		if len(routes) != 2 || routes[0].Path != "/a" || routes[1].Path != "/b" {
			t.Errorf("tenant %s routes %+v", g.TenantSlug, routes)
		}
	}
	one, err := catalog.ReadGateways(ctx, db, made["zeta"].who.TenantID)
	if err != nil || len(one) != 1 || one[0].TenantSlug != "zeta" || len(one[0].APIs) != 1 {
		t.Fatalf("one tenant: %+v, %v", one, err)
	}
	for _, id := range []string{"not-an-id", "00000000-0000-0000-0000-000000000000"} {
		if none, err := catalog.ReadGateways(ctx, db, id); err != nil || len(none) != 0 {
			t.Errorf("ReadGateways(%q) = %+v, %v", id, none, err)
		}
	}

	// A change moves its tenant's own config_changes counter, and only its:
	// generations are per tenant, so no platform-wide row serialises writes.
	alpha, zeta := generation(made["alpha"].who.TenantID), generation(made["zeta"].who.TenantID)
	if alpha < 1 || zeta < 1 {
		t.Fatalf("generations after creating objects: alpha %d, zeta %d", alpha, zeta)
	}
	if err := s.DeleteAPI(ctx, made["zeta"].who, made["zeta"].api.ID); err != nil {
		t.Fatal(err)
	}
	if a, z := generation(made["alpha"].who.TenantID), generation(made["zeta"].who.TenantID); a != alpha || z != zeta+1 {
		t.Errorf("after a change of zeta: alpha at %d (was %d), zeta at %d (was %d)", a, alpha, z, zeta)
	}
}
