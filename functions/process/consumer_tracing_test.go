package process

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// The direct consumer (`serve process --from-kafka`) continues the trace
// of every record, as Handle does for a KafkaSource delivery: each record
// whose event carries a traceparent gets a consumer span, child of the
// producer's span, ended once the event is durable (or, for an event
// refused, with the reason); each poll's write is a span linked to them;
// and the events are stored without the extension.
func TestConsumerContinuesEachRecordsTrace(t *testing.T) {
	setup(t)
	game := newGame(t, "UTC")
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	p := New(DefaultConfig(), pool, rdb, testLogger(t), prometheus.NewRegistry(), WithTracerProvider(tp))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	topic := "process-trace-test-" + game.ID
	prod, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := kadm.NewClient(prod).CreateTopic(ctx, 2, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	// Each event produced under a span of its own (as ingest's request
	// span), its context on the event as the distributed-tracing extension.
	g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(19, 19))}
	evs := g.Players(5, simtest.Traffic{From: time.Now().Add(-2 * time.Hour), Span: time.Hour})
	bad := g.Event("com.example.unknown", "p", "", time.Now(), `{}`)
	evs = append(evs, bad)
	producer := tp.Tracer("test")
	parents := map[string]trace.SpanContext{} // event id: the span that produced it
	var recs []*kgo.Record
	for _, e := range evs {
		pctx, span := producer.Start(ctx, "produce "+e.ID())
		tparent, _ := telemetry.TraceParent(pctx)
		span.End()
		e.SetExtension(telemetry.ExtTraceParent, tparent)
		parents[e.ID()] = span.SpanContext()
		r, err := kafka.Record(ctx, &e, topic, game.ID+"/"+e.Subject())
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cfg := DefaultConsumerConfig()
	cfg.Topic, cfg.Group = topic, "group-"+game.ID
	c, err := NewConsumer(p, kafka.Config{Brokers: stack.KafkaBrokers}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(rctx) }()
	adm := kadm.NewClient(prod)
	for {
		offs, err := adm.FetchOffsets(ctx, cfg.Group)
		var total int64
		if err == nil {
			offs.Each(func(o kadm.OffsetResponse) { total += o.At })
		}
		if total == int64(len(recs)) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("committed %d of %d offsets", total, len(recs))
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-ran; err != nil {
		t.Errorf("run: %v", err)
	}
	c.Close()
	drain(t, p)

	consumed := map[string]sdktrace.ReadOnlySpan{}
	var batches []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "process event":
			for _, a := range s.Attributes() {
				if a.Key == "cloudevents.event_id" {
					consumed[a.Value.AsString()] = s
				}
			}
		case "process batch":
			batches = append(batches, s)
		}
	}
	for id, parent := range parents {
		s, ok := consumed[id]
		if !ok {
			t.Errorf("event %s: no ended process event span (got %d)", id, len(consumed))
			continue
		}
		if s.Parent().SpanID() != parent.SpanID() || s.SpanContext().TraceID() != parent.TraceID() {
			t.Errorf("event %s: span's parent %s/%s, want the producer's %s/%s", id,
				s.Parent().TraceID(), s.Parent().SpanID(), parent.TraceID(), parent.SpanID())
		}
		if s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("event %s: span kind %v", id, s.SpanKind())
		}
		if wantErr := id == bad.ID(); (s.Status().Code == codes.Error) != wantErr {
			t.Errorf("event %s: span status %v %q, want an error only for the refused event", id, s.Status().Code, s.Status().Description)
		}
	}
	if len(batches) == 0 {
		t.Fatal("no process batch span")
	}
	linked := map[trace.SpanID]bool{}
	for _, b := range batches {
		for _, l := range b.Links() {
			linked[l.SpanContext.SpanID()] = true
		}
	}
	for id, s := range consumed {
		if !linked[s.SpanContext().SpanID()] {
			t.Errorf("event %s: its span is linked to no process batch span", id)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE gameid = $1 AND extensions::text LIKE '%trace%'`, game.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n > 0 {
		t.Errorf("%d events stored with their delivery's trace context", n)
	}
	var stored int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE gameid = $1`, game.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored == 0 {
		t.Error("no event stored")
	}
}
