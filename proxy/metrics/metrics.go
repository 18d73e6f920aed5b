// Package metrics holds a worker's Prometheus metrics, served on the admin
// port at /metrics.
//
// Per-request metrics are resolved once per API (APIMetrics), so that the hot
// path does no label lookups: counting a request is an atomic load, one
// atomic add and one histogram observation. Other packages register their
// own collectors into Registry (the rate limiter's decisions, for example).
//
// # Series are bounded
//
// Tenants name their APIs and upstreams, and a platform may hold 100,000 of
// them: a series per API made when a config is compiled would export
// millions of series that no request ever touched. So an API's series are
// made when it answers its first request, and at most MaxAPIs APIs (and as
// many upstreams) have series of their own (Sources.MaxAPIs,
// DefaultMaxAPIs): past that, requests are counted under the labels
// tenant="~other", api="~other" (upstreams under upstream="~other"), and
// tollgate_metrics_overflow_total counts the APIs and upstreams that were
// refused a series of their own. Series of APIs and upstreams that leave the
// config are dropped (Retain), which frees their places.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric of the worker.
const Namespace = "tollgate"

// DefaultMaxAPIs is how many APIs (and how many upstreams) get series of
// their own when Sources.MaxAPIs is 0: about 22 series each (5 status
// classes and a histogram of 15 buckets), so some 22,000 series at most.
const DefaultMaxAPIs = 1000

// Other is the tenant, API and upstream label of the series that count the
// APIs and upstreams past the cap (slugs never start with "~").
const Other = "~other"

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
	overflow  *prometheus.CounterVec

	// max is the cap on APIs and on upstreams with series of their own
	// (negative: none has; all count under Other).
	max int
	mu  sync.Mutex // guards apis, ups
	// apis and ups are the series made, by tenant and name; Other's
	// included (it never counts toward the cap).
	apis map[[2]string]*apiSeries
	ups  map[[2]string]*upSeries
	// ownAPIs and ownUps count the entries of apis and ups that hold
	// series of their own (not Other's, not the unrouted requests').
	ownAPIs, ownUps int
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
	// MaxAPIs is how many APIs, and how many upstreams, get series of
	// their own (DefaultMaxAPIs when 0; negative: none, every request is
	// counted under Other).
	MaxAPIs int
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
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "metrics_overflow_total",
			Help: "APIs (kind=\"api\") and upstreams (kind=\"upstream\") counted under \"~other\" because the cap on series (TOLLGATE_PROXY_METRICS_MAX_APIS) was reached.",
		}, []string{"kind"}),
		max:  src.MaxAPIs,
		apis: map[[2]string]*apiSeries{},
		ups:  map[[2]string]*upSeries{},
	}
	if m.max == 0 {
		m.max = DefaultMaxAPIs
	}
	r.MustRegister(m.requests, m.latency, m.ejections, m.retries, m.upstreamE, m.shed, m.rejected, m.swaps, m.overflow,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "metrics_apis",
			Help: "APIs with series of their own (at most the cap, TOLLGATE_PROXY_METRICS_MAX_APIS).",
		}, func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return float64(m.ownAPIs)
		}),
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

// APIMetrics are the per-request metrics of one API, resolved when the API
// answers its first request.
type APIMetrics struct {
	m           *Metrics
	tenant, api string
	s           atomic.Pointer[apiSeries]
}

// apiSeries are the series an API counts in: its own, or Other's.
type apiSeries struct {
	classes [6]prometheus.Counter // index status/100; 0 for out of range
	latency prometheus.Observer
}

// API names the per-request metrics of one API of a tenant; no series is
// made until it counts a request. Call it when compiling a config, not
// per request.
func (m *Metrics) API(tenant, api string) *APIMetrics {
	return &APIMetrics{m: m, tenant: tenant, api: api}
}

// Observe counts one answered request.
func (a *APIMetrics) Observe(status int, d time.Duration) {
	if a == nil {
		return
	}
	s := a.s.Load()
	if s == nil {
		s = a.resolve()
	}
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	s.classes[c].Inc()
	s.latency.Observe(d.Seconds())
}

// resolve finds or makes a's series (Other's past the cap).
func (a *APIMetrics) resolve() *apiSeries {
	m := a.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := a.s.Load(); s != nil {
		return s
	}
	k := [2]string{a.tenant, a.api}
	s := m.apis[k]
	if s == nil {
		unrouted := k == [2]string{}
		switch {
		case unrouted:
		case m.ownAPIs >= m.max:
			m.overflow.WithLabelValues("api").Inc()
			k = [2]string{Other, Other}
			s = m.apis[k]
		default:
			m.ownAPIs++
		}
		if s == nil {
			s = &apiSeries{latency: m.latency.WithLabelValues(k[0], k[1])}
			for c := 1; c <= 5; c++ {
				s.classes[c] = m.requests.WithLabelValues(k[0], k[1], strconv.Itoa(c)+"xx")
			}
			s.classes[0] = s.classes[5]
			m.apis[k] = s
		}
	}
	a.s.Store(s)
	return s
}

