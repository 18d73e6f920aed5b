package tracing

import (
	"context"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// presetTraceID is the context key of a trace id the worker drew (and
// sampled by) before it asked the SDK for a root span.
type presetTraceID struct{}

// idGenerator is the providers' id generator: random ids, like the SDK's,
// except that a root span whose context carries a preset trace id gets
// that one. The worker decides on a trace id before it starts a span (see
// Tracer.Start); the span must have the id the decision was made on.
type idGenerator struct{}

var _ sdktrace.IDGenerator = idGenerator{}

// NewIDs implements sdktrace.IDGenerator.
func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if tid, ok := ctx.Value(presetTraceID{}).(trace.TraceID); ok && tid.IsValid() {
		return tid, newSpanID()
	}
	return newTraceID(), newSpanID()
}

// NewSpanID implements sdktrace.IDGenerator.
func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }
