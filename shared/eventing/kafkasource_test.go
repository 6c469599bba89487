package eventing

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/kafka"
)

func TestKafkaSourceSendsTheEnvelopeKnativeSends(t *testing.T) {
	needStack(t)
	topic := newTopics(t, 1, 1)[0]
	s := newSink(t, nil)
	src := strings.Replace(kafkaSourceYAML("src", topic, "ordered", 0, "PT0.01S", false),
		"  sink:\n", "  ceOverrides: {extensions: {env: local}}\n  sink:\n", 1)
	startRuntime(t, manifestDir(t, src), s, nil)

	ts := time.Date(2026, 3, 1, 12, 30, 45, 123456000, time.UTC)
	original := event.New()
	original.SetID("evt-1")
	original.SetType("com.gamemetrics.level.completed")
	original.SetSource("/games/g1")
	original.SetSubject("player-7")
	original.SetTime(ts)
	original.SetExtension("gameid", "g1")
	if err := original.SetData("application/json", map[string]any{"level": 3}); err != nil {
		t.Fatal(err)
	}
	ceRec, err := kafka.Record(context.Background(), &original, topic, "g1/player-7")
	if err != nil {
		t.Fatal(err)
	}
	plain := &kgo.Record{Topic: topic, Key: []byte("player-7"), Value: []byte(`{"raw":true}`), Timestamp: ts,
		Headers: []kgo.RecordHeader{
			{Key: "Tenant", Value: []byte("acme")},
			{Key: "X_Trace-ID", Value: []byte("abc")},
			{Key: "content-type", Value: []byte("application/json")},
		}}
	produce(t, ceRec)
	produce(t, plain)

	got := s.waitFor(20*time.Second, "two events", func(got []received) bool { return len(got) >= 2 })
	for _, r := range got {
		if r.header.Get("Prefer") != "reply" || r.header.Get("Kn-Namespace") != "gamemetrics" {
			t.Errorf("headers Prefer=%q Kn-Namespace=%q, want reply and gamemetrics", r.header.Get("Prefer"), r.header.Get("Kn-Namespace"))
		}
		if r.header.Get("Ce-Specversion") != "1.0" || strings.Contains(r.header.Get("Content-Type"), "cloudevents") {
			t.Errorf("not binary content mode: Ce-Specversion=%q Content-Type=%q", r.header.Get("Ce-Specversion"), r.header.Get("Content-Type"))
		}
	}

	t.Run("a record that is a CloudEvent passes through with partition and offset added", func(t *testing.T) {
		want := original.Clone()
		want.SetExtension(extPartition, "0")
		want.SetExtension(extOffset, "0")
		want.SetExtension("env", "local")
		wantJSON, _ := json.Marshal(want)
		gotJSON, _ := json.Marshal(got[0].event)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("received\n%s\nwant\n%s", gotJSON, wantJSON)
		}
	})

	t.Run("any other record becomes dev.knative.kafka.event", func(t *testing.T) {
		e := got[1].event
		checks := []struct{ name, got, want string }{
			{"id", e.ID(), "partition:0/offset:1"},
			{"type", e.Type(), "dev.knative.kafka.event"},
			{"source", e.Source(), "/apis/v1/namespaces/gamemetrics/kafkasources/src#" + topic},
			{"subject", e.Subject(), "partition:0#1"},
			{"time", e.Time().UTC().Format(time.RFC3339Nano), ts.Truncate(time.Millisecond).Format(time.RFC3339Nano)}, // Kafka keeps milliseconds
			{"datacontenttype", e.DataContentType(), "application/json"},
			{"data", string(e.Data()), `{"raw":true}`},
		}
		ext := e.Extensions()
		for _, x := range []struct{ name, want string }{
			{"key", "player-7"}, {"partitionkey", "player-7"},
			{"kafkaheadertenant", "acme"}, {"kafkaheaderxtraceid", "abc"},
			{extPartition, "0"}, {extOffset, "1"}, {"env", "local"},
		} {
			checks = append(checks, struct{ name, got, want string }{x.name, fmt.Sprint(ext[x.name]), x.want})
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
			}
		}
	})
}

