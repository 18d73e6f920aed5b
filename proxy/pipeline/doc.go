// Package pipeline is the engine-independent request pipeline of the proxy:
// tenant by host, API by longest base path, route, credential, key record,
// plan access, rate limit, quota, concurrency and target choice. It works on
// plain bytes and returns a Decision, so that any HTTP engine (fasthttp on
// the traffic port, net/http for HTTP/2) serves traffic over the same logic;
// it never sees an engine's types.
//
// Files, by concern:
//
//   - runtime.go: Runtime, the compiled, immutable form of one snapshot,
//     and Build, which makes it. Building has no side effects on live
//     state: it reads the previous runtime (to carry the balancers'
//     counters over) and returns a new value, or an error and nothing.
//   - endpoint.go: Endpoint, each distinct way of reaching a target (scheme,
//     address, timeouts), for which the engine keeps one client; the
//     runtime lists them so that the engine can provision its clients
//     beside it.
//   - pipeline.go: Pipeline and Decide, the per-request walk.
//   - decision.go: Decision, the answer, and its release: Done reports the
//     picked target's Outcome and frees the concurrency slot in one
//     (deferrable) call; Retry moves to another target.
//   - upstream.go: Upstream, target picking (balance.Pool) and hash keys.
//   - routes.go, jwt.go, keystatus.go, throttle.go: declared routes, JWT
//     authentication, key status, and rate limits, quotas and concurrency.
package pipeline
