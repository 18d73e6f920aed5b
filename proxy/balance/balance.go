// Package balance picks a healthy target of an upstream: round robin or
// smooth weighted round robin (the nginx algorithm).
//
// Picking is lock-free: a Pool precomputes the schedule over the targets that
// are healthy and replays it with an atomic counter. Health changes are rare,
// so the schedule is rebuilt (under a mutex) only when the health epoch moves.
package balance

import (
	"sync"
	"sync/atomic"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// maxSchedule bounds the schedule length; larger weight sums are scaled down.
const maxSchedule = 4096

// Member is one target as the balancer sees it.
type Member struct {
	// Weight is the relative share for weighted balancing (< 1 counts as 1).
	Weight int
	// Up reports the target's health; nil means always healthy.
	Up *atomic.Bool
}

// Pool balances over a fixed list of members. It is safe for concurrent use.
type Pool struct {
	weighted bool
	members  []Member
	epoch    *atomic.Uint64
	next     atomic.Uint64
	sched    atomic.Pointer[schedule]
	mu       sync.Mutex
}

type schedule struct {
	epoch uint64
	order []int // member indexes
}

// New makes a pool for algorithm (proxycfg.AlgorithmRoundRobin or
// AlgorithmWeighted; anything else is round robin). epoch must change
// whenever any member's Up changes; nil means health never changes.
func New(algorithm string, members []Member, epoch *atomic.Uint64) *Pool {
	if epoch == nil {
		epoch = new(atomic.Uint64)
	}
	p := &Pool{weighted: algorithm == proxycfg.AlgorithmWeighted, members: members, epoch: epoch}
	p.sched.Store(p.build(epoch.Load()))
	return p
}

// Len is the number of members, healthy or not.
func (p *Pool) Len() int { return len(p.members) }

// Pick returns the index of the next healthy member, or false if none is
// healthy.
func (p *Pool) Pick() (int, bool) {
	s := p.sched.Load()
	if e := p.epoch.Load(); s.epoch != e {
		s = p.rebuild(e)
	}
	n := uint64(len(s.order))
	if n == 0 {
		return 0, false
	}
	return s.order[(p.next.Add(1)-1)%n], true
}

func (p *Pool) rebuild(e uint64) *schedule {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.sched.Load(); s.epoch == e {
		return s
	}
	s := p.build(e)
	p.sched.Store(s)
	return s
}

func (p *Pool) build(e uint64) *schedule {
	var healthy []int
	for i, m := range p.members {
		if m.Up == nil || m.Up.Load() {
			healthy = append(healthy, i)
		}
	}
	s := &schedule{epoch: e}
	if !p.weighted || len(healthy) <= 1 {
		s.order = healthy
		return s
	}
	weights := make([]int, len(healthy))
	total := 0
	for i, idx := range healthy {
		w := max(p.members[idx].Weight, 1)
		weights[i] = w
		total += w
	}
	g := weights[0]
	for _, w := range weights[1:] {
		g = gcd(g, w)
	}
	total = 0
	for i := range weights {
		weights[i] /= g
		total += weights[i]
	}
	if total > maxSchedule {
		t := 0
		for i := range weights {
			weights[i] = max(weights[i]*maxSchedule/total, 1)
			t += weights[i]
		}
		total = t
	}
	s.order = smoothWeighted(healthy, weights, total)
	return s
}

// smoothWeighted lays out one full cycle of nginx's smooth weighted round
// robin: each step adds every weight to its current value, picks the largest
// and subtracts the total from it.
func smoothWeighted(idx, weights []int, total int) []int {
	cur := make([]int, len(weights))
	order := make([]int, 0, total)
	for range total {
		best := 0
		for i, w := range weights {
			cur[i] += w
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		order = append(order, idx[best])
	}
	return order
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
