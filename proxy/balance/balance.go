// Package balance picks a target of an upstream and learns from the outcome.
//
// Algorithms (proxycfg.Algorithm*): round robin, smooth weighted round robin
// (the nginx algorithm), least connections as power of two random choices
// scored by in-flight requests times a latency EWMA, consistent hashing with
// bounded load, and weighted random.
//
// Picking is lock-free: a Pool precomputes a schedule over the targets that
// are available (actively healthy and not ejected) and replays it with an
// atomic counter. The schedule is rebuilt (under a mutex) only when the health
// epoch moves, a target is ejected, or an ejection ends.
//
// Passive health (outlier detection) and per-target circuit breaking live here
// too, because they need exactly what balancing needs: the outcome of every
// exchange. See outlier.go and the Done method.
package balance

import (
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// maxSchedule bounds the schedule length; larger weight sums are scaled down.
const maxSchedule = 4096

// Member is one target as the balancer sees it.
type Member struct {
	// Weight is the relative share for weighted balancing (< 1 counts as 1).
	Weight int
	// Up reports the target's active health; nil means always healthy.
	Up *atomic.Bool
	// Stats are the member's live counters (in flight, latency EWMA,
	// outlier state); nil makes new ones. Pass the same Stats to the pools
	// of successive configs so that an ejection survives a config change.
	Stats *Stats
}

// Options configure a Pool beyond the algorithm and members.
type Options struct {
	// Algorithm is one of proxycfg.Algorithm*; anything unknown is round robin.
	Algorithm string
	// Epoch must change whenever any member's Up changes; nil means health
	// never changes.
	Epoch *atomic.Uint64
	// BoundedLoad is the consistent-hash load factor (0 means 1.25).
	BoundedLoad float64
	// Outlier configures passive health; zero is off.
	Outlier proxycfg.Outlier
	// MaxRequests caps in-flight requests per member (circuit breaker);
	// 0 is no cap.
	MaxRequests int
	// OnEject, if set, is called (outside locks) when a member is ejected,
	// with the ejection's length.
	OnEject func(member int, d time.Duration)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Pool balances over a fixed list of members. It is safe for concurrent use.
type Pool struct {
	opts    Options
	alg     string
	members []Member
	stats   []*Stats
	epoch   *atomic.Uint64
	next    atomic.Uint64
	sched   atomic.Pointer[schedule]
	mu      sync.Mutex

	// ejectEpoch moves when an ejection starts; the schedule also carries
	// the earliest ejection end.
	ejectEpoch atomic.Uint64
}

// Stats are the live counters of one member, padded apart so that members
// do not share cache lines. The zero value is ready to use.
type Stats struct {
	inflight atomic.Int64
	ewma     atomic.Int64 // latency EWMA in nanoseconds; 0 before the first sample

	fails5xx     atomic.Int32
	failsConn    atomic.Int32
	ejectedUntil atomic.Int64 // unix nanos; 0 when not ejected
	ejections    atomic.Int32 // ejections so far (grows the ejection time)
	_            [16]byte
}

type schedule struct {
	epoch      uint64
	ejectEpoch uint64
	until      int64 // earliest ejection end (unix nanos); 0 when none
	order      []int // member indexes, weighted
	avail      []int // available member indexes, each once
	ring       []ringPoint
}

type ringPoint struct {
	hash   uint64
	member int
}

// New makes a pool for algorithm with default options (kept for callers
// that need nothing else).
func New(algorithm string, members []Member, epoch *atomic.Uint64) *Pool {
	return NewPool(members, Options{Algorithm: algorithm, Epoch: epoch})
}

// NewPool makes a pool over members.
func NewPool(members []Member, opts Options) *Pool {
	if opts.Epoch == nil {
		opts.Epoch = new(atomic.Uint64)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BoundedLoad < 1 {
		opts.BoundedLoad = 1.25
	}
	p := &Pool{opts: opts, alg: opts.Algorithm, members: members, stats: make([]*Stats, len(members)), epoch: opts.Epoch}
	for i, m := range members {
		p.stats[i] = m.Stats
		if p.stats[i] == nil {
			p.stats[i] = new(Stats)
		}
	}
	p.sched.Store(p.build(p.epoch.Load(), 0))
	return p
}

// Len is the number of members, available or not.
func (p *Pool) Len() int { return len(p.members) }

// Algorithm is the pool's balancing algorithm.
func (p *Pool) Algorithm() string { return p.alg }

// Pick returns the next available member with no key and no exclusions,
// and counts it in flight: call Done with the outcome.
func (p *Pool) Pick() (int, bool) { return p.PickFor(Request{}) }

// Request is what a pick may depend on.
type Request struct {
	// Key is the consistent-hash key; empty means none (round robin).
	Key []byte
	// Exclude are members not to pick (bit i for member i < 64), such as
	// those a retry already tried.
	Exclude uint64
}

// PickFor returns an available member for r and counts it in flight; the
// caller must call Done(i, ...) once the exchange ends. It reports false
// when no member is available (all down, ejected, excluded or at their
// request cap).
func (p *Pool) PickFor(r Request) (int, bool) {
	s := p.current()
	if len(s.avail) == 0 {
		return 0, false
	}
	var i int
	var ok bool
	switch p.alg {
	case proxycfg.AlgorithmLeastConn:
		i, ok = p.pickP2C(s, r.Exclude)
	case proxycfg.AlgorithmConsistentHash:
		if len(r.Key) > 0 {
			i, ok = p.pickHash(s, r.Key, r.Exclude)
		} else {
			i, ok = p.pickSchedule(s, r.Exclude, false)
		}
	case proxycfg.AlgorithmRandom:
		i, ok = p.pickSchedule(s, r.Exclude, true)
	default:
		i, ok = p.pickSchedule(s, r.Exclude, false)
	}
	if ok {
		p.stats[i].inflight.Add(1)
	}
	return i, ok
}

func (p *Pool) usable(i int, exclude uint64) bool {
	if i < 64 && exclude&(1<<uint(i)) != 0 {
		return false
	}
	return p.opts.MaxRequests <= 0 || p.stats[i].inflight.Load() < int64(p.opts.MaxRequests)
}

// pickSchedule walks the weighted schedule from the counter (or a random
// place) to the first usable member.
func (p *Pool) pickSchedule(s *schedule, exclude uint64, random bool) (int, bool) {
	n := uint64(len(s.order))
	var start uint64
	if random {
		start = rand.Uint64()
	} else {
		start = p.next.Add(1) - 1
	}
	if i := s.order[start%n]; p.usable(i, exclude) {
		return i, true
	}
	// Rare path: excluded or full; try the rest of the cycle once.
	for k := uint64(1); k < n; k++ {
		if i := s.order[(start+k)%n]; p.usable(i, exclude) {
			return i, true
		}
	}
	return 0, false
}

// pickP2C picks two distinct available members at random and keeps the one
// with the lower (in flight + 1) x latency EWMA.
func (p *Pool) pickP2C(s *schedule, exclude uint64) (int, bool) {
	n := len(s.avail)
	if n == 1 {
		i := s.avail[0]
		return i, p.usable(i, exclude)
	}
	a := int(rand.Uint64N(uint64(n)))
	b := int(rand.Uint64N(uint64(n - 1)))
	if b >= a {
		b++
	}
	ia, ib := s.avail[a], s.avail[b]
	ua, ub := p.usable(ia, exclude), p.usable(ib, exclude)
	switch {
	case ua && ub:
		if p.score(ib) < p.score(ia) {
			return ib, true
		}
		return ia, true
	case ua:
		return ia, true
	case ub:
		return ib, true
	}
	for _, i := range s.avail {
		if p.usable(i, exclude) {
			return i, true
		}
	}
	return 0, false
}

// score is the expected wait at member i: its queue times its latency,
// divided by its weight.
func (p *Pool) score(i int) float64 {
	lat := p.stats[i].ewma.Load()
	if lat <= 0 {
		lat = int64(time.Millisecond)
	}
	return float64(p.stats[i].inflight.Load()+1) * float64(lat) / float64(max(p.members[i].Weight, 1))
}

// pickHash walks the ring clockwise from the key's hash to the first member
// under the bounded load: in flight below BoundedLoad x the average.
func (p *Pool) pickHash(s *schedule, key []byte, exclude uint64) (int, bool) {
	h := hash64(key)
	ring := s.ring
	n := len(ring)
	start := sort.Search(n, func(k int) bool { return ring[k].hash >= h })
	var total int64
	for _, i := range s.avail {
		total += p.stats[i].inflight.Load()
	}
	limit := int64(p.opts.BoundedLoad*float64(total+1)/float64(len(s.avail))) + 1
	var seen uint64 // members already refused (first 64)
	for k := range n {
		i := ring[(start+k)%n].member
		if i < 64 {
			if seen&(1<<uint(i)) != 0 {
				continue
			}
			seen |= 1 << uint(i)
		}
		if p.usable(i, exclude) && p.stats[i].inflight.Load() < limit {
			return i, true
		}
	}
	return p.pickSchedule(s, exclude, false)
}

// hash64 is FNV-1a followed by a finaliser, so that near keys spread.
func hash64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

// InFlight is the number of requests member i is serving.
func (p *Pool) InFlight(i int) int64 { return p.stats[i].inflight.Load() }

// Available reports whether member i is actively healthy and not ejected.
func (p *Pool) Available(i int) bool {
	m := p.members[i]
	if m.Up != nil && !m.Up.Load() {
		return false
	}
	u := p.stats[i].ejectedUntil.Load()
	return u == 0 || u <= p.opts.Now().UnixNano()
}

func (p *Pool) current() *schedule {
	s := p.sched.Load()
	e, ee := p.epoch.Load(), p.ejectEpoch.Load()
	if s.epoch != e || s.ejectEpoch != ee || (s.until != 0 && p.opts.Now().UnixNano() >= s.until) {
		s = p.rebuild()
	}
	return s
}

func (p *Pool) rebuild() *schedule {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ee := p.epoch.Load(), p.ejectEpoch.Load()
	if s := p.sched.Load(); s.epoch == e && s.ejectEpoch == ee && (s.until == 0 || p.opts.Now().UnixNano() < s.until) {
		return s
	}
	s := p.build(e, ee)
	p.sched.Store(s)
	return s
}

func (p *Pool) build(e, ee uint64) *schedule {
	s := &schedule{epoch: e, ejectEpoch: ee}
	now := p.opts.Now().UnixNano()
	var avail, healthy []int
	for i, m := range p.members {
		if m.Up != nil && !m.Up.Load() {
			continue
		}
		healthy = append(healthy, i)
		if u := p.stats[i].ejectedUntil.Load(); u > now {
			if s.until == 0 || u < s.until {
				s.until = u
			}
			continue
		}
		avail = append(avail, i)
	}
	if len(avail) == 0 && len(healthy) > 0 {
		// Never eject everything: with every healthy member ejected, serve
		// from all of them rather than fail every request (panic mode).
		avail = healthy
	}
	s.avail = avail
	s.order = p.weightedOrder(avail)
	if p.alg == proxycfg.AlgorithmConsistentHash {
		s.ring = p.buildRing(avail)
	}
	return s
}

// weightedOrder lays out one schedule cycle over idx: plain for round
// robin and least_conn, smooth weighted otherwise.
func (p *Pool) weightedOrder(idx []int) []int {
	if p.alg == proxycfg.AlgorithmRoundRobin || p.alg == proxycfg.AlgorithmLeastConn || len(idx) <= 1 {
		return idx
	}
	weights := make([]int, len(idx))
	for i, m := range idx {
		weights[i] = max(p.members[m].Weight, 1)
	}
	g := weights[0]
	for _, w := range weights[1:] {
		g = gcd(g, w)
	}
	total := 0
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
	return smoothWeighted(idx, weights, total)
}

// ringPoints per unit of weight; 160 points give a few percent of spread.
const ringPoints = 160

func (p *Pool) buildRing(idx []int) []ringPoint {
	var ring []ringPoint
	var buf [32]byte
	for _, i := range idx {
		n := ringPoints * min(max(p.members[i].Weight, 1), 16)
		for k := range n {
			b := append(buf[:0], byte(i), byte(i>>8), '#')
			b = append(b, byte(k), byte(k>>8), byte(k>>16))
			ring = append(ring, ringPoint{hash: hash64(b), member: i})
		}
	}
	sort.Slice(ring, func(a, b int) bool { return ring[a].hash < ring[b].hash })
	return ring
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
