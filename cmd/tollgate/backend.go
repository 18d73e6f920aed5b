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
	"time"
)

// demoBackend answers every request with a small JSON document naming itself,
// so that a caller sees which target of an upstream served it.
func demoBackend(name string) http.Handler {
	prefix := []byte(`{"backend":` + strconv.Quote(name) + `,"method":`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		body := make([]byte, 0, 160)
		body = append(body, prefix...)
		body = strconv.AppendQuote(body, r.Method)
		body = append(body, `,"path":`...)
		body = strconv.AppendQuote(body, r.URL.RequestURI())
		body = append(body, "}\n"...)
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["X-Backend"] = []string{name}
		_, _ = w.Write(body)
	})
}

// serveHTTP serves h on ln until ctx is cancelled, then shuts down gracefully.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func cmdBackend(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9101", "listen address")
	name := fs.String("name", "a", "name reported in every answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(stdout, "demo backend %q on http://%s\n", *name, ln.Addr())
	return serveHTTP(ctx, ln, demoBackend(*name))
}
