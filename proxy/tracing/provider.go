package tracing

import (
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// NewProvider makes an SDK tracer provider that batches spans to exp
// (the batch processor reads OTEL_BSP_* itself and starts its goroutine
// here), describes them with res, and samples with s. Its id generator
// lets Tracer.Start give a root span the trace id it sampled by. Shut it
// down (TracerProvider.Shutdown) to flush what is queued.
func NewProvider(exp sdktrace.SpanExporter, res *resource.Resource, s Sampler) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(s),
		sdktrace.WithIDGenerator(idGenerator{}),
	)
}
