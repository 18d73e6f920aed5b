package configsync

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

type runtime struct{ gen int64 }

func snapshot(gen int64) *proxycfg.Snapshot {
	return &proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: gen, Tenants: []proxycfg.Tenant{{
		ID: "t1", Slug: "acme",
		Upstreams: []proxycfg.Upstream{{ID: "u1", Algorithm: proxycfg.AlgorithmRoundRobin,
			Targets: []proxycfg.Target{{URL: "http://example.com", Weight: 1}}}},
		APIs: []proxycfg.API{{ID: "a1", BasePath: "/v1", UpstreamID: "u1", Auth: proxycfg.AuthKey}},
	}}}
}

func start(t *testing.T, poll time.Duration) (*Syncer[runtime], *testredisEnv) {
	t.Helper()
	rdb, keys := testredis.New(t)
	env := &testredisEnv{t: t, rdb: rdb, keys: keys}
	s, err := New(Options[runtime]{
		Redis: rdb, Keys: keys, PollInterval: poll,
		Build: func(snap *proxycfg.Snapshot) (*runtime, error) { return &runtime{gen: snap.Generation}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	env.syncer = s
	return s, env
}

type testredisEnv struct {
	t      *testing.T
	rdb    redis.UniversalClient
	keys   proxycfg.Keys
	syncer *Syncer[runtime]
}

func testredisClient(e *testredisEnv) (redis.UniversalClient, proxycfg.Keys) { return e.rdb, e.keys }

func run(t *testing.T, s *Syncer[runtime]) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitGen(t *testing.T, s *Syncer[runtime], gen int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if rt := s.Load(); rt != nil && rt.gen == gen && s.Generation() == gen {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("generation %d not live within 5s (live %d)", gen, s.Generation())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSyncer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		poll time.Duration
		step func(t *testing.T, e *testredisEnv)
		want int64
	}{
		{
			name: "follows pub/sub", poll: time.Hour,
			step: func(t *testing.T, e *testredisEnv) {
				rdb, _ := testredisClient(e)
				// The subscription may not be up yet: announce until it lands.
				testredis.Store(t, rdb, e.keys, snapshot(2))
				deadline := time.Now().Add(5 * time.Second)
				for e.syncer.Generation() != 2 && time.Now().Before(deadline) {
					testredis.Announce(t, rdb, e.keys, 2)
					time.Sleep(50 * time.Millisecond)
				}
			},
			want: 2,
		},
		{
			name: "follows poll when the message is missed", poll: 50 * time.Millisecond,
			step: func(t *testing.T, e *testredisEnv) {
				rdb, _ := testredisClient(e)
				testredis.Store(t, rdb, e.keys, snapshot(3))
			},
			want: 3,
		},
		{
			name: "ignores older generations", poll: 50 * time.Millisecond,
			step: func(t *testing.T, e *testredisEnv) {
				rdb, _ := testredisClient(e)
				testredis.Publish(t, rdb, e.keys, snapshot(1))
				time.Sleep(150 * time.Millisecond)
			},
			want: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, e := start(t, tc.poll)
			rdb, _ := testredisClient(e)
			testredis.Publish(t, rdb, e.keys, snapshot(1))
			if s.Ready() {
				t.Fatal("ready before any snapshot")
			}
			run(t, s)
			waitGen(t, s, 1)
			if !s.Ready() {
				t.Fatal("not ready after the first snapshot")
			}
			tc.step(t, e)
			waitGen(t, s, tc.want)
		})
	}
}

func TestSyncerRejectsBadSnapshot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
	}{
		{name: "undecodable", raw: `{"schema":1,`},
		{name: "invalid", raw: `{"schema":1,"generation":2,"tenants":[{"id":"t","slug":"a","apis":[{"id":"x","base_path":"nope"}]}]}`},
		{name: "unknown schema", raw: `{"schema":99,"generation":2}`},
		{name: "generation mismatch", raw: `{"schema":1,"generation":7}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, e := start(t, 30*time.Millisecond)
			rdb, _ := testredisClient(e)
			testredis.Publish(t, rdb, e.keys, snapshot(1))
			run(t, s)
			waitGen(t, s, 1)
			testredis.StoreRaw(t, rdb, e.keys, 2, []byte(tc.raw))
			testredis.Announce(t, rdb, e.keys, 2)
			time.Sleep(200 * time.Millisecond)
			if g := s.Generation(); g != 1 || s.Load().gen != 1 {
				t.Fatalf("live generation %d after a bad snapshot, want 1", g)
			}
			// A later good snapshot still goes live.
			testredis.Publish(t, rdb, e.keys, snapshot(3))
			waitGen(t, s, 3)
		})
	}
}

// TestSubscriptionReconnects cuts the config channel's subscription on the
// server (a restart, a failover) on a single Redis and on a Cluster: the
// syncer subscribes again and follows messages again. Polling is off (an
// hour), so only the channel can bring the new generation in time.
func TestSubscriptionReconnects(t *testing.T) {
	t.Parallel()
	testredis.Each(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		s, err := New(Options[runtime]{
			Redis: rdb, Keys: keys, PollInterval: time.Hour,
			Build: func(snap *proxycfg.Snapshot) (*runtime, error) { return &runtime{gen: snap.Generation}, nil },
		})
		if err != nil {
			t.Fatal(err)
		}
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
		}
		announce(2)
		if n := testredis.KillSubscriptions(t, rdb); n == 0 {
			t.Fatal("no subscription to cut")
		}
		time.Sleep(500 * time.Millisecond)
		announce(3)
	})
}
