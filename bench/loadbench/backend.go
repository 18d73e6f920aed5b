package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// cmdBackend serves the bench's backend: one process listening on every
// address of -addrs (the two targets the proxies balance over), answering
// each request with the small JSON document `tollgate backend` answers,
// naming the listener ("bench-a", "bench-b", ...) so that a check sees the
// balancing. -engine fasthttp (default) keeps the backend's CPU per request
// low, since it shares the load generator's core; nethttp is Go's net/http.
func cmdBackend(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	addrs := fs.String("addrs", "127.0.0.1:19101", "comma-separated listen addresses")
	engine := fs.String("engine", "fasthttp", "fasthttp or nethttp")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *engine != "fasthttp" && *engine != "nethttp" {
		return fmt.Errorf("-engine %q: want fasthttp or nethttp", *engine)
	}
	errc := make(chan error, 8)
	var closers []func()
	for i, addr := range strings.Split(*addrs, ",") {
		ln, err := net.Listen("tcp", strings.TrimSpace(addr))
		if err != nil {
			return err
		}
		name := "bench-" + string(rune('a'+i))
		if *engine == "fasthttp" {
			srv := &fasthttp.Server{Handler: fastBackend(name), Name: "bench", IdleTimeout: 2 * time.Minute}
			closers = append(closers, func() { _ = srv.Shutdown() })
			go func() { errc <- srv.Serve(ln) }()
		} else {
			srv := &http.Server{Handler: netBackend(name), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
			closers = append(closers, func() { _ = srv.Close() })
			go func() { errc <- srv.Serve(ln) }()
		}
		fmt.Printf("backend %s (%s) on http://%s\n", name, *engine, ln.Addr())
	}
	select {
	case <-ctx.Done():
		for _, c := range closers {
			c()
		}
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

func appendAnswer(b []byte, name string, method, uri []byte) []byte {
	b = append(b, `{"backend":"`...)
	b = append(b, name...)
	b = append(b, `","method":`...)
	b = strconv.AppendQuote(b, string(method))
	b = append(b, `,"path":`...)
	b = strconv.AppendQuote(b, string(uri))
	return append(b, "}\n"...)
}

func fastBackend(name string) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/healthz" {
			ctx.SetBodyString("ok\n")
			return
		}
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("X-Backend", name)
		ctx.SetBody(appendAnswer(make([]byte, 0, 160), name, ctx.Method(), ctx.RequestURI()))
	}
}

func netBackend(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["X-Backend"] = []string{name}
		_, _ = w.Write(appendAnswer(make([]byte, 0, 160), name, []byte(r.Method), []byte(r.URL.RequestURI())))
	})
}
