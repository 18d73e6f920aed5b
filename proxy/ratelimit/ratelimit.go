// Package ratelimit decides whether a request fits its plan's rate limit.
//
// The Limiter interface is what the proxy pipeline needs; Redis is the exact
// implementation shared by all workers, Local the in-process fallback.
package ratelimit

import (
	"context"
	"time"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// Decision is the answer for one request.
type Decision struct {
	// Allowed reports whether the request may pass (and was counted).
	Allowed bool
	// Limit is the number of requests allowed per window.
	Limit int64
	// Remaining is how many more requests the window allows now.
	Remaining int64
	// RetryAfter is how long a refused client should wait; 0 when allowed.
	RetryAfter time.Duration
	// Reset is how long until the window frees at least one request.
	Reset time.Duration
}

// Limiter counts requests of subjects against rate limits. rl.Requests is > 0
// (callers skip unlimited plans).
type Limiter interface {
	Allow(ctx context.Context, subject string, rl proxycfg.RateLimit, now time.Time) (Decision, error)
}

// Seconds rounds d up to whole seconds, at least 1, as the HTTP headers
// (Retry-After, RateLimit t=) want them.
func Seconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
