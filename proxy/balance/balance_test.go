package balance

import (
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

func up(v bool) *atomic.Bool {
	b := new(atomic.Bool)
	b.Store(v)
	return b
}

func TestPool(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		algorithm string
		members   []Member
		picks     int
		want      []int // expected count per member
	}{
		{name: "round robin even", algorithm: proxycfg.AlgorithmRoundRobin,
			members: []Member{{Weight: 1}, {Weight: 5}, {Weight: 1}}, picks: 9, want: []int{3, 3, 3}},
		{name: "round robin skips down", algorithm: proxycfg.AlgorithmRoundRobin,
			members: []Member{{Up: up(true)}, {Up: up(false)}, {Up: up(true)}}, picks: 10, want: []int{5, 0, 5}},
		{name: "weighted shares", algorithm: proxycfg.AlgorithmWeighted,
			members: []Member{{Weight: 5}, {Weight: 1}, {Weight: 1}}, picks: 70, want: []int{50, 10, 10}},
		{name: "weighted gcd", algorithm: proxycfg.AlgorithmWeighted,
			members: []Member{{Weight: 300}, {Weight: 100}}, picks: 8, want: []int{6, 2}},
		{name: "weighted skips down", algorithm: proxycfg.AlgorithmWeighted,
			members: []Member{{Weight: 3, Up: up(false)}, {Weight: 2}, {Weight: 1}}, picks: 6, want: []int{0, 4, 2}},
		{name: "huge weights scaled", algorithm: proxycfg.AlgorithmWeighted,
			members: []Member{{Weight: 1_000_000}, {Weight: 1}}, picks: maxSchedule, want: []int{maxSchedule - 1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New(tc.algorithm, tc.members, nil)
			got := make([]int, len(tc.members))
			for range tc.picks {
				i, ok := p.Pick()
				if !ok {
					t.Fatal("no member picked")
				}
				got[i]++
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("counts = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestPoolSmoothOrder(t *testing.T) {
	t.Parallel()
	p := New(proxycfg.AlgorithmWeighted, []Member{{Weight: 5}, {Weight: 1}, {Weight: 1}}, nil)
	// nginx: a a b a c a a for weights 5,1,1.
	want := []int{0, 0, 1, 0, 2, 0, 0}
	for i, w := range want {
		if g, _ := p.Pick(); g != w {
			t.Fatalf("pick %d = %d, want %d", i, g, w)
		}
	}
}

func TestPoolHealthEpoch(t *testing.T) {
	t.Parallel()
	var epoch atomic.Uint64
	a, b := up(true), up(true)
	p := New(proxycfg.AlgorithmRoundRobin, []Member{{Up: a}, {Up: b}}, &epoch)
	a.Store(false)
	b.Store(false)
	epoch.Add(1)
	if _, ok := p.Pick(); ok {
		t.Fatal("picked a member while all are down")
	}
	b.Store(true)
	epoch.Add(1)
	for range 3 {
		if i, ok := p.Pick(); !ok || i != 1 {
			t.Fatalf("Pick = %d, %v; want 1, true", i, ok)
		}
	}
}
