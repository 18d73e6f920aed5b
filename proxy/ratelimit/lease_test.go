package ratelimit

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// hammer sends n requests per limiter from 8 goroutines each and returns
// how many were allowed.
func hammer(t *testing.T, limiters []*Redis, n int, rl proxycfg.RateLimit) int64 {
	t.Helper()
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for _, l := range limiters {
		for range 8 {
			wg.Go(func() {
				for range n / 8 {
					d, err := l.Allow(context.Background(), "hot", rl, time.Now())
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						allowed.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	return allowed.Load()
}

func TestLeasesNeverOvershoot(t *testing.T) {
	t.Parallel()
	testredis.Each(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		tests := []struct {
			name    string
			workers int
			perEach int
			rl      proxycfg.RateLimit
		}{
			// The window (an hour) outlasts the test: the total admitted is the
			// count of one window, which must not exceed the limit.
			{name: "4 workers hot key", workers: 4, perEach: 4000, rl: proxycfg.RateLimit{Requests: 2000, PerSeconds: 3600}},
			{name: "2 workers small limit", workers: 2, perEach: 400, rl: proxycfg.RateLimit{Requests: 7, PerSeconds: 3600}},
			{name: "burst caps", workers: 2, perEach: 800, rl: proxycfg.RateLimit{Requests: 1000, PerSeconds: 3600, Burst: 100}},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				k := keys
				k.Prefix += string(rune('a'+i)) + ":"
				var ls []*Redis
				for range tc.workers {
					ls = append(ls, New(Options{Redis: rdb, Keys: k, Timeout: 2 * time.Second}))
				}
				got := hammer(t, ls, tc.perEach, tc.rl)
				limit := tc.rl.Requests
				if tc.rl.Burst > 0 {
					limit = tc.rl.Burst
				}
				var calls int64
				for _, l := range ls {
					calls += l.Calls()
					if n := l.Degraded(); n > 0 {
						t.Fatalf("%d decisions taken without Redis: a script failed", n)
					}
				}
				t.Logf("allowed %d of limit %d; %d redis calls for %d requests", got, limit, calls, tc.workers*tc.perEach)
				if got > limit {
					t.Fatalf("allowed %d, limit %d", got, limit)
				}
				// Unused leased tokens may be lost, at most a lease per worker.
				if floor := limit - int64(tc.workers)*max(limit/LeaseDivisor, 1); got < floor {
					t.Fatalf("allowed %d, want at least %d", got, floor)
				}
				if total := int64(tc.workers * tc.perEach); limit > 100 && calls*4 > total {
					t.Fatalf("%d redis calls for %d requests: leasing did not kick in", calls, total)
				}
			})
		}
	})
}

func TestRefusalIsCachedUntilReset(t *testing.T) {
	t.Parallel()
	testredis.Each(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		l := New(Options{Redis: rdb, Keys: keys})
		rl := proxycfg.RateLimit{Requests: 2, PerSeconds: 60}
		for range 2 {
			if d, err := l.Allow(context.Background(), "s", rl, time.Now()); err != nil || !d.Allowed {
				t.Fatalf("%+v %v", d, err)
			}
		}
		before := l.Calls()
		for range 50 {
			d, err := l.Allow(context.Background(), "s", rl, time.Now())
			if err != nil || d.Allowed || d.RetryAfter < 58*time.Second {
				t.Fatalf("%+v %v", d, err)
			}
		}
		if n := l.Calls() - before; n != 1 {
			t.Fatalf("%d redis calls for 50 refusals, want 1", n)
		}
	})
}

func TestQuotaExactAcrossWorkers(t *testing.T) {
	t.Parallel()
	testredis.Each(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		tests := []struct {
			name  string
			quota proxycfg.Quota
			each  int
		}{
			{name: "small", quota: proxycfg.Quota{Requests: 50, Period: "day"}, each: 200},
			{name: "large leased", quota: proxycfg.Quota{Requests: 10000, Period: "month"}, each: 8000},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				k := keys
				k.Prefix += string(rune('a'+i)) + ":"
				qs := []*Quotas{New(Options{Redis: rdb, Keys: k}).Quotas(), New(Options{Redis: rdb, Keys: k}).Quotas()}
				var allowed atomic.Int64
				var wg sync.WaitGroup
				for _, q := range qs {
					for range 4 {
						wg.Go(func() {
							for range tc.each / 4 {
								d, err := q.Take(context.Background(), "sub", tc.quota, time.Now())
								if err != nil {
									t.Error(err)
									return
								}
								if d.Allowed {
									allowed.Add(1)
								}
							}
						})
					}
				}
				wg.Wait()
				for _, q := range qs {
					if n := q.r.Degraded(); n > 0 {
						t.Fatalf("%d quota decisions taken without Redis: a script failed", n)
					}
				}
				got := allowed.Load()
				if got > tc.quota.Requests {
					t.Fatalf("allowed %d of quota %d", got, tc.quota.Requests)
				}
				if tc.quota.Requests < 100 && got != tc.quota.Requests {
					t.Fatalf("allowed %d, want exactly %d", got, tc.quota.Requests)
				}
				// Whatever was leased and not used goes back with the next call:
				// after one more call per worker the counter is exact.
				period, _, _ := proxycfg.QuotaPeriod(tc.quota.Period, time.Now())
				time.Sleep(DefaultLeaseTTL + 10*time.Millisecond)
				for _, q := range qs {
					if d, err := q.Take(context.Background(), "sub", tc.quota, time.Now()); err != nil {
						t.Fatal(err)
					} else if d.Allowed {
						allowed.Add(1)
					}
				}
				used, err := rdb.Get(context.Background(), k.Quota("sub", period)).Int64()
				if err != nil {
					t.Fatal(err)
				}
				if used != allowed.Load() && used != tc.quota.Requests {
					t.Fatalf("counter %d, allowed %d", used, allowed.Load())
				}
			})
		}
	})
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	testredis.Each(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c1, c2 := New(Options{Redis: rdb, Keys: keys}).Concurrency(), New(Options{Redis: rdb, Keys: keys}).Concurrency()
		go func() { _ = c1.Run(ctx) }()
		go func() { _ = c2.Run(ctx) }()
		a, ok1, err1 := c1.Acquire(ctx, "s", 2, time.Minute)
		_, ok2, err2 := c2.Acquire(ctx, "s", 2, time.Minute)
		_, ok3, err3 := c1.Acquire(ctx, "s", 2, time.Minute)
		if !ok1 || !ok2 || ok3 || err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("acquire: %v %v %v (%v %v %v)", ok1, ok2, ok3, err1, err2, err3)
		}
		if n := c1.r.Degraded() + c2.r.Degraded(); n > 0 {
			t.Fatalf("%d slots taken without Redis: the script failed", n)
		}
		a.Release()
		deadline := time.Now().Add(5 * time.Second)
		for {
			s, ok, err := c2.Acquire(ctx, "s", 2, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				s.Release()
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("released slot never came back")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

type fixedPeers int

func (p fixedPeers) Live() int { return int(p) }

func TestDegradedSharesAmongPeers(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 50 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	var degraded atomic.Int64
	r := New(Options{Redis: rdb, Peers: fixedPeers(4), Degraded: &degraded})
	rl := proxycfg.RateLimit{Requests: 20, PerSeconds: 60}
	allowed := 0
	for range 10 {
		d, err := r.Allow(context.Background(), "s", rl, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("allowed %d while Redis is down, want 20/4 = 5", allowed)
	}
	q := r.Quotas()
	if d, err := q.Take(context.Background(), "s", proxycfg.Quota{Requests: 1, Period: "day"}, time.Now()); err != nil || !d.Allowed {
		t.Fatalf("quota while down: %+v %v", d, err)
	}
	c := r.Concurrency()
	s1, ok1, _ := c.Acquire(context.Background(), "s", 8, time.Minute)
	s2, ok2, _ := c.Acquire(context.Background(), "s", 8, time.Minute)
	_, ok3, _ := c.Acquire(context.Background(), "s", 8, time.Minute)
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("concurrency while down: %v %v %v, want 8/4 = 2 slots", ok1, ok2, ok3)
	}
	s1.Release()
	s2.Release()
	if got := degraded.Load(); got != 10+1+3 {
		t.Fatalf("degraded counter %d, want 14", got)
	}
}

func TestPeers(t *testing.T) {
	t.Parallel()
	testredis.Each(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		a := NewPeers(rdb, keys, "a", time.Second, nil)
		b := NewPeers(rdb, keys, "b", time.Second, nil)
		ctx := context.Background()
		if err := a.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		if a.Live() != 2 {
			t.Fatalf("live %d, want 2", a.Live())
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_ = b.Run(cctx) // beats once, then leaves the registry
		if err := a.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		if a.Live() != 1 {
			t.Fatalf("live %d after b left, want 1", a.Live())
		}
	})
}

func TestUnusedLeaseIsGivenBack(t *testing.T) {
	t.Parallel()
	testredis.Each(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		l := New(Options{Redis: rdb, Keys: keys})
		ctx := context.Background()
		tests := []struct {
			name string
			rl   proxycfg.RateLimit
		}{
			{name: "window", rl: proxycfg.RateLimit{Requests: 100, PerSeconds: 3600}},
			{name: "window and burst", rl: proxycfg.RateLimit{Requests: 100, PerSeconds: 3600, Burst: 50}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				sub := "s-" + strings.ReplaceAll(tc.name, " ", "-")
				granted, member, remaining, _, err := l.lease(ctx, sub, tc.rl, 10, "", 0)
				if err != nil || granted != 10 || remaining != 90 {
					t.Fatalf("lease: %d %d %v", granted, remaining, err)
				}
				// 7 of the 10 went unused: they come back with the next call.
				granted, _, remaining, _, err = l.lease(ctx, sub, tc.rl, 1, member, 7)
				if err != nil || granted != 1 || remaining != 96 {
					t.Fatalf("lease after giving back 7: granted %d remaining %d, %v", granted, remaining, err)
				}
				base := keys.RateLimit(sub)
				members, err := rdb.ZRange(ctx, base, 0, -1).Result()
				if err != nil || len(members) != 2 || !strings.HasSuffix(members[0], ":3") && !strings.HasSuffix(members[1], ":3") {
					t.Fatalf("log %v, %v", members, err)
				}
				if tc.rl.Burst > 0 {
					if n, _ := rdb.HGet(ctx, base+":n", "b").Int(); n != 4 {
						t.Fatalf("burst count %d, want 4", n)
					}
				}
				// Giving back a grant that already left the log is a no-op.
				if _, _, remaining, _, err = l.lease(ctx, sub, tc.rl, 1, "gone:5", 5); err != nil || remaining != 95 {
					t.Fatalf("stale give-back: remaining %d, %v", remaining, err)
				}
			})
		}
	})
}
