package worker

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// TestHealthReport runs a worker on a healthy and a dead target (active
// checks) and on a target that answers 500 (outlier ejection), and reads
// its view back from Redis the way the control plane does.
func TestHealthReport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good := backend(t, "good")
	dead := "http://" + closedAddr(t)
	failing := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	hc := proxycfg.HealthCheck{Path: "/health", IntervalMS: 40, TimeoutMS: 500, UnhealthyThreshold: 1, HealthyThreshold: 1}
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{
			{ID: "u-checked", Algorithm: proxycfg.AlgorithmRoundRobin, HealthCheck: hc,
				Targets: []proxycfg.Target{{URL: good.URL, Weight: 1}, {URL: dead, Weight: 1}}},
			{ID: "u-passive", Algorithm: proxycfg.AlgorithmRoundRobin,
				Outlier: proxycfg.Outlier{Consecutive5xx: 1, BaseEjectionMS: 60000, MaxEjectionPercent: 100},
				Targets: []proxycfg.Target{{URL: failing.URL, Weight: 1}}},
		},
		[]proxycfg.API{
			{ID: "a", Slug: "api", BasePath: "/", UpstreamID: "u-checked", Auth: proxycfg.AuthNone},
			{ID: "b", Slug: "passive", BasePath: "/passive", UpstreamID: "u-passive", Auth: proxycfg.AuthNone},
		}, nil))
	r := e.start(t, true)
	r.waitReady(t, 1)
	if got := r.do(t, "acme.localhost", "/passive/x", nil); got.status != http.StatusInternalServerError {
		t.Fatalf("passive upstream: status %d, want the target's 500", got.status)
	}
	ctx := context.Background()
	key := e.keys.TargetHealth("t-acme")
	read := func() map[string]proxycfg.TargetHealthReport {
		raw, err := e.rdb.HGetAll(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]proxycfg.TargetHealthReport{}
		for f, v := range raw {
			up, target, worker, err := proxycfg.ParseTargetHealthField(f)
			if err != nil {
				t.Fatalf("field %q: %v", f, err)
			}
			if worker != r.w.thr.id {
				t.Fatalf("field %q: worker %q, want %q", f, worker, r.w.thr.id)
			}
			var rep proxycfg.TargetHealthReport
			if err := json.Unmarshal([]byte(v), &rep); err != nil {
				t.Fatalf("field %q: %v", f, err)
			}
			got[up+" "+target] = rep
		}
		return got
	}
	var got map[string]proxycfg.TargetHealthReport
	eventually(t, func() bool {
		got = read()
		return len(got) == 3 && !got["u-checked "+dead].Healthy && got["u-passive "+failing.URL].Ejected &&
			!got["u-checked "+good.URL].LastCheck.IsZero()
	})
	tests := []struct {
		name             string
		field            string
		healthy, ejected bool
		probed           bool
		errContains      string
	}{
		{name: "healthy target", field: "u-checked " + good.URL, healthy: true, probed: true},
		{name: "dead target", field: "u-checked " + dead, healthy: false, probed: true, errContains: "refused"},
		{name: "ejected target", field: "u-passive " + failing.URL, healthy: true, ejected: true},
	}
	for _, tc := range tests {
		rep := got[tc.field]
		if rep.Healthy != tc.healthy || rep.Ejected != tc.ejected {
			t.Errorf("%s: healthy %v ejected %v, want %v %v", tc.name, rep.Healthy, rep.Ejected, tc.healthy, tc.ejected)
		}
		if probed := !rep.LastCheck.IsZero(); probed != tc.probed {
			t.Errorf("%s: last_check %v, want probed=%v", tc.name, rep.LastCheck, tc.probed)
		}
		if tc.errContains == "" && rep.LastError != "" || !strings.Contains(rep.LastError, tc.errContains) {
			t.Errorf("%s: last_error %q, want it to contain %q", tc.name, rep.LastError, tc.errContains)
		}
		if age := time.Since(rep.CheckedAt); age < -time.Second || age > proxycfg.TargetHealthTTL {
			t.Errorf("%s: checked_at %v is not recent", tc.name, rep.CheckedAt)
		}
	}
	if ttl := e.rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > proxycfg.TargetHealthTTL {
		t.Errorf("key TTL %v, want within (0, %v]", ttl, proxycfg.TargetHealthTTL)
	}

	// A target removed from the config leaves the worker's view.
	testredis.Publish(t, e.rdb, e.keys, oneTenant(2,
		[]proxycfg.Upstream{{ID: "u-checked", Algorithm: proxycfg.AlgorithmRoundRobin, HealthCheck: hc,
			Targets: []proxycfg.Target{{URL: good.URL, Weight: 1}}}},
		[]proxycfg.API{{ID: "a", Slug: "api", BasePath: "/", UpstreamID: "u-checked", Auth: proxycfg.AuthNone}}, nil))
	r.waitReady(t, 2)
	eventually(t, func() bool { got = read(); return len(got) == 1 && got["u-checked "+good.URL].Healthy })

	// A worker that stops withdraws its view.
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	r.done <- nil // for the cleanup
	if n := e.rdb.HLen(ctx, key).Val(); n != 0 {
		t.Errorf("after shutdown the hash has %d fields, want 0", n)
	}
}
