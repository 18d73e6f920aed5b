package pipeline

import (
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
