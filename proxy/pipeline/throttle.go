package pipeline

import (
	"context"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/proxy/keyauth"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/ratelimit"
)

// QuotaTaker counts requests against quotas; *ratelimit.Quotas implements it.
type QuotaTaker interface {
	Take(ctx context.Context, subject string, q proxycfg.Quota, now time.Time) (ratelimit.QuotaDecision, error)
	// TakeIn counts in an explicit period: a subscription's billing period.
	TakeIn(ctx context.Context, subject string, q proxycfg.Quota, period string, end, now time.Time) (ratelimit.QuotaDecision, error)
}

// ConcurrencyLimiter holds in-flight slots; *ratelimit.Concurrency
// implements it.
type ConcurrencyLimiter interface {
	Acquire(ctx context.Context, subject string, limit int64, hold time.Duration) (ratelimit.Slot, bool, error)
}

// Throttle is the throttling state of a Decision.
type Throttle struct {
	// Rate is the plan's rate-limit decision; meaningful when RateApplied.
	Rate        ratelimit.Decision
	RateApplied bool
	// Quota is the plan's quota decision; meaningful when QuotaApplied.
	Quota        ratelimit.QuotaDecision
	QuotaApplied bool
	// Slot is the concurrency slot held for the request; the engine
	// releases it (Release) when the response is done.
	Slot ratelimit.Slot
}

// limits are the pre-rendered throttling settings of an API.
type limits struct {
	// subject is the rate-limit subject of the API's ceiling.
	subject string
}

// renderPolicy renders a plan's RateLimit-Policy value
// (IETF draft-ietf-httpapi-ratelimit-headers): "default" is the rate
// limit, "quota" the quota per period.
func renderPolicy(rl proxycfg.RateLimit, q proxycfg.Quota) []byte {
	var b []byte
	if rl.Requests > 0 {
		b = append(b, `"default";q=`...)
		b = strconv.AppendInt(b, rl.Requests, 10)
		b = append(b, ";w="...)
		b = strconv.AppendInt(b, rl.PerSeconds, 10)
	}
	if q.Requests > 0 {
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		_, start, end := proxycfg.QuotaPeriod(q.Period, time.Now())
		b = append(b, `"quota";q=`...)
		b = strconv.AppendInt(b, q.Requests, 10)
		b = append(b, ";w="...)
		b = strconv.AppendInt(b, int64(end.Sub(start)/time.Second), 10)
	}
	return b
}

// throttle applies the plan's rate limit, the API's ceiling, the plan's
// concurrency limit and quota, in that order, so that a request refused by
// one does not use up the later ones (a refused request never takes quota).
// plan is nil for auth "none" (only the ceiling applies). The plan's limits
// count per rec.Subject (proxycfg.LimitSubject): the key, its subscription
// or its consumer.
func (p *Pipeline) throttle(ctx context.Context, api *API, plan *Plan, rec *keyauth.Record, d *Decision, now time.Time) *problem.Problem {
	subject := ""
	if plan != nil && rec != nil {
		subject = rec.Subject(plan.RateLimit.Scope)
		if plan.RateLimit.Requests > 0 {
			rd, err := p.Limiter.Allow(ctx, subject, plan.RateLimit, now)
			if err != nil {
				return problem.Unavailable
			}
			d.Rate, d.Limited = rd, true
			d.Throttle.Rate, d.Throttle.RateApplied = rd, true
			if !rd.Allowed {
				return problem.RateLimited
			}
		}
	}
	if ceil := api.Config.RateLimit; ceil.Requests > 0 {
		rd, err := p.Limiter.Allow(ctx, api.limits.subject, ceil, now)
		if err != nil {
			return problem.Unavailable
		}
		if !rd.Allowed {
			d.Rate = rd
			return problem.APIRateLimited
		}
	}
	if plan == nil || rec == nil {
		return nil
	}
	if plan.Concurrency > 0 && p.Concurrency != nil {
		slot, ok, err := p.Concurrency.Acquire(ctx, subject, plan.Concurrency, api.Timeout+time.Second)
		if err != nil {
			return problem.Unavailable
		}
		if !ok {
			d.Rate.RetryAfter = time.Second
			return problem.ConcurrencyLimited
		}
		d.Throttle.Slot = slot
	}
	if plan.Quota.Requests > 0 && p.Quotas != nil {
		var qd ratelimit.QuotaDecision
		var err error
		if id, end, ok := rec.BillingPeriod(now); ok {
			qd, err = p.Quotas.TakeIn(ctx, subject, plan.Quota, id, end, now)
		} else {
			qd, err = p.Quotas.Take(ctx, subject, plan.Quota, now)
		}
		if err != nil {
			d.Throttle.Slot.Release()
			d.Throttle.Slot = ratelimit.Slot{}
			return problem.Unavailable
		}
		d.Throttle.Quota, d.Throttle.QuotaApplied = qd, true
		d.Limited = true
		if !qd.Allowed {
			d.Throttle.Slot.Release()
			d.Throttle.Slot = ratelimit.Slot{}
			d.Rate.RetryAfter = qd.Reset
			return problem.QuotaExceeded
		}
	}
	return nil
}

// AppendRateLimit appends the RateLimit header value (IETF draft) of d:
// the remaining requests and seconds to reset of the plan's rate limit
// ("default") and quota ("quota") that applied. It appends nothing when
// none applied.
func AppendRateLimit(b []byte, d *Decision) []byte {
	t := &d.Throttle
	if t.RateApplied {
		b = append(b, `"default";r=`...)
		b = strconv.AppendInt(b, t.Rate.Remaining, 10)
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, ratelimit.Seconds(t.Rate.Reset), 10)
	}
	if t.QuotaApplied {
		if t.RateApplied {
			b = append(b, ", "...)
		}
		b = append(b, `"quota";r=`...)
		b = strconv.AppendInt(b, t.Quota.Remaining, 10)
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, ratelimit.Seconds(t.Quota.Reset), 10)
	}
	return b
}
