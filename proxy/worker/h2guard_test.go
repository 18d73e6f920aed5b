package worker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// readConn is a net.Conn that only reads, from r.
type readConn struct {
	net.Conn
	r io.Reader
}

func (c readConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// clientFrames writes what a client sends, frame by frame, with one HPACK
// encoder for the connection (its dynamic table in use across blocks).
type clientFrames struct {
	buf bytes.Buffer
	fr  *http2.Framer
	enc *hpack.Encoder
	blk bytes.Buffer
}

func newClientFrames() *clientFrames {
	c := &clientFrames{}
	c.fr = http2.NewFramer(&c.buf, nil)
	c.enc = hpack.NewEncoder(&c.blk)
	return c
}

// block encodes a request's header block: GET /x plus extra name, value pairs.
func (c *clientFrames) block(extra ...string) []byte {
	c.blk.Reset()
	fields := []string{":method", "GET", ":scheme", "https", ":path", "/x", ":authority", "api.acme.test", "x-client", "h2spec"}
	for i := 0; i < len(fields); i += 2 {
		_ = c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	for i := 0; i < len(extra); i += 2 {
		_ = c.enc.WriteField(hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return slices.Clone(c.blk.Bytes())
}

// guarded returns what the server reads of what the client wrote.
func guarded(t *testing.T, in []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(newH2Guard(readConn{r: bytes.NewReader(in)}, false))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// serverView reads frames as Go's HTTP/2 server does and describes each
// header block: "ok <stream>" or "reset <stream> <code>".
func serverView(t *testing.T, b []byte) []string {
	t.Helper()
	fr := http2.NewFramer(nil, bytes.NewReader(b))
	fr.ReadMetaHeaders = hpack.NewDecoder(h2HeaderTableSize, nil)
	var got []string
	for {
		f, err := fr.ReadFrame()
		var se http2.StreamError
		switch {
		case errors.Is(err, io.EOF):
			return got
		case errors.As(err, &se):
			got = append(got, fmt.Sprintf("reset %d %v", se.StreamID, se.Code))
			continue
		case err != nil:
			t.Fatalf("server's framer: %v", err)
		}
		if mh, ok := f.(*http2.MetaHeadersFrame); ok {
			got = append(got, fmt.Sprintf("ok %d", mh.StreamID))
		}
	}
}

func TestH2GuardHeaderBlocks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		write func(c *clientFrames)
		want  []string
		// same says that the guard passes the bytes through unchanged.
		same bool
	}{
		{name: "well-formed requests pass unchanged", same: true, want: []string{"ok 1", "ok 3", "ok 5"},
			write: func(c *clientFrames) {
				_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block("te", "trailers"), EndHeaders: true, EndStream: true})
				_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: c.block(), EndHeaders: true, PadLength: 7,
					Priority: http2.PriorityParam{StreamDep: 1, Weight: 9}})
				_ = c.fr.WriteData(3, true, []byte("connection: close"))
				b := c.block("accept", "*/*")
				_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: b[:3]})
				_ = c.fr.WriteContinuation(5, false, b[3:6])
				_ = c.fr.WriteContinuation(5, true, b[6:])
			}},
		{name: "connection-specific fields and TE", want: []string{"reset 1 PROTOCOL_ERROR", "reset 3 PROTOCOL_ERROR",
			"reset 5 PROTOCOL_ERROR", "reset 7 PROTOCOL_ERROR", "ok 9"},
			write: func(c *clientFrames) {
				_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block("connection", "keep-alive"), EndHeaders: true, EndStream: true})
				_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: c.block("te", "gzip"), EndHeaders: true, EndStream: true})
				_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: c.block("te", "trailers", "te", "trailers"), EndHeaders: true})
				_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: c.block("transfer-encoding", "chunked"), EndHeaders: true,
					PadLength: 3, Priority: http2.PriorityParam{Weight: 1}})
				// The client's dynamic table holds every field above: the
				// guard's decoder must have kept in step to see this one.
				_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 9, BlockFragment: c.block("te", "trailers"), EndHeaders: true, EndStream: true})
			}},
		{name: "malformed block over CONTINUATION frames, then a good one", want: []string{"reset 1 PROTOCOL_ERROR", "ok 3"},
			write: func(c *clientFrames) {
				b := c.block("x-a", "1", "upgrade", "h2c", "x-b", "2")
				_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:len(b)/2], EndStream: true, PadLength: 2})
				_ = c.fr.WriteContinuation(1, true, b[len(b)/2:])
				_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: c.block("x-a", "1", "x-b", "2"), EndHeaders: true})
			}},
		{name: "after a frame it cannot read the guard passes everything", same: true, want: []string{"reset 1 PROTOCOL_ERROR", "ok 3"},
			write: func(c *clientFrames) {
				// Pad length 200 in a shorter frame: the server resets the
				// stream without decoding the block; so does the guard stop.
				// (0x82 is :method GET, from the static table.)
				_ = c.fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersPadded|http2.FlagHeadersEndHeaders, 1, []byte{200, 0x82})
				_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: c.block("connection", "close"), EndHeaders: true})
			}},
		{name: "a frame over the size limit", same: true, want: []string{"ok 1"},
			write: func(c *clientFrames) {
				_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block("x-big", strings.Repeat("a", h2MaxFrameSize)), EndHeaders: true})
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClientFrames()
			tc.write(c)
			in := slices.Clone(c.buf.Bytes())
			out := guarded(t, in)
			if got := bytes.Equal(in, out); got != tc.same {
				t.Fatalf("output unchanged = %v, want %v", got, tc.same)
			}
			if got := serverView(t, out); !slices.Equal(got, tc.want) {
				t.Fatalf("server sees %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDedupeSettings(t *testing.T) {
	t.Parallel()
	s := func(id http2.SettingID, v uint32) http2.Setting { return http2.Setting{ID: id, Val: v} }
	tests := []struct {
		name string
		in   []http2.Setting
		want []http2.Setting
		// wantErr is the connection error Go's server reads instead.
		wantErr error
	}{
		{name: "no duplicates", in: []http2.Setting{s(http2.SettingInitialWindowSize, 100), s(http2.SettingMaxFrameSize, 20000)},
			want: []http2.Setting{s(http2.SettingInitialWindowSize, 100), s(http2.SettingMaxFrameSize, 20000)}},
		{name: "last value wins (h2spec 6.5.3/1)", in: []http2.Setting{s(http2.SettingInitialWindowSize, 100), s(http2.SettingInitialWindowSize, 1)},
			want: []http2.Setting{s(http2.SettingInitialWindowSize, 1)}},
		{name: "order of the last values", in: []http2.Setting{s(http2.SettingEnablePush, 0), s(http2.SettingHeaderTableSize, 0),
			s(http2.SettingEnablePush, 1), s(http2.SettingMaxHeaderListSize, 9), s(http2.SettingHeaderTableSize, 100)},
			want: []http2.Setting{s(http2.SettingEnablePush, 1), s(http2.SettingMaxHeaderListSize, 9), s(http2.SettingHeaderTableSize, 100)}},
		{name: "an invalid value keeps its own error code", in: []http2.Setting{s(http2.SettingInitialWindowSize, 1<<31), s(http2.SettingInitialWindowSize, 1)},
			wantErr: http2.ConnectionError(http2.ErrCodeFlowControl)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClientFrames()
			_ = c.fr.WriteSettings(tc.in...)
			_ = c.fr.WriteSettingsAck()
			fr := http2.NewFramer(nil, bytes.NewReader(guarded(t, c.buf.Bytes())))
			f, err := fr.ReadFrame()
			if tc.wantErr != nil || err != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got error %v, want %v", err, tc.wantErr)
				}
				return
			}
			var got []http2.Setting
			_ = f.(*http2.SettingsFrame).ForeachSetting(func(s http2.Setting) error { got = append(got, s); return nil })
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if f, err := fr.ReadFrame(); err != nil || !f.(*http2.SettingsFrame).IsAck() {
				t.Fatalf("the ACK after it: %v %v", f, err)
			}
		})
	}
}

func TestSniffFirstLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want sniffVerdict
	}{
		{name: "HTTP/2 preface", in: http2.ClientPreface + "\x00\x00", want: sniffOK},
		{name: "part of the preface", in: "PRI * HTTP/2.0\r\n", want: sniffMore},
		{name: "HTTP/1.1 request", in: "GET /x?y=1 HTTP/1.1\r\nHost: a\r\n", want: sniffOK},
		{name: "HTTP/1.0 request, bare LF", in: "POST / HTTP/1.0\n", want: sniffOK},
		{name: "line not complete", in: "GET /x HTTP/1.1", want: sniffMore},
		{name: "h2spec 3.5/2", in: "INVALID CONNECTION PREFACE\r\n\r\n", want: sniffBad},
		{name: "preface with a bad tail", in: "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", want: sniffBad},
		{name: "HTTP/2.0 request line", in: "GET / HTTP/2.0\r\n", want: sniffBad},
		{name: "empty first line", in: "\r\nGET / HTTP/1.1\r\n", want: sniffBad},
		{name: "bad method", in: "G(T / HTTP/1.1\r\n", want: sniffBad},
		{name: "very long line is left to net/http", in: "GET /" + string(bytes.Repeat([]byte("a"), h2cMaxSniff)), want: sniffOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sniffFirstLine([]byte(tc.in)); got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// loopReader reads data over and over.
type loopReader struct {
	data []byte
	off  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

// BenchmarkH2GuardRequest is the guard's cost per request: a HEADERS frame
// of a typical request (its fields in the dynamic table already, as on a
// busy connection) and a DATA frame.
func BenchmarkH2GuardRequest(b *testing.B) {
	c := newClientFrames()
	extra := []string{"user-agent", "bench/1.0", "accept", "application/json", "x-api-key", "tg_0123456789abcdef", "content-type", "application/json"}
	first := c.block(extra...)
	_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndHeaders: true, EndStream: true})
	warm := slices.Clone(c.buf.Bytes())
	c.buf.Reset()
	_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: c.block(extra...), EndHeaders: true})
	_ = c.fr.WriteData(3, true, []byte(`{"hello":"world"}`))
	req := slices.Clone(c.buf.Bytes())

	g := newH2Guard(readConn{r: bytes.NewReader(warm)}, false)
	buf := make([]byte, 4096)
	if _, err := io.ReadFull(g, buf[:len(warm)]); err != nil {
		b.Fatal(err)
	}
	g.Conn = readConn{r: &loopReader{data: req}}
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := io.ReadFull(g, buf[:len(req)]); err != nil {
			b.Fatal(err)
		}
	}
	if g.off || !bytes.Equal(buf[:len(req)], req) {
		b.Fatal("the guard changed a well-formed request")
	}
}
