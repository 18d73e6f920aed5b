package tracing

import (
	"bytes"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestParseTraceparent(t *testing.T) {
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name   string
		header string
		ok     bool
		flags  trace.TraceFlags
	}{
		{name: "sampled", header: valid, ok: true, flags: 1},
		{name: "not sampled", header: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", ok: true},
		{name: "a later version with more fields", header: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-xyz", ok: true, flags: 3},
		{name: "version 00 with more fields", header: valid + "-xyz"},
		{name: "version ff", header: "ff" + valid[2:]},
		{name: "upper case", header: "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"},
		{name: "zero trace id", header: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
		{name: "zero span id", header: "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"},
		{name: "short", header: valid[:54]},
		{name: "empty", header: ""},
		{name: "misplaced dash", header: "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01"},
		{name: "longer without a dash", header: valid + "x"},
		{name: "bad flags", header: valid[:53] + "0g"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tid, sid, flags, ok := parseTraceparent([]byte(tc.header))
			if ok != tc.ok {
				t.Fatalf("parseTraceparent(%q) ok = %v, want %v", tc.header, ok, tc.ok)
			}
			if !ok {
				return
			}
			if tid.String() != tc.header[3:35] || sid.String() != tc.header[36:52] || flags != tc.flags {
				t.Errorf("parseTraceparent(%q) = %s %s %02x", tc.header, tid, sid, flags)
			}
		})
	}
}

// FuzzTraceparent: whatever parses formats back to its first 55 bytes in
// version 00, and parses again to the same ids.
func FuzzTraceparent(f *testing.F) {
	f.Add([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	f.Add([]byte("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-more"))
	f.Fuzz(func(t *testing.T, v []byte) {
		tid, sid, flags, ok := parseTraceparent(v)
		if !ok {
			return
		}
		out := appendTraceparent(nil, tid, sid, flags)
		if !bytes.Equal(out[2:], v[2:TraceparentLen]) {
			t.Fatalf("%q formats back as %q", v, out)
		}
		tid2, sid2, flags2, ok := parseTraceparent(out)
		if !ok || tid2 != tid || sid2 != sid || flags2 != flags {
			t.Fatalf("%q does not parse back", out)
		}
	})
}
