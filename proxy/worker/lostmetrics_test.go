package worker

import (
	"slices"
	"testing"

	"github.com/tollgate/tollgate/proxy/metrics"
	"github.com/tollgate/tollgate/proxy/pipeline"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// TestLostMetrics checks that a tenant's change drops metric series (and so
// makes the worker walk every series to prune them) only when the tenant
// loses an API or an upstream: a rebuild of the same objects, which makes
// new metric values over the same series, loses nothing.
func TestLostMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Sources{})
	base := proxycfg.Tenant{ID: "t1", Slug: "acme",
		Upstreams: []proxycfg.Upstream{
			{ID: "u1", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: "http://127.0.0.1:9", Weight: 1}}},
			{ID: "u2", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: "http://127.0.0.1:10", Weight: 1}}},
		},
		APIs: []proxycfg.API{
			{ID: "a1", Slug: "orders", BasePath: "/orders", UpstreamID: "u1", Auth: proxycfg.AuthNone, StripBasePath: true},
			{ID: "a2", Slug: "users", BasePath: "/users", UpstreamID: "u2", Auth: proxycfg.AuthNone, StripBasePath: true},
		},
	}
	build := func(tn proxycfg.Tenant) *pipeline.Tenant {
		t.Helper()
		part, err := pipeline.BuildTenant(&tn, pipeline.ShardInfo{Generation: 1, Capability: tn.Capability()}, nil,
			pipeline.BuildOptions{Domain: "localhost", Metrics: m})
		if err != nil {
			t.Fatal(err)
		}
		return part
	}
	edit := func(f func(*proxycfg.Tenant)) proxycfg.Tenant {
		tn := base
		tn.APIs, tn.Upstreams = slices.Clone(base.APIs), slices.Clone(base.Upstreams)
		f(&tn)
		return tn
	}
	was := build(base)
	tests := []struct {
		name string
		now  *pipeline.Tenant
		want bool
	}{
		{name: "same config rebuilt", now: build(base), want: false},
		{name: "an API's timeout changed", now: build(edit(func(tn *proxycfg.Tenant) { tn.APIs[0].TimeoutMS = 1500 })), want: false},
		{name: "an API added", now: build(edit(func(tn *proxycfg.Tenant) {
			tn.APIs = append(tn.APIs, proxycfg.API{ID: "a3", Slug: "items", BasePath: "/items", UpstreamID: "u1",
				Auth: proxycfg.AuthNone})
		})), want: false},
		{name: "an API removed", now: build(edit(func(tn *proxycfg.Tenant) { tn.APIs = tn.APIs[:1] })), want: true},
		{name: "an API renamed", now: build(edit(func(tn *proxycfg.Tenant) { tn.APIs[1].Slug = "people" })), want: true},
		{name: "an upstream removed", now: build(edit(func(tn *proxycfg.Tenant) {
			tn.Upstreams = tn.Upstreams[:1]
			tn.APIs[1].UpstreamID = "u1"
		})), want: true},
		{name: "tenant removed", now: nil, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lostMetrics(was, tc.now); got != tc.want {
				t.Fatalf("lostMetrics = %v, want %v", got, tc.want)
			}
		})
	}
}
