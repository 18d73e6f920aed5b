// Package metrics holds a worker's Prometheus metrics, served on the admin
// port at /metrics.
//
// Per-request metrics are resolved once per API when a config is compiled
// (APIMetrics), so that the hot path does no label lookups: counting a request
// is one atomic add and one histogram observation. Other packages register
// their own collectors into Registry (the rate limiter's decisions, for
// example).
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Namespace prefixes every metric of the worker.
const Namespace = "tollgate"

// Metrics are one worker's metrics. Create them with New.
type Metrics struct {
	// Registry holds every metric of the worker; register more here.
	Registry *prometheus.Registry

	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	ejections *prometheus.CounterVec
	retries   *prometheus.CounterVec
	upstreamE *prometheus.CounterVec
	shed      prometheus.Counter
	rejected  prometheus.Counter
	swaps     prometheus.Counter
}

// Sources are callbacks the worker gives for metrics read at scrape time.
type Sources struct {
	// Generation is the live config generation (0 before the first).
	Generation func() int64
	// ConfigAge is how long ago the live config was compiled.
	ConfigAge func() time.Duration
	// Targets lists every target and whether it is up (actively healthy
	// and not ejected).
	Targets func(yield func(tenant, upstream, target string, up bool))
	// InFlight is the number of requests being served.
	InFlight func() int64
	// RedisDown is how long Redis has been unreachable (0 while it
	// answers).
	RedisDown func() time.Duration
}

// New makes the metrics and registers them, with the Go runtime and
// process collectors, in a new registry.
func New(src Sources) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "requests_total",
			Help: "Requests answered, by tenant, API and status class (1xx..5xx). Unrouted requests have api=\"\".",
		}, []string{"tenant", "api", "class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "request_duration_seconds",
			Help:    "Time from request read to response ready, by tenant and API.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"tenant", "api"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "upstream_ejections_total",
			Help: "Targets ejected by outlier detection (passive health).",
		}, []string{"tenant", "upstream", "target"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "upstream_retries_total",
			Help: "Retries on another target, by outcome: sent, or denied by the retry budget.",
		}, []string{"tenant", "upstream", "outcome"}),
		upstreamE: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "upstream_errors_total",
			Help: "Failed upstream exchanges, by kind (connect, timeout, other).",
		}, []string{"tenant", "upstream", "kind"}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "shed_total",
			Help: "Requests refused with 503 because the worker was at its concurrency cap.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "config_rejected_total",
			Help: "Config snapshots rejected (unreadable, invalid or unbuildable).",
		}),
		swaps: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "config_swaps_total",
			Help: "Config snapshots swapped in.",
		}),
	}
	r.MustRegister(m.requests, m.latency, m.ejections, m.retries, m.upstreamE, m.shed, m.rejected, m.swaps,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.Generation != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "config_generation",
			Help: "Generation of the live config snapshot (0 before the first).",
		}, func() float64 { return float64(src.Generation()) }))
	}
	if src.ConfigAge != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "config_age_seconds",
			Help: "Seconds since the live config snapshot was compiled by the control plane.",
		}, func() float64 { return src.ConfigAge().Seconds() }))
	}
	if src.InFlight != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "inflight_requests",
			Help: "Requests being served.",
		}, func() float64 { return float64(src.InFlight()) }))
	}
	if src.RedisDown != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "redis_down_seconds",
			Help: "Seconds since Redis stopped answering the worker's calls; 0 while it answers.",
		}, func() float64 { return src.RedisDown().Seconds() }))
	}
	if src.Targets != nil {
		r.MustRegister(&targetCollector{fn: src.Targets, desc: prometheus.NewDesc(
			Namespace+"_upstream_target_up",
			"1 if the target takes traffic (actively healthy and not ejected), else 0.",
			[]string{"tenant", "upstream", "target"}, nil)})
	}
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// APIMetrics are the pre-resolved per-request metrics of one API.
type APIMetrics struct {
	classes     [6]prometheus.Counter // index status/100; 0 for out of range
	latency     prometheus.Observer
	tenant, api string
}

// API resolves the per-request metrics of one API of a tenant. Call it when
// compiling a config, not per request.
func (m *Metrics) API(tenant, api string) *APIMetrics {
	a := &APIMetrics{latency: m.latency.WithLabelValues(tenant, api), tenant: tenant, api: api}
	for c := 1; c <= 5; c++ {
		a.classes[c] = m.requests.WithLabelValues(tenant, api, strconv.Itoa(c)+"xx")
	}
	a.classes[0] = a.classes[5]
	return a
}

// Observe counts one answered request.
func (a *APIMetrics) Observe(status int, d time.Duration) {
	if a == nil {
		return
	}
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	a.classes[c].Inc()
	a.latency.Observe(d.Seconds())
}