func TestKafkaSourceRetriesAndDeadLetters(t *testing.T) {
	needStack(t)
	tests := []struct {
		name       string
		retry      int
		statuses   []int // by attempt; the last repeats
		body       string
		attempts   int
		deadLetter bool
		outcome    string
	}{
		{name: "500 then 429 are retried until the sink accepts", retry: 3, statuses: []int{500, 429, 202},
			attempts: 3, outcome: "delivered"},
		{name: "404 408 409 are retried too", retry: 5, statuses: []int{404, 408, 409, 200},
			attempts: 4, outcome: "delivered"},
		{name: "400 goes straight to the dead-letter topic", retry: 3, statuses: []int{400}, body: "bad event: no gameid",
			attempts: 1, deadLetter: true, outcome: "dead_lettered"},
		{name: "retries exhausted go to the dead-letter topic", retry: 2, statuses: []int{503}, body: strings.Repeat("x", 3000),
			attempts: 3, deadLetter: true, outcome: "dead_lettered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topics := newTopics(t, 1, 2)
			topic, dlq := topics[0], topics[1]
			s := newSink(t, func(_ *event.Event, attempt int) (int, string) {
				return tt.statuses[min(attempt, len(tt.statuses))-1], tt.body
			})
			r := startRuntime(t, manifestDir(t, kafkaSourceYAML("src", topic, "unordered", tt.retry, "PT0.01S", true), kafkaSinkYAML(dlq)), s, nil)
			produce(t, &kgo.Record{Topic: topic, Key: []byte("k1"), Value: []byte("v1")})
			s.waitFor(20*time.Second, fmt.Sprintf("%d attempts", tt.attempts), func(got []received) bool { return len(got) >= tt.attempts })
			outcome := r.metrics.deliveries.WithLabelValues(kindKafkaSource, "src", tt.outcome)
			deadline := time.Now().Add(10 * time.Second)
			for value(outcome) != 1 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if v := value(outcome); v != 1 {
				t.Fatalf("deliveries{outcome=%s} = %v, want 1", tt.outcome, v)
			}
			stop(t, r, 10*time.Second)
			if got := len(s.snapshot()); got != tt.attempts {
				t.Errorf("sink got %d attempts, want %d", got, tt.attempts)
			}
			if v := value(r.metrics.retries.WithLabelValues(kindKafkaSource, "src")); int(v) != tt.attempts-1 {
				t.Errorf("retries metric = %v, want %d", v, tt.attempts-1)
			}
			if !tt.deadLetter {
				if n := endOffset(t, dlq); n != 0 {
					t.Errorf("dead-letter topic has %d records, want 0", n)
				}
				return
			}
			rec := readTopic(t, dlq, 1, 10*time.Second)[0]
			e, err := kafka.Event(context.Background(), rec)
			if err != nil {
				t.Fatalf("dead letter is not a binary-mode CloudEvent: %v", err)
			}
			body := tt.body
			if len(body) > maxErrorData {
				body = body[:maxErrorData]
			}
			ext := e.Extensions()
			for _, c := range []struct{ name, got, want string }{
				{"id", e.ID(), "partition:0/offset:0"},
				{"data", string(e.Data()), "v1"},
				{"record key", string(rec.Key), "k1"},
				{extErrorDestination, fmt.Sprint(ext[extErrorDestination]), s.srv.URL},
				{extErrorCode, fmt.Sprint(ext[extErrorCode]), fmt.Sprint(tt.statuses[len(tt.statuses)-1])},
				{extErrorData, fmt.Sprint(ext[extErrorData]), base64.StdEncoding.EncodeToString([]byte(body))},
			} {
				if c.got != c.want {
					t.Errorf("dead letter %s = %.80q, want %.80q", c.name, c.got, c.want)
				}
			}
		})
	}
}

func endOffset(t *testing.T, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// The offset is committed whatever happened to the event, so a restarted
// runtime never redelivers what the previous one gave up on.
func TestOffsetsAreCommittedEvenWhenTheEventIsLost(t *testing.T) {
	needStack(t)
	tests := []struct {
		name     string
		withDLS  bool
		attempts int // per record, sink plus dead-letter sink
	}{
		{name: "no dead-letter sink", attempts: 1},
		{name: "the dead-letter sink refuses too", withDLS: true, attempts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := newTopics(t, 3, 1)[0]
			s := newSink(t, func(e *event.Event, _ int) (int, string) {
				if string(e.Data()) == "marker" {
					return 200, ""
				}
				return 400, "refused"
			})
			dead := newSink(t, func(*event.Event, int) (int, string) { return 500, "" })
			src := kafkaSourceYAML("src", topic, "ordered", 1, "PT0.01S", false)
			if tt.withDLS {
				src = strings.Replace(src, "    timeout: PT5S\n", "    timeout: PT5S\n    deadLetterSink: {uri: \""+dead.srv.URL+"\"}\n", 1)
			}
			dir := manifestDir(t, src)
			r := startRuntime(t, dir, s, nil)
			var recs []*kgo.Record
			for i := range 5 {
				recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("k" + itoa(i)), Value: []byte("v" + itoa(i))})
			}
			produce(t, recs...)
			s.waitFor(20*time.Second, "5 refused events", func(got []received) bool { return len(distinctIDs(got)) >= 5 })
			if tt.withDLS {
				// retry 1: the dead-letter sink is tried twice per event.
				dead.waitFor(20*time.Second, "10 dead-letter attempts", func(got []received) bool { return len(got) >= 10 })
			}
			stop(t, r, 10*time.Second)
			if v := value(r.metrics.deliveries.WithLabelValues(kindKafkaSource, "src", map[bool]string{false: "dropped", true: "dead_letter_failed"}[tt.withDLS])); v != 5 {
				t.Errorf("lost deliveries metric = %v, want 5", v)
			}

			startRuntime(t, dir, s, nil)
			produce(t, &kgo.Record{Topic: topic, Key: []byte("k0"), Value: []byte("marker")})
			got := s.waitFor(20*time.Second, "the marker", func(got []received) bool {
				for _, r := range got {
					if string(r.event.Data()) == "marker" {
						return true
					}
				}
				return false
			})
			if len(got) != 6 {
				for _, r := range got {
					t.Logf("got %s %s attempt %d", r.event.ID(), r.event.Data(), r.attempt)
				}
				t.Errorf("sink got %d requests, want 5 refused + 1 marker: the restarted runtime redelivered", len(got))
			}
		})
	}
}

