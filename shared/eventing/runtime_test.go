package eventing

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/kafka"
)

// The production manifests run as they are: events from gamemetrics.events
// reach process, refused ones land in gamemetrics.events.dlq, and the
// PingSources reach retain and report.
func TestTheProductionWiringRunsLocally(t *testing.T) {
	needStack(t)
	process := newSink(t, func(e *event.Event, _ int) (int, string) {
		if e.ID() == "refused" {
			return 400, "unknown game"
		}
		return 202, ""
	})
	retain := newSink(t, nil)
	report := newSink(t, nil)
	recommend := newSink(t, nil)
	notify := newSink(t, nil)
	r, err := New(Config{
		Dir:     filepath.Join("..", "..", "eventing", "base"),
		Brokers: stack.KafkaBrokers,
		Services: map[string]string{"process": process.srv.URL, "retain": retain.srv.URL, "report": report.srv.URL,
			"recommend": recommend.srv.URL, "notify": notify.srv.URL},
		CommitInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, r, 10*time.Second) })

	var recs []*kgo.Record
	for _, id := range []string{"accepted", "refused"} {
		e := event.New()
		e.SetID(id)
		e.SetType("com.gamemetrics.session.started")
		e.SetSource("/games/g1")
		rec, err := kafka.Record(ctx, &e, kafka.TopicEvents, "g1/player-1")
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	produce(t, recs...)
	process.waitFor(30*time.Second, "both events", func(got []received) bool { return len(got) >= 2 })
	recommend.waitFor(30*time.Second, "both events, in its own consumer group", func(got []received) bool { return len(got) >= 2 })
	dead := readTopic(t, kafka.TopicDLQ, 1, 20*time.Second)
	e, err := kafka.Event(ctx, dead[0])
	if err != nil {
		t.Fatal(err)
	}
	if e.ID() != "refused" || e.Extensions()[extErrorCode] != "400" {
		t.Errorf("dead letter id %q code %v, want refused 400", e.ID(), e.Extensions()[extErrorCode])
	}

	for name, s := range map[string]*sink{"retain-daily": retain, "report-weekly": report, "recommend-daily": recommend, "notify-evaluate": notify} {
		if err := r.Ping(ctx, name); err != nil {
			t.Fatal(err)
		}
		var got []received // notify and recommend also get the KafkaSource's events
		for _, r := range s.snapshot() {
			if r.event.Type() == pingEventType {
				got = append(got, r)
			}
		}
		if len(got) != 1 || got[0].event.Source() != "/apis/v1/namespaces/gamemetrics/pingsources/"+name {
			t.Errorf("%s: sink got %d ticks", name, len(got))
		}
	}
}

// Two consumers share a group: partitions move between them when the
// second joins, and ordering still holds because a revoked partition's
// delivery in flight finishes and is committed before it moves.
func TestTwoConsumersShareTheGroupAndKeepOrder(t *testing.T) {
	needStack(t)
	topic := newTopics(t, 4, 1)[0]
	s := newSink(t, nil)
	s.delay = time.Millisecond
	src := strings.Replace(kafkaSourceYAML("src", topic, "ordered", 0, "PT0.01S", false), "  ordering:", "  consumers: 2\n  ordering:", 1)
	const n = 300
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("player-" + itoa(i)), Value: []byte(itoa(i))})
	}
	produce(t, recs...)
	startRuntime(t, manifestDir(t, src), s, nil)
	got := s.waitFor(60*time.Second, "every record", func(got []received) bool { return len(distinctIDs(got)) >= n })
	s.mu.Lock()
	perPart := s.maxPerPart
	s.mu.Unlock()
	if perPart != 1 {
		t.Errorf("max deliveries in flight in one partition = %d, want 1", perPart)
	}
	if len(got) != n {
		t.Logf("%d requests for %d records (redeliveries after a rebalance are allowed)", len(got), n)
	}
}

func TestStartFailsWhenATopicIsMissing(t *testing.T) {
	needStack(t)
	s := newSink(t, nil)
	r, err := New(Config{
		Dir:      manifestDir(t, kafkaSourceYAML("src", "no.such.topic", "ordered", 0, "PT0.01S", false)),
		Brokers:  stack.KafkaBrokers,
		Services: map[string]string{"fn": s.srv.URL},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Start(ctx); err == nil || !strings.Contains(err.Error(), "no.such.topic") {
		t.Errorf("Start = %v, want an error naming no.such.topic", err)
	}
}
