package ctlmetrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Surfaces of the control plane's HTTP metrics: which part of the control
// plane answered. Instrument maps anything else to SurfaceOther.
const (
	// SurfaceV1 is the management API, /v1.
	SurfaceV1 = "v1"
	// SurfacePortal is the tenant portal.
	SurfacePortal = "portal"
	// SurfaceDevPortal is the developer portals (pages and /api).
	SurfaceDevPortal = "devportal"
	// SurfaceWebhook is the Stripe webhook.
	SurfaceWebhook = "webhook"
	// SurfaceOther is the rest: health, the billing link of 402 answers,
	// the index.
	SurfaceOther = "other"
)

// UnknownRoute is the route label of a request no pattern matched (a
// 404 or 405 of a ServeMux, a redirect to the cleaned path, an unknown
// portal host).
const UnknownRoute = "other"

// durationBuckets span a quick /v1 read to the slowest answers the control
// plane allows (WriteTimeout 75 s: a first SDK download, a try-it relay).
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 75}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests answered, by surface (v1, portal, devportal, webhook, other), method, route " +
				"pattern (\"other\" when none matched) and status class (2xx...).",
		}, []string{"surface", "method", "route", "class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by surface and route pattern.",
			Buckets: durationBuckets,
		}, []string{"surface", "route"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "http_requests_in_flight",
			Help: "HTTP requests being answered, by surface.",
		}, []string{"surface"}),
	}
}

func (h *httpMetrics) register(reg prometheus.Registerer) {
	reg.MustRegister(h.requests, h.duration, h.inFlight)
}

// Instrument counts and times the requests h answers. surface names the
// part of the control plane a request is for (one of the Surface
// constants; any other value, or a nil surface, counts as SurfaceOther);
// it is called before h. The route is the pattern of the ServeMux that
// routed the request, read from the request after h returns: a ServeMux
// sets http.Request.Pattern on the request it is given, so h (and muxes
// nested in it) must route the very request Instrument passes, or copy
// the pattern back to it (as web/devportal's ServeHTTP does). On a nil
// *Metrics, Instrument returns h.
func (m *Metrics) Instrument(h http.Handler, surface func(*http.Request) string) http.Handler {
	if m == nil {
		return h
	}
	hm := m.http
	if surface == nil {
		surface = Surface(SurfaceOther)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := surfaceLabel(surface(r))
		method := methodLabel(r.Method)
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		inFlight := hm.inFlight.WithLabelValues(s)
		inFlight.Inc()
		defer func() {
			p := recover()
			inFlight.Dec()
			status := sw.status
			switch {
			case p != nil && status == 0:
				status = http.StatusInternalServerError
			case status == 0:
				status = http.StatusOK // nothing written: net/http answers 200
			}
			route := routeLabel(r.Pattern)
			hm.requests.WithLabelValues(s, method, route, classLabel(status)).Inc()
			hm.duration.WithLabelValues(s, route).Observe(time.Since(start).Seconds())
			if p != nil {
				panic(p) // to net/http, which logs it (or aborts quietly on http.ErrAbortHandler)
			}
		}()
		h.ServeHTTP(sw, r)
	})
}

// Surface returns a surface function that always answers s.
func Surface(s string) func(*http.Request) string {
	return func(*http.Request) string { return s }
}

func surfaceLabel(s string) string {
	switch s {
	case SurfaceV1, SurfacePortal, SurfaceDevPortal, SurfaceWebhook:
		return s
	}
	return SurfaceOther
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodOptions:
		return m
	}
	return "OTHER"
}

// routeLabel is the route label of a matched pattern. Patterns are the
// code's, registered at start, so their number is bounded; the length cap
// only guards against a pattern built from data by mistake.
func routeLabel(pattern string) string {
	if pattern == "" || len(pattern) > 200 {
		return UnknownRoute
	}
	return pattern
}

func classLabel(status int) string {
	switch status / 100 {
	case 1:
		return "1xx"
	case 2:
		return "2xx"
	case 3:
		return "3xx"
	case 4:
		return "4xx"
	case 5:
		return "5xx"
	}
	return "other"
}

// statusWriter records the status of the answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	// Informational answers (103 Early Hints) precede the real one;
	// 101 Switching Protocols is final.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush passes a flush on (handlers that stream test for http.Flusher).
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
