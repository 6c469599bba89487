package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestNewTracingIsOffUnlessAnEndpointIsSet(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		enabled bool
		err     string
	}{
		{"nothing set", nil, false, ""},
		{"base endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, ""},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://tempo:4318/v1/traces"}, true, ""},
		{"disabled wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, false, ""},
		{"grpc refused", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, "http/protobuf only"},
		{"traces protocol first", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true, ""},
		{"no scheme", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"}, false, "http:// or https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := NewTracing(context.Background(), env(tt.env), "ingest")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			if tr.Enabled() != tt.enabled {
				t.Errorf("enabled %v, want %v", tr.Enabled(), tt.enabled)
			}
		})
	}
}

// Spans reach the endpoint's /v1/traces (the base URL) or the traces URL
// as given, when the pipeline shuts down.
func TestNewTracingExportsToTheEndpoint(t *testing.T) {
	for _, tt := range []struct{ name, path string }{
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "/v1/traces"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "/custom/traces"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var paths []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				paths = append(paths, r.URL.Path+" "+r.Header.Get("Content-Type"))
				mu.Unlock()
			}))
			defer srv.Close()
			url := srv.URL + "/"
			if tt.path == "/custom/traces" {
				url = srv.URL + tt.path
			}
			tr, err := NewTracing(context.Background(), env(map[string]string{tt.name: url}), "process")
			if err != nil {
				t.Fatal(err)
			}
			_, span := Tracer(tr.Provider).Start(context.Background(), "x")
			span.End()
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(paths) != 1 || paths[0] != tt.path+" application/x-protobuf" {
				t.Errorf("exports %q, want one to %s", paths, tt.path)
			}
		})
	}
}

func TestTraceParentCrossesAnEventAndIsTakenOff(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "ingest")
	defer span.End()
	parent, state := TraceParent(ctx)
	if want := "00-" + span.SpanContext().TraceID().String() + "-" + span.SpanContext().SpanID().String() + "-01"; parent != want || state != "" {
		t.Fatalf("TraceParent = %q %q, want %q", parent, state, want)
	}
	if p, s := TraceParent(context.Background()); p != "" || s != "" {
		t.Errorf("TraceParent without a span = %q %q", p, s)
	}

	e := event.New()
	e.SetExtension(ExtTraceParent, parent)
	e.SetExtension(ExtTraceState, "vendor=1")
	e.SetExtension("gameid", "g")
	gotParent, gotState := TakeTraceParent(&e)
	if gotParent != parent || gotState != "vendor=1" {
		t.Errorf("TakeTraceParent = %q %q", gotParent, gotState)
	}
	if _, ok := e.Extensions()[ExtTraceParent]; ok || len(e.Extensions()) != 1 {
		t.Errorf("extensions left: %v, want gameid only", e.Extensions())
	}
	remote := trace.SpanContextFromContext(WithRemoteParent(context.Background(), gotParent, gotState))
	if !remote.IsRemote() || remote.TraceID() != span.SpanContext().TraceID() || remote.SpanID() != span.SpanContext().SpanID() || remote.TraceState().Get("vendor") != "1" {
		t.Errorf("remote parent %+v", remote)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-0000000000000000-01"} {
		if sc := trace.SpanContextFromContext(WithRemoteParent(context.Background(), bad, "")); sc.IsValid() {
			t.Errorf("traceparent %q gave a valid parent", bad)
		}
	}
	plain := event.New()
	if p, s := TakeTraceParent(&plain); p != "" || s != "" {
		t.Errorf("an event without the extension gave %q %q", p, s)
	}
}

