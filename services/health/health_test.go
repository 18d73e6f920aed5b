package health

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/services/storetest"
)

// put writes one worker's report the way proxy/health.Reporter does.
func put(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys, tenant, up, url, worker string, rep proxycfg.TargetHealthReport) {
	t.Helper()
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(context.Background(), keys.TargetHealth(tenant), proxycfg.TargetHealthField(up, url, worker), b).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestReaderAggregatesWorkers(t *testing.T) {
	t.Parallel()
	storetest.EachRedis(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		now := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
		r := &Reader{Redis: rdb, Keys: keys, Now: func() time.Time { return now }}
		fresh, old := now.Add(-time.Second), now.Add(-10*time.Minute)
		probe := now.Add(-1500 * time.Millisecond)
		const (
			good, half, dead, ejected, stale, unseen = "http://good:80", "http://half:80", "http://dead:80",
				"http://ejected:80", "http://stale:80", "http://unseen:80"
		)
		ok := proxycfg.TargetHealthReport{Healthy: true, LastCheck: probe, CheckedAt: fresh}
		failing := proxycfg.TargetHealthReport{Healthy: false, LastCheck: probe, LastError: "dial tcp: connection refused", CheckedAt: fresh}
		for _, w := range []string{"w1", "w2"} {
			put(t, rdb, keys, "t-a", "u1", good, w, ok)
			put(t, rdb, keys, "t-a", "u1", dead, w, failing)
		}
		put(t, rdb, keys, "t-a", "u1", half, "w1", ok)
		put(t, rdb, keys, "t-a", "u1", half, "w2", failing)
		put(t, rdb, keys, "t-a", "u1", ejected, "w1", proxycfg.TargetHealthReport{Healthy: true, Ejected: true, CheckedAt: fresh})
		put(t, rdb, keys, "t-a", "u1", ejected, "w2", proxycfg.TargetHealthReport{Healthy: true, CheckedAt: fresh})
		// A dead worker's views: ignored, and one that disagrees with the live ones.
		put(t, rdb, keys, "t-a", "u1", good, "w-dead", proxycfg.TargetHealthReport{Healthy: false, LastError: "old", CheckedAt: old})
		put(t, rdb, keys, "t-a", "u1", stale, "w-dead", proxycfg.TargetHealthReport{Healthy: true, CheckedAt: old})
		// Another upstream and another tenant with the same target URL.
		put(t, rdb, keys, "t-a", "u2", good, "w1", failing)
		put(t, rdb, keys, "t-b", "u1", good, "w1", failing)

		got, err := r.Upstream(context.Background(), "t-a", "u1", []string{good, half, dead, ejected, stale, unseen})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name                      string
			status                    string
			workers, healthy, ejected int
			lastError                 string
			seen                      bool
		}{
			{name: good, status: StatusHealthy, workers: 2, healthy: 2, seen: true},
			{name: half, status: StatusDegraded, workers: 2, healthy: 1, lastError: failing.LastError, seen: true},
			{name: dead, status: StatusDown, workers: 2, healthy: 0, lastError: failing.LastError, seen: true},
			{name: ejected, status: StatusDegraded, workers: 2, healthy: 1, ejected: 1, seen: true},
			{name: stale, status: StatusUnknown},
			{name: unseen, status: StatusUnknown},
		}
		if len(got) != len(tests) {
			t.Fatalf("got %d targets, want %d", len(got), len(tests))
		}
		for i, tc := range tests {
			g := got[i]
			if g.URL != tc.name || g.Status != tc.status || g.Workers != tc.workers || g.HealthyWorkers != tc.healthy ||
				g.EjectedWorkers != tc.ejected || g.LastError != tc.lastError || (g.LastSeen != nil) != tc.seen {
				t.Errorf("%s: got %+v, want status %s workers %d healthy %d ejected %d error %q seen %v",
					tc.name, g, tc.status, tc.workers, tc.healthy, tc.ejected, tc.lastError, tc.seen)
			}
			if tc.seen && !g.LastSeen.Equal(fresh) {
				t.Errorf("%s: last seen %v, want %v", tc.name, g.LastSeen, fresh)
			}
		}
		// The stale fields were deleted; the fresh ones stay.
		for _, f := range []string{proxycfg.TargetHealthField("u1", stale, "w-dead"), proxycfg.TargetHealthField("u1", good, "w-dead")} {
			if rdb.HExists(context.Background(), keys.TargetHealth("t-a"), f).Val() {
				t.Errorf("stale field %q not deleted", f)
			}
		}
		if n := rdb.HLen(context.Background(), keys.TargetHealth("t-a")).Val(); n != 9 {
			t.Errorf("hash has %d fields after the read, want 9 fresh ones", n)
		}
	})
}

