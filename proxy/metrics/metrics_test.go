package metrics

import (
	"io"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func TestExposition(t *testing.T) {
	t.Parallel()
	m := New(Sources{
		Generation: func() int64 { return 42 },
		ConfigAge:  func() time.Duration { return 3 * time.Second },
		Targets: func(yield func(tenant, upstream, target string, up bool)) {
			yield("acme", "u1", "http://a:80", true)
			yield("acme", "u1", "http://b:80", false)
		},
		InFlight: func() int64 { return 7 },
	})
	api := m.API("acme", "orders")
	api.Observe(200, 2*time.Millisecond)
	api.Observe(204, time.Millisecond)
	api.Observe(503, time.Millisecond)
	api.Observe(0, time.Millisecond)
	up := m.Upstream("acme", "u1")
	up.Ejected("http://b:80")
	up.Retry(true)
	up.Retry(false)
	up.Error(ErrConnect)
	m.Shed()

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	tests := []struct {
		name string
		line string
	}{
		{name: "2xx", line: `tollgate_requests_total{api="orders",class="2xx",tenant="acme"} 2`},
		{name: "5xx with unknown status", line: `tollgate_requests_total{api="orders",class="5xx",tenant="acme"} 2`},
		{name: "latency count", line: `tollgate_request_duration_seconds_count{api="orders",tenant="acme"} 4`},
		{name: "generation", line: `tollgate_config_generation 42`},
		{name: "age", line: `tollgate_config_age_seconds 3`},
		{name: "target up", line: `tollgate_upstream_target_up{target="http://a:80",tenant="acme",upstream="u1"} 1`},
		{name: "target down", line: `tollgate_upstream_target_up{target="http://b:80",tenant="acme",upstream="u1"} 0`},
		{name: "ejections", line: `tollgate_upstream_ejections_total{target="http://b:80",tenant="acme",upstream="u1"} 1`},
		{name: "retries sent", line: `tollgate_upstream_retries_total{outcome="sent",tenant="acme",upstream="u1"} 1`},
		{name: "retries denied", line: `tollgate_upstream_retries_total{outcome="budget_exhausted",tenant="acme",upstream="u1"} 1`},
		{name: "connect errors", line: `tollgate_upstream_errors_total{kind="connect",tenant="acme",upstream="u1"} 1`},
		{name: "shed", line: `tollgate_shed_total 1`},
		{name: "in flight", line: `tollgate_inflight_requests 7`},
		{name: "go runtime", line: `go_goroutines`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(text, tc.line) {
				t.Errorf("exposition lacks %q", tc.line)
			}
		})
	}
}

func BenchmarkObserve(b *testing.B) {
	m := New(Sources{})
	api := m.API("acme", "orders")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			api.Observe(200, time.Millisecond)
		}
	})
}

