package worker

import (
	"net/http"
	"time"
)

// defaultReadHeaderTimeout bounds reading request headers on the front.
const defaultReadHeaderTimeout = 10 * time.Second

// frontServer makes the net/http server of a front listener: HTTP/1.1 and
// HTTP/2 (h2c when cleartext), with the worker's slow-client limits.
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
	}
	if secure && w.opts.Certificates != nil {
		srv.TLSConfig = w.opts.Certificates.TLSConfig()
	}
	return srv
}
