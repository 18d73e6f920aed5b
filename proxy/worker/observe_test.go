package worker

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestCanonicalKeys: the names the worker sets with SetCanonical are in
// fasthttp's normal form, or a client's header of the same name would be
// repeated rather than replaced.
func TestCanonicalKeys(t *testing.T) {
	t.Parallel()
	for _, key := range [][]byte{keyRequestID, keyTraceparent} {
		var h fasthttp.RequestHeader
		h.Set(strings.ToLower(string(key)), "v")
		h.SetCanonical(key, []byte("w"))
		n := 0
		for k, v := range h.All() {
			if strings.EqualFold(string(k), string(key)) {
				n++
				if string(k) != string(key) || string(v) != "w" {
					t.Errorf("%s: header %s: %s", key, k, v)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s: %d headers of that name", key, n)
		}
	}
}
