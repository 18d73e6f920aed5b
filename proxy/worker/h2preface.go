package worker

import (
	"bytes"
	"io"
	"net"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// The h2c front serves cleartext HTTP/2 with prior knowledge and HTTP/1.1
// on one port. net/http takes a connection that does not open with the
// HTTP/2 connection preface for HTTP/1 and answers a broken request line
// 400, so a client that meant HTTP/2 and sent a bad preface gets an
// HTTP/1.1 answer; RFC 9113 3.4 wants the connection ended (h2spec 3.5/2).
// h2cListener closes such connections unanswered: one whose first line is
// neither the HTTP/2 preface nor an HTTP/1.x request line.

// h2cMaxSniff bounds what is read ahead of net/http to find the first
// line. A longer line is left to net/http (431).
const h2cMaxSniff = 4 << 10

// h2cListener wraps the h2c front's listener (see above).
type h2cListener struct{ net.Listener }

// Accept returns the next connection, to be checked on its first read.
func (l h2cListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &prefaceConn{Conn: c}, nil
}

// prefaceConn checks a connection's first bytes on its first read (so
// under the read deadline net/http has set) and then replays them.
type prefaceConn struct {
	net.Conn
	checked bool
	bad     bool   // neither HTTP/2 nor HTTP/1: reads return io.EOF
	ahead   []byte // read while checking, not yet returned
}

// Read returns the connection's bytes, or io.EOF for a connection that
// speaks neither protocol: net/http then closes it without an answer.
func (c *prefaceConn) Read(p []byte) (int, error) {
	if !c.checked {
		if err := c.check(); err != nil {
			return 0, err
		}
	}
	if c.bad {
		return 0, io.EOF
	}
	if len(c.ahead) > 0 {
		n := copy(p, c.ahead)
		c.ahead = c.ahead[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes a TCP connection; net/http uses it to close an
// HTTP/1 connection gracefully.
func (c *prefaceConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// check reads until the first bytes tell HTTP/2 from HTTP/1 from neither.
// A read error with nothing read is returned; after bytes were read it is
// left for a later read.
func (c *prefaceConn) check() error {
	buf := make([]byte, 0, 512)
	for {
		switch v := sniffFirstLine(buf); {
		case v == sniffBad:
			c.checked, c.bad = true, true
			return nil
		case v == sniffOK:
			c.checked, c.ahead = true, buf
			return nil
		}
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
		}
		n, err := c.Conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			c.checked, c.ahead = true, buf
			if len(buf) == 0 {
				return err
			}
			return nil
		}
	}
}

type sniffVerdict int

const (
	sniffMore sniffVerdict = iota // not enough bytes yet
	sniffOK                       // the HTTP/2 preface or an HTTP/1.x request line
	sniffBad                      // neither
)

// sniffFirstLine tells what the first bytes of a connection are.
func sniffFirstLine(b []byte) sniffVerdict {
	n := min(len(b), len(http2.ClientPreface))
	if string(b[:n]) == http2.ClientPreface[:n] {
		if n == len(http2.ClientPreface) {
			return sniffOK
		}
		return sniffMore
	}
	i := bytes.IndexByte(b, '\n')
	switch {
	case i < 0 && len(b) >= h2cMaxSniff:
		return sniffOK
	case i < 0:
		return sniffMore
	case isRequestLine(bytes.TrimSuffix(b[:i], []byte("\r"))):
		return sniffOK
	}
	return sniffBad
}

// isRequestLine reports whether line is an HTTP/1.x request line: a method
// token, a target and the version, separated by single spaces.
func isRequestLine(line []byte) bool {
	method, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || !httpguts.ValidHeaderFieldName(string(method)) {
		return false
	}
	target, version, ok := bytes.Cut(rest, []byte(" "))
	return ok && len(target) > 0 && len(version) == len("HTTP/1.1") &&
		bytes.HasPrefix(version, []byte("HTTP/1.")) && '0' <= version[7] && version[7] <= '9'
}
