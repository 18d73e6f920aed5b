package worker

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/http2"
)

// defaultReadHeaderTimeout bounds reading request headers on the front.
const defaultReadHeaderTimeout = 10 * time.Second

// frontServer makes the net/http server of a front listener: HTTP/1.1 and
// HTTP/2 (h2c when cleartext), with the worker's slow-client limits. Its
// HTTP/2 connections are read through an h2Guard (h2guard.go); the h2c
// front's listener is wrapped in an h2cListener (h2preface.go).
func (w *Worker) frontServer(secure bool) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	if secure {
		p.SetHTTP2(true)
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		Handler:           w.engine.NetHTTP(w.HandleFastHTTP, secure),
		Protocols:         &p,
		ReadHeaderTimeout: min(w.opts.ReadTimeout, defaultReadHeaderTimeout),
		ReadTimeout:       w.opts.ReadTimeout,
		IdleTimeout:       w.opts.IdleTimeout,
		MaxHeaderBytes:    w.opts.MaxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			MaxReadFrameSize:          h2MaxFrameSize,
			MaxDecoderHeaderTableSize: h2HeaderTableSize,
		},
	}
	if secure && w.opts.Certificates != nil {
		srv.TLSConfig = w.opts.Certificates.TLSConfig()
	}
	if err := guardHTTP2(srv); err != nil {
		// Not reached with the worker's TLS config; the front then
		// serves HTTP/2 without the guard.
		w.logger.Error("http/2 front without its conformance guard", "err", err)
	}
	return srv
}

// guardHTTP2 takes over net/http's hand-off of HTTP/2 connections (ALPN
// "h2" on TLS, the prior-knowledge preface in cleartext) to serve them
// with an h2Guard in front of Go's HTTP/2 server. net/http has no API to
// serve HTTP/2 on a wrapped connection, so the server is
// golang.org/x/net/http2's (the code net/http bundles; deprecated in favor
// of http.Server, which on later Go versions it wraps), installed in
// TLSNextProto. It takes its settings from srv.HTTP2 and shuts down with
// srv.
func guardHTTP2(srv *http.Server) error {
	h2 := &http2.Server{}
	if err := http2.ConfigureServer(srv, h2); err != nil {
		return fmt.Errorf("configure http/2: %w", err)
	}
	serve := func(hs *http.Server, c net.Conn, h http.Handler, sawPreface bool) {
		// net/http hands its per-connection base context over this way,
		// as it does to its own HTTP/2 server.
		var ctx context.Context
		if bc, ok := h.(interface{ BaseContext() context.Context }); ok {
			ctx = bc.BaseContext()
		}
		h2.ServeConn(c, &http2.ServeConnOpts{Context: ctx, Handler: h, BaseConfig: hs, SawClientPreface: sawPreface})
	}
	srv.TLSNextProto[http2.NextProtoTLS] = func(hs *http.Server, c *tls.Conn, h http.Handler) {
		serve(hs, h2TLSGuard{newH2Guard(c, true), c}, h, false)
	}
	// For cleartext HTTP/2, net/http reads the preface and passes the
	// connection inside a *tls.Conn whose NetConn has an
	// UnencryptedNetConn method (the contract between net/http and
	// x/net/http2).
	srv.TLSNextProto["unencrypted_http2"] = func(hs *http.Server, c *tls.Conn, h http.Handler) {
		u, ok := c.NetConn().(interface{ UnencryptedNetConn() net.Conn })
		if !ok {
			return // net/http closes the connection
		}
		serve(hs, newH2Guard(u.UnencryptedNetConn(), false), h, true)
	}
	return nil
}
