// Package engine is the worker's HTTP engine: it carries a request that the
// pipeline decided to forward to the chosen target, and the target's answer
// back, over fasthttp. It knows HTTP (framing, headers, bodies, upgrades,
// connection pools); it knows nothing of config sync, limits, metering or
// metrics, which are the worker's, and it leaves every decision to the
// pipeline (proxy/pipeline), whose Decision it reads and whose Outcome it
// fills in.
//
// Files, by concern:
//
//   - engine.go: Engine and its Options; Exchange, one request's engine
//     state.
//   - transport.go: Transports, the upstream clients of one runtime (one
//     fasthttp.HostClient per pipeline.Endpoint), made beside the
//     pipeline's runtime without dialing anything, carried over by
//     endpoint to the next runtime and retired (idle connections closed)
//     when it is replaced.
//   - request.go: reading a client request for the pipeline (client
//     address, path in normal form).
//   - headers.go: rewriting the request for the target (hop-by-hop
//     headers, X-Forwarded-*, client claims, credentials, host, path) and
//     the answer for the client (hop-by-hop headers, host-only cookies).
//   - forward.go: Forward, the attempts at the target and the retries on
//     another, each outcome set on the pipeline's Decision.
//   - body.go: request bodies, streamed to the target under the API's
//     limit, read whole when small enough to replay on a retry.
//   - stream.go: the exchange on a pooled connection (the engine's own
//     fasthttp.RoundTripper), which reads a response body whole or relays
//     it as a stream as the response's own headers say (the rule is in
//     that file).
//   - websocket.go: WebSocket upgrades to http and https targets, spliced.
//   - front.go: the net/http adapter that serves HTTP/2 (TLS and h2c) and
//     HTTP/1.1 over TLS through the same fasthttp handler.
//   - problems.go: problem answers of the engine (bad bodies, upstream
//     failures, requests fasthttp refuses) and the RateLimit headers.
package engine

import (
	"crypto/tls"
	"log/slog"
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/netguard"
)

// Defaults of Options.
const (
	DefaultMaxBodyBytes         = 32 << 20
	DefaultMaxBufferedResponse  = 256 << 10
	defaultUpstreamReadBufBytes = 16 << 10
)

// Options configure an Engine.
type Options struct {
	// Dialer connects to targets under the SSRF policy; required.
	Dialer *netguard.Dialer
	// UpstreamTLS configures TLS to https targets, for requests and
	// WebSocket upgrades alike; its ServerName is set per target. nil
	// verifies targets against the system's roots (tests give it a pool
	// that trusts their httptest servers).
	UpstreamTLS *tls.Config
	// TrustedProxies are the client address ranges whose X-Forwarded-*
	// and Forwarded headers are kept (appended to); from anyone else they
	// are replaced. Empty trusts no one.
	TrustedProxies []netip.Prefix
	// MaxBodyBytes bounds request bodies of every API (APIs may set
	// less); 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int
	// MaxBufferedResponse is the largest response body read whole before
	// it is passed on; larger ones (and streaming types, and bodies of
	// unknown length) are relayed as streams (stream.go). 0 means
	// DefaultMaxBufferedResponse.
	MaxBufferedResponse int
	// Logger receives debug lines of failed exchanges; nil discards.
	Logger *slog.Logger
}

// Engine forwards requests to targets. Create it with New; it is safe for
// concurrent use.
type Engine struct {
	opts Options
	rt   *roundTripper
}

// New makes an Engine.
func New(opts Options) *Engine {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxBufferedResponse <= 0 {
		opts.MaxBufferedResponse = DefaultMaxBufferedResponse
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Dialer == nil {
		opts.Dialer = &netguard.Dialer{}
	}
	return &Engine{opts: opts, rt: &roundTripper{maxBuffered: opts.MaxBufferedResponse}}
}

// Exchange is one request's state in the engine: how its body is sent on
// and what was read of it. The zero value is ready; Release it when the
// request is done.
type Exchange struct {
	body       reqBody
	done       time.Time // when the last attempt at the target ended
	upgrading  bool      // a WebSocket upgrade, detected before hop-by-hop headers go
	trusted    bool      // the client connects from a trusted proxy
	targetHost bool      // the Host header is the target's authority
}

// Release returns the exchange's pooled buffers; req's body is reset first
// so that nothing refers to them.
func (x *Exchange) Release(req *fasthttp.Request) { x.body.release(req) }

// Elapsed is the time from start to the end of the last attempt at the
// target, or to now when there was none (a clock read saved on the usual
// path: the answer is ready when the exchange ends).
func (x *Exchange) Elapsed(start time.Time) time.Duration {
	if !x.done.IsZero() {
		return x.done.Sub(start)
	}
	return time.Since(start)
}

// BytesIn is the number of request body bytes read from the client.
func (x *Exchange) BytesIn() int64 { return x.body.bytesIn() }

// ClientFailed reports whether reading the client's body failed (too
// large, or broken off); the client's connection is then at an unknown
// point of the body and must be closed after the answer.
func (x *Exchange) ClientFailed() bool { return x.body.clientFailed() }