func TestReaderTenantIsolation(t *testing.T) {
	t.Parallel()
	rdb, keys := storetest.NewRedis(t)
	r := &Reader{Redis: rdb, Keys: keys}
	put(t, rdb, keys, "t-a", "u1", "http://a:80", "w1", proxycfg.TargetHealthReport{Healthy: true, CheckedAt: time.Now()})
	tests := []struct {
		name, tenant string
		want         int
	}{
		{name: "owner", tenant: "t-a", want: 1},
		{name: "other tenant", tenant: "t-b", want: 0},
	}
	for _, tc := range tests {
		v, err := r.Tenant(context.Background(), tc.tenant)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(v["u1"]["http://a:80"]); n != tc.want {
			t.Errorf("%s: %d reports, want %d", tc.name, n, tc.want)
		}
	}
}

// TestReaderHeartbeat checks the reports of workers that write on change:
// a live heartbeat vouches for a report however old (and dates it), a
// report without one is stale past three heartbeats, and a report of a
// worker that predates heartbeats is current while it is young.
func TestReaderHeartbeat(t *testing.T) {
	t.Parallel()
	storetest.EachRedis(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		r := &Reader{Redis: rdb, Keys: keys, Now: func() time.Time { return now }}
		const target = "http://10.0.0.1:8080"
		changed := now.Add(-30 * time.Minute) // the target last changed state then
		beatAt := now.Add(-10 * time.Second)
		put(t, rdb, keys, "t-a", "u1", target, "w-live", proxycfg.TargetHealthReport{Healthy: true, CheckedAt: changed})
		put(t, rdb, keys, "t-a", "u1", target, "w-dead", proxycfg.TargetHealthReport{Healthy: false, CheckedAt: changed})
		put(t, rdb, keys, "t-a", "u1", target, "w-old", proxycfg.TargetHealthReport{Healthy: true, CheckedAt: now.Add(-20 * time.Second)})
		beat, _ := json.Marshal(proxycfg.TargetHealthBeat{At: beatAt, IntervalMS: 30000})
		if err := rdb.Set(ctx, keys.TargetHealthBeat("w-live"), beat, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		got, err := r.Upstream(ctx, "t-a", "u1", []string{target})
		if err != nil {
			t.Fatal(err)
		}
		g := got[0]
		if g.Status != StatusHealthy || g.Workers != 2 || g.HealthyWorkers != 2 {
			t.Fatalf("target %+v, want healthy on the live worker and the old-style one", g)
		}
		if g.LastSeen == nil || !g.LastSeen.Equal(beatAt) {
			t.Fatalf("last seen %v, want the live worker's heartbeat %v", g.LastSeen, beatAt)
		}
		if rdb.HExists(ctx, keys.TargetHealth("t-a"), proxycfg.TargetHealthField("u1", target, "w-dead")).Val() {
			t.Error("the report of a worker without heartbeat was not deleted")
		}
		// The heartbeat expires: three heartbeats later the report is stale.
		rdb.Del(ctx, keys.TargetHealthBeat("w-live"))
		now = now.Add(proxycfg.TargetHealthStale)
		got, err = r.Upstream(ctx, "t-a", "u1", []string{target})
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Status != StatusUnknown {
			t.Fatalf("target %+v after every heartbeat stopped, want unknown", got[0])
		}
	})
}
