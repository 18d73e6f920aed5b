package configsync

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// TestTooNewAcrossRestart: a worker too old for a tenant's new shard
// refuses the tenant, and drops its older shard from the disk cache too: a
// restart while Redis is down serves neither the too-new shard nor the
// older one, and a restart with Redis up refuses the tenant again; the
// tenants it can enforce are served throughout.
func TestTooNewAcrossRestart(t *testing.T) {
	t.Parallel()
	const oldCap = proxycfg.CapNormalizedPaths - 1
	file := filepath.Join(t.TempDir(), "snapshot.json")
	rdb, keys := testredis.New(t)
	plain, fresh := tenant("1", false), tenant("2", true)
	testredis.Publish(t, rdb, keys, snapshot(1, plain, fresh))
	old := func(o *Options[runtime]) { o.Capability = oldCap; o.CacheFile = file }

	e1 := newSyncer(t, rdb, keys, old)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e1.syncer.Run(ctx) }()
	waitGen(t, e1.syncer, 1)
	waitFile(t, file)
	other := tenant("3", false)
	testredis.StoreShard(t, rdb, keys, 2, other.ID, 1, rawShard(t, other, 1))
	testredis.Announce(t, rdb, keys, 2)
	waitFor(t, e1.syncer, "the third tenant", func(rt *runtime) bool { return rt.tenants[other.ID] == 1 })
	// The plain tenant adds routes: too new; it is refused, not served at
	// its first shard.
	testredis.StoreShard(t, rdb, keys, 3, plain.ID, 2, rawShard(t, tenant("1", true), 2))
	testredis.Announce(t, rdb, keys, 3)
	waitGen(t, e1.syncer, 3)
	if rt := e1.syncer.Load(); rt.tenants[plain.ID] != -proxycfg.CapNormalizedPaths || rt.tenants[fresh.ID] != -proxycfg.CapNormalizedPaths {
		t.Fatalf("before the restart: %v", rt.tenants)
	}
	cancel()
	<-done

	// Restarted while Redis is down: the disk has only what it can serve.
	e2 := newSyncer(t, deadRedis(t), keys, func(o *Options[runtime]) { old(o); o.Timeout = 200 * time.Millisecond })
	run(t, e2.syncer)
	waitFor(t, e2.syncer, "the cached config", func(*runtime) bool { return true })
	rt := e2.syncer.Load()
	if rt.tenants[other.ID] != 1 {
		t.Fatalf("from disk: the third tenant at %d, want 1", rt.tenants[other.ID])
	}
	for _, id := range []string{plain.ID, fresh.ID} {
		if g := rt.tenants[id]; g > 0 {
			t.Fatalf("from disk: tenant %s, which this worker is too old for, is served at %d", id, g)
		}
	}

	// Restarted with Redis up: the same, and the index's too-new entries
	// are counted.
	e3 := newSyncer(t, rdb, keys, old)
	run(t, e3.syncer)
	waitGen(t, e3.syncer, 3)
	waitFor(t, e3.syncer, "the refused tenants", func(rt *runtime) bool {
		return rt.tenants[fresh.ID] == -proxycfg.CapNormalizedPaths && rt.tenants[plain.ID] == -proxycfg.CapNormalizedPaths
	})
	if g := e3.syncer.Load().tenants[other.ID]; g != 1 {
		t.Fatalf("from Redis: the third tenant at %d, want 1", g)
	}
	if n := e3.syncer.TooNew(); n != 2 {
		t.Fatalf("too new: %d, want 2", n)
	}
}
