package configsync

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// runtime is what the tests' Apply builds: each tenant's shard generation
// (-need for a refused tenant), and how many shards it was built from.
type runtime struct {
	seq     int64
	tenants map[string]int64
	built   int
}

// recorder is an Apply that records what it was given; failOn makes a
// tenant's build fail.
type recorder struct {
	mu     sync.Mutex
	shards int // shards given to Apply, all told
	failOn map[string]bool
}

func (r *recorder) apply(cur *runtime, u *Update) (*runtime, map[string]error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := &runtime{seq: u.Seq, tenants: map[string]int64{}}
	if cur != nil {
		next.tenants = maps.Clone(cur.tenants)
	}
	failed := map[string]error{}
	for _, s := range u.Shards {
		r.shards++
		if r.failOn[s.Tenant.ID] {
			failed[s.Tenant.ID] = errors.New("build failed")
			continue
		}
		next.tenants[s.Tenant.ID] = s.Generation
		next.built++
	}
	for _, ref := range u.Refused {
		next.tenants[ref.TooNew.TenantID] = -int64(ref.TooNew.Need)
	}
	for _, id := range u.Removed {
		delete(next.tenants, id)
	}
	return next, failed
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.shards
}

// tenant is a valid tenant t<n> served at slug<n>, with routes when
// routes is set (which needs CapNormalizedPaths).
func tenant(n string, routes bool) proxycfg.Tenant {
	t := proxycfg.Tenant{ID: "t" + n, Slug: "slug" + n,
		Upstreams: []proxycfg.Upstream{{ID: "u1", Algorithm: proxycfg.AlgorithmRoundRobin,
			Targets: []proxycfg.Target{{URL: "http://example.com", Weight: 1}}}},
		APIs: []proxycfg.API{{ID: "a1", BasePath: "/v1", UpstreamID: "u1", Auth: proxycfg.AuthKey}},
	}
	if routes {
		t.APIs[0].Routes = []proxycfg.Route{{Method: "GET", Path: "/items"}}
	}
	return t
}

func snapshot(gen int64, tenants ...proxycfg.Tenant) *proxycfg.Snapshot {
	if len(tenants) == 0 {
		tenants = []proxycfg.Tenant{tenant("1", false)}
	}
	return &proxycfg.Snapshot{Schema: proxycfg.CapabilityVersion, Generation: gen, Tenants: tenants}
}