func partitionOffset(e *event.Event) (string, int64) {
	ext := e.Extensions()
	var off int64
	fmt.Sscan(fmt.Sprint(ext[extOffset]), &off)
	return fmt.Sprint(ext[extPartition]), off
}

func TestOrderedDeliveryHasOneEventInFlightPerPartition(t *testing.T) {
	needStack(t)
	topic := newTopics(t, 3, 1)[0]
	s := newSink(t, func(e *event.Event, attempt int) (int, string) {
		if _, off := partitionOffset(e); off%7 == 3 && attempt == 1 {
			return 500, "" // a retry must hold back the rest of its partition
		}
		return 202, ""
	})
	s.delay = 2 * time.Millisecond
	startRuntime(t, manifestDir(t, kafkaSourceYAML("src", topic, "ordered", 3, "PT0.01S", false)), s, nil)
	const n = 150
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("player-" + itoa(i)), Value: []byte(itoa(i))})
	}
	produce(t, recs...)
	got := s.waitFor(60*time.Second, "every record", func(got []received) bool { return len(distinctIDs(got)) >= n })

	s.mu.Lock()
	perPart := s.maxPerPart
	s.mu.Unlock()
	if perPart != 1 {
		t.Errorf("max deliveries in flight in one partition = %d, want 1", perPart)
	}
	last := map[string]int64{}
	for _, r := range got {
		p, off := partitionOffset(r.event)
		prev, seen := last[p]
		if seen && off < prev {
			t.Errorf("partition %s: offset %d arrived after %d", p, off, prev)
		}
		if seen && off == prev && r.attempt == 1 {
			t.Errorf("partition %s: offset %d delivered twice", p, off)
		}
		last[p] = off
	}
	if len(last) < 2 {
		t.Errorf("records landed in %d partitions; the test needs several", len(last))
	}
}

// Unordered delivery runs many events at once, completes them out of
// order, and still commits only up to the lowest unfinished offset: a
// runtime killed mid-stream loses nothing.
func TestUnorderedDeliveryIsConcurrentAndSurvivesAKill(t *testing.T) {
	needStack(t)
	topic := newTopics(t, 3, 1)[0]
	failFirst := func(id string) bool {
		h := fnv.New32a()
		h.Write([]byte(id))
		return h.Sum32()%5 == 0
	}
	s := newSink(t, func(e *event.Event, attempt int) (int, string) {
		if attempt == 1 && failFirst(e.ID()) {
			return http.StatusServiceUnavailable, ""
		}
		return http.StatusAccepted, ""
	})
	s.delay = 3 * time.Millisecond
	const maxInFlight = 20
	tune := func(c *Config) { c.MaxInFlight = maxInFlight }
	dir := manifestDir(t, kafkaSourceYAML("src", topic, "unordered", 5, "PT0.02S", false))
	const n = 900
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("player-" + itoa(i%50)), Value: []byte(itoa(i))})
	}
	produce(t, recs...)

	r1 := startRuntime(t, dir, s, tune)
	s.waitFor(60*time.Second, "a third of the records", func(got []received) bool { return len(distinctIDs(got)) >= n/3 })
	s.mu.Lock()
	concurrency := s.maxIn
	s.mu.Unlock()
	stop(t, r1, time.Millisecond) // a kill: deliveries in flight are abandoned
	if concurrency < 2 || concurrency > maxInFlight {
		t.Errorf("max deliveries in flight = %d, want between 2 and %d", concurrency, maxInFlight)
	}
	before := len(distinctIDs(s.snapshot()))

	r2 := startRuntime(t, dir, s, tune)
	got := s.waitFor(90*time.Second, "every record after the restart", func(got []received) bool { return len(distinctIDs(got)) >= n })
	ids := distinctIDs(got)
	values := map[string]bool{}
	for _, r := range got {
		values[string(r.event.Data())] = true
	}
	for i := range n {
		if !values[itoa(i)] {
			t.Errorf("record %d was never delivered", i)
		}
	}
	stop(t, r2, 20*time.Second)
	t.Logf("%d distinct before the kill, %d requests for %d events in all", before, len(got), len(ids))

	// Everything finished is committed: the group's offsets are the ends.
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	committed, err := adm.FetchOffsets(ctx, topic+"-group")
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(topic, o.Partition)
		if !ok || c.At != o.Offset {
			t.Errorf("partition %d: committed %d, end offset %d", o.Partition, c.At, o.Offset)
		}
	})
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