func TestLogsCarryTheTraceIDOfTheirContext(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, "info", "ingest").With("gameid", "g")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "x")
	span.End()
	log.InfoContext(ctx, "traced")
	log.Info("untraced")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log lines: %q", lines)
	}
	var traced, untraced map[string]any
	json.Unmarshal([]byte(lines[0]), &traced)
	json.Unmarshal([]byte(lines[1]), &untraced)
	if traced["trace_id"] != span.SpanContext().TraceID().String() || traced["span_id"] != span.SpanContext().SpanID().String() ||
		traced["function"] != "ingest" || traced["gameid"] != "g" {
		t.Errorf("traced line %v", traced)
	}
	if _, ok := untraced["trace_id"]; ok {
		t.Errorf("untraced line has a trace_id: %v", untraced)
	}
	var _ slog.Handler = WithTraceIDs(slog.DiscardHandler)
}

func TestPgxTracerMakesChildSpansOnlyUnderATracedParent(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	var tr PgxTracer

	// Untraced: the context is handed back as is, nothing recorded.
	bg := context.Background()
	if got := tr.TraceQueryStart(bg, nil, pgx.TraceQueryStartData{SQL: "SELECT 1"}); got != bg {
		t.Error("an untraced query got a new context")
	}
	tr.TraceQueryEnd(bg, nil, pgx.TraceQueryEndData{})

	ctx, parent := tp.Tracer("t").Start(bg, "request")
	qctx := tr.TraceQueryStart(ctx, nil, pgx.TraceQueryStartData{SQL: "  select id FROM games WHERE key = $1", Args: []any{"secret"}})
	tr.TraceQueryEnd(qctx, nil, pgx.TraceQueryEndData{Err: errors.New("boom")})
	bctx := tr.TraceBatchStart(ctx, nil, pgx.TraceBatchStartData{Batch: &pgx.Batch{}})
	tr.TraceBatchEnd(bctx, nil, pgx.TraceBatchEndData{})
	cctx := tr.TraceCopyFromStart(ctx, nil, pgx.TraceCopyFromStartData{TableName: pgx.Identifier{"events"}})
	tr.TraceCopyFromEnd(cctx, nil, pgx.TraceCopyFromEndData{})
	parent.End()

	ended := rec.Ended()
	var names []string
	for _, s := range ended {
		names = append(names, s.Name())
		if s.Name() == "request" {
			continue
		}
		if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanKind() != trace.SpanKindClient {
			t.Errorf("%s: parent %v kind %v", s.Name(), s.Parent().SpanID(), s.SpanKind())
		}
		for _, a := range s.Attributes() {
			if strings.Contains(a.Value.Emit(), "secret") {
				t.Errorf("%s records an argument: %v", s.Name(), a)
			}
		}
	}
	if got, want := strings.Join(names, ", "), `postgresql SELECT, postgresql batch, postgresql COPY "events", request`; got != want {
		t.Errorf("spans %s, want %s", got, want)
	}
	if st := ended[0].Status(); st.Description != "boom" {
		t.Errorf("failed query's status %+v", st)
	}
}

func TestEndHTTPSpanRecordsTheStatusAndFailsOnlyServerErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		want   codes.Code
	}{
		{"an accepted request is no error", 202, codes.Unset},
		{"a client's mistake is no error of the server", 422, codes.Unset},
		{"a server fault is an error", 503, codes.Error},
		{"no answer written is an error", 0, codes.Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			_, span := tp.Tracer("t").Start(context.Background(), "request")
			EndHTTPSpan(span, tt.status)
			ended := rec.Ended()
			if len(ended) != 1 {
				t.Fatalf("%d spans ended", len(ended))
			}
			s := ended[0]
			if s.Status().Code != tt.want {
				t.Errorf("status %v, want %v", s.Status().Code, tt.want)
			}
			var got int64 = -1
			for _, a := range s.Attributes() {
				if a.Key == "http.response.status_code" {
					got = a.Value.AsInt64()
				}
			}
			if tt.status > 0 && got != int64(tt.status) {
				t.Errorf("http.response.status_code %d, want %d", got, tt.status)
			}
			if tt.status == 0 && got != -1 {
				t.Errorf("http.response.status_code %d on a span without an answer", got)
			}
		})
	}
}