// UpstreamMetrics are the metrics of one upstream, resolved at its first
// retry or failure.
type UpstreamMetrics struct {
	m                *Metrics
	tenant, upstream string
	s                atomic.Pointer[upSeries]
}

// upSeries are the series an upstream counts in: its own, or Other's.
type upSeries struct {
	tenant, upstream           string // the labels (Other's past the cap)
	retrySent, retryDenied     prometheus.Counter
	errConnect, errTimeout, eo prometheus.Counter
}

// Upstream names the metrics of one upstream; no series is made until it
// counts something.
func (m *Metrics) Upstream(tenant, upstream string) *UpstreamMetrics {
	return &UpstreamMetrics{m: m, tenant: tenant, upstream: upstream}
}

func (u *UpstreamMetrics) series() *upSeries {
	if s := u.s.Load(); s != nil {
		return s
	}
	m := u.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := u.s.Load(); s != nil {
		return s
	}
	k := [2]string{u.tenant, u.upstream}
	s := m.ups[k]
	if s == nil {
		if m.ownUps >= m.max {
			m.overflow.WithLabelValues("upstream").Inc()
			k = [2]string{Other, Other}
			s = m.ups[k]
		} else {
			m.ownUps++
		}
		if s == nil {
			s = &upSeries{tenant: k[0], upstream: k[1],
				retrySent:   m.retries.WithLabelValues(k[0], k[1], "sent"),
				retryDenied: m.retries.WithLabelValues(k[0], k[1], "budget_exhausted"),
				errConnect:  m.upstreamE.WithLabelValues(k[0], k[1], "connect"),
				errTimeout:  m.upstreamE.WithLabelValues(k[0], k[1], "timeout"),
				eo:          m.upstreamE.WithLabelValues(k[0], k[1], "other"),
			}
			m.ups[k] = s
		}
	}
	u.s.Store(s)
	return s
}

// Ejected counts an ejection of target (target "~other" past the cap).
func (u *UpstreamMetrics) Ejected(target string) {
	if u == nil {
		return
	}
	s := u.series()
	if s.upstream == Other {
		target = Other
	}
	u.m.ejections.WithLabelValues(s.tenant, s.upstream, target).Inc()
}

// Retry counts a retry sent (true) or denied by the budget (false).
func (u *UpstreamMetrics) Retry(sent bool) {
	if u == nil {
		return
	}
	s := u.series()
	if sent {
		s.retrySent.Inc()
	} else {
		s.retryDenied.Inc()
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
	s := u.series()
	switch kind {
	case ErrConnect:
		s.errConnect.Inc()
	case ErrTimeout:
		s.errTimeout.Inc()
	default:
		s.eo.Inc()
	}
}

// Retain drops the series of APIs and upstreams that are not in the lists
// (those of a config no longer served, or of one that failed to build), so
// that a worker's series follow its live config rather than every config it
// ever saw, and their places under the cap go to others. Unrouted requests
// (API("", "")) and the series of Other are always kept. Call it after a
// config swap, with the live config's metrics; a Metrics shared by several
// workers must not be pruned by one of them.
func (m *Metrics) Retain(apis []*APIMetrics, upstreams []*UpstreamMetrics) {
	liveAPI := map[[2]string]bool{{"", ""}: true, {Other, Other}: true}
	for _, a := range apis {
		if a != nil {
			liveAPI[[2]string{a.tenant, a.api}] = true
		}
	}
	liveUp := map[[2]string]bool{{Other, Other}: true}
	for _, u := range upstreams {
		if u != nil {
			liveUp[[2]string{u.tenant, u.upstream}] = true
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.apis {
		if !liveAPI[k] {
			delete(m.apis, k)
			m.ownAPIs--
			l := prometheus.Labels{"tenant": k[0], "api": k[1]}
			m.requests.DeletePartialMatch(l)
			m.latency.DeletePartialMatch(l)
		}
	}
	for k := range m.ups {
		if !liveUp[k] {
			delete(m.ups, k)
			m.ownUps--
			l := prometheus.Labels{"tenant": k[0], "upstream": k[1]}
			m.retries.DeletePartialMatch(l)
			m.upstreamE.DeletePartialMatch(l)
			m.ejections.DeletePartialMatch(l)
		}
	}
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
