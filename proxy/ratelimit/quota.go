package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// quotaScript adjusts a quota counter by ARGV[3] (tokens given back are
// negative, a debt from an outage positive), then grants up to ARGV[2]
// tokens of the limit ARGV[1]. The counter expires at ARGV[4] (Unix ms),
// a day after its period. It returns {granted, remaining}.
var quotaScript = redis.NewScript(`
local limit = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(ARGV[3])
if used < 0 then used = 0 end
local grant = math.min(tonumber(ARGV[2]), limit - used)
if grant < 0 then grant = 0 end
used = used + grant
redis.call('SET', KEYS[1], used, 'PXAT', ARGV[4])
local rem = limit - used
if rem < 0 then rem = 0 end
return {grant, rem}
`)

// QuotaDecision is the answer of a quota check.
type QuotaDecision struct {
	// Allowed reports whether the request fits the quota (and took one).
	Allowed bool
	// Limit is the quota per period.
	Limit int64
	// Remaining is about how many requests the period still allows.
	Remaining int64
	// Reset is the time until the period ends.
	Reset time.Duration
}

// Quotas enforces quotas per billing period across all workers (see the
// package doc). It shares its Options, health and degraded counter with a
// Redis limiter.
type Quotas struct {
	r *Redis
	// periods caches the current day and month (QuotaPeriod formats a
	// string, which the hot path should not do per request).
	periods [2]atomic.Pointer[period]
	shards  [16]quotaShard
}

type quotaShard struct {
	mu     sync.Mutex
	m      map[quotaKey]*quotaBucket
	sweepT int64
}

type period struct {
	id         string
	start, end time.Time
}

// period returns the billing period of kind ("day" or "month") containing now.
func (q *Quotas) period(kind string, now time.Time) *period {
	i := 0
	if kind == "day" {
		i = 1
	}
	if p := q.periods[i].Load(); p != nil && !now.Before(p.start) && now.Before(p.end) {
		return p
	}
	p := &period{}
	p.id, p.start, p.end = proxycfg.QuotaPeriod(kind, now)
	q.periods[i].Store(p)
	return p
}

type quotaKey struct {
	subject, period string
	limit           int64
}

type quotaBucket struct {
	mu          sync.Mutex
	tokens      int64 // leased, unused
	expires     int64 // mono
	giveBack    int64 // unused tokens of expired leases, returned on the next call
	debt        int64 // admitted without Redis, added on the next call
	remaining   int64
	deniedUntil int64
	demand      int64
	lastLease   int64
	rate        float64
	leasing     chan struct{}
	lastUse     int64
}

// Quotas returns the quota enforcer sharing r's Redis, options and health.
func (r *Redis) Quotas() *Quotas {
	q := &Quotas{r: r}
	for i := range q.shards {
		q.shards[i].m = map[quotaKey]*quotaBucket{}
	}
	return q
}

