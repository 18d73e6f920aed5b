package main

// Tracing: OpenTelemetry spans exported over OTLP/HTTP (protobuf), from the
// control plane (a span per request, named by route pattern) and from the
// workers (proxy/tracing). Off unless an OTLP endpoint is set: then nothing
// is built and no goroutine runs.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tollgate/tollgate/proxy/tracing"
)

// Default service names (OTEL_SERVICE_NAME overrides them).
const (
	serviceControl = "tollgate-control"
	serviceProxy   = "tollgate-proxy"
)

// tracingShutdownTimeout bounds the flush of queued spans at exit.
const tracingShutdownTimeout = 5 * time.Second

// tracingSetup is a process's tracing: an SDK provider batching spans to
// an OTLP/HTTP exporter. A nil *tracingSetup is tracing off; its methods
// then answer nil and do nothing.
type tracingSetup struct {
	tp      *sdktrace.TracerProvider
	sampler tracing.Sampler
}

// newTracing sets up the tracing of a process whose service is named
// service unless OTEL_SERVICE_NAME (or service.name in
// OTEL_RESOURCE_ATTRIBUTES) says otherwise. It reads, through getenv:
//
//   - OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the URL spans are POSTed to, as
//     is) or OTEL_EXPORTER_OTLP_ENDPOINT (a base URL: /v1/traces is
//     appended). With neither, tracing is off: newTracing returns nil.
//   - OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none: off as well;
//     another exporter than otlp is an error.
//   - OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL: http/protobuf only.
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
//     (tracing.SamplerFromEnv: parentbased_traceidratio at 1% unset).
//
// The SDK and the exporter read the rest from the process environment
// themselves: OTEL_EXPORTER_OTLP_(TRACES_)HEADERS, _TIMEOUT, _COMPRESSION,
// _CERTIFICATE, _CLIENT_KEY, _CLIENT_CERTIFICATE, OTEL_BSP_*,
// OTEL_SPAN_*_LIMIT, OTEL_RESOURCE_ATTRIBUTES. Export errors are logged to
// log, at most once a minute.
func newTracing(ctx context.Context, getenv func(string) string, service string, log *slog.Logger) (*tracingSetup, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, nil
	}
	switch exp := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); exp {
	case "", "otlp":
	case "none":
		return nil, nil
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%s is not supported (otlp or none)", exp)
	}
	endpoint, err := tracesEndpoint(getenv)
	if err != nil || endpoint == "" {
		return nil, err
	}
	proto := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if proto == "" {
		proto = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	if proto != "" && proto != "http/protobuf" {
		return nil, fmt.Errorf("OTLP protocol %q is not supported: Tollgate exports traces with http/protobuf (usually port 4318)", proto)
	}
	sampler, err := tracing.SamplerFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	routeOTelErrors(log)
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	res, err := tracingResource(ctx, getenv, service)
	if err != nil {
		// A partial resource (a malformed OTEL_RESOURCE_ATTRIBUTES) still
		// names the service; say what was left out.
		log.Warn("trace resource incomplete", "err", err)
	}
	log.Info("tracing on", "endpoint", endpoint, "sampler", sampler.Description(),
		"service", serviceName(res, service))
	return &tracingSetup{tp: tracing.NewProvider(exp, res, sampler), sampler: sampler}, nil
}

// tracesEndpoint is the URL spans are exported to ("" when none is set).
func tracesEndpoint(getenv func(string) string) (string, error) {
	name, raw := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	if raw == "" {
		name, raw = "OTEL_EXPORTER_OTLP_ENDPOINT", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
		if raw == "" {
			return "", nil
		}
		// The signal's path is appended to the base URL (the
		// specification's rule for the generic variable).
		raw = strings.TrimRight(raw, "/") + "/v1/traces"
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s: %q is not an http:// or https:// URL", name, raw)
	}
	return raw, nil
}

// tracingResource describes the process: service.name (OTEL_SERVICE_NAME,
// else service.name of OTEL_RESOURCE_ATTRIBUTES, else service), the SDK,
// the host and OTEL_RESOURCE_ATTRIBUTES.
func tracingResource(ctx context.Context, getenv func(string) string, service string) (*resource.Resource, error) {
	opts := []resource.Option{
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
	}
	if name := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); name != "" {
		opts = append(opts, resource.WithAttributes(semconv.ServiceName(name)))
	}
	return resource.New(ctx, opts...)
}

// serviceName is the service.name res gives, else def.
func serviceName(res *resource.Resource, def string) string {
	if v, ok := res.Set().Value(semconv.ServiceNameKey); ok {
		return v.AsString()
	}
	return def
}

var otelErrorsOnce sync.Once

// routeOTelErrors sends the SDK's and the exporter's errors (an
// unreachable collector, say) to log, at most one a minute with a count of
// those left out. The SDK reports them through one process-wide handler,
// so the first process part to turn tracing on sets it.
func routeOTelErrors(log *slog.Logger) {
	otelErrorsOnce.Do(func() {
		var mu sync.Mutex
		var last time.Time
		var skipped int
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			mu.Lock()
			defer mu.Unlock()
			if now := time.Now(); now.Sub(last) >= time.Minute {
				log.Warn("tracing error", "err", err, "suppressed", skipped)
				last, skipped = now, 0
				return
			}
			skipped++
		}))
	})
}

// provider is the tracer provider of the control plane's spans; nil when
// tracing is off.
func (t *tracingSetup) provider() trace.TracerProvider {
	if t == nil {
		return nil
	}
	return t.tp
}

// worker is a worker's request tracer; nil when tracing is off.
func (t *tracingSetup) worker() *tracing.Tracer {
	if t == nil {
		return nil
	}
	return tracing.NewTracer(t.tp, t.sampler)
}

// shutdown flushes the spans still queued and stops the exporter, within
// tracingShutdownTimeout.
func (t *tracingSetup) shutdown(log *slog.Logger) {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
	defer cancel()
	if err := t.tp.Shutdown(ctx); err != nil {
		log.Warn("tracing shutdown: spans may be lost", "err", err)
	}
}

// traceHTTP gives every request h serves a server span, continued from the
// request's traceparent, named by the route pattern that served it ("GET
// /v1/apis/{id}", or the method alone when no pattern did) with
// http.route and tollgate.surface (surface(r): v1, portal, devportal,
// webhook, other) among its attributes. Like ctlmetrics.Instrument, it
// reads the pattern from the request it passes down, so h must route that
// very request (or copy the pattern back to it). With tp nil it returns h.
func traceHTTP(h http.Handler, tp trace.TracerProvider, surface func(*http.Request) string) http.Handler {
	if tp == nil {
		return h
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		attrs := []attribute.KeyValue{attribute.String("tollgate.surface", surface(r))}
		if route := patternRoute(r.Pattern); route != "" {
			attrs = append(attrs, semconv.HTTPRoute(route))
		}
		trace.SpanFromContext(r.Context()).SetAttributes(attrs...)
	})
	return otelhttp.NewHandler(inner, serviceControl,
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
	)
}

// patternRoute is the path template of a ServeMux pattern
// ("GET example.com/v1/apis/{id}" → "/v1/apis/{id}"), "" for none.
func patternRoute(pattern string) string {
	if i := strings.IndexByte(pattern, '/'); i >= 0 && len(pattern) <= 200 {
		return pattern[i:]
	}
	return ""
}
