// Command forwarder is the engine's floor for bench/load.sh: a bare fasthttp
// reverse proxy with no features (no routing, auth, limits, metering or
// header rewriting), round-robin over the targets by fasthttp.HostClient.
// What the Tollgate worker spends above it is the cost of its features and
// of its own code, not of the HTTP engine.
//
//	forwarder -listen 127.0.0.1:19110 -targets 127.0.0.1:19101,127.0.0.1:19102
package main

import (
	"flag"
	"log"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:19110", "listen address")
	targets := flag.String("targets", "127.0.0.1:19101", "comma-separated host:port of the backends (round robin)")
	flag.Parse()

	upstream := &fasthttp.HostClient{
		Addr:                          *targets,
		MaxConns:                      1024,
		MaxIdleConnDuration:           time.Minute,
		ReadTimeout:                   30 * time.Second,
		WriteTimeout:                  30 * time.Second,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
	}
	handler := func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		req.Header.Del("Connection") // keep-alive to the backend whatever the client said
		if err := upstream.Do(req, &ctx.Response); err != nil {
			ctx.Error("bad gateway: "+err.Error(), fasthttp.StatusBadGateway)
		}
	}
	srv := &fasthttp.Server{
		Handler:                       handler,
		Name:                          "forwarder",
		NoDefaultServerHeader:         true,
		DisableHeaderNamesNormalizing: true,
		ReadTimeout:                   60 * time.Second,
		IdleTimeout:                   60 * time.Second,
	}
	log.Printf("forwarder on %s -> %s", *listen, *targets)
	log.Fatal(srv.ListenAndServe(*listen))
}
