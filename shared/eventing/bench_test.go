package eventing

import (
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/kafka"
)

// BenchmarkUnorderedDelivery measures records/s from Kafka to an HTTP
// sink that accepts at once: the runtime's own overhead on the path
// ingest → Kafka → eventing → process.
func BenchmarkUnorderedDelivery(b *testing.B) {
	if stack == nil {
		b.Skip("no local stack")
	}
	topic := newTopics(b, 12, 1)[0]
	s := newSink(b, nil)
	recs := make([]*kgo.Record, b.N)
	for i := range recs {
		e := event.New()
		e.SetID("e" + itoa(i))
		e.SetType("com.gamemetrics.bench")
		e.SetSource("/games/bench")
		_ = e.SetData("application/json", map[string]int{"i": i})
		rec, err := kafka.Record(b.Context(), &e, topic, "g/p"+itoa(i%100))
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = rec
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(b.Context(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	r, err := New(Config{Dir: manifestDir(b, kafkaSourceYAML("src", topic, "unordered", 0, "PT0.01S", false)),
		Brokers: stack.KafkaBrokers, Services: map[string]string{"fn": s.srv.URL}})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	if err := r.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	for {
		s.mu.Lock()
		n := len(s.got)
		s.mu.Unlock()
		if n >= b.N {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.StopTimer()
	stop(b, r, 10*time.Second)
}
