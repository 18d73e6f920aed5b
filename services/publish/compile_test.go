package publish_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/audit"
	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/publish"
	"github.com/tollgate/tollgate/services/settings"
	"github.com/tollgate/tollgate/services/tenancy"
)

// TestCompileTenant checks that one tenant compiles alone exactly as it
// does in the whole snapshot, and that TenantConfigBytes is its JSON size.
func TestCompileTenant(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.populate()
	// A second tenant with objects of its own, which must not leak in.
	other, _, err := tenancy.Create(ctx, h.db, secret, "Globex", "globex")
	if err != nil {
		t.Fatal(err)
	}
	ow := audit.Actor{TenantID: other.ID, Name: "test"}
	up, err := h.cat.CreateUpstream(ctx, ow, catalog.UpstreamInput{Name: "g", Targets: []catalog.Target{{URL: "http://127.0.0.1:7"}}})
	if err != nil {
		t.Fatal(err)
	}
	api, err := h.cat.CreateAPI(ctx, ow, catalog.APIInput{Name: "G", Slug: "g", BasePath: "/g", UpstreamID: up.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.cat.ImportOpenAPI(ctx, ow, api.ID, []byte("openapi: 3.0.3\ninfo: {title: G, version: '1'}\npaths:\n  /x:\n    get: {responses: {'200': {description: ok}}}\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.cat.CreatePlan(ctx, ow, catalog.PlanInput{Name: "P", APIIDs: []string{api.ID}}); err != nil {
		t.Fatal(err)
	}
	d, err := settings.AddDomain(ctx, h.db, ow, "api.globex.example", "gw.test")
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(context.Context, string) ([]string, error) { return []string{d.VerificationToken}, nil }
	if _, err := settings.VerifyDomain(ctx, h.db, ow, d.ID, lookup); err != nil {
		t.Fatal(err)
	}

	tx, err := h.db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	snap, err := publish.Compile(ctx, tx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Tenants) != 2 {
		t.Fatalf("%d tenants in the snapshot", len(snap.Tenants))
	}
	for _, want := range snap.Tenants {
		got, ok, err := publish.CompileTenant(ctx, tx, want.ID)
		if err != nil || !ok {
			t.Fatalf("compile tenant %s: %v, %v", want.Slug, ok, err)
		}
		if !equalJSON(got, want) {
			t.Errorf("tenant %s alone:\n%s\nin the snapshot:\n%s", want.Slug, mustJSON(got), mustJSON(want))
		}
		size, err := publish.TenantConfigBytes(ctx, tx, want.ID)
		if err != nil || size != int64(len(mustJSON(want))) {
			t.Errorf("tenant %s size %d, %v; want %d", want.Slug, size, err, len(mustJSON(want)))
		}
	}
	if _, ok, err := publish.CompileTenant(ctx, tx, "00000000-0000-0000-0000-000000000000"); ok || err != nil {
		t.Errorf("unknown tenant compiled: %v, %v", ok, err)
	}
	var g proxycfg.Tenant
	for _, tn := range snap.Tenants {
		if tn.ID == other.ID {
			g = tn
		}
	}
	if len(g.APIs) != 1 || len(g.APIs[0].Routes) != 1 || len(g.Plans) != 1 || len(g.Plans[0].APIIDs) != 1 ||
		len(g.Upstreams) != 1 || len(g.Upstreams[0].Targets) != 1 || len(g.Domains) != 1 {
		t.Errorf("globex compiled as %s", mustJSON(g))
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
