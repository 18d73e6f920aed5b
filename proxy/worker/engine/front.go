package engine

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/problem"
)

// The net/http front serves HTTP/2 (over TLS with ALPN, and cleartext h2c)
// and HTTP/1.1 over TLS. fasthttp, the engine of the main traffic port, does
// not speak HTTP/2, so these listeners are served by net/http and every
// request is handed to the same handler (the same pipeline, balancing,
// retries and metrics) through an in-memory fasthttp request. Streamed
// responses are copied with a flush per chunk. WebSocket upgrades are
// served on the HTTP/1.1 traffic port only (HTTP/2 has no Upgrade).

// tlsUserValue marks a request that arrived over TLS on the front.
const tlsUserValue = "tollgate.tls"

// isTLS reports whether the client connection is TLS (on either engine).
func isTLS(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsTLS() || ctx.UserValue(tlsUserValue) != nil
}

// NetHTTP adapts a fasthttp handler (the worker's traffic handler) to
// net/http, for the HTTP/2 and TLS fronts; secure marks requests that
// arrived over TLS (X-Forwarded-Proto).
func (e *Engine) NetHTTP(h fasthttp.RequestHandler, secure bool) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			writeNetProblem(rw, problemNoUpgrade)
			return
		}
		var ctx fasthttp.RequestCtx
		var empty fasthttp.Request
		ctx.Init(&empty, remoteTCPAddr(r.RemoteAddr), Logger{e.opts.Logger})
		if secure {
			ctx.SetUserValue(tlsUserValue, true)
		}
		req := &ctx.Request
		req.Header.DisableNormalizing()
		req.Header.SetMethod(r.Method)
		req.SetRequestURI(r.URL.RequestURI())
		req.Header.SetHost(r.Host)
		for k, vs := range r.Header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		if r.Body != nil && r.Body != http.NoBody {
			// Streamed like on the traffic port: the handler applies the
			// limits and reads small bodies whole (body.go). The reader is
			// wrapped to hide Close: fasthttp closes a body stream when it
			// replaces it, and net/http closes the body itself.
			req.SetBodyStream(struct{ io.Reader }{r.Body}, int(r.ContentLength))
		}

		h(&ctx)

		resp := &ctx.Response
		h := rw.Header()
		for k, v := range resp.Header.All() {
			switch string(k) {
			case "Content-Length", "Connection", "Transfer-Encoding", "Keep-Alive":
				continue
			}
			h.Add(string(k), string(v))
		}
		if !resp.IsBodyStream() {
			body := resp.Body()
			h.Set("Content-Length", strconv.Itoa(len(body)))
			rw.WriteHeader(resp.StatusCode())
			_, _ = rw.Write(body)
			return
		}
		rw.WriteHeader(resp.StatusCode())
		fl, _ := rw.(http.Flusher)
		if fl != nil {
			fl.Flush()
		}
		buf := make([]byte, 16<<10)
		stream := resp.BodyStream()
		for {
			n, err := stream.Read(buf)
			if n > 0 {
				if _, werr := rw.Write(buf[:n]); werr != nil {
					break
				}
				if fl != nil {
					fl.Flush()
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					e.opts.Logger.Debug("streamed response ended early", "err", err)
				}
				break
			}
		}
		_ = resp.CloseBodyStream()
	})
}

func writeNetProblem(rw http.ResponseWriter, p *problem.Problem) {
	rw.Header().Set("Content-Type", problem.ContentType)
	rw.WriteHeader(p.Status)
	_, _ = rw.Write(p.Body)
}

func remoteTCPAddr(s string) net.Addr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}

// Logger adapts slog to fasthttp's logger.
type Logger struct{ L *slog.Logger }

// Printf logs a fasthttp message as a warning.
func (f Logger) Printf(format string, args ...any) {
	f.L.Warn(fmt.Sprintf(format, args...), "component", "fasthttp")
}
