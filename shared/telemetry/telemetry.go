// Package telemetry holds what every GameMetrics process reports about
// itself: JSON logs through log/slog (with the trace_id of the span being
// served), Prometheus metrics named gamemetrics_<function>_<what>_<unit>
// on a registry owned by the process (never the global default one), and
// OpenTelemetry traces over OTLP/HTTP, off unless an endpoint is set, with
// the trace carried from ingest to process on each event (the CloudEvents
// distributed-tracing extension) and PostgreSQL queries as child spans.
package telemetry

import (
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewLogger returns a JSON logger at level ("debug", "info", "warn",
// "error"; default info) that tags every line with the function name, and
// with trace_id and span_id when logged with the context of a traced span.
func NewLogger(w io.Writer, level, function string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn", "warning":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})
	lg := slog.New(WithTraceIDs(h))
	if function != "" {
		lg = lg.With("function", function)
	}
	return lg
}

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler serves the registry in the Prometheus exposition format.
func Handler(r *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(r, promhttp.HandlerOpts{Registry: r})
}

// LatencyBuckets suit request handling measured in seconds, from 100µs to 10s.
func LatencyBuckets() []float64 {
	return []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}
