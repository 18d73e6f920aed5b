package pipeline

import "time"

// Endpoint is one way of reaching a target, for which an engine keeps one
// client (a pool of connections): the target's scheme and address, with the
// connect and read timeouts of the APIs that use it. Targets of several
// upstreams, and APIs, at the same address with the same timeouts share one
// Endpoint. It is comparable, so engines can carry clients over from one
// runtime to the next by Endpoint.
type Endpoint struct {
	// Scheme is "http" or "https".
	Scheme string
	// Host is host:port, the address to dial (Target.Host).
	Host string
	// ConnectTimeout bounds connecting (0: the engine's default);
	// ReadTimeout bounds reading an answer (0: the API's Timeout only).
	ConnectTimeout, ReadTimeout time.Duration
}
