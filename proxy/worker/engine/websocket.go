package engine

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/pipeline"
)

// isUpgrade reports a WebSocket upgrade request (RFC 6455 section 4.1).
func isUpgrade(h *fasthttp.RequestHeader) bool {
	return bytes.EqualFold(h.Peek("Upgrade"), []byte("websocket")) &&
		bytes.Contains(bytes.ToLower(h.Peek("Connection")), []byte("upgrade"))
}

// upgrade proxies a WebSocket handshake to d's target (over TLS for an
// https target, verified like the engine's other exchanges with it) and,
// on 101, splices the client and upstream connections until either side
// closes. The request is already rewritten for the target (path, host,
// forwarded headers); hop-by-hop headers other than the upgrade pair are
// removed. The handshake's outcome goes into d.Outcome.
func (e *Engine) upgrade(ctx *fasthttp.RequestCtx, d *pipeline.Decision) error {
	t := d.Target
	timeout := d.API.Timeout
	start := time.Now()
	up, err := e.dialTarget(t, timeout)
	if err != nil {
		d.Outcome = pipeline.Outcome{Failure: failure(err)}
		return fmt.Errorf("websocket dial %s: %w", t.Host, err)
	}
	_ = up.SetDeadline(time.Now().Add(timeout))
	req := &ctx.Request
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	bw := bufio.NewWriter(up)
	if err := req.Write(bw); err == nil {
		err = bw.Flush()
	}
	if err != nil {
		up.Close()
		d.Outcome = pipeline.Outcome{Failure: failure(err)}
		return fmt.Errorf("websocket handshake write: %w", err)
	}
	br := bufio.NewReader(up)
	var rh fasthttp.ResponseHeader
	if err := rh.Read(br); err != nil {
		up.Close()
		d.Outcome = pipeline.Outcome{Failure: failure(err)}
		return fmt.Errorf("websocket handshake read: %w", err)
	}
	d.Outcome = pipeline.Outcome{Status: rh.StatusCode(), Latency: time.Since(start)}
	resp := &ctx.Response
	rh.CopyTo(&resp.Header)
	hostOnlyCookies(&resp.Header)
	if rh.StatusCode() != fasthttp.StatusSwitchingProtocols {
		// Refused: pass the answer on (its body, if any, is not read).
		up.Close()
		resp.Header.SetContentLength(0)
		resp.Header.Del("Connection")
		resp.Header.Del("Upgrade")
		return nil
	}
	_ = up.SetDeadline(time.Time{})
	ctx.Hijack(func(client net.Conn) {
		splice(client, up, br)
	})
	return nil
}

// dialTarget connects to t under the SSRF policy, with TLS for an https
// target (HTTP/1.1 by ALPN: an upgrade needs it).
func (e *Engine) dialTarget(t *pipeline.Target, timeout time.Duration) (net.Conn, error) {
	timeout = min(timeout, 10*time.Second)
	deadline := time.Now().Add(timeout)
	conn, err := e.opts.Dialer.DialTimeout(t.Host, timeout)
	if err != nil || t.Scheme != "https" {
		return conn, err
	}
	var cfg *tls.Config
	if e.opts.UpstreamTLS != nil {
		cfg = e.opts.UpstreamTLS.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(t.Host)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("target address %q: %w", t.Host, err)
		}
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"http/1.1"}
	tc := tls.Client(conn, cfg)
	_ = tc.SetDeadline(deadline)
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}

// splice copies both ways until one side ends, then closes both. buffered
// holds upstream bytes read past the handshake.
func splice(client, up net.Conn, buffered *bufio.Reader) {
	// The server's read and write deadlines do not apply to a WebSocket.
	_ = client.SetDeadline(time.Time{})
	var wg sync.WaitGroup
	closeBoth := sync.OnceFunc(func() {
		client.Close()
		up.Close()
	})
	wg.Go(func() {
		_, _ = io.Copy(client, buffered)
		closeBoth()
	})
	wg.Go(func() {
		_, _ = io.Copy(up, client)
		closeBoth()
	})
	wg.Wait()
}
