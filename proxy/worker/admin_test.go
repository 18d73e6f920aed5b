package worker

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPprof: the admin port serves net/http/pprof only when asked to
// (Options.Pprof, TOLLGATE_PROXY_PPROF), never on the traffic port.
func TestPprof(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		on   bool
		want int
	}{
		{name: "off by default", want: http.StatusNotFound},
		{name: "on when set", on: true, want: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := e.startWith(t, func(o *Options) { o.Pprof = tc.on })
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
				resp, err := client.Get("http://" + r.admin + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Fatalf("admin %s: %d, want %d", path, resp.StatusCode, tc.want)
				}
				if tc.on && path == "/debug/pprof/" && !strings.Contains(string(body), "goroutine") {
					t.Fatalf("admin %s: %q", path, body)
				}
			}
			resp, err := client.Get("http://" + r.traffic + "/debug/pprof/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("pprof on the traffic port")
			}
		})
	}
}
