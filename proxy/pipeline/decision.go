package pipeline

import (
	"bytes"
	"time"

	"github.com/tollgate/tollgate/proxy/balance"
	"github.com/tollgate/tollgate/proxy/metrics"
	"github.com/tollgate/tollgate/proxy/problem"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/ratelimit"
)

// Decision is the pipeline's answer. Problem non-nil means answer with it;
// otherwise forward to Target.
//
// A decision holds what the pipeline picked and took for the request: a
// target (counted in flight by its balancer) and a concurrency slot. Both are
// released by one call, Done, which the engine defers right after Decide:
//
//	var d pipeline.Decision
//	defer d.Done()
//	p.Decide(ctx, rt, &req, &d)
//	... exchange with d.Target, filling d.Outcome; d.Retry to try another ...
//
// so that every exit path reports the target exactly once.
type Decision struct {
	// Problem is the error answer, nil to forward.
	Problem *problem.Problem
	// API is the routed API (nil when not found).
	API *API
	// Target is the chosen target when forwarding.
	Target *Target
	// Upstream is the API's upstream; Member is Target's index in it.
	Upstream *Upstream
	Member   int
	// Outcome is what the exchange with Target came to, set by the engine
	// as it goes; Done (or Retry) reports it. Left zero, the exchange is
	// reported as abandoned: the target is out of flight and nothing is
	// learnt of its health.
	Outcome Outcome
	// Key is the caller's key record (nil for auth "none", and for a key
	// refused as unknown or expired). A key refused for its status
	// (suspended, canceled, payment required) or its plan is set.
	Key *proxycfg.KeyRecord
	// Plan is the key's plan (nil for auth "none").
	Plan *Plan
	// Rate is the rate-limit decision; meaningful when Limited.
	Rate ratelimit.Decision
	// Throttle is what the rate limit, quota and concurrency limit decided
	// (throttle.go); Done releases Throttle.Slot.
	Throttle Throttle
	// Limited reports that a rate limit applied and RateLimit headers
	// should be sent (on success and on 429).
	Limited bool
	// KeyInAuthorization reports that the key came from Authorization,
	// which then must not be forwarded. X-API-Key is never forwarded.
	KeyInAuthorization bool
	// Allow is the Allow header value of a 405 (routes.go); read-only.
	Allow []byte

	reported bool   // Target's exchange is reported already
	tried    uint64 // members tried so far (first 64), for Retry
}

// Failure says why an exchange with a target got no answer.
type Failure uint8

// Failures of an Outcome.
const (
	// NoFailure: the target answered (Outcome.Status), or the exchange
	// was abandoned for a reason that is not the target's (the client's
	// body broke off).
	NoFailure Failure = iota
	// FailConnect: the target could not be reached (refused, unroutable,
	// or an address the SSRF guard forbids).
	FailConnect
	// FailTimeout: the target did not answer in time.
	FailTimeout
	// FailOther: the exchange broke for another reason (reset, malformed
	// answer).
	FailOther
)

// Outcome is what one exchange with a target came to, as the engine saw
// it.
type Outcome struct {
	// Status is the target's status code; 0 when it did not answer.
	Status int
	// Latency is how long the exchange took (0 to leave the balancer's
	// latency average alone).
	Latency time.Duration
	// Failure is why there was no answer.
	Failure Failure
}

// Endpoint is the index, in Runtime.Endpoints, of the client the engine
// reaches d's target with under d's API's timeouts.
func (d *Decision) Endpoint() int { return d.API.endpoints[d.Member] }

// Done ends the request's hold on what the decision picked and took: it
// reports Outcome to the target's upstream (balancer, passive health, error
// metrics) unless Retry already reported it, and releases the concurrency
// slot. It is safe to call more than once, and on a decision that picked
// nothing.
func (d *Decision) Done() {
	d.report()
	d.Throttle.Slot.Release()
	d.Throttle.Slot = ratelimit.Slot{}
}

// report ends the exchange with the current target, once.
func (d *Decision) report() {
	if d.Target == nil || d.reported {
		return
	}
	d.reported = true
	u, o := d.Upstream, d.Outcome
	u.Pool.Done(d.Member, balance.Result{Status: o.Status, ConnError: o.Failure != NoFailure, Latency: o.Latency})
	switch o.Failure {
	case FailConnect:
		u.Metrics.Error(metrics.ErrConnect)
	case FailTimeout:
		u.Metrics.Error(metrics.ErrTimeout)
	case FailOther:
		u.Metrics.Error(metrics.ErrOther)
	}
}

// Retry ends the exchange with the current target (reporting Outcome) and,
// if the upstream's retry budget allows and a target not tried yet is
// available, picks it and reports true: d then holds the new target with a
// zero Outcome, and the engine sends the request again. On false d keeps its
// old target, already reported.
func (d *Decision) Retry(req *Request) bool {
	d.report()
	if d.Member < 64 {
		d.tried |= 1 << uint(d.Member)
	}
	u := d.Upstream
	if !u.Budget.Retry() {
		u.Metrics.Retry(false)
		return false
	}
	old, oldMember := d.Target, d.Member
	if !u.pick(req, d, d.tried) {
		d.Target, d.Member = old, oldMember
		return false
	}
	d.reported = false
	d.Outcome = Outcome{}
	u.Metrics.Retry(true)
	return true
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

// RetryStatus reports whether an answer of status from a target is worth
// trying on another: the gateway statuses that say the target, not the
// request, failed.
func RetryStatus(status int) bool { return status == 502 || status == 503 || status == 504 }
