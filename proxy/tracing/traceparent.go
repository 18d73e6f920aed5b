package tracing

import (
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
)

// TraceparentLen is the length of a version 00 W3C traceparent header.
const TraceparentLen = 55

// parseTraceparent reads a W3C traceparent header: version 00 (exactly 55
// bytes) or a later version, of which the first 55 bytes have the same
// layout. Like the worker's own check, it takes lower-case hex only and
// refuses version ff and all-zero ids; ok is false for anything else.
func parseTraceparent(v []byte) (tid trace.TraceID, sid trace.SpanID, flags trace.TraceFlags, ok bool) {
	if len(v) < TraceparentLen || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return tid, sid, 0, false
	}
	if len(v) > TraceparentLen && (v[55] != '-' || v[0] == '0' && v[1] == '0') {
		return tid, sid, 0, false
	}
	ver, ok1 := hexByte(v[0], v[1])
	f, ok2 := hexByte(v[53], v[54])
	if !ok1 || !ok2 || ver == 0xff {
		return tid, sid, 0, false
	}
	for i := range tid {
		b, ok := hexByte(v[3+2*i], v[4+2*i])
		if !ok {
			return tid, sid, 0, false
		}
		tid[i] = b
	}
	for i := range sid {
		b, ok := hexByte(v[36+2*i], v[37+2*i])
		if !ok {
			return tid, sid, 0, false
		}
		sid[i] = b
	}
	if !tid.IsValid() || !sid.IsValid() {
		return tid, sid, 0, false
	}
	return tid, sid, trace.TraceFlags(f), true
}

// hexByte decodes two lower-case hex digits.
func hexByte(hi, lo byte) (byte, bool) {
	h, ok1 := hexDigit(hi)
	l, ok2 := hexDigit(lo)
	return h<<4 | l, ok1 && ok2
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

const hexDigits = "0123456789abcdef"

// appendTraceparent appends a version 00 traceparent header.
func appendTraceparent(b []byte, tid trace.TraceID, sid trace.SpanID, flags trace.TraceFlags) []byte {
	b = append(b, "00-"...)
	for _, c := range tid {
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	b = append(b, '-')
	for _, c := range sid {
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	f := byte(flags)
	return append(b, '-', hexDigits[f>>4], hexDigits[f&0xf])
}

// newTraceID draws a random, valid trace id without allocating.
func newTraceID() trace.TraceID {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid
}

// newSpanID draws a random, valid span id without allocating.
func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
