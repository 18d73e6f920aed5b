package worker

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The HTTP/2 fronts are Go's HTTP/2 server with an h2Guard on the read side
// of every connection. The guard makes up for the two places where that
// server departs from RFC 9113 on purpose (h2spec cases, bench/h2spec.sh):
//
//   - 6.5.3/1: a SETTINGS frame that names a parameter twice is refused
//     (PROTOCOL_ERROR, Go's guard against settings floods); the RFC wants the
//     values applied in the order they appear. The guard keeps the last value
//     of each parameter, which leaves the settings where applying them in
//     order would. The one thing lost: an earlier INITIAL_WINDOW_SIZE that
//     would have overflowed a stream's window for a moment is not seen.
//   - 8.1.2.2/1 and /2 (RFC 9113 8.2.2): a request with a connection-specific
//     field (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding,
//     Upgrade) or a TE other than "trailers" is malformed, a stream error of
//     type PROTOCOL_ERROR; Go answers it 400 instead. The guard decodes every
//     header block with an HPACK decoder of its own, in step with the
//     server's (both see the same bytes and the server decodes every header
//     block it reads), and ends a malformed block with a field whose name is
//     not a token, which the server resets with PROTOCOL_ERROR.
//
// Anything the guard does not expect (a frame over the size limit, a header
// block the decoder refuses, bad padding, frames out of order) ends the
// inspection: the rest of the connection passes through untouched and the
// server answers it as it would without the guard. DATA and every other
// frame are copied straight through.

const (
	// h2MaxFrameSize is the SETTINGS_MAX_FRAME_SIZE of the fronts: the RFC's
	// default, which clients may assume before the server's SETTINGS arrive
	// (h2spec 4.2/3 sends a larger HEADERS frame and wants FRAME_SIZE_ERROR;
	// Go's default of 1 MiB accepts it).
	h2MaxFrameSize = 16 << 10
	// h2HeaderTableSize is the HPACK dynamic table size the server decodes
	// with (SETTINGS_HEADER_TABLE_SIZE); the guard's decoder uses the same.
	h2HeaderTableSize = 4096
	// h2FrameHeaderLen is the length of an HTTP/2 frame header.
	h2FrameHeaderLen = 9
	// h2MaxSettings is the most parameters Go accepts in one SETTINGS frame;
	// a longer frame is passed on for the server to refuse.
	h2MaxSettings = 100
)

// h2MalformedMark ends a malformed header block: a literal header field
// without indexing and with a new name (RFC 7541 6.2.2), so that the HPACK
// dynamic table is untouched, whose name holds a space, which Go's server
// answers with RST_STREAM PROTOCOL_ERROR.
var h2MalformedMark = func() []byte {
	const name = "malformed request"
	b := []byte{0x00, byte(len(name))}
	b = append(b, name...)
	return append(b, 0x00) // empty value
}()

// h2Guard is the client side of an HTTP/2 connection as the server reads
// it (see above). Writes, deadlines and Close go to the connection as they
// are. Like any net.Conn read by one HTTP/2 server, it is read by one
// goroutine at a time.
type h2Guard struct {
	net.Conn
	out  []byte // bytes for the server before anything more is read
	pass int    // bytes of the current frame still to copy through
	off  bool   // inspection ended: everything passes through

	buf []byte // the frame under inspection, reused
	dec *hpack.Decoder
	// inBlock says that the header block goes on in CONTINUATION frames
	// of stream block.
	inBlock bool
	block   uint32
	// malformed says that the header block being decoded is malformed;
	// te counts its TE fields.
	malformed bool
	te        int
}

// newH2Guard guards c. preface says that the client's connection preface
// is still to be read (passed through: the server checks it).
func newH2Guard(c net.Conn, preface bool) *h2Guard {
	g := &h2Guard{Conn: c}
	if preface {
		g.pass = len(http2.ClientPreface)
	}
	g.dec = hpack.NewDecoder(h2HeaderTableSize, g.field)
	return g
}

// h2TLSGuard is an h2Guard over TLS: the server reads the TLS state through
// ConnectionState (HTTP/2's TLS requirements, Request.TLS).
type h2TLSGuard struct {
	*h2Guard
	tls *tls.Conn
}

// ConnectionState returns the state of the TLS connection.
func (g h2TLSGuard) ConnectionState() tls.ConnectionState { return g.tls.ConnectionState() }

// Read gives the server the client's bytes, frames rewritten as described
// above.
func (g *h2Guard) Read(p []byte) (int, error) {
	for {
		switch {
		case len(g.out) > 0:
			n := copy(p, g.out)
			g.out = g.out[n:]
			return n, nil
		case g.off:
			return g.Conn.Read(p)
		case g.pass > 0:
			if len(p) > g.pass {
				p = p[:g.pass]
			}
			n, err := g.Conn.Read(p)
			g.pass -= n
			return n, err
		}
		if err := g.next(); err != nil {
			return 0, err
		}
	}
}