// rawShard is the JSON of t's shard at gen.
func rawShard(t *testing.T, tn proxycfg.Tenant, gen int64) []byte {
	t.Helper()
	raw, err := json.Marshal(proxycfg.NewShard(tn, gen, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

type testEnv struct {
	t      *testing.T
	rdb    redis.UniversalClient
	keys   proxycfg.Keys
	syncer *Syncer[runtime]
	rec    *recorder
}

func newSyncer(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys, opts func(*Options[runtime])) *testEnv {
	t.Helper()
	e := &testEnv{t: t, rdb: rdb, keys: keys, rec: &recorder{failOn: map[string]bool{}}}
	o := Options[runtime]{Redis: rdb, Keys: keys, PollInterval: 50 * time.Millisecond, Apply: e.rec.apply}
	if opts != nil {
		opts(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.syncer = s
	return e
}

func start(t *testing.T, poll time.Duration) *testEnv {
	t.Helper()
	rdb, keys := testredis.New(t)
	return newSyncer(t, rdb, keys, func(o *Options[runtime]) { o.PollInterval = poll })
}

func run(t *testing.T, s *Syncer[runtime]) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor waits until the live runtime satisfies cond.
func waitFor(t *testing.T, s *Syncer[runtime], what string, cond func(*runtime) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if rt := s.Load(); rt != nil && cond(rt) {
			return
		}
		if time.Now().After(deadline) {
			rt := s.Load()
			t.Fatalf("%s not live within 5s (live %+v)", what, rt)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitGen(t *testing.T, s *Syncer[runtime], gen int64) {
	t.Helper()
	waitFor(t, s, "sequence", func(*runtime) bool { return s.Generation() == gen })
}

func TestSyncer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		poll time.Duration
		step func(t *testing.T, e *testEnv)
		want int64
	}{
		{
			name: "follows pub/sub", poll: time.Hour,
			step: func(t *testing.T, e *testEnv) {
				// The subscription may not be up yet: announce until it lands.
				testredis.Store(t, e.rdb, e.keys, snapshot(2))
				deadline := time.Now().Add(5 * time.Second)
				for e.syncer.Generation() != 2 && time.Now().Before(deadline) {
					testredis.Announce(t, e.rdb, e.keys, 2)
					time.Sleep(50 * time.Millisecond)
				}
			},
			want: 2,
		},
		{
			name: "follows poll when the message is missed", poll: 50 * time.Millisecond,
			step: func(t *testing.T, e *testEnv) { testredis.Store(t, e.rdb, e.keys, snapshot(3)) },
			want: 3,
		},
		{
			name: "reads the log past several missed publishes", poll: 50 * time.Millisecond,
			step: func(t *testing.T, e *testEnv) {
				testredis.Store(t, e.rdb, e.keys, snapshot(2, tenant("1", false), tenant("2", false)))
				testredis.Store(t, e.rdb, e.keys, snapshot(3, tenant("1", false), tenant("2", false)))
				testredis.Store(t, e.rdb, e.keys, snapshot(4, tenant("2", false)))
				waitFor(t, e.syncer, "tenant 1 removed", func(rt *runtime) bool {
					_, has := rt.tenants["t1"]
					return !has && rt.tenants["t2"] == 4
				})
			},
			want: 4,
		},
		{
			name: "ignores older generations", poll: 50 * time.Millisecond,
			step: func(t *testing.T, e *testEnv) {
				testredis.Publish(t, e.rdb, e.keys, snapshot(1))
				time.Sleep(150 * time.Millisecond)
			},
			want: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, tc.poll)
			testredis.Publish(t, e.rdb, e.keys, snapshot(1))
			if e.syncer.Ready() {
				t.Fatal("ready before any config")
			}
			run(t, e.syncer)
			waitGen(t, e.syncer, 1)
			if !e.syncer.Ready() {
				t.Fatal("not ready after the first config")
			}
			tc.step(t, e)
			waitGen(t, e.syncer, tc.want)
		})
	}
}

// TestChangeFetchesOnlyThatTenant: with many tenants live, a publish of one
// tenant fetches and builds that tenant's shard and no other.
func TestChangeFetchesOnlyThatTenant(t *testing.T) {
	t.Parallel()
	e := start(t, 30*time.Millisecond)
	var ts []proxycfg.Tenant
	for i := range 200 {
		ts = append(ts, tenant(string(rune('a'+i%26))+strings.Repeat("x", i/26), false))
	}
	testredis.Publish(t, e.rdb, e.keys, snapshot(1, ts...))
	run(t, e.syncer)
	waitGen(t, e.syncer, 1)
	if n := e.rec.count(); n != 200 {
		t.Fatalf("%d shards built at start, want 200", n)
	}
	testredis.StoreShard(t, e.rdb, e.keys, 2, ts[7].ID, 2, rawShard(t, ts[7], 2))
	testredis.Announce(t, e.rdb, e.keys, 2)
	waitFor(t, e.syncer, "the changed tenant", func(rt *runtime) bool { return rt.tenants[ts[7].ID] == 2 })
	time.Sleep(100 * time.Millisecond)
	if n := e.rec.count(); n != 201 {
		t.Fatalf("%d shards built after one tenant's change, want 201", n)
	}
	if rt := e.syncer.Load(); len(rt.tenants) != 200 || rt.tenants[ts[8].ID] != 1 {
		t.Fatalf("other tenants: %d live, %v", len(rt.tenants), rt.tenants[ts[8].ID])
	}
}

// TestBadShardKeepsThatTenant: a shard that cannot be decoded, validated or
// built is rejected for its tenant only; the tenant keeps its last good
// shard, every other tenant's change applies, and a later good shard of the
// tenant goes live.
func TestBadShardKeepsThatTenant(t *testing.T) {
	t.Parallel()
	good := tenant("1", false)
	tests := []struct {
		name string
		raw  func(t *testing.T) []byte
	}{
		{name: "undecodable", raw: func(*testing.T) []byte { return []byte(`{"capability":1,`) }},
		{name: "unknown field", raw: func(t *testing.T) []byte {
			return []byte(strings.Replace(string(rawShard(t, good, 2)), `"slug":"slug1"`, `"slug":"slug1","ip_allow":["10.0.0.0/8"]`, 1))
		}},
		{name: "invalid", raw: func(t *testing.T) []byte {
			bad := tenant("1", false)
			bad.APIs[0].BasePath = "nope"
			return rawShard(t, bad, 2)
		}},
		{name: "unknown capability", raw: func(t *testing.T) []byte {
			return []byte(strings.Replace(string(rawShard(t, good, 2)), `"capability":1`, `"capability":0`, 1))
		}},
		{name: "generation mismatch", raw: func(t *testing.T) []byte { return rawShard(t, good, 7) }},
		{name: "build fails", raw: func(t *testing.T) []byte { return rawShard(t, good, 2) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, 30*time.Millisecond)
			var rejected []string
			var mu sync.Mutex
			e.syncer.opts.Rejected = func(id string, _ int64, _ error) { mu.Lock(); rejected = append(rejected, id); mu.Unlock() }
			other := tenant("2", false)
			testredis.Publish(t, e.rdb, e.keys, snapshot(1, good, other))
			run(t, e.syncer)
			waitGen(t, e.syncer, 1)
			if tc.name == "build fails" {
				e.rec.mu.Lock()
				e.rec.failOn[good.ID] = true
				e.rec.mu.Unlock()
			}
			// The entry names generation 2 (a shard that says 7 is
			// rejected too).
			testredis.StoreShard(t, e.rdb, e.keys, 2, good.ID, 2, tc.raw(t))
			testredis.StoreShard(t, e.rdb, e.keys, 3, other.ID, 3, rawShard(t, other, 3))
			testredis.Announce(t, e.rdb, e.keys, 3)
			waitFor(t, e.syncer, "the other tenant's change", func(rt *runtime) bool { return rt.tenants[other.ID] == 3 })
			if g := e.syncer.Load().tenants[good.ID]; g != 1 {
				t.Fatalf("tenant with a bad shard at %d, want its last good 1", g)
			}
			mu.Lock()
			if len(rejected) != 1 || rejected[0] != good.ID {
				t.Errorf("rejected %v, want [%s]", rejected, good.ID)
			}
			mu.Unlock()
			// A later good shard of the tenant goes live.
			e.rec.mu.Lock()
			e.rec.failOn[good.ID] = false
			e.rec.mu.Unlock()
			testredis.StoreShard(t, e.rdb, e.keys, 4, good.ID, 4, rawShard(t, good, 4))
			waitFor(t, e.syncer, "the tenant's next good shard", func(rt *runtime) bool { return rt.tenants[good.ID] == 4 })
		})
	}
}

// TestTooNewShard plays a worker that speaks less than a shard needs: the
// tenant is refused, whether or not the worker held an older shard of it
// (never served with the new restrictions dropped); a shard it can enforce
// again goes live.
func TestTooNewShard(t *testing.T) {
	t.Parallel()
	rdb, keys := testredis.New(t)
	old := newSyncer(t, rdb, keys, func(o *Options[runtime]) { o.Capability = proxycfg.CapNormalizedPaths - 1 })
	current := newSyncer(t, rdb, keys, nil)
	plain, fresh := tenant("1", false), tenant("2", true)
	testredis.Publish(t, rdb, keys, snapshot(1, plain, fresh))
	run(t, old.syncer)
	run(t, current.syncer)
	waitGen(t, old.syncer, 1)
	waitGen(t, current.syncer, 1)
	if g := old.syncer.Load().tenants[fresh.ID]; g != -proxycfg.CapNormalizedPaths {
		t.Fatalf("old worker: tenant with routes at %d, want refused (-%d)", g, proxycfg.CapNormalizedPaths)
	}
	if old.syncer.TooNew() != 1 || current.syncer.TooNew() != 0 {
		t.Fatalf("too new: old %d, current %d", old.syncer.TooNew(), current.syncer.TooNew())
	}
	// The plain tenant adds routes: the old worker refuses it now.
	withRoutes := tenant("1", true)
	testredis.StoreShard(t, rdb, keys, 2, plain.ID, 2, rawShard(t, withRoutes, 2))
	testredis.Announce(t, rdb, keys, 2)
	waitFor(t, current.syncer, "routes on the current worker", func(rt *runtime) bool { return rt.tenants[plain.ID] == 2 })
	waitGen(t, old.syncer, 2)
	if g := old.syncer.Load().tenants[plain.ID]; g != -proxycfg.CapNormalizedPaths {
		t.Fatalf("old worker: tenant at %d, want refused (-%d), not its older shard", g, proxycfg.CapNormalizedPaths)
	}
	if old.syncer.TooNew() != 2 {
		t.Fatalf("old worker too new: %d, want 2", old.syncer.TooNew())
	}
	// Both drop their routes: the old worker serves them again.
	testredis.StoreShard(t, rdb, keys, 3, plain.ID, 3, rawShard(t, plain, 3))
	testredis.StoreShard(t, rdb, keys, 4, fresh.ID, 4, rawShard(t, tenant("2", false), 4))
	waitFor(t, old.syncer, "enforceable shards", func(rt *runtime) bool {
		return rt.tenants[plain.ID] == 3 && rt.tenants[fresh.ID] == 4
	})
	if old.syncer.TooNew() != 0 {
		t.Fatalf("old worker too new: %d, want 0", old.syncer.TooNew())
	}
}

// TestHeartbeat: a worker reports the capability it speaks and the index
// sequence it has read, and withdraws its heartbeat when it stops.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	rdb, keys := testredis.New(t)
	e := newSyncer(t, rdb, keys, func(o *Options[runtime]) { o.WorkerID = "w1"; o.Capability = 5 })
	testredis.Publish(t, rdb, keys, snapshot(3))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.syncer.Run(ctx) }()
	waitGen(t, e.syncer, 3)
	var b proxycfg.ConfigWorkerBeat
	deadline := time.Now().Add(5 * time.Second)
	for {
		raw, err := rdb.Get(context.Background(), keys.ConfigWorkerBeat("w1")).Bytes()
		if err == nil && json.Unmarshal(raw, &b) == nil && b.Seq == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat at sequence 3: %+v %v", b, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if b.Capability != 5 {
		t.Fatalf("heartbeat %+v", b)
	}
	if ids, _ := rdb.HKeys(context.Background(), keys.ConfigWorkers()).Result(); len(ids) != 1 || ids[0] != "w1" {
		t.Fatalf("registry %v", ids)
	}
	cancel()
	<-done
	if n, _ := rdb.Exists(context.Background(), keys.ConfigWorkerBeat("w1")).Result(); n != 0 {
		t.Fatal("heartbeat left behind by a stopped worker")
	}
}