func (q *Quotas) bucket(k quotaKey) *quotaBucket {
	sh := &q.shards[fnv(k.subject)%uint32(len(q.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.m[k]
	if b == nil {
		if t := mono(); t > sh.sweepT {
			sh.sweepT = t + int64(time.Minute)
			for k, b := range sh.m {
				b.mu.Lock()
				idle := b.lastUse < t-int64(time.Hour) && b.leasing == nil && b.debt == 0 && b.giveBack == 0
				b.mu.Unlock()
				if idle {
					delete(sh.m, k)
				}
			}
		}
		b = &quotaBucket{}
		sh.m[k] = b
	}
	return b
}

// Take counts one request of subject against quota qt (Requests > 0) in the
// period containing now.
func (q *Quotas) Take(ctx context.Context, subject string, qt proxycfg.Quota, now time.Time) (QuotaDecision, error) {
	p := q.period(qt.Period, now)
	return q.TakeIn(ctx, subject, qt, p.id, p.end, now)
}

// TakeIn is Take in an explicit period (id and end), such as a
// subscription's billing period (proxycfg.BillingPeriodID).
func (q *Quotas) TakeIn(ctx context.Context, subject string, qt proxycfg.Quota, period string, end, now time.Time) (QuotaDecision, error) {
	reset := end.Sub(now)
	b := q.bucket(quotaKey{subject, period, qt.Requests})
	r := q.r
	counted := false
	// The request's own time will do (one clock read less per request): a
	// quota is exact whenever its leased tokens are used (they are counted
	// when granted, and what is left is given back), so their expiry only
	// decides when leftovers go back, not whether the quota holds.
	t := monoAt(now)
	for first := true; ; first = false {
		if !first {
			t = mono()
		}
		b.mu.Lock()
		b.lastUse = t
		if !counted {
			b.demand++
			counted = true
		}
		if b.tokens > 0 && t < b.expires {
			b.tokens--
			d := QuotaDecision{Allowed: true, Limit: qt.Requests, Remaining: b.remaining + b.tokens, Reset: reset}
			b.mu.Unlock()
			return d, nil
		}
		if t < b.deniedUntil {
			b.mu.Unlock()
			return QuotaDecision{Limit: qt.Requests, Reset: reset}, nil
		}
		if ch := b.leasing; ch != nil {
			b.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return QuotaDecision{}, fmt.Errorf("quota: %w", ctx.Err())
			}
		}
		if r.health.skip(t) {
			// Admit and owe: the debt is paid into the counter later.
			b.debt++
			b.mu.Unlock()
			r.opts.Degraded.Add(1)
			return QuotaDecision{Allowed: true, Limit: qt.Requests, Reset: reset}, nil
		}
		b.giveBack += b.tokens
		b.tokens = 0
		adjust := b.debt - b.giveBack
		want := q.leaseSize(b, t, qt.Requests)
		ch := make(chan struct{})
		b.leasing = ch
		b.mu.Unlock()

		granted, remaining, err := q.call(ctx, subject, period, end, qt.Requests, want, adjust)

		b.mu.Lock()
		b.leasing = nil
		close(ch)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				b.mu.Unlock()
				return QuotaDecision{}, fmt.Errorf("quota: %w", err)
			}
			r.health.failed(err)
			b.debt++
			b.mu.Unlock()
			r.opts.Degraded.Add(1)
			return QuotaDecision{Allowed: true, Limit: qt.Requests, Reset: reset}, nil
		}
		r.health.ok()
		// The adjustment went in: take it off what is still owed or owing.
		if adjust > 0 {
			b.debt -= adjust
			b.giveBack = 0
		} else {
			b.giveBack += adjust
			b.debt = 0
		}
		b.remaining = remaining
		if granted == 0 {
			// Other workers may give tokens back: look again within a second.
			b.deniedUntil = t + int64(min(time.Second, reset))
			b.mu.Unlock()
			return QuotaDecision{Limit: qt.Requests, Reset: reset}, nil
		}
		b.tokens = granted - 1
		b.expires = t + int64(r.opts.LeaseTTL)
		d := QuotaDecision{Allowed: true, Limit: qt.Requests, Remaining: remaining + b.tokens, Reset: reset}
		b.mu.Unlock()
		return d, nil
	}
}

func (q *Quotas) leaseSize(b *quotaBucket, t, limit int64) int64 {
	if b.lastLease > 0 {
		if el := t - b.lastLease; el > 0 {
			inst := float64(b.demand) / (float64(el) / 1e9)
			b.rate = 0.5*b.rate + 0.5*inst
		}
	}
	b.lastLease, b.demand = t, 0
	if q.r.opts.LeaseTarget < 0 {
		return 1
	}
	want := int64(math.Ceil(b.rate * q.r.opts.LeaseTarget.Seconds()))
	return max(min(want, limit/(4*LeaseDivisor)), 1)
}

func (q *Quotas) call(ctx context.Context, subject, period string, end time.Time, limit, want, adjust int64) (int64, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, q.r.opts.Timeout)
	defer cancel()
	q.r.calls.Add(1)
	res, err := within(ctx, func(ctx context.Context) ([]int64, error) {
		return quotaScript.Run(ctx, q.r.opts.Redis, []string{q.r.opts.Keys.Quota(subject, period)},
			limit, want, adjust, end.Add(24*time.Hour).UnixMilli()).Int64Slice()
	})
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("unexpected script result %v", res)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("quota script: %w", err)
	}
	return res[0], res[1], nil
}
