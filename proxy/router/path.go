package router

import (
	"bytes"
	"errors"
	"strings"
)

// Limits of request paths. CleanPath enforces them before any lookup or
// route matching, so that matching never sees more than MaxPathLen bytes.
const (
	// MaxPathLen bounds a request path as sent (percent-encoded, without
	// the query): 414 beyond.
	MaxPathLen = 8 << 10
	// MaxPathSegments bounds the "/"-separated segments of a request path:
	// 414 beyond.
	MaxPathSegments = 128
)

// Errors of CleanPath. The proxy answers ErrPathTooLong and
// ErrTooManySegments with 414, ErrAmbiguousPath with 400 (ambiguous-path).
var (
	ErrPathTooLong     = errors.New("request path too long")
	ErrTooManySegments = errors.New("request path has too many segments")
	ErrAmbiguousPath   = errors.New("ambiguous request path")
)

// CleanPath checks a request path as the client sent it (percent-encoded,
// without the query) and returns its normal form, the one the gateway routes
// and forwards. Gateway and upstream must read a path the same way, or a
// path that the gateway routes to one API (or that a route scope does not
// cover) reaches a different resource upstream. So CleanPath rewrites only
// what every reader agrees on, and refuses (ErrAmbiguousPath) what readers
// disagree on, rather than picking one reading silently:
//
//   - percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are
//     decoded, other percent-encodings are kept with upper-case hex, and raw
//     bytes that must be encoded (non-ASCII, `"<>^{|}` and the backquote)
//     are encoded;
//   - refused: an encoded "/" (%2F), backslash (raw or %5C), NUL and other
//     control characters (raw or encoded), a malformed percent-encoding, an
//     empty segment ("//", which some servers collapse), and dot segments
//     after decoding: ".", "..", segments of dots only (which Windows
//     servers read as ".."), also followed by a path parameter (";", as
//     in Tomcat's "..;/");
//   - a path must start with "/" and stay within MaxPathLen (as sent and
//     in normal form) and MaxPathSegments (ErrPathTooLong,
//     ErrTooManySegments).
//
// When raw is already in normal form, CleanPath returns raw itself and
// changed false, without allocating; otherwise it appends the normal form
// to dst. Percent-decoding the result never yields a "/" or a dot segment,
// so a decoding reader (the router) sees the same segments.
func CleanPath(dst, raw []byte) (clean []byte, changed bool, err error) {
	if len(raw) == 0 {
		return slash, true, nil
	}
	if raw[0] != '/' {
		return nil, false, ErrAmbiguousPath
	}
	if len(raw) > MaxPathLen {
		return nil, false, ErrPathTooLong
	}
	var out []byte // the normal form so far, once it differs from raw
	segStart := 1  // start of the current segment in the normal form
	segments := 1
	for i := 1; i < len(raw); i++ {
		c := raw[i]
		switch pathClass[c] {
		case classKeep:
			if changed {
				out = append(out, c)
			}
		case classSlash:
			norm := raw[:i]
			if changed {
				norm = out
			}
			if len(norm) == segStart || dotSegment(norm[segStart:]) {
				return nil, false, ErrAmbiguousPath
			}
			if segments++; segments > MaxPathSegments {
				return nil, false, ErrTooManySegments
			}
			if changed {
				out = append(out, '/')
			}
			segStart = len(norm) + 1
		case classPercent:
			if i+2 >= len(raw) {
				return nil, false, ErrAmbiguousPath
			}
			hi, lo := unhex(raw[i+1]), unhex(raw[i+2])
			if hi < 0 || lo < 0 {
				return nil, false, ErrAmbiguousPath
			}
			v := byte(hi<<4 | lo)
			switch {
			case unreserved(v):
				if !changed {
					out, changed = append(dst, raw[:i]...), true
				}
				out = append(out, v)
			case v == '/' || v == '\\' || v < 0x20 || v == 0x7f:
				return nil, false, ErrAmbiguousPath
			case isLowerHex(raw[i+1]) || isLowerHex(raw[i+2]):
				if !changed {
					out, changed = append(dst, raw[:i]...), true
				}
				out = append(out, '%', upperHex[hi], upperHex[lo])
			default:
				if changed {
					out = append(out, raw[i:i+3]...)
				}
			}
			i += 2
		case classEscape:
			if !changed {
				out, changed = append(dst, raw[:i]...), true
			}
			out = append(out, '%', upperHex[c>>4], upperHex[c&0xf])
		default: // classReject
			return nil, false, ErrAmbiguousPath
		}
	}
	norm := raw
	if changed {
		norm = out
	}
	if dotSegment(norm[segStart:]) {
		return nil, false, ErrAmbiguousPath
	}
	if len(norm) > MaxPathLen {
		// Encoding raw bytes made it longer than a client may send.
		return nil, false, ErrPathTooLong
	}
	return norm, changed, nil
}

// dotSegment reports whether a segment of a normal-form path is a dot
// segment to some reader: only dots (and encoded spaces, which Windows
// trims), at least one, before any path parameter.
func dotSegment(seg []byte) bool {
	if len(seg) == 0 || seg[0] != '.' && seg[0] != '%' {
		return false
	}
	if j := bytes.IndexByte(seg, ';'); j >= 0 {
		seg = seg[:j]
	}
	if j := bytes.Index(seg, []byte("%3B")); j >= 0 {
		seg = seg[:j]
	}
	dots := 0
	for i := 0; i < len(seg); i++ {
		switch {
		case seg[i] == '.':
			dots++
		case seg[i] == '%' && i+2 < len(seg) && seg[i+1] == '2' && seg[i+2] == '0':
			i += 2
		default:
			return false
		}
	}
	return dots > 0
}

// Classes of raw path bytes.
const (
	classKeep = iota
	classSlash
	classPercent
	classEscape
	classReject
)

// pathClass classifies every byte of a raw path.
var pathClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c < 0x21 || c == 0x7f || c == '\\':
			t[c] = classReject
		case c >= 0x80 || strings.IndexByte("\"<>^`{|}#?", byte(c)) >= 0:
			// '#' and '?' cannot be in a path the engine split off; an
			// encoded one keeps its meaning.
			t[c] = classEscape
		case c == '/':
			t[c] = classSlash
		case c == '%':
			t[c] = classPercent
		}
	}
	return t
}()

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func isLowerHex(c byte) bool { return 'a' <= c && c <= 'f' }

const upperHex = "0123456789ABCDEF"

// StripSegments returns path without its first n segments, as an API with
// strip_base_path forwards it when its base path has n segments: "/v1/x"
// less 1 is "/x", "/v1" less 1 is "/". The router matched the base path on
// the decoded path; CleanPath guarantees that the normal form has the same
// segments, so the normal form is stripped by count, never by bytes. The
// result aliases path or is the constant "/".
func StripSegments(path []byte, n int) []byte {
	for ; n > 0 && len(path) > 0; n-- {
		j := bytes.IndexByte(path[1:], '/')
		if j < 0 {
			return slash
		}
		path = path[j+1:]
	}
	if len(path) == 0 {
		return slash
	}
	return path
}

// Segments is the number of segments a base path strips (StripSegments):
// "/" has none, "/v1" and "/v1/" one.
func Segments(basePath string) int {
	return strings.Count(strings.TrimRight(basePath, "/"), "/")
}