// TestSubscriptionReconnects cuts the config channel's subscription on the
// server (a restart, a failover) on a single Redis and on a Cluster: the
// syncer subscribes again and follows messages again. Polling is off (an
// hour), so only the channel can bring the new sequence in time.
func TestSubscriptionReconnects(t *testing.T) {
	t.Parallel()
	testredis.Each(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		e := newSyncer(t, rdb, keys, func(o *Options[runtime]) { o.PollInterval = time.Hour })
		s := e.syncer
		testredis.Publish(t, rdb, keys, snapshot(1))
		run(t, s)
		waitGen(t, s, 1)
		announce := func(gen int64) {
			t.Helper()
			testredis.Store(t, rdb, keys, snapshot(gen))
			// The subscription may not be up yet: announce until it lands.
			deadline := time.Now().Add(5 * time.Second)
			for s.Generation() != gen && time.Now().Before(deadline) {
				testredis.Announce(t, rdb, keys, gen)
				time.Sleep(50 * time.Millisecond)
			}
			waitGen(t, s, gen)
			waitFor(t, s, "the tenant's shard", func(rt *runtime) bool { return rt.tenants["t1"] == gen })
		}
		announce(2)
		if n := testredis.KillSubscriptions(t, rdb); n == 0 {
			t.Fatal("no subscription to cut")
		}
		time.Sleep(500 * time.Millisecond)
		announce(3)
	})
}

func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
