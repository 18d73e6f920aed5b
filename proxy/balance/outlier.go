package balance

import (
	"sync/atomic"
	"time"
)

// Defaults of proxycfg.Outlier.
const (
	DefaultBaseEjection       = 5 * time.Second
	DefaultMaxEjection        = 300 * time.Second
	DefaultMaxEjectionPercent = 50
)

// ewmaWeight is the weight of a new latency sample (1/8, as in Linkerd).
const ewmaShift = 3

// Result is the outcome of one exchange with a member. The zero Result is
// an exchange abandoned before any answer, not for the member's fault: it
// only leaves the in-flight count.
type Result struct {
	// Status is the upstream's status code; 0 when there was no answer.
	Status int
	// ConnError reports a failure to connect or a timeout.
	ConnError bool
	// Latency is how long the exchange took (0 to skip the EWMA).
	Latency time.Duration
}

// Done ends an exchange PickFor started on member i: it leaves the
// in-flight count, feeds the latency EWMA and the outlier detector.
func (p *Pool) Done(i int, r Result) {
	st := p.stats[i]
	st.inflight.Add(-1)
	if r.Latency > 0 {
		ns := int64(r.Latency)
		for {
			old := st.ewma.Load()
			nw := ns
			if old != 0 {
				nw = old + (ns-old)>>ewmaShift
			}
			if st.ewma.CompareAndSwap(old, nw) {
				break
			}
		}
	}
	o := p.opts.Outlier
	if !o.Enabled() || r.Status == 0 && !r.ConnError {
		// Off, or an exchange abandoned before any answer for a reason
		// that is not the member's (nothing to learn of its health).
		return
	}
	switch {
	case r.ConnError:
		st.fails5xx.Store(0)
		if n := st.failsConn.Add(1); o.ConsecutiveErrors > 0 && int(n) >= o.ConsecutiveErrors {
			p.eject(i)
		}
	case r.Status >= 500:
		st.failsConn.Store(0)
		if n := st.fails5xx.Add(1); o.Consecutive5xx > 0 && int(n) >= o.Consecutive5xx {
			p.eject(i)
		}
	default:
		if st.fails5xx.Load() != 0 {
			st.fails5xx.Store(0)
		}
		if st.failsConn.Load() != 0 {
			st.failsConn.Store(0)
		}
	}
}

// eject takes member i out for base x (ejections so far + 1), capped, unless
// that would eject more than the allowed share of members.
func (p *Pool) eject(i int) {
	o := p.opts.Outlier
	now := p.opts.Now()
	p.mu.Lock()
	st := p.stats[i]
	if u := st.ejectedUntil.Load(); u > now.UnixNano() {
		p.mu.Unlock()
		return // already out
	}
	pct := o.MaxEjectionPercent
	if pct <= 0 {
		pct = DefaultMaxEjectionPercent
	}
	allowed := len(p.members) * pct / 100
	if allowed < 1 && len(p.members) > 1 {
		allowed = 1
	}
	out := 0
	for k := range p.stats {
		if p.stats[k].ejectedUntil.Load() > now.UnixNano() {
			out++
		}
	}
	if out+1 > allowed {
		p.mu.Unlock()
		return
	}
	base := time.Duration(o.BaseEjectionMS) * time.Millisecond
	if base <= 0 {
		base = DefaultBaseEjection
	}
	maxD := time.Duration(o.MaxEjectionMS) * time.Millisecond
	if maxD <= 0 {
		maxD = DefaultMaxEjection
	}
	n := st.ejections.Add(1)
	d := min(base*time.Duration(n), maxD)
	st.ejectedUntil.Store(now.Add(d).UnixNano())
	// A returning member gets one fresh chance: a single failure after
	// the ejection ends ejects it again for longer.
	st.fails5xx.Store(max(int32(o.Consecutive5xx)-1, 0))
	st.failsConn.Store(max(int32(o.ConsecutiveErrors)-1, 0))
	p.ejectEpoch.Add(1)
	p.mu.Unlock()
	if p.opts.OnEject != nil {
		p.opts.OnEject(i, d)
	}
}

// Ejected reports whether member i is ejected now.
func (p *Pool) Ejected(i int) bool {
	return p.stats[i].ejectedUntil.Load() > p.opts.Now().UnixNano()
}

// Budget limits retries to a share of requests over a sliding window of
// about ten seconds (two five-second halves), with a floor per second so
// that a quiet upstream can retry at all. It is safe for concurrent use.
type Budget struct {
	percent   int64
	minPerSec int64
	now       func() time.Time

	window   atomic.Int64 // start of the current half, unix seconds / 5
	reqs     [2]atomic.Int64
	retries  [2]atomic.Int64
	rotating atomic.Bool
}

// NewBudget makes a budget allowing percent of requests as retries, and at
// least minPerSec retries per second.
func NewBudget(percent, minPerSec int, now func() time.Time) *Budget {
	if now == nil {
		now = time.Now
	}
	b := &Budget{percent: int64(percent), minPerSec: int64(minPerSec), now: now}
	b.window.Store(now().Unix() / 5)
	return b
}

func (b *Budget) half() int {
	w := b.now().Unix() / 5
	cur := b.window.Load()
	if w != cur && b.rotating.CompareAndSwap(false, true) {
		if b.window.Load() == cur {
			// Start a new half: the older one is forgotten.
			h := int(w % 2)
			if w-cur > 1 {
				b.reqs[1-h].Store(0)
				b.retries[1-h].Store(0)
			}
			b.reqs[h].Store(0)
			b.retries[h].Store(0)
			b.window.Store(w)
		}
		b.rotating.Store(false)
	}
	return int(b.window.Load() % 2)
}

// Request counts a first attempt. A nil Budget counts nothing.
func (b *Budget) Request() {
	if b != nil {
		b.reqs[b.half()].Add(1)
	}
}

// Retry reports whether a retry is within budget and, if so, counts it. A
// nil Budget allows none.
func (b *Budget) Retry() bool {
	if b == nil {
		return false
	}
	h := b.half()
	reqs := b.reqs[0].Load() + b.reqs[1].Load()
	used := b.retries[0].Load() + b.retries[1].Load()
	if used >= b.minPerSec*10 && used*100 >= reqs*b.percent {
		return false
	}
	b.retries[h].Add(1)
	return true
}
