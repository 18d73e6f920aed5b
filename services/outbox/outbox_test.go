package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/outbox"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/storetest"
)

func TestMarkChanged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	conn, err := db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{outbox.Channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	const a, b = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
	generation := func() int64 {
		var g int64
		if err := db.QueryRow(ctx, `SELECT generation FROM config_state`).Scan(&g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	changed := func(tenant string) int64 {
		var g int64
		if err := db.QueryRow(ctx, `SELECT generation FROM config_changes WHERE tenant_id = $1`, tenant).Scan(&g); err != nil {
			t.Fatalf("config_changes of %s: %v", tenant, err)
		}
		return g
	}
	mark := func(tenants ...string) error {
		return store.InTx(ctx, db, func(tx pgx.Tx) error {
			for _, tn := range tenants {
				if err := outbox.MarkChanged(ctx, tx, tn); err != nil {
					return err
				}
			}
			return nil
		})
	}

	start := generation()
	if err := mark(a); err != nil {
		t.Fatal(err)
	}
	if g := generation(); g != start+1 || changed(a) != g {
		t.Fatalf("after a change of a: generation %d, a at %d; want both %d", g, changed(a), start+1)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	n, err := conn.Conn().WaitForNotification(wctx)
	cancel()
	if err != nil || n.Payload != fmt.Sprintf("config:%d:%s", start+1, a) {
		t.Fatalf("notification %+v, %v", n, err)
	}
	// One transaction changing two tenants moves each to its own bump; a
	// later change of b leaves a where it was.
	if err := mark(a, b); err != nil {
		t.Fatal(err)
	}
	if err := mark(b); err != nil {
		t.Fatal(err)
	}
	if ga, gb, g := changed(a), changed(b), generation(); ga != start+2 || gb != start+4 || g != start+4 {
		t.Fatalf("a at %d, b at %d, generation %d; want %d, %d, %d", ga, gb, g, start+2, start+4, start+4)
	}
	// A change without its tenant is refused, and nothing is bumped.
	for _, bad := range []string{"", "acme"} {
		if err := mark(bad); err == nil {
			t.Errorf("MarkChanged(%q) succeeded", bad)
		}
	}
	if g := generation(); g != start+4 {
		t.Fatalf("refused changes bumped the generation to %d", g)
	}
}

func TestEnqueueKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.NewPool(t)
	rec := proxycfg.KeyRecord{ID: "k1", TenantID: "t1", ConsumerID: "c1", PlanID: "p1", Status: proxycfg.KeyRevoked}
	if err := store.InTx(ctx, db, func(tx pgx.Tx) error { return outbox.EnqueueKey(ctx, tx, "digest-1", rec) }); err != nil {
		t.Fatal(err)
	}
	var status string
	if err := db.QueryRow(ctx, `SELECT record->>'status' FROM key_outbox WHERE digest = 'digest-1' AND published_at IS NULL`).
		Scan(&status); err != nil || status != proxycfg.KeyRevoked {
		t.Fatalf("queued record status %q, %v", status, err)
	}
}
