package balance

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

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

// fakeClock is a settable clock for ejection tests.
type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *fakeClock) add(d time.Duration) { c.t.Add(int64(d)) }
func newClock() *fakeClock {
	c := &fakeClock{}
	c.t.Store(time.Unix(1_000_000, 0).UnixNano())
	return c
}

func TestAlgorithmsShare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		alg     string
		weights []int
		picks   int
		want    []float64 // expected share per member
		tol     float64
	}{
		{name: "random even", alg: proxycfg.AlgorithmRandom, weights: []int{1, 1, 1}, picks: 30000, want: []float64{1. / 3, 1. / 3, 1. / 3}, tol: 0.03},
		{name: "random weighted", alg: proxycfg.AlgorithmRandom, weights: []int{3, 1}, picks: 40000, want: []float64{0.75, 0.25}, tol: 0.03},
		{name: "least_conn idle spreads", alg: proxycfg.AlgorithmLeastConn, weights: []int{1, 1}, picks: 20000, want: []float64{0.5, 0.5}, tol: 0.05},
		{name: "consistent hash without key is round robin", alg: proxycfg.AlgorithmConsistentHash, weights: []int{1, 1}, picks: 100, want: []float64{0.5, 0.5}, tol: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms := make([]Member, len(tc.weights))
			for i, w := range tc.weights {
				ms[i].Weight = w
			}
			p := NewPool(ms, Options{Algorithm: tc.alg})
			got := make([]int, len(ms))
			for range tc.picks {
				i, ok := p.Pick()
				if !ok {
					t.Fatal("no pick")
				}
				got[i]++
				p.Done(i, Result{Status: 200, Latency: time.Millisecond})
			}
			for i := range got {
				share := float64(got[i]) / float64(tc.picks)
				if share < tc.want[i]-tc.tol || share > tc.want[i]+tc.tol {
					t.Fatalf("shares %v of %d, want %v ± %v", got, tc.picks, tc.want, tc.tol)
				}
			}
		})
	}
}

func TestLeastConnPrefersFastAndIdle(t *testing.T) {
	t.Parallel()
	p := NewPool([]Member{{Weight: 1}, {Weight: 1}}, Options{Algorithm: proxycfg.AlgorithmLeastConn})
	// Member 0 answers in 50ms, member 1 in 1ms.
	for range 50 {
		p.stats[0].inflight.Add(1)
		p.Done(0, Result{Status: 200, Latency: 50 * time.Millisecond})
		p.stats[1].inflight.Add(1)
		p.Done(1, Result{Status: 200, Latency: time.Millisecond})
	}
	got := [2]int{}
	for range 1000 {
		i, _ := p.Pick()
		got[i]++
		p.Done(i, Result{})
	}
	if got[1] < 990 {
		t.Fatalf("fast member got %d of 1000", got[1])
	}
	// A pile of in-flight requests on the fast member moves traffic away.
	p.stats[1].inflight.Add(200)
	i, _ := p.Pick()
	if i != 0 {
		t.Fatalf("picked the loaded member")
	}
}

func TestConsistentHash(t *testing.T) {
	t.Parallel()
	ms := []Member{{Weight: 1}, {Weight: 1}, {Weight: 1}, {Weight: 1}}
	p := NewPool(ms, Options{Algorithm: proxycfg.AlgorithmConsistentHash})
	keys := make([][]byte, 400)
	first := make([]int, len(keys))
	counts := make([]int, len(ms))
	for k := range keys {
		keys[k] = []byte("user-" + strconv.Itoa(k))
		i, ok := p.PickFor(Request{Key: keys[k]})
		if !ok {
			t.Fatal("no pick")
		}
		p.Done(i, Result{})
		first[k] = i
		counts[i]++
	}
	for i, c := range counts {
		if c < 50 || c > 150 {
			t.Fatalf("member %d got %d of 400 keys: %v", i, c, counts)
		}
	}
	// Same key, same member.
	for k := range keys {
		i, _ := p.PickFor(Request{Key: keys[k]})
		p.Done(i, Result{})
		if i != first[k] {
			t.Fatalf("key %d moved from %d to %d", k, first[k], i)
		}
	}
	// Removing one member moves only its keys.
	down := up(true)
	ms2 := []Member{{Weight: 1}, {Weight: 1}, {Weight: 1, Up: down}, {Weight: 1}}
	var epoch atomic.Uint64
	p2 := NewPool(ms2, Options{Algorithm: proxycfg.AlgorithmConsistentHash, Epoch: &epoch})
	down.Store(false)
	epoch.Add(1)
	for k := range keys {
		i, _ := p2.PickFor(Request{Key: keys[k]})
		p2.Done(i, Result{})
		if first[k] != 2 && i != first[k] {
			t.Fatalf("key %d on a live member moved from %d to %d", k, first[k], i)
		}
		if i == 2 {
			t.Fatal("picked the down member")
		}
	}
}

func TestConsistentHashBoundedLoad(t *testing.T) {
	t.Parallel()
	p := NewPool([]Member{{Weight: 1}, {Weight: 1}, {Weight: 1}, {Weight: 1}},
		Options{Algorithm: proxycfg.AlgorithmConsistentHash, BoundedLoad: 1.25})
	hot := []byte("hot-key")
	// 100 concurrent requests of one hot key: none stays done.
	counts := make([]int, 4)
	for range 100 {
		i, ok := p.PickFor(Request{Key: hot})
		if !ok {
			t.Fatal("no pick")
		}
		counts[i]++
	}
	for i, c := range counts {
		// Bound: 1.25 x average (25) + 1 slack.
		if c > 33 {
			t.Fatalf("member %d holds %d of 100 in-flight hot requests: %v", i, c, counts)
		}
	}
}

