package configsync

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// deadRedis is a client of an address nothing listens on: Redis is down.
func deadRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFile waits until path exists.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("config not written to disk")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDiskCacheServesWhileRedisDown: a worker that ran with Redis up keeps
// every tenant's shard on disk, appended to as tenants change; restarted
// while Redis is down, it serves all of them at their last generations. A
// corrupt or invalid cache is rejected.
func TestDiskCacheServesWhileRedisDown(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "snapshot.json")
	rdb, keys := testredis.New(t)
	a, b := tenant("1", false), tenant("2", true)
	testredis.Publish(t, rdb, keys, snapshot(7, a, b))
	e1 := newSyncer(t, rdb, keys, func(o *Options[runtime]) { o.CacheFile = file })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e1.syncer.Run(ctx) }()
	waitGen(t, e1.syncer, 7)
	// One tenant changes, one goes.
	testredis.StoreShard(t, rdb, keys, 8, b.ID, 8, rawShard(t, b, 8))
	testredis.Store(t, rdb, keys, snapshot(9, tenant("2", true)))
	waitGen(t, e1.syncer, 9)
	waitFile(t, file)
	cancel()
	<-done

	tests := []struct {
		name      string
		content   []byte // nil keeps the cached file
		wantReady bool
	}{
		{name: "restart with redis down serves the cached shards", wantReady: true},
		{name: "corrupt cache is rejected", content: []byte(`{"kind":"header","format":"tollgate-config-cache/1"}` + "\n" +
			`{"kind":"index","se` + "\n" + `{"kind":"shard"}` + "\n"), wantReady: false},
		{name: "unknown format is rejected", content: []byte(`{"kind":"header","format":"other/9"}` + "\n"), wantReady: false},
		{name: "invalid legacy snapshot is rejected", content: []byte(`{"schema":99,"generation":3,"tenants":[]}`), wantReady: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := file
			if tc.content != nil {
				f = filepath.Join(t.TempDir(), "snapshot.json")
				if err := os.WriteFile(f, tc.content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			e2 := newSyncer(t, deadRedis(t), keys, func(o *Options[runtime]) {
				o.CacheFile = f
				o.Timeout = 200 * time.Millisecond
			})
			run(t, e2.syncer)
			if tc.wantReady {
				waitGen(t, e2.syncer, 9)
				rt := e2.syncer.Load()
				if len(rt.tenants) != 1 || rt.tenants[b.ID] != 9 {
					t.Fatalf("served from disk: %v, want tenant 2 at 9 and tenant 1 gone", rt.tenants)
				}
				return
			}
			time.Sleep(150 * time.Millisecond)
			if e2.syncer.Ready() {
				t.Fatalf("ready with a bad cache (sequence %d)", e2.syncer.Generation())
			}
		})
	}
}

// TestDiskCacheReadsLegacySnapshot: the one-snapshot file a worker of the
// version before shards left behind is served, and rewritten in the log's
// form.
func TestDiskCacheReadsLegacySnapshot(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "snapshot.json")
	raw, err := json.Marshal(snapshot(12, tenant("1", false), tenant("2", false)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	_, keys := testredis.New(t)
	e := newSyncer(t, deadRedis(t), keys, func(o *Options[runtime]) { o.CacheFile = file; o.Timeout = 200 * time.Millisecond })
	run(t, e.syncer)
	waitGen(t, e.syncer, 12)
	if n := len(e.syncer.Load().tenants); n != 2 {
		t.Fatalf("%d tenants from the legacy file", n)
	}
	data, err := os.ReadFile(file)
	if err != nil || !strings.HasPrefix(string(data), `{"kind":"header"`) {
		t.Fatalf("legacy file not rewritten: %.60s %v", data, err)
	}
}

// TestDiskCacheAppendsAndCompacts: changes append records in proportion to
// the tenants that changed, and the file is rewritten once it has grown to
// twice what it holds (plus slack), keeping every tenant's last shard.
func TestDiskCacheAppendsAndCompacts(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "snapshot.json")
	c := &diskCache{path: file, capability: proxycfg.CapabilityVersion, log: testLogger()}
	tn := tenant("1", false)
	other := tenant("2", false)
	rec := func(seq int64, tns ...proxycfg.Tenant) {
		entries, raws := map[string]proxycfg.IndexEntry{}, map[string][]byte{}
		for _, x := range tns {
			raw := rawShard(t, x, seq)
			raws[x.ID] = raw
			entries[x.ID] = proxycfg.IndexEntry{Generation: seq, Capability: 1, Sum: proxycfg.ShardSum(raw), Seq: seq}
		}
		if err := c.record(seq, 1, entries, raws, nil); err != nil {
			t.Fatal(err)
		}
	}
	rec(1, tn, other)
	st, _ := os.Stat(file)
	before := st.Size()
	rec(2, tn)
	st, _ = os.Stat(file)
	grown := st.Size() - before
	if grown <= 0 || grown > before*3/4 {
		t.Fatalf("one tenant's change appended %d bytes to a file of %d holding two", grown, before)
	}
	// Enough changes of one tenant to pass the slack: the file is
	// compacted and still holds both tenants at their last generations.
	var seq int64 = 3
	for ; c.size < compactSlack; seq++ {
		rec(seq, tn)
	}
	rec(seq, tn)
	st, _ = os.Stat(file)
	if st.Size() > 2*c.liveTotal+compactSlack {
		t.Fatalf("file of %d bytes holding %d not compacted", st.Size(), c.liveTotal)
	}
	cfg, err := (&diskCache{path: file, log: testLogger()}).load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.seq != seq || cfg.shards[tn.ID].entry.Generation != seq || cfg.shards[other.ID].entry.Generation != 1 {
		t.Fatalf("after compaction: seq %d, tenant 1 at %d, tenant 2 at %d", cfg.seq,
			cfg.shards[tn.ID].entry.Generation, cfg.shards[other.ID].entry.Generation)
	}
}

// TestDiskCacheYieldsToRedis: once Redis answers, it is the truth, even at
// a lower sequence than the cache (another deployment's cache, or a
// restored control plane).
func TestDiskCacheYieldsToRedis(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "snapshot.json")
	raw, err := json.Marshal(snapshot(40, tenant("1", false), tenant("9", false)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	rdb, keys := testredis.New(t)
	testredis.Publish(t, rdb, keys, snapshot(3))
	e := newSyncer(t, rdb, keys, func(o *Options[runtime]) { o.CacheFile = file })
	run(t, e.syncer)
	waitFor(t, e.syncer, "redis's config", func(rt *runtime) bool {
		_, nine := rt.tenants["t9"]
		return rt.seq == 3 && rt.tenants["t1"] == 3 && !nine
	})
	// From then on it follows Redis.
	testredis.Publish(t, rdb, keys, snapshot(4))
	waitGen(t, e.syncer, 4)
}
