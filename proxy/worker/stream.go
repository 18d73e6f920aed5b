package worker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/proxy/balance"
	"github.com/tollgate/tollgate/proxy/pipeline"
)

// Streamed responses: a request that accepts text/event-stream gets its
// response streamed, each chunk flushed to the client as it arrives from
// the upstream (fasthttp writes a streamed body chunked and flushes every
// chunk). Other responses are buffered, which is faster for the usual small
// JSON bodies. A streamed body is not bounded by the API's timeout once
// the headers arrived.

// wantsStream reports whether the client asked for an event stream.
func wantsStream(h *fasthttp.RequestHeader) bool {
	return bytes.Contains(h.Peek("Accept"), []byte("text/event-stream"))
}

// responseBodyLen is the size of a response body without reading a
// streamed one (-1 when a streamed body's size is unknown).
func responseBodyLen(r *fasthttp.Response) int {
	if r.IsBodyStream() {
		return r.Header.ContentLength()
	}
	return len(r.Body())
}

// isUpgrade reports a WebSocket upgrade request (RFC 6455 section 4.1).
func isUpgrade(h *fasthttp.RequestHeader) bool {
	return bytes.EqualFold(h.Peek("Upgrade"), []byte("websocket")) &&
		bytes.Contains(bytes.ToLower(h.Peek("Connection")), []byte("upgrade"))
}

// upgrade proxies a WebSocket handshake to d's target and, on 101, splices
// the client and upstream connections until either side closes. The
// request is already rewritten for the target (path, host, forwarded
// headers); hop-by-hop headers other than the upgrade pair are removed.
func (w *Worker) upgrade(ctx *fasthttp.RequestCtx, d *pipeline.Decision) error {
	t := d.Target
	timeout := d.API.Timeout
	start := time.Now()
	up, err := w.dialer.DialTimeout(t.Host, min(timeout, 10*time.Second))
	if err != nil {
		d.Done(balance.Result{ConnError: true})
		return fmt.Errorf("websocket dial %s: %w", t.Host, err)
	}
	if t.Scheme == "https" {
		// TLS upstreams for WebSockets would need the HostClient's TLS
		// settings; refuse rather than send cleartext.
		up.Close()
		d.Done(balance.Result{})
		return errors.New("websocket to an https target is not supported")
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
		d.Done(balance.Result{ConnError: true})
		return fmt.Errorf("websocket handshake write: %w", err)
	}
	br := bufio.NewReader(up)
	var rh fasthttp.ResponseHeader
	if err := rh.Read(br); err != nil {
		up.Close()
		d.Done(balance.Result{ConnError: true})
		return fmt.Errorf("websocket handshake read: %w", err)
	}
	d.Done(balance.Result{Status: rh.StatusCode(), Latency: time.Since(start)})
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
