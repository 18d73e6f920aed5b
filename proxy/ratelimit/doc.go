// Package ratelimit enforces plan rate limits, quotas and concurrency limits
// across all proxy workers together, with Redis as the shared state.
//
// # Rate limits: a sliding-window log with leased tokens
//
// A limit (N requests per window W, optionally a burst cap of B per window
// W·B/N) is a sliding window: no interval of length W admits more than N.
// Each subject (key, consumer or API) has a log in Redis: a sorted set
// whose members are grants of k tokens scored by a time, and a running
// token count per window, maintained by one atomic Lua script (script
// leaseScript) that reads the Redis clock (TIME), drops grants older than
// the window, and grants min(k, N - count) tokens, recording them at
// now + hold.
//
// A worker asks for k = 1 token per request while its traffic for the
// subject is slow; that grant is used at once and recorded at the Redis
// time of the decision (hold 0), which is the exact one-round-trip-per-
// request limiter. When its traffic is fast, it leases k tokens sized to
// LeaseTarget (default 10 ms) of its observed rate, capped at N/16 (and
// B/16), with hold = LeaseTTL (default 25 ms): it spends them locally
// without Redis for at most LeaseTTL measured from before it sent the
// request, and drops what is left after that.
//
// Error bound. Overshoot is zero: for any interval [a, a+W), every token
// used in it was granted at some t with t ≤ use ≤ t + hold and recorded at
// r = t + hold ≥ use ≥ a; at the last grant t* (≤ a+W) among them the
// script counted every record newer than t* - W < a, so all of them, and
// admitted only up to N. The same argument holds for the burst window. The
// price is bounded under-admission, never overshoot: (1) tokens a worker
// leased but did not use before LeaseTTL ran out are taken off the log with
// its next lease call (the script shrinks the old grant to what was used,
// which keeps the argument above intact); until then, or for good if its
// traffic for the subject stopped, they count against the window: at most
// min(N/16, LeaseTarget worth of its traffic) per worker and subject; (2) a leased grant is recorded hold later than it was made, so
// under sustained saturation each window admits down to N·W/(W+hold), i.e.
// 97.5% of a 1 s limit and 99.96% of a one-minute limit with the defaults.
// A refused subject is refused locally until the window's oldest grant ages
// out (Redis said when), which admits no fewer: nothing frees earlier.
// Redis round trips per request are 1 at low rates and about
// 1/(rate·LeaseTarget) at high rates (plus one per refusal period).
//
// # Quotas
//
// A quota (Q requests per calendar day or month, UTC; see
// proxycfg.QuotaPeriod) is a counter in Redis per subject and period,
// leased the same way (k = 1 at low rates). Tokens a worker leased and did
// not use are given back on its next call, so a quota is never over-spent
// and under-spent only by leases of workers that died. Only requests that
// passed authentication, access and the rate limits take quota.
//
// # Concurrency
//
// A concurrency limit (C requests of a subject in flight at once) is a
// sorted set of in-flight request ids in Redis scored by an expiry (a crash
// cannot leak a slot for longer than the API timeout); acquiring is one
// script call, releasing one ZREM batched in the background. It costs a
// round trip per request, so plans should only set it where it matters.
//
// # Redis down or slow
//
// Every Redis call has a short timeout (Options.Timeout, default 100 ms),
// enforced even when the client does not put context deadlines on its reads.
// After a failure the limiter stops asking Redis for a second at a time and
// decides locally: limits divided by the number of live workers (from
// their heartbeats in proxycfg.Keys.WorkerRegistry, last known count),
// enforced with an in-process sliding-window log; quotas admit and record
// the debt, paid into the counter when Redis is back; concurrency limits
// are divided by the live workers too. Each such decision increments
// Degraded, which the worker exposes as a metric.
package ratelimit
