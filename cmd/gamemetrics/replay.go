package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/kafka"
)

// deliveryExtensions are what the KafkaSource and the dead-letter sink add
// to an event on its way to the dead-letter topic; a replayed event is the
// one ingest accepted, without them.
var deliveryExtensions = []string{"knativeerrordest", "knativeerrorcode", "knativeerrordata", "knativekafkapartition", "knativekafkaoffset"}

// replayIdle is how long replay waits for records it knows exist.
const replayIdle = 15 * time.Second

// runReplay copies dead-lettered events back into the events topic once
// the cause of their failure is fixed. It replays what the dead-letter
// topic held when it started, remembers in a consumer group what it has
// replayed (so a second run only takes newer dead letters), and commits
// only after the events topic acknowledged the copies. process counts an
// event once per (game, id), so replaying an event that was counted after
// all changes nothing.
func runReplay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("events replay", stderr)
	from := fs.String("from", kafka.TopicDLQ, "topic holding the dead letters")
	to := fs.String("to", kafka.TopicEvents, "topic process consumes")
	group := fs.String("group", "gamemetrics-replay", "consumer group that remembers what was replayed")
	dry := fs.Bool("dry-run", false, "count what would be replayed and change nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("events replay: unexpected argument %q", fs.Arg(0))
	}
	kc, err := kafka.ConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	cl, err := kc.Client(kgo.ConsumeTopics(*from), kgo.ConsumerGroup(*group),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	spans, err := replayBacklog(ctx, kadm.NewClient(cl), *from, *group)
	if err != nil {
		return fmt.Errorf("events replay: %w", err)
	}
	if remaining(spans) == 0 {
		fmt.Fprintf(stdout, "nothing to replay: %s has no dead letters that group %s has not replayed\n", *from, *group)
		return nil
	}
	var producer *kgo.Client
	if !*dry {
		if producer, err = kafka.NewProducer(kc, 30*time.Second); err != nil {
			return err
		}
		defer producer.Close()
	}
	byStatus := map[string]int{}
	replayed, skipped := 0, 0
	for remaining(spans) > 0 {
		pctx, cancel := context.WithTimeout(ctx, replayIdle)
		fetches := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		if errs := fetches.Errors(); len(errs) > 0 && fetches.NumRecords() == 0 {
			if errors.Is(errs[0].Err, context.DeadlineExceeded) {
				return fmt.Errorf("events replay: no record of %s for %s with %d still to replay", *from, replayIdle, remaining(spans))
			}
			return fmt.Errorf("events replay: read %s: %w", *from, errs[0].Err)
		}
		var batch, copies []*kgo.Record
		fetches.EachRecord(func(r *kgo.Record) {
			sp := spans[r.Partition]
			if sp == nil || r.Offset >= sp.end {
				return // dead-lettered after this run started: the next run's
			}
			sp.next = r.Offset + 1
			batch = append(batch, r)
			copy, status, err := replayCopy(ctx, r, *to)
			if err != nil {
				skipped++
				fmt.Fprintf(stderr, "skipping %s/%d@%d: %v\n", r.Topic, r.Partition, r.Offset, err)
				return
			}
			byStatus[status]++
			copies = append(copies, copy)
		})
		if *dry || len(batch) == 0 {
			replayed += len(copies)
			continue
		}
		if err := producer.ProduceSync(ctx, copies...).FirstErr(); err != nil {
			return fmt.Errorf("events replay: write to %s (nothing of this batch was marked replayed): %w", *to, err)
		}
		if err := cl.CommitRecords(ctx, batch...); err != nil {
			return fmt.Errorf("events replay: remember progress (the batch may be replayed again, which is harmless): %w", err)
		}
		replayed += len(copies)
	}
	verb := "replayed"
	if *dry {
		verb = "would replay"
	}
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(byStatus)) {
		parts = append(parts, fmt.Sprintf("%s: %d", s, byStatus[s]))
	}
	fmt.Fprintf(stdout, "%s %d dead-lettered events from %s to %s (by the status that dead-lettered them: %s)", verb, replayed, *from, *to, strings.Join(parts, ", "))
	if skipped > 0 {
		fmt.Fprintf(stdout, "; skipped %d that are not GameMetrics events", skipped)
	}
	fmt.Fprintln(stdout)
	if !*dry {
		fmt.Fprintln(stdout, "process counts each (game, id) once, so events that had been counted after all are not counted again.")
	}
	return nil
}

// span is what is left to replay of one partition: offsets [next, end).
type span struct{ next, end int64 }

// replayBacklog returns, per partition of topic, what group has not
// replayed yet, up to the end of the partition as of now.
func replayBacklog(ctx context.Context, adm *kadm.Client, topic, group string) (map[int32]*span, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	if err := starts.Error(); err != nil {
		return nil, err
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	if err := ends.Error(); err != nil {
		return nil, err
	}
	// A group that never committed has no offsets: Kafka answers an empty
	// fetch, while kfake (and a Kafka whose group this client has not joined
	// yet, since joining runs in the background) answers GROUP_ID_NOT_FOUND.
	// Both mean "replay from the start".
	committed, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	spans := map[int32]*span{}
	ends.Each(func(o kadm.ListedOffset) {
		sp := &span{end: o.Offset}
		if s, ok := starts.Lookup(topic, o.Partition); ok {
			sp.next = s.Offset
		}
		if c, ok := committed.Lookup(topic, o.Partition); ok && c.At > sp.next {
			sp.next = c.At
		}
		spans[o.Partition] = sp
	})
	return spans, nil
}

func remaining(spans map[int32]*span) int64 {
	var n int64
	for _, sp := range spans {
		n += max(0, sp.end-sp.next)
	}
	return n
}

// replayCopy is the record to write for a dead letter: the event as ingest
// accepted it (delivery extensions removed), keyed as ingest keys it.
func replayCopy(ctx context.Context, r *kgo.Record, topic string) (*kgo.Record, string, error) {
	e, err := kafka.Event(ctx, r)
	if err != nil {
		return nil, "", err
	}
	game, _ := e.Extensions()[events.ExtGameID].(string)
	if game == "" || e.Subject() == "" {
		return nil, "", errors.New("no gameid extension or subject (not an event ingest accepted)")
	}
	status := fmt.Sprint(e.Extensions()["knativeerrorcode"])
	if status == "<nil>" {
		status = "unknown"
	}
	for _, x := range deliveryExtensions {
		e.SetExtension(x, nil)
	}
	out, err := kafka.Record(ctx, e, topic, game+"/"+e.Subject())
	return out, status, err
}
