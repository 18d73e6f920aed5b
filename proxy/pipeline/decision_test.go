package pipeline

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

func openSnapshot(gen int64, urls ...string) *proxycfg.Snapshot {
	targets := make([]proxycfg.Target, len(urls))
	for i, u := range urls {
		targets[i] = proxycfg.Target{URL: u, Weight: 1}
	}
	return &proxycfg.Snapshot{Schema: proxycfg.SchemaVersion, Generation: gen, Tenants: []proxycfg.Tenant{{
		ID: "t", Slug: "acme",
		Upstreams: []proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: targets,
			Retry: proxycfg.Retry{Attempts: 2, BudgetPercent: 100, MinPerSecond: 100}}},
		APIs: []proxycfg.API{{ID: "a", Slug: "a", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}},
	}}}
}

func inFlight(rt *Runtime) (n int64) {
	for _, u := range rt.Upstreams() {
		for i := range u.Targets {
			n += u.Pool.InFlight(i)
		}
	}
	return n
}

// TestDecisionDone: whatever path a request takes, one deferred Done
// reports every picked target exactly once (Retry reports the ones left
// behind), so nothing stays counted in flight; Done is safe to repeat.
func TestDecisionDone(t *testing.T) {
	t.Parallel()
	rt, err := Build(openSnapshot(1, "http://a.example", "http://b.example"), BuildOptions{Domain: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	var p Pipeline
	req := &Request{Host: []byte("acme.localhost"), Path: []byte("/x"), Method: []byte("GET")}
	tests := []struct {
		name string
		run  func(d *Decision)
	}{
		{name: "answered", run: func(d *Decision) { d.Outcome = Outcome{Status: 200} }},
		{name: "abandoned before the exchange", run: func(*Decision) {}},
		{name: "retried once", run: func(d *Decision) {
			d.Outcome = Outcome{Status: 503}
			if !d.Retry(req) {
				t.Fatal("no retry on the other target")
			}
			d.Outcome = Outcome{Status: 200}
		}},
		{name: "retried until no target is left", run: func(d *Decision) {
			d.Outcome = Outcome{Failure: FailConnect}
			d.Retry(req)
			d.Outcome = Outcome{Failure: FailConnect}
			if d.Retry(req) {
				t.Fatal("a third target out of two")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			func() {
				var d Decision
				defer d.Done()
				p.Decide(context.Background(), rt, req, &d)
				if d.Problem != nil || d.Target == nil {
					t.Fatalf("decision %+v", d)
				}
				if inFlight(rt) != 1 {
					t.Fatalf("%d in flight after the pick", inFlight(rt))
				}
				tc.run(&d)
				d.Done()
			}()
			if n := inFlight(rt); n != 0 {
				t.Fatalf("%d still in flight after Done", n)
			}
		})
	}
}

// TestBuildCarriesCounters: a runtime built with Previous shares the
// balancer counters of the targets both have (so ejections and latency
// averages survive a reload) and starts the others afresh; the previous
// runtime is not changed.
func TestBuildCarriesCounters(t *testing.T) {
	t.Parallel()
	first, err := Build(openSnapshot(1, "http://a.example", "http://b.example"), BuildOptions{Domain: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	var p Pipeline
	var d Decision
	p.Decide(context.Background(), first, &Request{Host: []byte("acme.localhost"), Path: []byte("/")}, &d)
	picked := d.Target.URL
	second, err := Build(openSnapshot(2, "http://b.example", "http://a.example", "http://c.example"),
		BuildOptions{Domain: "localhost", Previous: first})
	if err != nil {
		t.Fatal(err)
	}
	u := second.Upstreams()[0]
	for i, tg := range u.Targets {
		want := int64(0)
		if tg.URL == picked {
			want = 1
		}
		if got := u.Pool.InFlight(i); got != want {
			t.Fatalf("%s: %d in flight in the new runtime, want %d", tg.URL, got, want)
		}
	}
	d.Done()
	if inFlight(second) != 0 || inFlight(first) != 0 {
		t.Fatal("the exchange of the old runtime did not end in the counters both share")
	}
	if len(second.Endpoints()) != 3 || len(first.Endpoints()) != 2 {
		t.Fatalf("endpoints %v and %v", first.Endpoints(), second.Endpoints())
	}
}

// TestNoEngineTypes: the pipeline stays independent of the HTTP engine
// (DESIGN.md: "Keep the request pipeline independent of the HTTP engine").
func TestNoEngineTypes(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/valyala/") {
			t.Fatalf("the pipeline depends on %s", dep)
		}
	}
}
