package pipeline

import (
	"sync"

	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// keyProblem is what a key record's expiry and status say about serving a
// request at now (Unix seconds): nil to serve it, else the refusal. An
// expired key is refused like an unknown one, and so is a status this
// worker does not know (fail closed). A past-due key is served until its
// grace period ends, then refused with payment-required: paymentRequired
// reports that case, and the caller renders the problem with the record's
// billing URL.
func keyProblem(rec *proxycfg.KeyRecord, now int64) (pr *problem.Problem, paymentRequired bool) {
	if rec.ExpiresAt != 0 && now >= rec.ExpiresAt {
		return problem.Unauthorized, false
	}
	switch rec.Status {
	case proxycfg.KeyActive:
		return nil, false
	case proxycfg.KeyPastDue:
		if now < rec.GraceUntil {
			return nil, false
		}
		return problem.PaymentRequired, true
	case proxycfg.KeySuspended:
		return problem.ConsumerSuspended, false
	case proxycfg.KeyCanceled:
		return problem.SubscriptionCanceled, false
	default: // revoked, or a status newer than this worker
		return problem.Unauthorized, false
	}
}

// maxPaymentProblems bounds the rendered payment problems kept; past the
// bound the cache starts over (it only saves work on a rare path).
const maxPaymentProblems = 1024

// paymentProblems keeps the 402 problems of past-due keys rendered per
// billing URL, so that a client retrying a past-due key in a loop is
// answered from bytes already rendered rather than with a fresh rendering
// each time. The zero value is ready.
type paymentProblems struct {
	mu sync.RWMutex
	m  map[string]*problem.Problem
}

// get returns problem.PaymentRequired carrying billingURL ("" for none).
func (c *paymentProblems) get(billingURL string) *problem.Problem {
	if billingURL == "" {
		return problem.PaymentRequired
	}
	c.mu.RLock()
	pr := c.m[billingURL]
	c.mu.RUnlock()
	if pr != nil {
		return pr
	}
	pr = problem.PaymentRequired.WithBillingURL(billingURL)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxPaymentProblems {
		c.m = make(map[string]*problem.Problem)
	}
	c.m[billingURL] = pr
	c.mu.Unlock()
	return pr
}
