package metering

import (
	"context"
	"sync"
	"time"
)

// accountLimiter spaces the events one Sender sends to each connected
// account (Stripe limits meter events per account): a token bucket per
// account holding up to one second of its rate.
type accountLimiter struct {
	rate float64 // tokens per second; <= 0 means no limit

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newAccountLimiter(perSecond int) *accountLimiter {
	return &accountLimiter{rate: float64(perSecond), buckets: map[string]*bucket{}}
}

// wait blocks until account may receive one more event, or ctx ends.
func (l *accountLimiter) wait(ctx context.Context, account string) error {
	if l.rate <= 0 {
		return nil
	}
	for {
		d := l.take(account)
		if d == 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// take takes a token and returns 0, or returns how long until one is due.
func (l *accountLimiter) take(account string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	b := l.buckets[account]
	if b == nil {
		b = &bucket{tokens: l.rate, at: now}
		l.buckets[account] = b
		if len(l.buckets) > 100_000 { // forget idle accounts now and then
			for k, o := range l.buckets {
				if now.Sub(o.at) > time.Minute {
					delete(l.buckets, k)
				}
			}
		}
	}
	b.tokens = min(l.rate, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}
