package ctlmetrics_test

import (
	"context"
	"io"
	"log"
	"math"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/ctlmetrics"
	"github.com/tollgate/tollgate/services/outbox"
	"github.com/tollgate/tollgate/services/store"
	"github.com/tollgate/tollgate/services/storetest"
	"github.com/tollgate/tollgate/services/tenancy"
	"github.com/tollgate/tollgate/services/usage"
)

// series is one sample of a gathered family: its labels and value.
type series struct {
	labels map[string]string
	value  float64
}

// gather returns the samples of the family name in reg (counter, gauge or
// untyped value; a histogram's count).
func gather(t *testing.T, reg prometheus.Gatherer, name string) []series {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []series
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			s := series{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				s.value = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				s.value = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				s.value = float64(m.GetHistogram().GetSampleCount())
			default:
				s.value = m.GetUntyped().GetValue()
			}
			out = append(out, s)
		}
	}
	return out
}

// value is the value of the one sample of name whose labels include want.
func value(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	for _, s := range gather(t, reg, name) {
		match := true
		for k, v := range want {
			match = match && s.labels[k] == v
		}
		if match {
			return s.value
		}
	}
	t.Fatalf("no %s%v", name, want)
	return 0
}

// Lint checks the exposition of h with promlint (what
// testutil.GatherAndLint and `promtool check metrics` run) and, when it is
// installed, with promtool itself (Debian's prometheus package).
func lint(t *testing.T, reg prometheus.Gatherer, h http.Handler) {
	t.Helper()
	mfs, err := reg.Gather()
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
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool is not installed (apt-get install prometheus); promlint only")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = rec.Body
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestInstrumentLabelsAreBounded: requests through nested muxes are
// labelled by the innermost pattern, never by their path; a request no
// pattern matches is "other"; unknown methods and surfaces collapse.
func TestInstrumentLabelsAreBounded(t *testing.T) {
	m := ctlmetrics.New(ctlmetrics.Options{})
	inner := http.NewServeMux()
	inner.HandleFunc("GET /v1/apis/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	inner.HandleFunc("DELETE /v1/keys/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	outer := http.NewServeMux()
	outer.Handle("/v1/", inner)
	outer.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	h := m.Instrument(outer, func(r *http.Request) string {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			return ctlmetrics.SurfaceV1
		}
		return "tenant-chosen-" + r.URL.Path
	})
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the panic's stack
	srv.Start()
	defer srv.Close()
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/apis/0b6f7e0e-2a1c-4c59-9a55-5f0c3f1d2e01"},
		{"GET", "/v1/apis/another-raw-id"},
		{"DELETE", "/v1/keys/7c1e"},
		{"GET", "/v1/unknown/thing"},
		{"BREW", "/v1/apis/x"},
		{"GET", "/nowhere/acme-secret-path"},
		{"GET", "/boom"},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if c.path == "/boom" {
				continue // the panic drops the connection
			}
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	reg := m.Registry()
	if got := value(t, reg, "tollgate_control_http_requests_total",
		map[string]string{"surface": "v1", "method": "GET", "route": "GET /v1/apis/{id}", "class": "2xx"}); got != 2 {
		t.Errorf("GET /v1/apis/{id} counted %v times, want 2", got)
	}
	if got := value(t, reg, "tollgate_control_http_requests_total",
		map[string]string{"route": "DELETE /v1/keys/{id}", "class": "2xx"}); got != 1 {
		t.Errorf("DELETE /v1/keys/{id} counted %v times, want 1", got)
	}
	if got := value(t, reg, "tollgate_control_http_requests_total",
		map[string]string{"surface": "v1", "method": "OTHER", "route": "other", "class": "4xx"}); got != 1 {
		t.Errorf("BREW counted %v times as OTHER/other/4xx, want 1", got)
	}
	if got := value(t, reg, "tollgate_control_http_requests_total",
		map[string]string{"surface": "other", "route": "GET /boom", "class": "5xx"}); got != 1 {
		t.Errorf("a panic counted %v times as 5xx, want 1", got)
	}
	if got := value(t, reg, "tollgate_control_http_request_duration_seconds",
		map[string]string{"surface": "v1", "route": "GET /v1/apis/{id}"}); got != 2 {
		t.Errorf("latency of GET /v1/apis/{id} observed %v times, want 2", got)
	}
	for _, name := range []string{"tollgate_control_http_requests_total", "tollgate_control_http_request_duration_seconds"} {
		for _, s := range gather(t, reg, name) {
			for k, v := range s.labels {
				if strings.Contains(v, "acme") || strings.Contains(v, "raw-id") || strings.Contains(v, "0b6f7e0e") ||
					strings.Contains(v, "7c1e") || strings.Contains(v, "tenant-chosen") || strings.Contains(v, "unknown/thing") {
					t.Errorf("%s has a request-controlled label %s=%q", name, k, v)
				}
			}
		}
	}
	lint(t, reg, m.Handler())
}

// TestBacklogsAndLint: the backlog gauges read the real database and
// stream, the observers and billing's counters show up, and the whole
// exposition lints clean.
func TestBacklogsAndLint(t *testing.T) {
	ctx := context.Background()
	db := storetest.NewPool(t)
	rdb, keys := storetest.NewRedis(t)
	monitor := &store.Monitor{DB: db}
	m := ctlmetrics.New(ctlmetrics.Options{DB: db, Redis: rdb, Keys: keys, PostgresDown: monitor.DownSince})

	// A tenant change a minute old, not yet published; a key record 30 s
	// old in the outbox; a due billing job.
	tn, _, err := tenancy.Create(ctx, db, []byte("ctlmetrics-test-secret"), "Acme", "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.InTx(ctx, db, func(tx pgx.Tx) error { return outbox.MarkChanged(ctx, tx, tn.ID) }); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, `UPDATE config_changes SET changed_at = now() - interval '60 seconds' WHERE tenant_id = $1`, tn.ID)
	mustExec(t, db, `INSERT INTO key_outbox (digest, record, created_at) VALUES ('d1', '{}', now() - interval '30 seconds'),
		('d2', '{}', now())`)
	mustExec(t, db, `INSERT INTO billing_jobs (tenant_id, kind, ref) VALUES ($1, 'sync_plan', 'p')`, tn.ID)

	// Two usage entries, the first two minutes old, one of them delivered
	// to an aggregator and not acknowledged.
	stream := keys.UsageStream()
	old := time.Now().Add(-2 * time.Minute).UnixMilli()
	for _, id := range []string{strconv.FormatInt(old, 10) + "-0", "*"} {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: id, Values: []string{"u", "[]"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.XGroupCreate(ctx, stream, usage.DefaultGroup, "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: usage.DefaultGroup, Consumer: "c",
		Streams: []string{stream, ">"}, Count: 1}).Err(); err != nil {
		t.Fatal(err)
	}

	m.Refresh(ctx)
	reg := m.Registry()
	near := func(name string, want, tolerance float64) {
		t.Helper()
		if got := value(t, reg, name, nil); math.Abs(got-want) > tolerance {
			t.Errorf("%s = %v, want %v (±%v)", name, got, want, tolerance)
		}
	}
	// One tenant with unpublished changes (its creation and its change).
	near("tollgate_control_publisher_generations_behind", 1, 0)
	if got := value(t, reg, "tollgate_control_config_generation", nil); got < 2 {
		t.Errorf("config generation %v, want at least the tenant's creation and change", got)
	}
	near("tollgate_control_publisher_lag_seconds", 60, 10)
	near("tollgate_control_key_outbox_unpublished", 2, 0)
	near("tollgate_control_key_outbox_lag_seconds", 30, 10)
	near("tollgate_control_billing_jobs_due", 1, 0)
	near("tollgate_control_meter_reports_pending", 0, 0)
	near("tollgate_control_usage_stream_entries", 2, 0)
	near("tollgate_control_usage_pending_entries", 1, 0)
	near("tollgate_control_usage_lag_seconds", 120, 10)
	near("tollgate_control_postgres_down_seconds", 0, 0)
	if got := value(t, reg, "tollgate_control_backlog_refresh_errors_total", map[string]string{"source": "postgres"}); got != 0 {
		t.Errorf("postgres refresh errors = %v", got)
	}
	if value(t, reg, "tollgate_control_postgres_pool_acquires_total", nil) == 0 {
		t.Error("the Postgres pool's acquires are not reported")
	}
	if value(t, reg, "tollgate_control_redis_pool_connections", nil) == 0 {
		t.Error("the Redis pool's connections are not reported")
	}

	// The observers and billing's counters.
	m.Publisher().Leading(true)
	m.Publisher().SnapshotPublished(7, 1234, 20*time.Millisecond, 5*time.Millisecond)
	m.Publisher().KeysPublished(3)
	m.Usage().Committed(10, 25, time.UnixMilli(old))
	m.Usage().Committed(1, 1, time.UnixMilli(old-1000)) // an older, claimed batch
	if err := m.WatchWebhooks(func() map[string]int64 {
		return map[string]int64{"received": 4, "applied": 2, "bad_signature": 1, "failed": 1}
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchMeterReports(func() map[string]int64 { return map[string]int64{"sent": 5, "refused": 1} }); err != nil {
		t.Fatal(err)
	}
	near("tollgate_control_publisher_published_generation", 7, 0)
	near("tollgate_control_publisher_snapshot_bytes", 1234, 0)
	near("tollgate_control_publisher_key_records_total", 3, 0)
	near("tollgate_control_publisher_compile_duration_seconds", 1, 0)
	near("tollgate_control_publisher_leader", 1, 0)
	near("tollgate_control_usage_rows_total", 26, 0)
	near("tollgate_control_usage_last_entry_timestamp_seconds", float64(old)/1000, 0.001)
	near("tollgate_control_webhook_failures_total", 1, 0)
	if got := value(t, reg, "tollgate_control_webhook_receipts_total", map[string]string{"outcome": "bad-signature"}); got != 1 {
		t.Errorf("bad-signature receipts = %v, want 1", got)
	}
	if got := value(t, reg, "tollgate_control_meter_reports_total", map[string]string{"outcome": "refused"}); got != 1 {
		t.Errorf("refused meter reports = %v, want 1", got)
	}
	lint(t, reg, m.Handler())

	// Every metric but the Go runtime's, the process's and the handler's
	// own errors is the control plane's.
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		n := mf.GetName()
		if !strings.HasPrefix(n, "tollgate_control_") && !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "process_") &&
			!strings.HasPrefix(n, "promhttp_") {
			t.Errorf("metric %s lacks the tollgate_control_ prefix", n)
		}
	}
}

// TestRefreshSurvivesAClosedDatabase: a failed refresh counts an error and
// keeps the gauges.
func TestRefreshSurvivesAClosedDatabase(t *testing.T) {
	db := storetest.NewPool(t)
	m := ctlmetrics.New(ctlmetrics.Options{DB: db})
	m.Refresh(context.Background())
	before := value(t, m.Registry(), "tollgate_control_config_generation", nil)
	db.Close()
	m.Refresh(context.Background())
	if got := value(t, m.Registry(), "tollgate_control_backlog_refresh_errors_total", map[string]string{"source": "postgres"}); got != 1 {
		t.Errorf("refresh errors = %v, want 1", got)
	}
	if got := value(t, m.Registry(), "tollgate_control_config_generation", nil); got != before || got == 0 {
		t.Errorf("generation = %v after a failed refresh, want %v", got, before)
	}
}

// TestRunStopsWithItsContext: Run refreshes at once and returns when ctx
// ends.
func TestRunStopsWithItsContext(t *testing.T) {
	db := storetest.NewPool(t)
	m := ctlmetrics.New(ctlmetrics.Options{DB: db, Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for value(t, m.Registry(), "tollgate_control_config_generation", nil) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not refresh at start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	var nilMetrics *ctlmetrics.Metrics
	nilMetrics.Run(ctx) // a nil *Metrics does nothing
	h := http.NotFoundHandler()
	if got := nilMetrics.Instrument(h, nil); got == nil {
		t.Error("a nil *Metrics' Instrument lost the handler")
	}
}

func mustExec(t *testing.T, db *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := db.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
