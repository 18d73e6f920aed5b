// Package tracingtest is an OTLP/HTTP trace receiver for tests: an
// httptest server that accepts what an OpenTelemetry exporter POSTs to
// /v1/traces (protobuf, gzip or not), decodes it with the OTLP protocol
// types and keeps the spans for the test to look at.
package tracingtest

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened for assertions.
type Span struct {
	// Service is the service.name of the span's resource, and Scope its
	// instrumentation scope.
	Service, Scope string
	// TraceID, SpanID and ParentSpanID are lower-case hex ("" for no parent).
	TraceID, SpanID, ParentSpanID string
	// TraceState is the span's W3C tracestate.
	TraceState string
	Name       string
	Kind       tracepb.Span_SpanKind
	// Attributes are the span's attributes (string, int64, bool or
	// float64 values).
	Attributes map[string]any
	// Events are the names of the span's events, in order; EventAttributes
	// their attributes.
	Events          []string
	EventAttributes []map[string]any
	Status          tracepb.Status_StatusCode
	Start, End      time.Time
}

// Receiver is a running OTLP/HTTP trace receiver.
type Receiver struct {
	// Endpoint is the URL to export to: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	// (it ends in /v1/traces).
	Endpoint string
	// BaseURL is the server's root: OTEL_EXPORTER_OTLP_ENDPOINT.
	BaseURL string

	srv      *httptest.Server
	discard  bool
	mu       sync.Mutex
	spans    []Span
	requests int
	errs     []string
	changed  chan struct{}
}

// New starts a receiver, closed when the test ends; a request it cannot
// decode fails the test.
func New(tb testing.TB) *Receiver { return start(tb, false) }

// NewDiscard starts a receiver that reads and counts export requests but
// decodes and keeps nothing, for benchmarks: what they measure is then the
// exporting side's cost, not the receiver's.
func NewDiscard(tb testing.TB) *Receiver { return start(tb, true) }

func start(tb testing.TB, discard bool) *Receiver {
	tb.Helper()
	r := &Receiver{changed: make(chan struct{}, 1), discard: discard}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.serve)
	r.srv = httptest.NewServer(mux)
	r.BaseURL = r.srv.URL
	r.Endpoint = r.srv.URL + "/v1/traces"
	tb.Cleanup(func() {
		r.srv.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, e := range r.errs {
			tb.Errorf("otlp receiver: %s", e)
		}
	})
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if r.discard {
		_, _ = io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		r.requests++
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			r.fail(w, "gzip: "+err.Error())
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		r.fail(w, "read: "+err.Error())
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		r.fail(w, "content type "+ct+", want application/x-protobuf")
		return
	}
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &msg); err != nil {
		r.fail(w, "decode: "+err.Error())
		return
	}
	var got []Span
	for _, rs := range msg.GetResourceSpans() {
		service, _ := attrMap(rs.GetResource().GetAttributes())["service.name"].(string)
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{Service: service, Scope: ss.GetScope().GetName(),
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentSpanID: hex.EncodeToString(s.GetParentSpanId()), TraceState: s.GetTraceState(), Name: s.GetName(), Kind: s.GetKind(),
					Attributes: attrMap(s.GetAttributes()), Status: s.GetStatus().GetCode(),
					Start: time.Unix(0, int64(s.GetStartTimeUnixNano())), End: time.Unix(0, int64(s.GetEndTimeUnixNano()))}
				for _, e := range s.GetEvents() {
					sp.Events = append(sp.Events, e.GetName())
					sp.EventAttributes = append(sp.EventAttributes, attrMap(e.GetAttributes()))
				}
				got = append(got, sp)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.requests++
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (r *Receiver) fail(w http.ResponseWriter, msg string) {
	r.mu.Lock()
	r.errs = append(r.errs, msg)
	r.mu.Unlock()
	http.Error(w, msg, http.StatusBadRequest)
}

// Spans returns the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Requests is the number of export requests received.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// Wait returns the first span received that match accepts, waiting up to
// timeout for it; it fails the test if none comes.
func (r *Receiver) Wait(tb testing.TB, timeout time.Duration, what string, match func(Span) bool) Span {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		for _, s := range r.Spans() {
			if match(s) {
				return s
			}
		}
		select {
		case <-r.changed:
		case <-deadline:
			tb.Fatalf("no span %s within %s; received: %+v", what, timeout, r.Spans())
			return Span{}
		}
	}
}

func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = x.IntValue
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = x.BoolValue
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = x.DoubleValue
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}
