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
	platform := func() int64 {
		var g int64
		if err := db.QueryRow(ctx, `SELECT generation FROM config_state`).Scan(&g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	changed := func(tenant string) int64 {
		var g int64
		if err := db.QueryRow(ctx, `SELECT coalesce((SELECT generation FROM config_changes WHERE tenant_id = $1), 0)`,
			tenant).Scan(&g); err != nil {
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

	shared := platform()
	if err := mark(a); err != nil {
		t.Fatal(err)
	}
	if g := changed(a); g != 1 {
		t.Fatalf("after a first change of a: a at %d, want 1", g)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	n, err := conn.Conn().WaitForNotification(wctx)
	cancel()
	if err != nil || n.Payload != fmt.Sprintf("config:1:%s", a) {
		t.Fatalf("notification %+v, %v", n, err)
	}
	// Each tenant counts its own changes: a transaction changing two
	// tenants moves each by one, a later change of b leaves a where it
	// was, and nothing shared by all tenants moves (their writes never
	// wait on one row).
	if err := mark(a, b); err != nil {
		t.Fatal(err)
	}
	if err := mark(b); err != nil {
		t.Fatal(err)
	}
	if ga, gb := changed(a), changed(b); ga != 2 || gb != 2 {
		t.Fatalf("a at %d, b at %d; want 2, 2", ga, gb)
	}
	if g := platform(); g != shared {
		t.Fatalf("config_state.generation moved from %d to %d", shared, g)
	}
	// A change without its tenant is refused, and nothing is bumped.
	for _, bad := range []string{"", "acme"} {
		if err := mark(bad); err == nil {
			t.Errorf("MarkChanged(%q) succeeded", bad)
		}
	}
	if ga, gb := changed(a), changed(b); ga != 2 || gb != 2 {
		t.Fatalf("refused changes moved a to %d, b to %d", ga, gb)
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