// UpstreamMetrics are the pre-resolved metrics of one upstream.
type UpstreamMetrics struct {
	m                          *Metrics
	tenant, upstream           string
	retrySent, retryDenied     prometheus.Counter
	errConnect, errTimeout, eo prometheus.Counter
}

// Upstream resolves the metrics of one upstream.
func (m *Metrics) Upstream(tenant, upstream string) *UpstreamMetrics {
	return &UpstreamMetrics{
		m: m, tenant: tenant, upstream: upstream,
		retrySent:   m.retries.WithLabelValues(tenant, upstream, "sent"),
		retryDenied: m.retries.WithLabelValues(tenant, upstream, "budget_exhausted"),
		errConnect:  m.upstreamE.WithLabelValues(tenant, upstream, "connect"),
		errTimeout:  m.upstreamE.WithLabelValues(tenant, upstream, "timeout"),
		eo:          m.upstreamE.WithLabelValues(tenant, upstream, "other"),
	}
}

// Ejected counts an ejection of target.
func (u *UpstreamMetrics) Ejected(target string) {
	if u == nil {
		return
	}
	u.m.ejections.WithLabelValues(u.tenant, u.upstream, target).Inc()
}

// Retry counts a retry sent (true) or denied by the budget (false).
func (u *UpstreamMetrics) Retry(sent bool) {
	if u == nil {
		return
	}
	if sent {
		u.retrySent.Inc()
	} else {
		u.retryDenied.Inc()
	}
}

// Error kinds of UpstreamMetrics.Error.
const (
	ErrConnect = iota
	ErrTimeout
	ErrOther
)

// Error counts a failed exchange of kind ErrConnect, ErrTimeout or ErrOther.
func (u *UpstreamMetrics) Error(kind int) {
	if u == nil {
		return
	}
	switch kind {
	case ErrConnect:
		u.errConnect.Inc()
	case ErrTimeout:
		u.errTimeout.Inc()
	default:
		u.eo.Inc()
	}
}

// Retain drops the series of APIs and upstreams that are not in the lists
// (those of a config no longer served, or of one that failed to build), so
// that a worker's series follow its live config rather than every config it
// ever saw. Unrouted requests (API("", "")) are always kept. Call it after
// a config swap, with the live config's metrics; a Metrics shared by
// several workers must not be pruned by one of them.
func (m *Metrics) Retain(apis []*APIMetrics, upstreams []*UpstreamMetrics) {
	liveAPI := map[[2]string]bool{{"", ""}: true}
	for _, a := range apis {
		if a != nil {
			liveAPI[[2]string{a.tenant, a.api}] = true
		}
	}
	liveUp := map[[2]string]bool{}
	for _, u := range upstreams {
		if u != nil {
			liveUp[[2]string{u.tenant, u.upstream}] = true
		}
	}
	prune := func(vec *prometheus.MetricVec, a, b string, live map[[2]string]bool) {
		ch := make(chan prometheus.Metric, 64)
		go func() { vec.Collect(ch); close(ch) }()
		var dead [][2]string
		for metric := range ch {
			var pb dto.Metric
			if metric.Write(&pb) != nil {
				continue
			}
			var k [2]string
			for _, l := range pb.GetLabel() {
				switch l.GetName() {
				case a:
					k[0] = l.GetValue()
				case b:
					k[1] = l.GetValue()
				}
			}
			if !live[k] {
				dead = append(dead, k)
			}
		}
		for _, k := range dead {
			vec.DeletePartialMatch(prometheus.Labels{a: k[0], b: k[1]})
		}
	}
	prune(m.requests.MetricVec, "tenant", "api", liveAPI)
	prune(m.latency.MetricVec, "tenant", "api", liveAPI)
	prune(m.retries.MetricVec, "tenant", "upstream", liveUp)
	prune(m.upstreamE.MetricVec, "tenant", "upstream", liveUp)
	prune(m.ejections.MetricVec, "tenant", "upstream", liveUp)
}

// Shed counts a request refused at the concurrency cap.
func (m *Metrics) Shed() { m.shed.Inc() }

// ConfigRejected counts a rejected snapshot.
func (m *Metrics) ConfigRejected() { m.rejected.Inc() }

// ConfigSwapped counts a snapshot swapped in.
func (m *Metrics) ConfigSwapped() { m.swaps.Inc() }

type targetCollector struct {
	fn   func(yield func(tenant, upstream, target string, up bool))
	desc *prometheus.Desc
}

func (c *targetCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *targetCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[[3]string]bool{}
	c.fn(func(tenant, upstream, target string, up bool) {
		k := [3]string{tenant, upstream, target}
		if seen[k] {
			return // the same target listed twice in one upstream
		}
		seen[k] = true
		v := 0.0
		if up {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, tenant, upstream, target)
	})
}
