package engine

import (
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/pipeline"
)

// Transports are the upstream clients of one runtime: one HostClient (a
// keep-alive connection pool) per pipeline.Endpoint, indexed like
// Runtime.Endpoints, so that the hot path finds a target's client by index.
//
// Lifecycle: NewTransports makes them beside a new pipeline runtime without
// dialing anything, so a runtime that fails to build or is never swapped in
// leaves nothing to clean up. Clients of endpoints the previous runtime
// also had are carried over (their warm connections survive the reload);
// when the new runtime goes live, the previous one's Transports are retired
// (Retire), which closes the idle connections of the clients it alone held.
type Transports struct {
	eps     []pipeline.Endpoint
	clients []*fasthttp.HostClient
}

// NewTransports makes the clients of eps, taking prev's client of every
// endpoint prev had too. prev may be nil. It does not dial.
func (e *Engine) NewTransports(eps []pipeline.Endpoint, prev *Transports) *Transports {
	t := &Transports{eps: eps, clients: make([]*fasthttp.HostClient, len(eps))}
	var old map[pipeline.Endpoint]*fasthttp.HostClient
	if prev != nil {
		old = make(map[pipeline.Endpoint]*fasthttp.HostClient, len(prev.eps))
		for i, ep := range prev.eps {
			old[ep] = prev.clients[i]
		}
	}
	for i, ep := range eps {
		if c := old[ep]; c != nil {
			t.clients[i] = c
			continue
		}
		t.clients[i] = e.newClient(ep)
	}
	return t
}

// Retire closes the idle connections of the clients that next does not
// carry over (next may be nil: all of them). Exchanges still in flight on
// them finish on their connections, which close when idle.
func (t *Transports) Retire(next *Transports) {
	if t == nil {
		return
	}
	kept := map[*fasthttp.HostClient]bool{}
	if next != nil {
		for _, c := range next.clients {
			kept[c] = true
		}
	}
	for _, c := range t.clients {
		if !kept[c] {
			c.CloseIdleConnections()
		}
	}
}

// client is the client of endpoint i.
func (t *Transports) client(i int) *fasthttp.HostClient { return t.clients[i] }

// newClient makes the HostClient of one endpoint.
func (e *Engine) newClient(ep pipeline.Endpoint) *fasthttp.HostClient {
	dial := e.opts.Dialer.DialTimeout
	if connect := ep.ConnectTimeout; connect > 0 {
		dial = func(addr string, timeout time.Duration) (net.Conn, error) {
			return e.opts.Dialer.DialTimeout(addr, min(timeout, connect))
		}
	}
	return &fasthttp.HostClient{
		Addr:                     ep.Host,
		Name:                     "tollgate",
		IsTLS:                    ep.Scheme == "https",
		TLSConfig:                e.opts.UpstreamTLS,
		DialTimeout:              dial,
		MaxConns:                 4096,
		MaxConnWaitTimeout:       5 * time.Second,
		MaxIdleConnDuration:      60 * time.Second,
		NoDefaultUserAgentHeader: true,
		// The request line carries the client's path in normal form
		// (router.CleanPath), not fasthttp's decoded rewrite of it.
		DisablePathNormalizing: true,
		ReadBufferSize:         defaultUpstreamReadBufBytes,
		ReadTimeout:            ep.ReadTimeout,
		// The engine's own exchange: it decides from the response's
		// headers whether to read the body whole or relay it (stream.go).
		Transport: e.rt,
	}
}
