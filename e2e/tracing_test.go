package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/gamemetrics/gamemetrics/functions"
	"github.com/gamemetrics/gamemetrics/functions/functionstest"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// otlpReceiver is an OTLP/HTTP trace endpoint (POST /v1/traces, protobuf)
// that keeps every span it is sent, with its resource's service.name.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []receivedSpan
	bad   []string
}

type receivedSpan struct {
	service string
	*tracepb.Span
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		o.fail(w, fmt.Sprintf("%s %s (%s): want POST /v1/traces application/x-protobuf", r.Method, r.URL.Path, r.Header.Get("Content-Type")))
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			o.fail(w, err.Error())
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		o.fail(w, err.Error())
		return
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		o.fail(w, "decode ExportTraceServiceRequest: "+err.Error())
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				o.spans = append(o.spans, receivedSpan{service, s})
			}
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (o *otlpReceiver) fail(w http.ResponseWriter, why string) {
	o.mu.Lock()
	o.bad = append(o.bad, why)
	o.mu.Unlock()
	http.Error(w, why, http.StatusBadRequest)
}

func (o *otlpReceiver) received() ([]receivedSpan, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]receivedSpan(nil), o.spans...), append([]string(nil), o.bad...)
}

// One event sent to ingest with OTEL_EXPORTER_OTLP_ENDPOINT set: its
// spans, exported over OTLP/HTTP by ingest and process, form one trace
// from ingest's request span through the Kafka produce to process's span
// for the delivered event (its parent chain reaches ingest's span), with
// PostgreSQL queries as child spans; and the event is stored without the
// traceparent extension that carried the trace.
func TestOneEventsSpansLinkUpFromIngestToProcess(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	t.Cleanup(collector.Close)

	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	deps := functions.NewDeps(func(name string) string {
		switch name {
		case "OTEL_EXPORTER_OTLP_ENDPOINT":
			return collector.URL
		case "OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED":
			return "" // whatever the machine's environment says
		}
		return stack.Getenv(name)
	}, log)
	pool := devstacktest.Connect(t, stack).Pool
	game, keys, err := store.NewGames(pool).Create(ctx, t.Name(), "UTC")
	if err != nil {
		t.Fatal(err)
	}
	servers := functionstest.Platform(t, deps, log, "../eventing/base", stack.KafkaBrokers, telemetry.NewRegistry())

	id := "trace-" + fmt.Sprint(time.Now().UnixNano())
	body := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"game://tracing","type":"com.gamemetrics.session.start",`+
		`"subject":"player-1","sessionid":"s-1","time":%q,"datacontenttype":"application/json",`+
		`"data":{"platform":"ios","app_version":"1.0.0","country":"DE"}}`, id, time.Now().UTC().Format(time.RFC3339Nano))
	req, _ := http.NewRequest(http.MethodPost, servers.URL(serving.Ingest), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("Authorization", "Bearer "+keys.Write)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ingest answered %s: %s", resp.Status, answer)
	}

	// Stored once process has committed it.
	deadline := time.Now().Add(60 * time.Second)
	var ext *string
	for {
		err := pool.QueryRow(ctx, `SELECT extensions::text FROM events WHERE gameid = $1 AND id = $2`, game.ID, id).Scan(&ext)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s not stored within a minute: %v", id, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ext != nil && strings.Contains(*ext, "trace") {
		t.Errorf("event stored with its delivery's trace context: extensions %s", *ext)
	}

	// Stop the functions and eventing, then flush every trace pipeline.
	servers.StopAll()
	deps.Close()

	spans, bad := recv.received()
	for _, b := range bad {
		t.Errorf("OTLP receiver refused an export: %s", b)
	}
	byID := map[string]receivedSpan{}
	for _, s := range spans {
		byID[hex.EncodeToString(s.SpanId)] = s
	}
	find := func(service, name string, match func(receivedSpan) bool) receivedSpan {
		t.Helper()
		for _, s := range spans {
			if s.service == service && s.Name == name && (match == nil || match(s)) {
				return s
			}
		}
		t.Fatalf("no span %q of %s among %d spans:\n%s", name, service, len(spans), describe(spans))
		return receivedSpan{}
	}
	ingestSpan := find("gamemetrics-ingest", "ingest POST /", nil)
	processSpan := find("gamemetrics-process", "process event", func(s receivedSpan) bool {
		return attr(s.Span, "cloudevents.event_id") == id
	})
	if !bytes.Equal(processSpan.TraceId, ingestSpan.TraceId) {
		t.Fatalf("process span in trace %x, ingest span in trace %x", processSpan.TraceId, ingestSpan.TraceId)
	}
	// The parent chain from process's span reaches ingest's request span.
	chain := []string{processSpan.Name}
	for s := processSpan; !bytes.Equal(s.SpanId, ingestSpan.SpanId); {
		parent, ok := byID[hex.EncodeToString(s.ParentSpanId)]
		if len(s.ParentSpanId) == 0 || !ok {
			t.Fatalf("the parent chain %s ends at %q (parent %x not exported) before ingest's span", strings.Join(chain, " ← "), s.Name, s.ParentSpanId)
		}
		s = parent
		chain = append(chain, s.Name)
	}
	if got := intAttr(ingestSpan.Span, "http.response.status_code"); got != http.StatusAccepted {
		t.Errorf("ingest span: http.response.status_code %d, want 202", got)
	}
	if processSpan.Kind != tracepb.Span_SPAN_KIND_CONSUMER || ingestSpan.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("span kinds: ingest %v, process %v", ingestSpan.Kind, processSpan.Kind)
	}
	// Kafka produce and PostgreSQL queries are child spans.
	produce := find("gamemetrics-ingest", "kafka produce", func(s receivedSpan) bool { return bytes.Equal(s.ParentSpanId, ingestSpan.SpanId) })
	if got := attr(produce.Span, "messaging.destination.name"); got != "gamemetrics.events" {
		t.Errorf("kafka produce span: destination %q", got)
	}
	if produce.Kind != tracepb.Span_SPAN_KIND_PRODUCER {
		t.Errorf("kafka produce span kind %v", produce.Kind)
	}
	for _, s := range spans {
		if strings.HasPrefix(s.Name, "postgresql ") && len(s.ParentSpanId) == 0 {
			t.Errorf("PostgreSQL span %q is a root span: queries are traced only under a request or event", s.Name)
		}
	}
	// The write key lookup of a fresh key is a query under the request.
	find("gamemetrics-ingest", "postgresql SELECT", func(s receivedSpan) bool {
		return bytes.Equal(s.TraceId, ingestSpan.TraceId) && attr(s.Span, "db.system.name") == "postgresql"
	})
	t.Logf("trace %x: %s", ingestSpan.TraceId, strings.Join(chain, " ← "))
}

func attr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

func intAttr(s *tracepb.Span, key string) int64 {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.GetValue().GetIntValue()
		}
	}
	return 0
}

func describe(spans []receivedSpan) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s %q trace %x span %x parent %x\n", s.service, s.Name, s.TraceId, s.SpanId, s.ParentSpanId)
	}
	return b.String()
}
