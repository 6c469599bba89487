package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Instrumentation is the name of every GameMetrics tracer.
const Instrumentation = "github.com/gamemetrics/gamemetrics"

// The CloudEvents distributed-tracing extension: the W3C trace context of
// the span that produced an event, carried as two extension attributes
// (ce_traceparent / ce_tracestate headers on a Kafka record).
const (
	ExtTraceParent = "traceparent"
	ExtTraceState  = "tracestate"
)

// traceContext is the W3C Trace Context propagator. It is a value used
// where needed; nothing is installed as otel's global propagator.
var traceContext propagation.TraceContext

// Tracing is a process's trace pipeline. Provider is a no-op unless an
// OTLP endpoint is configured, so code can always start spans through it.
type Tracing struct {
	Provider trace.TracerProvider
	shutdown func(context.Context) error
}

// NewTracing builds the trace pipeline of a process running function
// (service.name gamemetrics-<function>, unless OTEL_SERVICE_NAME says
// otherwise) from getenv. Tracing is off (a no-op provider, no goroutine,
// no connection) unless OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (a full URL,
// used as is) or OTEL_EXPORTER_OTLP_ENDPOINT (a base URL; /v1/traces is
// appended) is set, or when OTEL_SDK_DISABLED=true. Spans go in batches to
// the endpoint over OTLP/HTTP protobuf; the sampler follows
// OTEL_TRACES_SAMPLER (default: parent-based, always on), and the other
// OTEL_EXPORTER_OTLP_* settings (headers, timeout, compression) act as the
// OpenTelemetry SDK documents them.
func NewTracing(ctx context.Context, getenv func(string) string, function string) (*Tracing, error) {
	off := &Tracing{Provider: noop.NewTracerProvider(), shutdown: func(context.Context) error { return nil }}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return off, nil
	}
	endpoint := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	if endpoint == "" {
		if base := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")); base != "" {
			endpoint = strings.TrimRight(base, "/") + "/v1/traces"
		}
	}
	if endpoint == "" {
		return off, nil
	}
	if !strings.HasPrefix(endpoint, "http://") && !strings.HasPrefix(endpoint, "https://") {
		return nil, fmt.Errorf("OTLP endpoint %q: want an http:// or https:// URL (OTLP/HTTP, port 4318 by default)", endpoint)
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := strings.TrimSpace(getenv(name)); p != "" {
			if p != "http/protobuf" {
				return nil, fmt.Errorf("%s=%s: GameMetrics exports traces over http/protobuf only", name, p)
			}
			break
		}
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	service := strings.TrimSpace(getenv("OTEL_SERVICE_NAME"))
	if service == "" {
		service = "gamemetrics"
		if function != "" {
			service += "-" + function
		}
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(service), semconv.ServiceNamespace("gamemetrics")}
	if function != "" {
		attrs = append(attrs, attribute.String("gamemetrics.function", function))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, attrs...)),
	)
	return &Tracing{Provider: tp, shutdown: tp.Shutdown}, nil
}

// Enabled reports whether spans are exported.
func (t *Tracing) Enabled() bool {
	_, ok := t.Provider.(*sdktrace.TracerProvider)
	return ok
}

// Shutdown exports the spans still buffered and stops the pipeline.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if err := t.shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

// Tracer is the provider's GameMetrics tracer; a nil provider traces
// nothing.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(Instrumentation)
}

// TraceParent returns the W3C traceparent and tracestate of the span in
// ctx, empty when there is no valid one (tracing off).
func TraceParent(ctx context.Context) (traceparent, tracestate string) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return "", ""
	}
	c := propagation.MapCarrier{}
	traceContext.Inject(ctx, c)
	return c[ExtTraceParent], c[ExtTraceState]
}

// WithRemoteParent returns ctx carrying the remote span context of a
// W3C traceparent/tracestate pair (an HTTP request's headers, an event's
// extensions); ctx unchanged when traceparent is empty or malformed.
func WithRemoteParent(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return traceContext.Extract(ctx, propagation.MapCarrier{ExtTraceParent: traceparent, ExtTraceState: tracestate})
}

// TakeTraceParent removes the distributed-tracing extension from a
// delivered event and returns it (empty when absent). The extension
// describes the delivery, not the event, so it is neither stored with the
// event nor part of its identity; pass it to WithRemoteParent to continue
// the producer's trace.
func TakeTraceParent(e *event.Event) (traceparent, tracestate string) {
	if e.Context == nil {
		return "", ""
	}
	if v, err := e.Context.GetExtension(ExtTraceParent); err == nil {
		traceparent, _ = v.(string)
		_ = e.Context.SetExtension(ExtTraceParent, nil)
	}
	if v, err := e.Context.GetExtension(ExtTraceState); err == nil {
		tracestate, _ = v.(string)
		_ = e.Context.SetExtension(ExtTraceState, nil)
	}
	return traceparent, tracestate
}

// EndHTTPSpan ends a server span with the status of its answer
// (http.response.status_code); a 5xx marks the span an error, a 4xx does
// not (the client's fault, per the HTTP semantic conventions). Status 0
// means no answer was written.
func EndHTTPSpan(span trace.Span, status int) {
	if status > 0 {
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	}
	if status >= 500 || status == 0 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// EndSpan records err (if any) on span and ends it.
func EndSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
