package ratelimit

import (
	"context"
	"sync"
	"time"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// Local is an in-process sliding-window log: exact for one worker, used as
// the fallback while Redis is unreachable. Idle subjects are swept.
type Local struct {
	mu       sync.Mutex
	subjects map[string]*window
	sweepAt  time.Time
}

type window struct {
	times []time.Time // admitted requests, oldest first
	last  time.Time
}

// NewLocal makes an empty Local limiter.
func NewLocal() *Local { return &Local{subjects: map[string]*window{}} }

// Allow implements Limiter.
func (l *Local) Allow(_ context.Context, subject string, rl proxycfg.RateLimit, now time.Time) (Decision, error) {
	span := time.Duration(rl.PerSeconds) * time.Second
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.After(l.sweepAt) {
		for k, w := range l.subjects {
			if now.Sub(w.last) > time.Hour {
				delete(l.subjects, k)
			}
		}
		l.sweepAt = now.Add(time.Minute)
	}
	w := l.subjects[subject]
	if w == nil {
		w = &window{}
		l.subjects[subject] = w
	}
	w.last = now
	i := 0
	for i < len(w.times) && !w.times[i].After(now.Add(-span)) {
		i++
	}
	w.times = w.times[i:]
	d := Decision{Limit: rl.Requests}
	if int64(len(w.times)) < rl.Requests {
		w.times = append(w.times, now)
		d.Allowed = true
	}
	d.Remaining = max(rl.Requests-int64(len(w.times)), 0)
	d.Reset = span
	if len(w.times) > 0 {
		d.Reset = w.times[0].Add(span).Sub(now)
	}
	if !d.Allowed {
		d.RetryAfter = max(d.Reset, time.Second)
	}
	return d, nil
}
