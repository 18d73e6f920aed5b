package pipeline

import (
	"bytes"

	"github.com/tollgate/tollgate/proxy/balance"
	"github.com/tollgate/tollgate/proxy/metrics"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// Upstream is one upstream as the pipeline balances it: its targets, the
// balancer (with passive health and circuit breaking), the retry policy and
// budget, and its metrics.
type Upstream struct {
	// TenantSlug and ID name the upstream (for logs and metrics).
	TenantSlug, ID string
	// TenantID is the owning tenant's id (for health reports).
	TenantID string
	// Targets are indexed like the pool's members.
	Targets []*Target
	// Pool picks targets and learns from outcomes.
	Pool *balance.Pool
	// HashOn is the consistent-hash key source (nil for other algorithms).
	HashOn *proxycfg.HashOn
	// Retry is the retry policy; Budget is nil when retries are off.
	Retry  proxycfg.Retry
	Budget *balance.Budget
	// Metrics are the upstream's metrics (nil without metrics).
	Metrics *metrics.UpstreamMetrics
}

// HeaderReader reads request headers and cookies; *fasthttp.RequestHeader
// implements it, and so can a net/http adapter.
type HeaderReader interface {
	Peek(key string) []byte
	Cookie(key string) []byte
}

// hashKey returns the consistent-hash key of a request, nil for none.
func (u *Upstream) hashKey(req *Request, d *Decision) []byte {
	h := u.HashOn
	if h == nil {
		return nil
	}
	switch h.Source {
	case proxycfg.HashOnHeader:
		if req.Headers != nil {
			return req.Headers.Peek(h.Name)
		}
	case proxycfg.HashOnCookie:
		if req.Headers != nil {
			return req.Headers.Cookie(h.Name)
		}
	case proxycfg.HashOnClientIP:
		return req.ClientIP
	case proxycfg.HashOnConsumer:
		if d.Key != nil {
			if d.Key.ConsumerID != "" {
				return []byte(d.Key.ConsumerID)
			}
			return []byte(d.Key.ID)
		}
	}
	return nil
}

// pick chooses a target for d (excluding the members in exclude) and sets
// d.Target and d.Member. It reports false when no target is available.
func (u *Upstream) pick(req *Request, d *Decision, exclude uint64) bool {
	i, ok := u.Pool.PickFor(balance.Request{Key: u.hashKey(req, d), Exclude: exclude})
	if !ok {
		return false
	}
	d.Member = i
	d.Target = u.Targets[i]
	return true
}

// Done reports the outcome of the exchange with d's target; every picked
// target must be reported exactly once.
func (d *Decision) Done(r balance.Result) {
	if d.Upstream == nil || d.Target == nil {
		return
	}
	d.Upstream.Pool.Done(d.Member, r)
}

// idempotentMethods may be retried on another target (RFC 9110 9.2.2).
var idempotentMethods = [][]byte{
	[]byte("GET"), []byte("HEAD"), []byte("OPTIONS"), []byte("PUT"), []byte("DELETE"), []byte("TRACE"),
}

// Retryable reports whether a request may be retried at all: the upstream
// retries, and the method is idempotent or the client sent an
// Idempotency-Key.
func Retryable(u *Upstream, method []byte, hasIdempotencyKey bool) bool {
	if u == nil || u.Retry.Attempts <= 0 {
		return false
	}
	if hasIdempotencyKey {
		return true
	}
	for _, m := range idempotentMethods {
		if bytes.Equal(m, method) {
			return true
		}
	}
	return false
}

// Repick ends the exchange with d's current target (reporting r), and, if a
// retry is within the budget and another target is available, picks it. It
// reports whether d now holds a new target to retry on; when it reports
// false, d keeps the old target, whose exchange is already reported. tried
// accumulates the members tried so far.
func (d *Decision) Repick(req *Request, r balance.Result, tried *uint64) bool {
	u := d.Upstream
	d.Done(r)
	if d.Member < 64 {
		*tried |= 1 << uint(d.Member)
	}
	if !u.Budget.Retry() {
		u.Metrics.Retry(false)
		return false
	}
	old, oldMember := d.Target, d.Member
	if !u.pick(req, d, *tried) {
		d.Target, d.Member = old, oldMember
		return false
	}
	u.Metrics.Retry(true)
	return true
}
