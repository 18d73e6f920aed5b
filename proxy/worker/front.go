package worker

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/problem"
)

// The net/http front serves HTTP/2 (over TLS with ALPN, and cleartext h2c)
// and HTTP/1.1 over TLS. fasthttp, the engine of the main traffic port, does
// not speak HTTP/2, so these listeners are served by net/http and every
// request is handed to the same handler (HandleFastHTTP: the same pipeline,
// balancing, retries and metrics) through an in-memory fasthttp request.
// Streamed responses are copied with a flush per chunk. WebSocket upgrades
// are served on the HTTP/1.1 traffic port only (HTTP/2 has no Upgrade).

// tlsUserValue marks a request that arrived over TLS on the front.
const tlsUserValue = "tollgate.tls"

// defaultReadHeaderTimeout bounds reading request headers on the front.
const defaultReadHeaderTimeout = 10 * time.Second

var problemBadBody = problem.New("bad-request", 400, "Bad Request", "The request body could not be read.")

var problemNoUpgrade = problem.New("upgrade-not-supported", 501, "Not Implemented",
	"WebSocket upgrades are served on the gateway's HTTP/1.1 port.")

// isTLS reports whether the client connection is TLS (on either engine).
func isTLS(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsTLS() || ctx.UserValue(tlsUserValue) != nil
}

// frontHandler adapts HandleFastHTTP to net/http.
func (w *Worker) frontHandler(secure bool) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			writeNetProblem(rw, problemNoUpgrade)
			return
		}
		var ctx fasthttp.RequestCtx
		var empty fasthttp.Request
		ctx.Init(&empty, remoteTCPAddr(r.RemoteAddr), fasthttpLogger{w.logger})
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

		w.HandleFastHTTP(&ctx)

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
					w.logger.Debug("streamed response ended early", "err", err)
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
		Handler:           w.frontHandler(secure),
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

// Problems of requests the engine refuses before the handler runs.
var (
	problemHeaderTooLarge = problem.New("header-too-large", 431, "Request Header Fields Too Large",
		"The request's header block is larger than this gateway accepts.")
	problemClientTimeout = problem.New("request-timeout", 408, "Request Timeout",
		"The request was not received in time.")
	problemMalformed = problem.New("bad-request", 400, "Bad Request", "The request could not be parsed.")
)

// engineError answers requests fasthttp refuses while reading them: too
// large a body, too large a header block, a slow client, or a malformed
// request. (Bodies stream, so their limits are mostly the handler's:
// body.go.) Every answer is problem+json, like the handler's.
func engineError(ctx *fasthttp.RequestCtx, err error) {
	p := problemMalformed
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		p = problemTooLarge
	case errors.As(err, &small):
		p = problemHeaderTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		p = problemClientTimeout
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(p.Status)
	ctx.Response.Header.SetContentType(problem.ContentType)
	ctx.SetBody(p.Body)
}
