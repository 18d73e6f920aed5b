package main

import (
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/storetest"
)

// TestEndToEndOnCluster runs the control plane (publisher, key records,
// usage aggregator) and two proxy workers on the local Redis Cluster, with
// the client newRedis builds from a TOLLGATE_REDIS_URL: a key works on both
// workers, the rate limit holds exactly across them, the target health
// both report reaches /v1, usage is counted, and a revoked key is refused.
func TestEndToEndOnCluster(t *testing.T) {
	t.Parallel()
	addrs := storetest.RedisClusterAddrs(t)
	p := startPlatformWith(t, platformOpts{redisURL: "redis-cluster://" + strings.Join(addrs, ",")})
	back := httptest.NewServer(demoBackend("a"))
	defer back.Close()
	s := p.setupTenant("cluster", []string{back.URL}, 5)
	const host = "cluster.localhost"
	for w := range p.workers {
		took := p.eventually(5*time.Second, "worker serves the key", func() bool {
			return p.call(w, host, "/echo/ready", s.key).status == 200
		})
		t.Logf("worker %d served the key %v after setup", w, took)
	}

	t.Run("rate limit across workers", func(t *testing.T) {
		waitWindow()
		var ok atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for i := range 20 {
			wg.Go(func() {
				switch a := p.call(i%2, host, "/echo/burst", s.key); a.status {
				case 200:
					ok.Add(1)
				case 429:
				default:
					t.Errorf("status %d: %s", a.status, a.body)
				}
			})
		}
		wg.Wait()
		if ok.Load() > 5 || (time.Since(start) < time.Second && ok.Load() != 5) {
			t.Errorf("%d requests allowed in %v, plan allows 5 per second", ok.Load(), time.Since(start))
		}
	})

	t.Run("target health", func(t *testing.T) {
		p.eventually(5*time.Second, "both workers' health reports", func() bool {
			var h struct {
				Targets []struct {
					Status  string
					Workers int
				}
			}
			p.api("GET", "/v1/upstreams/"+s.upstream+"/health", s.token, nil, 200, &h)
			return len(h.Targets) == 1 && h.Targets[0].Status == "healthy" && h.Targets[0].Workers == 2
		})
	})

	t.Run("usage", func(t *testing.T) {
		p.eventually(20*time.Second, "usage aggregated", func() bool {
			var n int64
			if err := p.db.QueryRow(t.Context(), `SELECT coalesce(sum(requests), 0) FROM usage_minutes`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n >= 2
		})
	})

	t.Run("revoke", func(t *testing.T) {
		waitWindow()
		p.api("DELETE", "/v1/keys/"+s.keyID, s.token, nil, 204, nil)
		took := p.eventually(time.Second, "revoked key refused on both workers", func() bool {
			return p.call(0, host, "/echo/r", s.key).status == 401 && p.call(1, host, "/echo/r", s.key).status == 401
		})
		t.Logf("revocation reached both workers in %v", took)
	})
}