// TestRetain: after a config change the series of APIs and upstreams no
// longer served go; the live ones keep their counts, and unrouted requests
// are always kept.
func TestRetain(t *testing.T) {
	t.Parallel()
	m := New(Sources{})
	kept, gone := m.API("acme", "orders"), m.API("acme", "old")
	unrouted := m.API("", "")
	for _, a := range []*APIMetrics{kept, gone, unrouted} {
		a.Observe(200, time.Millisecond)
	}
	upKept, upGone := m.Upstream("acme", "u1"), m.Upstream("acme", "u2")
	upKept.Error(ErrTimeout)
	upGone.Error(ErrTimeout)
	upGone.Ejected("http://b:80")
	m.Retain([]*APIMetrics{kept}, []*UpstreamMetrics{upKept})

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		`tollgate_requests_total{api="orders",class="2xx",tenant="acme"} 1`,
		`tollgate_requests_total{api="",class="2xx",tenant=""} 1`,
		`tollgate_upstream_errors_total{kind="timeout",tenant="acme",upstream="u1"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	for _, gone := range []string{`api="old"`, `upstream="u2"`} {
		if strings.Contains(text, gone) {
			t.Errorf("exposition still has %s", gone)
		}
	}
}

// TestSeriesBounded: APIs get series at their first request, at most
// MaxAPIs of them (and as many upstreams); the rest count under "~other",
// and Retain frees the places of APIs that left the config.
func TestSeriesBounded(t *testing.T) {
	t.Parallel()
	m := New(Sources{MaxAPIs: 2})
	scrape := func() string {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		body, _ := io.ReadAll(rec.Body)
		return string(body)
	}
	a, b, c := m.API("acme", "a"), m.API("acme", "b"), m.API("beta", "c")
	_ = m.API("beta", "idle") // built, never requested
	unrouted := m.API("", "")
	if text := scrape(); strings.Contains(text, `api="a"`) || strings.Contains(text, `api="idle"`) {
		t.Fatalf("series made before any request:\n%s", text)
	}
	for _, api := range []*APIMetrics{a, b, c, c, unrouted} {
		api.Observe(200, time.Millisecond)
	}
	for _, u := range []*UpstreamMetrics{m.Upstream("acme", "u1"), m.Upstream("acme", "u2"), m.Upstream("beta", "u3")} {
		u.Error(ErrConnect)
		u.Ejected("http://10.0.0.1:80")
	}
	text := scrape()
	for _, line := range []string{
		`tollgate_requests_total{api="a",class="2xx",tenant="acme"} 1`,
		`tollgate_requests_total{api="b",class="2xx",tenant="acme"} 1`,
		`tollgate_requests_total{api="~other",class="2xx",tenant="~other"} 2`,
		`tollgate_requests_total{api="",class="2xx",tenant=""} 1`,
		`tollgate_upstream_errors_total{kind="connect",tenant="~other",upstream="~other"} 1`,
		`tollgate_upstream_ejections_total{target="~other",tenant="~other",upstream="~other"} 1`,
		`tollgate_metrics_overflow_total{kind="api"} 1`,
		`tollgate_metrics_overflow_total{kind="upstream"} 1`,
		`tollgate_metrics_apis 2`,
	} {
		if !strings.Contains(text, line) {
			t.Errorf("exposition lacks %q", line)
		}
	}
	if strings.Contains(text, `api="c"`) || strings.Contains(text, `upstream="u3"`) || strings.Contains(text, `api="idle"`) {
		t.Errorf("series past the cap or without requests:\n%s", text)
	}

	// b leaves the config: its place goes to the next API built.
	m.Retain([]*APIMetrics{a, c}, nil)
	c2 := m.API("beta", "c") // the next build of beta
	c2.Observe(500, time.Millisecond)
	text = scrape()
	if strings.Contains(text, `api="b"`) || !strings.Contains(text, `tollgate_requests_total{api="c",class="5xx",tenant="beta"} 1`) {
		t.Errorf("after Retain:\n%s", text)
	}
	if !strings.Contains(text, `tollgate_requests_total{api="~other",class="2xx",tenant="~other"} 2`) {
		t.Errorf("Retain dropped the overflow series:\n%s", text)
	}
}

// TestLint checks the worker's exposition, every metric family present,
// with promlint (what `promtool check metrics` runs) and with promtool
// itself when it is installed (Debian's prometheus package).
func TestLint(t *testing.T) {
	t.Parallel()
	m := New(Sources{
		Generation: func() int64 { return 1 },
		ConfigAge:  func() time.Duration { return time.Second },
		Targets: func(yield func(tenant, upstream, target string, up bool)) {
			yield("acme", "u1", "http://a:80", true)
		},
		InFlight:  func() int64 { return 0 },
		RedisDown: func() time.Duration { return 0 },
		MaxAPIs:   1,
	})
	m.API("acme", "a").Observe(200, time.Millisecond)
	m.API("acme", "b").Observe(404, time.Millisecond) // past the cap
	u := m.Upstream("acme", "u1")
	u.Ejected("http://a:80")
	u.Retry(true)
	u.Error(ErrTimeout)
	m.Shed()
	m.ConfigRejected()
	m.ConfigSwapped()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool is not installed (apt-get install prometheus); promlint only")
		return
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = rec.Body
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
