package pipeline

import (
	"fmt"
	"testing"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// composeTenant is tenant i of the compose tests: one upstream, one API,
// served at t<i>.localhost and, when domain is set, at that custom domain.
func composeTenant(i, timeoutMS int, domain string) *proxycfg.Tenant {
	tn := &proxycfg.Tenant{
		ID: fmt.Sprintf("id%d", i), Slug: fmt.Sprintf("t%d", i),
		Upstreams: []proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin,
			Targets: []proxycfg.Target{{URL: fmt.Sprintf("http://10.0.%d.%d:8080", i/250, i%250), Weight: 1}}}},
		APIs: []proxycfg.API{{ID: "a", Slug: "a", BasePath: "/a", UpstreamID: "u", Auth: proxycfg.AuthNone,
			TimeoutMS: timeoutMS}},
	}
	if domain != "" {
		tn.Domains = []string{domain}
	}
	return tn
}

func composePart(tb testing.TB, c *Composer, tn *proxycfg.Tenant, prev *Tenant) *Tenant {
	tb.Helper()
	p, err := c.BuildTenant(tn, ShardInfo{Generation: 1}, prev)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestComposeKeepsOldRuntimes composes runtime after runtime (tenants
// added, changed, removed, a custom domain moving between tenants) and
// checks that each runtime still routes as it did when made: a runtime in
// use is never changed by the ones composed after it.
func TestComposeKeepsOldRuntimes(t *testing.T) {
	t.Parallel()
	c := NewComposer(BuildOptions{Domain: "localhost"})
	type check struct {
		host    string
		timeout int // 0: not served
	}
	var runtimes []*Runtime
	var checks [][]check
	var cur *Runtime
	step := func(checksNow []check, changes ...Change) {
		cur = c.Compose(cur, Update{Generation: int64(len(runtimes) + 1), Changes: changes})
		runtimes, checks = append(runtimes, cur), append(checks, checksNow)
	}
	var first []Change
	for i := range 50 {
		first = append(first, Change{ID: fmt.Sprintf("id%d", i), Part: composePart(t, c, composeTenant(i, 1000, ""), nil)})
	}
	step([]check{{"t0.localhost", 1000}, {"t49.localhost", 1000}, {"shop.example", 0}}, first...)
	step([]check{{"t0.localhost", 2000}, {"shop.example", 2000}, {"t49.localhost", 1000}},
		Change{ID: "id0", Part: composePart(t, c, composeTenant(0, 2000, "shop.example"), cur.Tenant("id0"))})
	// Another tenant claims the domain too: the first claim keeps it.
	step([]check{{"shop.example", 2000}, {"t1.localhost", 3000}},
		Change{ID: "id1", Part: composePart(t, c, composeTenant(1, 3000, "shop.example"), cur.Tenant("id1"))})
	// The holder lets it go: the other claim takes it.
	step([]check{{"shop.example", 3000}, {"t0.localhost", 4000}},
		Change{ID: "id0", Part: composePart(t, c, composeTenant(0, 4000, ""), cur.Tenant("id0"))})
	step([]check{{"t1.localhost", 0}, {"shop.example", 0}, {"t2.localhost", 1000}}, Change{ID: "id1"})
	for i, rt := range runtimes {
		for _, ck := range checks[i] {
			api, ok := rt.Route([]byte(ck.host), []byte("/a/x"))
			got := 0
			if ok {
				got = int(api.Timeout.Milliseconds())
			}
			if got != ck.timeout {
				t.Errorf("runtime %d: %s has timeout %d ms, want %d", i+1, ck.host, got, ck.timeout)
			}
		}
	}
	if n := runtimes[0].TenantCount(); n != 50 {
		t.Errorf("first runtime has %d tenants, want 50", n)
	}
	if n := cur.TenantCount(); n != 49 {
		t.Errorf("last runtime has %d tenants, want 49", n)
	}
}

// BenchmarkComposeOneChange is what a worker spends composing the runtime
// after one tenant's change, at growing platform sizes (the tenant's part
// is built outside the timer): it must not grow with the platform
// (bench/scale.sh measures the whole worker).
func BenchmarkComposeOneChange(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint("tenants=", n), func(b *testing.B) {
			c := NewComposer(BuildOptions{Domain: "localhost"})
			var u Update
			for i := range n {
				u.Changes = append(u.Changes, Change{ID: fmt.Sprintf("id%d", i), Part: composePart(b, c, composeTenant(i, 1000, ""), nil)})
			}
			cur := c.Compose(nil, u)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				k := i % n
				part := composePart(b, c, composeTenant(k, 1000+i%2, ""), cur.Tenant(fmt.Sprintf("id%d", k)))
				b.StartTimer()
				cur = c.Compose(cur, Update{Generation: int64(i + 2), Changes: []Change{{ID: part.ID, Part: part}}})
			}
		})
	}
}