// next reads the next frame header and decides what to do with the frame:
// pass it through, or read it whole and inspect it. A read error with
// nothing read is returned; bytes read before an error are handed to the
// server first (it gets the error on its next read).
func (g *h2Guard) next() error {
	g.buf = append(g.buf[:0], make([]byte, h2FrameHeaderLen)...)
	if n, err := io.ReadFull(g.Conn, g.buf); err != nil {
		if n == 0 {
			return err
		}
		g.out, g.off = g.buf[:n], true
		return nil
	}
	h := g.buf
	length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	typ, flags := http2.FrameType(h[3]), http2.Flags(h[4])
	stream := binary.BigEndian.Uint32(h[5:]) & (1<<31 - 1)

	var inspect bool
	switch {
	case g.inBlock:
		// Only a CONTINUATION of the same stream may follow; the server
		// ends the connection over anything else.
		inspect = typ == http2.FrameContinuation && stream == g.block
		g.off = !inspect
	case typ == http2.FrameHeaders:
		inspect = stream != 0
		g.off = !inspect
	case typ == http2.FrameContinuation:
		g.off = true // a CONTINUATION with no header block open
	case typ == http2.FrameSettings:
		inspect = stream == 0 && !flags.Has(http2.FlagSettingsAck) &&
			length%6 == 0 && length <= 6*h2MaxSettings
	}
	if inspect && length > h2MaxFrameSize {
		// The server refuses the frame (FRAME_SIZE_ERROR).
		inspect, g.off = false, true
	}
	if !inspect {
		g.out, g.pass = g.buf, length
		return nil
	}

	g.buf = append(g.buf, make([]byte, length)...)
	if n, err := io.ReadFull(g.Conn, g.buf[h2FrameHeaderLen:]); err != nil {
		g.out, g.off = g.buf[:h2FrameHeaderLen+n], true
		return nil
	}
	if typ == http2.FrameSettings {
		g.out = dedupeSettings(g.buf)
		return nil
	}
	g.out = g.headerBlock(g.buf, typ, flags, stream)
	return nil
}

// headerBlock decodes the fragment of a HEADERS or CONTINUATION frame and
// returns the frame for the server: as it came, or, at the end of a
// malformed block, without END_HEADERS and followed by a CONTINUATION
// frame that carries h2MalformedMark.
func (g *h2Guard) headerBlock(frame []byte, typ http2.FrameType, flags http2.Flags, stream uint32) []byte {
	frag := frame[h2FrameHeaderLen:]
	if typ == http2.FrameHeaders {
		g.malformed, g.te = false, 0
		// The layout and checks of x/net/http2's parseHeadersFrame: the
		// server decodes nothing of a frame it finds broken here.
		var pad int
		if flags.Has(http2.FlagHeadersPadded) {
			if len(frag) < 1 {
				g.off = true
				return frame
			}
			pad, frag = int(frag[0]), frag[1:]
		}
		if flags.Has(http2.FlagHeadersPriority) {
			if len(frag) < 5 {
				g.off = true
				return frame
			}
			frag = frag[5:]
		}
		if len(frag) < pad {
			g.off = true
			return frame
		}
		frag = frag[:len(frag)-pad]
	}
	if _, err := g.dec.Write(frag); err != nil {
		// The server ends the connection (COMPRESSION_ERROR).
		g.off = true
		return frame
	}
	if !flags.Has(http2.FlagHeadersEndHeaders) {
		g.inBlock, g.block = true, stream
		return frame
	}
	g.inBlock = false
	if err := g.dec.Close(); err != nil {
		g.off = true
		return frame
	}
	if !g.malformed {
		return frame
	}
	frame[4] &^= byte(http2.FlagHeadersEndHeaders)
	return appendFrame(frame, http2.FrameContinuation, http2.FlagContinuationEndHeaders, stream, h2MalformedMark)
}

// field is the guard's HPACK decoder's emit function: it applies the
// checks of Go's server (checkValidHTTP2RequestHeaders), whose 400 the
// guard turns into a stream error.
func (g *h2Guard) field(f hpack.HeaderField) {
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		g.malformed = true
	case "te":
		g.te++
		if g.te > 1 || (f.Value != "trailers" && f.Value != "") {
			g.malformed = true
		}
	}
}

// dedupeSettings returns a SETTINGS frame (header and payload) that the
// server accepts for one that names a parameter more than once: the last
// value of each parameter, in the order they were last given. A frame
// without duplicates, or with an invalid value (which the server's framer
// refuses with the error code the RFC gives it, before it looks for
// duplicates), is returned as it is. The frame is rewritten in place.
func dedupeSettings(frame []byte) []byte {
	p := frame[h2FrameHeaderLen:]
	n := len(p) / 6
	id := func(i int) uint16 { return binary.BigEndian.Uint16(p[i*6:]) }
	later := func(i int) bool { // a later entry names the same parameter
		for j := i + 1; j < n; j++ {
			if id(j) == id(i) {
				return true
			}
		}
		return false
	}
	dup := false
	for i := 0; i < n && !dup; i++ {
		dup = later(i)
	}
	if !dup {
		return frame
	}
	for i := range n {
		s := http2.Setting{ID: http2.SettingID(id(i)), Val: binary.BigEndian.Uint32(p[i*6+2:])}
		if s.Valid() != nil {
			return frame
		}
	}
	kept := 0
	for i := range n {
		if !later(i) {
			copy(p[kept*6:], p[i*6:i*6+6])
			kept++
		}
	}
	return setFrameLength(frame[:h2FrameHeaderLen+kept*6])
}

// setFrameLength writes the length of frame's payload into its header.
func setFrameLength(frame []byte) []byte {
	n := len(frame) - h2FrameHeaderLen
	frame[0], frame[1], frame[2] = byte(n>>16), byte(n>>8), byte(n)
	return frame
}

// appendFrame appends a frame to b.
func appendFrame(b []byte, typ http2.FrameType, flags http2.Flags, stream uint32, payload []byte) []byte {
	n := len(payload)
	b = append(b, byte(n>>16), byte(n>>8), byte(n), byte(typ), byte(flags))
	b = binary.BigEndian.AppendUint32(b, stream)
	return append(b, payload...)
}
