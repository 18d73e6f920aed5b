package worker

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// capTenant is a tenant that forwards /v1 to backend, with routes when
// routes is set (which needs proxycfg.CapNormalizedPaths).
func capTenant(id, slug string, domains []string, backendURL string, routes bool) proxycfg.Tenant {
	t := proxycfg.Tenant{ID: id, Slug: slug, Domains: domains,
		Upstreams: []proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin,
			Targets: []proxycfg.Target{{URL: backendURL, Weight: 1}}}},
		APIs: []proxycfg.API{{ID: "a", BasePath: "/v1", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true}},
	}
	if routes {
		t.APIs[0].Routes = []proxycfg.Route{{Method: "GET", Path: "/items"}}
	}
	return t
}

// publishShard makes tn's shard at gen the tenant's current one at index
// sequence seq and announces it, as the publisher does for one tenant's
// change.
func publishShard(t *testing.T, e *env, seq int64, tn proxycfg.Tenant, gen int64) {
	t.Helper()
	raw, err := json.Marshal(proxycfg.NewShard(tn, gen, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	testredis.StoreShard(t, e.rdb, e.keys, seq, tn.ID, gen, raw)
	testredis.Announce(t, e.rdb, e.keys, seq)
}

// TestMixedFleet runs a current worker and one that speaks less than a
// tenant's shard needs (routes, CapNormalizedPaths) on one Redis prefix. The
// old worker never serves that shard with its restrictions dropped, nor the
// tenant's older shard (what the tenant allows now is its newest config): it
// answers 503 for the tenant's hosts, while it serves every other tenant and
// applies their changes; the current worker serves the new shard. Each worker's
// config heartbeat reports the capability it speaks.
func TestMixedFleet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acme1, acme2, fresh, beta1, beta2 := backend(t, "acme-1"), backend(t, "acme-2"), backend(t, "fresh"),
		backend(t, "beta-1"), backend(t, "beta-2")
	const oldCap = proxycfg.CapNormalizedPaths - 1
	// acme starts plain; fresh has routes (and a custom domain) from the
	// start; beta never needs more than the base.
	testredis.Publish(t, e.rdb, e.keys, &proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: 1, CompiledAt: time.Now(),
		Tenants: []proxycfg.Tenant{
			capTenant("t-acme", "acme", nil, acme1.URL, false),
			capTenant("t-fresh", "fresh", []string{"api.fresh.test"}, fresh.URL, true),
			capTenant("t-beta", "beta", nil, beta1.URL, false),
		}})
	cur := e.startWith(t, nil)
	old := e.startWith(t, func(o *Options) { o.Capability = oldCap })
	cur.waitReady(t, 1)
	old.waitReady(t, 1)

	// serves checks that host's /v1 path reaches backend name.
	serves := func(r *running, who, host, path, name string) {
		t.Helper()
		if res := r.do(t, host, path, nil); res.status != 200 || res.echo.Backend != name {
			t.Fatalf("%s worker, %s%s: %d from %q (%s), want 200 from %q", who, host, path, res.status, res.echo.Backend, res.body, name)
		}
	}
	refuses := func(r *running, who, host string) {
		t.Helper()
		for _, path := range []string{"/v1/items", "/v1/anything", "/"} {
			res := r.do(t, host, path, nil)
			wantProblem(t, res, pipeline.WorkerTooOld)
			if string(res.body) != string(pipeline.WorkerTooOld.Body) {
				t.Fatalf("%s worker, %s%s: body %s", who, host, path, res.body)
			}
		}
	}

	// A tenant the old worker has no enforceable shard of: refused on
	// every host name of it; the current worker serves its routes.
	refuses(old, "old", "fresh.localhost")
	refuses(old, "old", "api.fresh.test")
	serves(cur, "current", "fresh.localhost", "/v1/items", "fresh")
	wantProblem(t, cur.do(t, "fresh.localhost", "/v1/admin", nil), problem.NoRoute)
	for _, r := range []*running{cur, old} {
		serves(r, "either", "acme.localhost", "/v1/items", "acme-1")
		serves(r, "either", "beta.localhost", "/v1/x", "beta-1")
	}
	if n, m := old.w.sync.TooNew(), cur.w.sync.TooNew(); n != 1 || m != 0 {
		t.Fatalf("tenants too new: old worker %d, current %d; want 1, 0", n, m)
	}

	// acme adds routes (and moves to another backend): the current worker
	// serves them; the old one refuses acme (neither the new shard with
	// its routes dropped nor the older shard, which forwards /v1/admin).
	publishShard(t, e, 2, capTenant("t-acme", "acme", nil, acme2.URL, true), 2)
	eventually(t, func() bool {
		res := cur.do(t, "acme.localhost", "/v1/items", nil)
		return res.status == 200 && res.echo.Backend == "acme-2"
	})
	wantProblem(t, cur.do(t, "acme.localhost", "/v1/admin", nil), problem.NoRoute)
	eventually(t, func() bool { return old.w.Generation() >= 2 })
	refuses(old, "old", "acme.localhost")
	serves(old, "old", "beta.localhost", "/v1/x", "beta-1")
	if n := old.w.sync.TooNew(); n != 2 {
		t.Fatalf("old worker: %d tenants too new, want 2", n)
	}

	// Another tenant's change still applies on the old worker.
	publishShard(t, e, 3, capTenant("t-beta", "beta", nil, beta2.URL, false), 3)
	for _, r := range []*running{cur, old} {
		eventually(t, func() bool {
			res := r.do(t, "beta.localhost", "/v1/x", nil)
			return res.status == 200 && res.echo.Backend == "beta-2"
		})
	}
	refuses(old, "old", "acme.localhost")
	refuses(old, "old", "fresh.localhost")

	// An old worker that starts now refuses acme too and serves beta.
	late := e.startWith(t, func(o *Options) { o.Capability = oldCap })
	late.waitReady(t, 3)
	refuses(late, "late old", "acme.localhost")
	serves(late, "late old", "beta.localhost", "/v1/x", "beta-2")

	// acme drops its routes again: every worker serves the new shard.
	publishShard(t, e, 4, capTenant("t-acme", "acme", nil, acme2.URL, false), 4)
	for _, r := range []*running{cur, old, late} {
		eventually(t, func() bool {
			res := r.do(t, "acme.localhost", "/v1/admin", nil)
			return res.status == 200 && res.echo.Backend == "acme-2"
		})
	}
	if n := late.w.sync.TooNew(); n != 1 {
		t.Fatalf("late old worker: %d tenants too new, want 1 (fresh)", n)
	}

	// The heartbeats say which capability each worker speaks, for the
	// control plane's count of workers too old for a tenant's shard.
	want := []int{oldCap, oldCap, proxycfg.CapabilityVersion}
	var got []int
	eventually(t, func() bool {
		got = got[:0]
		ctx := context.Background()
		ids, err := e.rdb.HKeys(ctx, e.keys.ConfigWorkers()).Result()
		if err != nil {
			return false
		}
		for _, id := range ids {
			raw, err := e.rdb.Get(ctx, e.keys.ConfigWorkerBeat(id)).Bytes()
			var b proxycfg.ConfigWorkerBeat
			if err != nil || json.Unmarshal(raw, &b) != nil {
				return false
			}
			got = append(got, b.Capability)
		}
		slices.Sort(got)
		return slices.Equal(got, want)
	})
}
