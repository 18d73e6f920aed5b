package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tollgate/tollgate/billing/stripetest"
)

// scrape reads the control plane's /metrics on its operator port, checks
// that it lints clean (promlint, which testutil.GatherAndLint and
// `promtool check metrics` run, and promtool itself when installed:
// Debian's prometheus package), and returns the families by name.
func (p *platform) scrape() map[string]*dto.MetricFamily {
	t := p.t
	t.Helper()
	resp, err := p.client.Get(p.controlAdmin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("promlint: %s: %s", pr.Metric, pr.Text)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool is not installed (apt-get install prometheus): promlint only")
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// sample is the value of the sample of family name whose labels include
// want (a histogram's count), and whether there is one.
func sample(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

var uuidRE = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)

// TestControlMetricsEndToEnd drives /v1, a developer portal, a publish
// and Stripe webhooks through a running control plane, then scrapes
// /metrics on its operator port: the series are there, labelled by route
// pattern and outcome only (no tenant, id, slug or key in any label), and
// the exposition passes promtool. The public port serves no metrics.
func TestControlMetricsEndToEnd(t *testing.T) {
	t.Parallel()
	p := startPlatformWith(t, platformOpts{stripe: true})
	back := httptest.NewServer(demoBackend("a"))
	defer back.Close()
	acme := p.setupTenant("acme", []string{back.URL}, 100)
	p.portalTenant(acme, 1000)
	var got map[string]any
	p.api("GET", "/v1/apis/"+acme.api, acme.token, nil, 200, &got)
	p.api("GET", "/v1/keys/"+acme.keyID, acme.token, nil, 200, &got)
	p.api("GET", "/v1/apis/"+acme.upstream, acme.token, nil, 404, nil) // another kind's id
	p.api("GET", "/v1/no/such/"+acme.api, acme.token, nil, 404, nil)
	p.portal("acme", "GET", "/api/apis", "", nil, 200, nil)

	// The key works on a worker: the publisher published the config.
	p.eventually(10*time.Second, "acme's key works", func() bool {
		return p.call(0, "acme.localhost", "/echo/x", acme.key).status == 200
	})

	// Webhooks: an event of a type billing ignores, its replay, and a
	// forged one.
	ev, _ := json.Marshal(map[string]any{"id": "evt_" + randHex(8), "object": "event", "type": "customer.created",
		"api_version": "2025-04-30.basil", "created": time.Now().Unix(), "livemode": false, "account": "acct_acme",
		"data": map[string]any{"object": map[string]any{"id": "cus_x", "object": "customer"}}})
	for _, sig := range []string{stripetest.Sign(ev, p.stripe.webhookSecret, time.Time{}),
		stripetest.Sign(ev, p.stripe.webhookSecret, time.Time{}), stripetest.Sign(ev, "whsec_forged", time.Time{})} {
		req, _ := http.NewRequest("POST", p.control+"/webhooks/stripe", bytes.NewReader(ev))
		req.Header.Set("Stripe-Signature", sig)
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	mfs := p.scrape()
	want := []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"tollgate_control_http_requests_total", map[string]string{"surface": "v1", "method": "POST", "route": "POST /v1/tenants", "class": "2xx"}, 1},
		{"tollgate_control_http_requests_total", map[string]string{"surface": "v1", "route": "GET /v1/apis/{id}", "class": "2xx"}, 1},
		{"tollgate_control_http_requests_total", map[string]string{"surface": "v1", "route": "GET /v1/apis/{id}", "class": "4xx"}, 1},
		{"tollgate_control_http_requests_total", map[string]string{"surface": "v1", "route": "GET /v1/keys/{id}"}, 1},
		{"tollgate_control_http_requests_total", map[string]string{"surface": "v1", "route": "PATCH /v1/apis/{id}"}, 1},
		{"tollgate_control_http_requests_total", map[string]string{"surface": "v1", "route": "/v1/", "class": "4xx"}, 1},
		{"tollgate_control_http_requests_total", map[string]string{"surface": "devportal", "route": "GET /api/apis", "class": "2xx"}, 1},
		{"tollgate_control_http_requests_total", map[string]string{"surface": "webhook", "route": "POST /webhooks/stripe", "class": "2xx"}, 2},
		{"tollgate_control_http_requests_total", map[string]string{"surface": "webhook", "route": "POST /webhooks/stripe", "class": "4xx"}, 1},
		{"tollgate_control_http_request_duration_seconds", map[string]string{"surface": "v1", "route": "POST /v1/keys"}, 1},
		{"tollgate_control_publisher_compile_duration_seconds", nil, 1},
		{"tollgate_control_publisher_publish_duration_seconds", nil, 1},
		{"tollgate_control_publisher_snapshot_bytes", nil, 1},
		{"tollgate_control_publisher_published_generation", nil, 1},
		{"tollgate_control_publisher_key_records_total", nil, 1},
		{"tollgate_control_publisher_leader", nil, 1},
		{"tollgate_control_publisher_lag_seconds", nil, 0},
		{"tollgate_control_publisher_generations_behind", nil, 0},
		{"tollgate_control_config_generation", nil, 1},
		{"tollgate_control_key_outbox_unpublished", nil, 0},
		{"tollgate_control_billing_jobs_due", nil, 0},
		{"tollgate_control_meter_reports_pending", nil, 0},
		{"tollgate_control_meter_reports_total", map[string]string{"outcome": "refused"}, 0},
		{"tollgate_control_usage_lag_seconds", nil, 0},
		{"tollgate_control_usage_pending_entries", nil, 0},
		{"tollgate_control_usage_errors_total", nil, 0},
		{"tollgate_control_webhook_receipts_total", map[string]string{"outcome": "ignored"}, 1},
		{"tollgate_control_webhook_receipts_total", map[string]string{"outcome": "duplicate"}, 1},
		{"tollgate_control_webhook_receipts_total", map[string]string{"outcome": "bad-signature"}, 1},
		{"tollgate_control_webhook_failures_total", nil, 0},
		{"tollgate_control_postgres_pool_acquires_total", nil, 1},
		{"tollgate_control_postgres_pool_max_connections", nil, 1},
		{"tollgate_control_redis_pool_connections", nil, 1},
		{"tollgate_control_postgres_down_seconds", nil, 0},
	}
	for _, w := range want {
		v, ok := sample(mfs, w.name, w.labels)
		if !ok {
			t.Errorf("no %s%v", w.name, w.labels)
		} else if v < w.min {
			t.Errorf("%s%v = %v, want at least %v", w.name, w.labels, v, w.min)
		}
	}

	// No label anywhere carries a value of the tenant's: ids, its slug,
	// keys, tokens, paths.
	secrets := []string{acme.token, acme.key, acme.api, acme.keyID, acme.upstream, acme.plan, acme.consumer, "acme", "/echo"}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				v := l.GetValue()
				if uuidRE.MatchString(v) {
					t.Errorf("%s has an id in label %s=%q", name, l.GetName(), v)
				}
				for _, s := range secrets {
					if strings.Contains(v, s) {
						t.Errorf("%s has a tenant's value in label %s=%q", name, l.GetName(), v)
					}
				}
			}
		}
	}

	// The public port has no /metrics; the operator port has the probes.
	resp, err := p.client.Get(p.control + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 200 || strings.Contains(string(body), "tollgate_control_") {
		t.Errorf("the public port serves metrics: %d %.200s", resp.StatusCode, body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := p.client.Get(p.controlAdmin + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("operator port %s: %d", path, resp.StatusCode)
		}
	}
}
