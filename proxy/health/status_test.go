package health

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/proxy/netguard"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// TestStatusLastError checks what Status tells the health reporter: the
// last probe's time and why it failed, cleared after a success.
func TestStatusLastError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		expected int
		answer   int32
		wantErr  string
	}{
		{name: "5xx", answer: 503, wantErr: "status 503"},
		{name: "unexpected status", expected: 204, answer: 200, wantErr: "status 200, want 204"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var code atomic.Int32
			var probes atomic.Int64
			code.Store(tc.answer)
			srv := switchable(t, &code, &probes)
			c := New(&netguard.Dialer{AllowPrivate: true}, nil)
			t.Cleanup(c.Close)
			if _, ok := c.Status("t/u", srv.URL); ok {
				t.Fatal("Status of an unknown target: ok")
			}
			c.Sync(context.Background(), []Upstream{{Key: "t/u", Targets: []string{srv.URL},
				Check: proxycfg.HealthCheck{Path: "/healthz", IntervalMS: 10, TimeoutMS: 500, UnhealthyThreshold: 1,
					HealthyThreshold: 1, ExpectedStatus: tc.expected}}})
			var st Status
			waitFor(t, "a failing probe", func() bool { st, _ = c.Status("t/u", srv.URL); return !st.Healthy })
			if !strings.Contains(st.LastError, tc.wantErr) || st.LastCheck.IsZero() {
				t.Fatalf("status %+v, want last error %q and a last check", st, tc.wantErr)
			}
			if tc.expected != 0 {
				code.Store(int32(tc.expected))
			} else {
				code.Store(200)
			}
			waitFor(t, "recovery", func() bool { st, _ = c.Status("t/u", srv.URL); return st.Healthy && st.LastError == "" })
		})
	}
}
