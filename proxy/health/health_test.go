package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/netguard"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// switchable answers its health path with the status in code.
func switchable(t *testing.T, code *atomic.Int32, probes *atomic.Int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			rw.WriteHeader(http.StatusNotFound)
			return
		}
		probes.Add(1)
		rw.WriteHeader(int(code.Load()))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestActiveChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		check   proxycfg.HealthCheck
		healthy int32 // status meaning up
		failing int32 // status meaning down
		downMin int64 // probes at least before marked down
		upMin   int64 // further probes at least before marked up again
	}{
		{name: "thresholds 3 down 2 up, any 2xx", check: proxycfg.HealthCheck{Path: "/healthz", IntervalMS: 10, TimeoutMS: 500,
			UnhealthyThreshold: 3, HealthyThreshold: 2}, healthy: 204, failing: 500, downMin: 3, upMin: 2},
		{name: "expected status only", check: proxycfg.HealthCheck{Path: "/healthz", IntervalMS: 10, TimeoutMS: 500,
			UnhealthyThreshold: 1, HealthyThreshold: 1, ExpectedStatus: 202}, healthy: 202, failing: 200, downMin: 1, upMin: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var code atomic.Int32
			var probes atomic.Int64
			code.Store(tc.healthy)
			srv := switchable(t, &code, &probes)
			c := New(&netguard.Dialer{AllowPrivate: true}, nil)
			t.Cleanup(c.Close)
			up := c.State("u1", srv.URL)
			epoch := c.Epoch().Load()
			c.Sync(context.Background(), []Upstream{{Key: "u1", Targets: []string{srv.URL}, Check: tc.check}})
			waitFor(t, "first probes", func() bool { return probes.Load() >= 3 })
			if !up.Load() {
				t.Fatal("healthy target marked down")
			}
			code.Store(tc.failing)
			start := probes.Load()
			waitFor(t, "target down", func() bool { return !up.Load() })
			if n := probes.Load() - start; n < tc.downMin {
				t.Fatalf("down after %d failing probes, want at least %d", n, tc.downMin)
			}
			if c.Epoch().Load() == epoch {
				t.Fatal("epoch did not move on a health change")
			}
			code.Store(tc.healthy)
			start = probes.Load()
			waitFor(t, "target up again", func() bool { return up.Load() })
			if n := probes.Load() - start; n < tc.upMin {
				t.Fatalf("up after %d good probes, want at least %d", n, tc.upMin)
			}
		})
	}
}

func TestSyncStopsRemovedAndKeepsState(t *testing.T) {
	t.Parallel()
	var code atomic.Int32
	var probes atomic.Int64
	code.Store(500)
	srv := switchable(t, &code, &probes)
	c := New(&netguard.Dialer{AllowPrivate: true}, nil)
	t.Cleanup(c.Close)
	check := proxycfg.HealthCheck{Path: "/healthz", IntervalMS: 10, TimeoutMS: 500, UnhealthyThreshold: 1, HealthyThreshold: 1}
	up := c.State("u1", srv.URL)
	c.Sync(context.Background(), []Upstream{{Key: "u1", Targets: []string{srv.URL}, Check: check}})
	waitFor(t, "target down", func() bool { return !up.Load() })
	// A reload with the same check keeps the state (no flap to healthy).
	if again := c.State("u1", srv.URL); again != up || again.Load() {
		t.Fatal("state not kept across a reload")
	}
	c.Sync(context.Background(), []Upstream{{Key: "u1", Targets: []string{srv.URL}, Check: check}})
	if up.Load() {
		t.Fatal("an unchanged check reset the state")
	}
	// Turning the check off makes the target healthy (nothing checks it).
	c.Sync(context.Background(), []Upstream{{Key: "u1", Targets: []string{srv.URL}}})
	if !up.Load() {
		t.Fatal("target without a check not taken as healthy")
	}
	// Removing the upstream stops its probes.
	c.Sync(context.Background(), nil)
	n := probes.Load()
	time.Sleep(60 * time.Millisecond)
	if probes.Load() != n {
		t.Fatal("probes continue after the target was removed")
	}
}
