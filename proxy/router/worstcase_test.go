package router

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// adversarialRoutes are templates that made the old backtracking glob
// quadratic: a parameter followed by a long literal that a request segment
// nearly matches at every offset, and parameters between literals that
// never occur; 2n of them, each its own trie edge.
func adversarialRoutes(tb testing.TB, n int) *Routes {
	tb.Helper()
	var rs []proxycfg.Route
	for i := range n {
		rs = append(rs, proxycfg.Route{Method: "GET",
			Path: "/{p}" + strings.Repeat("a", proxycfg.MaxRoutePathLen-8) + string(rune('c'+i%20)) + strings.Repeat("z", i/20)})
		// Middle chunks that never occur make the matcher search the whole
		// segment for them (a KMP scan now, a backtracking one before).
		chunk := strings.Repeat("a", 100+i) + "c"
		rs = append(rs, proxycfg.Route{Method: "GET",
			Path: "/{p}" + strings.Repeat(chunk+"{q}", proxycfg.MaxRouteParams-2) + "b"})
	}
	r, err := CompileRoutes(rs)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// adversarialPath is the longest path a request may have: one segment of
// "a"s whose last byte ends no literal-suffix template, and whose middle
// never holds the chunks of the others.
func adversarialPath() []byte {
	return []byte("/" + strings.Repeat("a", MaxPathLen-2) + "b")
}

// TestRouteMatchLinear is the regression test of the backtracking glob: 40
// adversarial templates against the longest allowed path took about 190 ms
// of CPU per request (770 ms at 16 KiB) before matching became linear.
func TestRouteMatchLinear(t *testing.T) {
	r := adversarialRoutes(t, 20)
	path := adversarialPath()
	res, _ := r.Match([]byte("GET"), path)
	if res != RouteNotFound {
		t.Fatalf("adversarial path matched: %d", res)
	}
	const runs = 20
	start := time.Now()
	for range runs {
		r.Match([]byte("GET"), path)
	}
	// Linear matching costs tens of microseconds here; the bound is loose
	// for loaded and -race runs, and far below the old quadratic cost.
	if per := time.Since(start) / runs; per > 20*time.Millisecond {
		t.Fatalf("one worst-case match took %v", per)
	}
}

func BenchmarkRouteMatchWorstCase(b *testing.B) {
	r := adversarialRoutes(b, 20)
	m, p := []byte("GET"), adversarialPath()
	b.ReportAllocs()
	for b.Loop() {
		r.Match(m, p)
	}
}
