package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/kafka"
)

// Dead letters go back to the events topic as ingest wrote them: same
// event, without what the delivery added, keyed by game and player; each
// only once across runs.
func TestEventsReplayCopiesDeadLettersBackOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	suffix := fmt.Sprint(time.Now().UnixNano())
	dlq, target := "replay-dlq-"+suffix, "replay-events-"+suffix
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 3, -1, nil, dlq, target); err != nil {
		t.Fatal(err)
	}
	deadLetter := func(id, status string) *kgo.Record {
		e := event.New()
		e.SetID(id)
		e.SetType(events.TypeHeartbeat)
		e.SetSource("/game/client")
		e.SetSubject("player-" + id)
		e.SetTime(time.Now().Add(-time.Hour))
		e.SetExtension(events.ExtGameID, "gdead")
		e.SetExtension(events.ExtSessionID, "s-1")
		e.SetExtension("knativekafkapartition", "2")
		e.SetExtension("knativekafkaoffset", "1042")
		e.SetExtension("knativeerrordest", "http://process.gamemetrics.svc.cluster.local")
		e.SetExtension("knativeerrorcode", status)
		e.SetExtension("knativeerrordata", "ZGF0YWJhc2UgZG93bg==")
		r, err := kafka.Record(ctx, &e, dlq, "")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	produce := func(recs ...*kgo.Record) {
		t.Helper()
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(deadLetter("a", "503"), deadLetter("b", "503"), deadLetter("c", "422"),
		&kgo.Record{Topic: dlq, Value: []byte("not an event")})
	replay := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		args = append([]string{"events", "replay", "--from", dlq, "--to", target, "--group", "g-" + suffix}, args...)
		if err := run(ctx, args, stack.Getenv, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		return out.String()
	}

	if out := replay("--dry-run"); !strings.Contains(out, "would replay 3 ") || !strings.Contains(out, "503: 2") || !strings.Contains(out, "422: 1") || !strings.Contains(out, "skipped 1") {
		t.Errorf("dry run: %q", out)
	}
	if n := endOffsets(ctx, t, cl, target); n != 0 {
		t.Fatalf("a dry run wrote %d records", n)
	}
	if out := replay(); !strings.Contains(out, "replayed 3 ") {
		t.Errorf("replay: %q", out)
	}
	got := consumeAll(ctx, t, target, 3)
	for _, r := range got {
		e, err := kafka.Event(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if want := "gdead/player-" + e.ID(); string(r.Key) != want {
			t.Errorf("key %q, want %q", r.Key, want)
		}
		for _, x := range deliveryExtensions {
			if _, ok := e.Extensions()[x]; ok {
				t.Errorf("event %s still carries %s", e.ID(), x)
			}
		}
		if e.Extensions()[events.ExtSessionID] != "s-1" || e.Type() != events.TypeHeartbeat {
			t.Errorf("event %s changed: %v", e.ID(), e)
		}
	}
	// A second run only takes newer dead letters.
	if out := replay(); !strings.Contains(out, "nothing to replay") {
		t.Errorf("second run: %q", out)
	}
	produce(deadLetter("d", "500"))
	if out := replay(); !strings.Contains(out, "replayed 1 ") || !strings.Contains(out, "500: 1") {
		t.Errorf("third run: %q", out)
	}
	if n := endOffsets(ctx, t, cl, target); n != 4 {
		t.Errorf("%d records in %s, want 4", n, target)
	}
}

func endOffsets(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) int64 {
	t.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func consumeAll(ctx context.Context, t *testing.T, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < want {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if pctx.Err() != nil && fs.NumRecords() == 0 {
			t.Fatalf("read %d of %d records of %s", len(out), want, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// A group that never committed means "replay from the start", whatever the
// broker answers for it (kfake: GROUP_ID_NOT_FOUND, Kafka: no offsets).
// Asked before any member joined, so the answer is the broker's every time.
func TestReplayBacklogOfAGroupThatNeverCommittedStartsAtTheBeginning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topic := fmt.Sprint("replay-backlog-", time.Now().UnixNano())
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopics(ctx, 2, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("x")},
		&kgo.Record{Topic: topic, Partition: 0, Value: []byte("y")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	spans, err := replayBacklog(ctx, adm, topic, "never-joined-"+topic)
	if err != nil {
		t.Fatalf("backlog of a group that never committed: %v", err)
	}
	if n := remaining(spans); n != 2 {
		t.Errorf("remaining %d, want both records", n)
	}
}
