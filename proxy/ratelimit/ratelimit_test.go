package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

func TestRedisExactAcrossLimiters(t *testing.T) {
	t.Parallel()
	testredis.Each(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		// Two limiters stand for two workers sharing Redis.
		limiters := []Limiter{NewRedis(rdb, keys, nil, nil), NewRedis(rdb, keys, nil, nil)}
		rl := proxycfg.RateLimit{Requests: 7, PerSeconds: 60}
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				d, err := limiters[i%2].Allow(context.Background(), "sub", rl, time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				} else if d.RetryAfter < time.Second || d.Remaining != 0 {
					t.Errorf("refused decision %+v", d)
				}
			})
		}
		wg.Wait()
		if got := allowed.Load(); got != rl.Requests {
			t.Fatalf("allowed %d, want exactly %d", got, rl.Requests)
		}
	})
}

func TestDecisions(t *testing.T) {
	t.Parallel()
	rdb, keys := testredis.New(t)
	impls := []struct {
		name string
		l    Limiter
	}{
		{name: "redis", l: NewRedis(rdb, keys, nil, nil)},
		{name: "local", l: NewLocal()},
	}
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			rl := proxycfg.RateLimit{Requests: 3, PerSeconds: 1}
			ctx := context.Background()
			for i, wantRemaining := range []int64{2, 1, 0} {
				d, err := impl.l.Allow(ctx, "s-"+impl.name, rl, time.Now())
				if err != nil || !d.Allowed || d.Remaining != wantRemaining || d.Limit != 3 {
					t.Fatalf("request %d: %+v, %v", i, d, err)
				}
				if d.Reset <= 0 || d.Reset > time.Second {
					t.Fatalf("request %d: reset %v", i, d.Reset)
				}
			}
			d, err := impl.l.Allow(ctx, "s-"+impl.name, rl, time.Now())
			if err != nil || d.Allowed || Seconds(d.RetryAfter) != 1 {
				t.Fatalf("4th request: %+v, %v", d, err)
			}
			// The window slides: after it passes, requests are admitted again.
			deadline := time.Now().Add(5 * time.Second)
			for {
				d, err = impl.l.Allow(ctx, "s-"+impl.name, rl, time.Now())
				if err == nil && d.Allowed {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("window never slid")
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func TestRedisDownFallsBack(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	l := NewRedis(rdb, proxycfg.Keys{}, nil, nil)
	rl := proxycfg.RateLimit{Requests: 2, PerSeconds: 60}
	var allowed int
	for range 5 {
		d, err := l.Allow(context.Background(), "s", rl, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			allowed++
		}
	}
	if allowed != 2 {
		t.Fatalf("fallback allowed %d, want 2", allowed)
	}
}

func TestSeconds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   time.Duration
		want int64
	}{
		{name: "zero", in: 0, want: 1},
		{name: "sub second", in: 10 * time.Millisecond, want: 1},
		{name: "exact", in: 2 * time.Second, want: 2},
		{name: "round up", in: 2*time.Second + 1, want: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Seconds(tc.in); got != tc.want {
				t.Fatalf("Seconds(%v) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}