func TestOutlierEjection(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var ejections []time.Duration
	p := NewPool([]Member{{Weight: 1}, {Weight: 1}, {Weight: 1}, {Weight: 1}}, Options{
		Algorithm: proxycfg.AlgorithmRoundRobin,
		Outlier:   proxycfg.Outlier{Consecutive5xx: 3, ConsecutiveErrors: 2, BaseEjectionMS: 1000, MaxEjectionPercent: 50},
		OnEject:   func(_ int, d time.Duration) { ejections = append(ejections, d) },
		Now:       clk.now,
	})
	fail := func(i int, r Result) {
		p.stats[i].inflight.Add(1)
		p.Done(i, r)
	}
	// Two 5xx then a success: not ejected.
	fail(0, Result{Status: 503})
	fail(0, Result{Status: 503})
	fail(0, Result{Status: 200})
	fail(0, Result{Status: 503})
	if p.Ejected(0) {
		t.Fatal("ejected without 3 in a row")
	}
	fail(0, Result{Status: 502})
	fail(0, Result{Status: 500})
	if !p.Ejected(0) {
		t.Fatal("not ejected after 3 5xx in a row")
	}
	for range 20 {
		i, _ := p.Pick()
		p.Done(i, Result{Status: 200})
		if i == 0 {
			t.Fatal("picked an ejected member")
		}
	}
	// Connect errors eject member 1; member 2 may not follow (50% of 4).
	fail(1, Result{ConnError: true})
	fail(1, Result{ConnError: true})
	fail(2, Result{ConnError: true})
	fail(2, Result{ConnError: true})
	if !p.Ejected(1) || p.Ejected(2) {
		t.Fatalf("ejected: 1=%v 2=%v; want true false (max 50%%)", p.Ejected(1), p.Ejected(2))
	}
	// After 1s member 0 is back; one more 5xx ejects it for 2s.
	clk.add(1100 * time.Millisecond)
	if p.Ejected(0) {
		t.Fatal("still ejected after the base time")
	}
	if !p.Available(0) {
		t.Fatal("returning member not available")
	}
	fail(0, Result{Status: 500})
	if !p.Ejected(0) {
		t.Fatal("returning member not re-ejected on its first failure")
	}
	want := []time.Duration{time.Second, time.Second, 2 * time.Second}
	if len(ejections) != len(want) {
		t.Fatalf("ejections %v, want %v", ejections, want)
	}
	for i := range want {
		if ejections[i] != want[i] {
			t.Fatalf("ejections %v, want %v", ejections, want)
		}
	}
}

func TestCircuitBreakerAndExclude(t *testing.T) {
	t.Parallel()
	p := NewPool([]Member{{Weight: 1}, {Weight: 1}}, Options{Algorithm: proxycfg.AlgorithmRoundRobin, MaxRequests: 2})
	var held []int
	for range 4 {
		i, ok := p.Pick()
		if !ok {
			t.Fatal("no pick below the cap")
		}
		held = append(held, i)
	}
	if _, ok := p.Pick(); ok {
		t.Fatal("picked beyond every member's cap")
	}
	p.Done(held[0], Result{Status: 200})
	i, ok := p.Pick()
	if !ok || i != held[0] {
		t.Fatalf("Pick = %d %v after one finished", i, ok)
	}
	q := NewPool([]Member{{Weight: 1}, {Weight: 1}, {Weight: 1}}, Options{Algorithm: proxycfg.AlgorithmLeastConn})
	for range 50 {
		i, ok := q.PickFor(Request{Exclude: 1<<0 | 1<<2})
		if !ok || i != 1 {
			t.Fatalf("PickFor excluding 0 and 2 = %d %v", i, ok)
		}
		q.Done(i, Result{})
	}
}

func TestRetryBudget(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := NewBudget(20, 1, clk.now)
	allowed := 0
	for range 1000 {
		b.Request()
	}
	for range 1000 {
		if b.Retry() {
			allowed++
		}
	}
	if allowed != 200 {
		t.Fatalf("allowed %d retries of 1000 requests at 20%%, want 200", allowed)
	}
	// Ten seconds later the window has moved on: the floor applies again.
	clk.add(11 * time.Second)
	allowed = 0
	for range 100 {
		if b.Retry() {
			allowed++
		}
	}
	if allowed != 10 {
		t.Fatalf("allowed %d retries on a quiet upstream, want the floor 10", allowed)
	}
}

func BenchmarkPick(b *testing.B) {
	for _, alg := range proxycfg.Algorithms {
		b.Run(alg, func(b *testing.B) {
			p := NewPool([]Member{{Weight: 1}, {Weight: 2}, {Weight: 3}}, Options{Algorithm: alg,
				Outlier: proxycfg.Outlier{Consecutive5xx: 5}})
			key := []byte("consumer-42")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i, _ := p.PickFor(Request{Key: key})
					p.Done(i, Result{Status: 200, Latency: time.Millisecond})
				}
			})
		})
	}
}
