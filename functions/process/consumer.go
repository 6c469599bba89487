package process

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/settings"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// ConsumerConfig tunes the direct Kafka consumer.
type ConsumerConfig struct {
	// Group is the Kafka consumer group; replicas in one group share the
	// topic's partitions.
	Group string
	// Topic is consumed from its start when the group has no offsets.
	Topic string
	// MaxRecords is the most records polled and written in one transaction.
	MaxRecords int
	// Backoff is the first wait before rewriting a batch that failed on a
	// transient fault; it doubles up to 5 s.
	Backoff time.Duration
	// Writers is how many transactions write one poll's events at once,
	// each taking a disjoint set of players (so they never wait for each
	// other's player or session rows, only briefly for shared rollup rows).
	Writers int
}

// DefaultConsumerConfig consumes gamemetrics.events in group gamemetrics-process.
func DefaultConsumerConfig() ConsumerConfig {
	return ConsumerConfig{Group: "gamemetrics-process", Topic: kafka.TopicEvents, MaxRecords: 10_000, Backoff: 100 * time.Millisecond, Writers: 2}
}

// ConsumerConfigFromEnv reads PROCESS_KAFKA_GROUP, PROCESS_KAFKA_MAX_RECORDS
// and PROCESS_KAFKA_WRITERS over the defaults.
func ConsumerConfigFromEnv(getenv func(string) string) (ConsumerConfig, error) {
	c, env := DefaultConsumerConfig(), settings.From(getenv)
	c.Group = env.String("PROCESS_KAFKA_GROUP", c.Group)
	c.MaxRecords = env.Int("PROCESS_KAFKA_MAX_RECORDS", c.MaxRecords, 1)
	c.Writers = env.Int("PROCESS_KAFKA_WRITERS", c.Writers, 1)
	return c, env.Err()
}

// Header names on records process sends to the dead-letter topic.
const (
	HeaderDLQReason = "gamemetrics_reason"
	HeaderDLQStatus = "gamemetrics_status"
)

// Consumer feeds process directly from Kafka, for deployments without
// Knative eventing. It polls a batch, stores it as stage 1 of the same two
// stages as HTTP deliveries (a whole poll per stage-1 batch; the
// aggregator counts it after), and commits the offsets only after the
// database commit, so a crash at any point means redelivery, never loss;
// redelivery is harmless because stage 1 deduplicates. Events that can never be
// processed go to gamemetrics.events.dlq with the reason, as a KafkaSource
// would send them to its dead-letter sink.
type Consumer struct {
	p   *Process
	cl  *kgo.Client
	cfg ConsumerConfig
	log *slog.Logger

	minShare int // fewest events worth a transaction of their own
}

// NewConsumer connects a consumer-group client (auto-commit off) for p.
// extra options are appended (tests shorten timeouts with them).
func NewConsumer(p *Process, kc kafka.Config, cfg ConsumerConfig, extra ...kgo.Opt) (*Consumer, error) {
	if cfg.MaxRecords < 1 {
		cfg.MaxRecords = DefaultConsumerConfig().MaxRecords
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultConsumerConfig().Backoff
	}
	cfg.Writers = max(1, cfg.Writers)
	opts := append([]kgo.Opt{
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}, extra...)
	cl, err := kc.Client(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	return &Consumer{p: p, cl: cl, cfg: cfg, log: p.log.With("mode", "consumer", "group", cfg.Group), minShare: 500}, nil
}

// Run consumes until ctx ends. Offsets of records not yet committed to the
// database are never committed to Kafka.
//
// Fetching and storing overlap: while one poll's events are stored in
// PostgreSQL (where the batch spends most of its time, in another
// process), the next poll is fetched and decoded. Polls are still stored
// and committed one after another, in poll order, and aggregated
// meanwhile by the aggregator.
func (c *Consumer) Run(ctx context.Context) error {
	c.log.Info("consuming", "topic", c.cfg.Topic)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	decoded := make(chan *polled) // unbuffered: at most one poll waits, decoded, for the writer
	go func() {
		defer close(decoded)
		for {
			b := c.poll(ctx)
			if b == nil {
				return
			}
			select {
			case decoded <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	for b := range decoded {
		if err := c.write(ctx, b); err != nil {
			return nil // only ctx ends the retries
		}
		if err := c.cl.CommitRecords(ctx, b.kafka...); err != nil {
			// Harmless: these records will be delivered again and deduplicated.
			c.p.metrics.commitErrors.Inc()
			c.log.Warn("offset commit failed", "records", len(b.kafka), "err", err)
		}
	}
	return nil
}

// polled is one poll's records, decoded.
type polled struct {
	kafka []*kgo.Record
	recs  []*record    // events to write
	from  []int        // index in kafka of each of recs
	dead  []deadLetter // records that can never be processed
	// spans[i] is the span of kafka[i] (nil: tracing off, or not a
	// CloudEvent), open until its event is durable or dead-lettered.
	spans []trace.Span
}

// endSpans ends every record's span of b, with err (nil: all durable)
// or, for a dead letter, the reason it was refused.
func (b *polled) endSpans(err error, dead []deadLetter) {
	if b.spans == nil {
		return
	}
	why := make(map[*kgo.Record]error, len(dead))
	for _, d := range dead {
		why[d.rec] = d.err
	}
	for i, span := range b.spans {
		if span == nil {
			continue
		}
		if e := why[b.kafka[i]]; e != nil && err == nil {
			telemetry.EndSpan(span, e)
		} else {
			telemetry.EndSpan(span, err)
		}
	}
	b.spans = nil
}

// poll fetches the next records and decodes them, retrying transient
// faults (an unreachable database while looking up a game) until ctx ends;
// nil means ctx ended or the client closed.
func (c *Consumer) poll(ctx context.Context) *polled {
	for {
		fetches := c.cl.PollRecords(ctx, c.cfg.MaxRecords)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			c.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			continue
		}
		c.p.metrics.consumed.Add(float64(len(recs)))
		var b *polled
		err := c.retry(ctx, len(recs), func() (err error) {
			b, err = c.decode(ctx, recs)
			return err
		})
		if err != nil {
			return nil
		}
		return b
	}
}

// retry runs f until it succeeds or ctx ends, backing off after each
// failure (only transient faults fail: anything else is a dead letter).
func (c *Consumer) retry(ctx context.Context, records int, f func() error) error {
	backoff := c.cfg.Backoff
	for {
		err := f()
		if err == nil {
			return nil
		}
		c.log.Warn("batch not committed, retrying", "records", records, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

type deadLetter struct {
	rec *kgo.Record
	err error
}

// decode turns records into events for the writer; a transient fault fails
// the whole poll (it is decoded again).
func (c *Consumer) decode(ctx context.Context, recs []*kgo.Record) (*polled, error) {
	b := &polled{kafka: recs}
	rejected := 0
	for i, kr := range recs {
		ev, err := kafka.Event(ctx, kr)
		if err != nil {
			b.dead = append(b.dead, deadLetter{kr, serving.Reject(400, "record at %s/%d@%d is not a CloudEvent: %v", kr.Topic, kr.Partition, kr.Offset, err)})
			continue
		}
		// Stored without its delivery's trace context, as through Handle,
		// which the record's span continues.
		parent, state := telemetry.TakeTraceParent(ev)
		if c.p.tracer != nil {
			if b.spans == nil {
				b.spans = make([]trace.Span, len(recs))
			}
			_, b.spans[i] = c.p.tracer.Start(telemetry.WithRemoteParent(ctx, parent, state), "process event",
				trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
					attribute.String("messaging.system", "kafka"), attribute.String("messaging.operation.type", "process"),
					attribute.String("messaging.destination.name", kr.Topic), attribute.String("messaging.consumer.group.name", c.cfg.Group),
					attribute.String("messaging.destination.partition.id", strconv.Itoa(int(kr.Partition))),
					attribute.Int64("messaging.kafka.offset", kr.Offset),
					attribute.String("cloudevents.event_id", ev.ID()), attribute.String("cloudevents.event_type", ev.Type())))
		}
		r, err := c.p.decode(ctx, ev)
		if err != nil {
			if serving.StatusOf(err) >= 500 {
				b.endSpans(err, nil) // this poll is decoded again, with new spans
				return nil, err
			}
			rejected++
			b.dead = append(b.dead, deadLetter{kr, err})
			continue
		}
		b.recs = append(b.recs, r)
		b.from = append(b.from, i)
	}
	c.p.metrics.events.WithLabelValues("rejected").Add(float64(rejected))
	return b, nil
}

// write stores one poll's events and dead letters, retrying transient
// faults until they are committed or ctx ends. With tracing on, each
// attempt is a span linked to the records' spans (a poll holds events of
// many traces), its PostgreSQL queries and dead-letter produce as children;
// each record's span ends once its event is durable or dead-lettered.
func (c *Consumer) write(ctx context.Context, b *polled) error {
	var dead []deadLetter
	err := c.retry(ctx, len(b.kafka), func() (err error) {
		ctx := ctx
		if b.spans != nil {
			var span trace.Span
			ctx, span = c.p.tracer.Start(ctx, "process batch", trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithLinks(b.links()...), trace.WithAttributes(
					attribute.String("messaging.system", "kafka"), attribute.String("messaging.operation.type", "process"),
					attribute.String("messaging.destination.name", c.cfg.Topic), attribute.String("messaging.consumer.group.name", c.cfg.Group),
					attribute.Int("messaging.batch.message_count", len(b.kafka))))
			defer func() { telemetry.EndSpan(span, err) }()
		}
		dead = b.dead
		if len(b.recs) > 0 {
			for i, err := range c.apply(ctx, b.recs) {
				if err == nil {
					continue
				}
				if serving.StatusOf(err) >= 500 {
					return err
				}
				dead = append(dead, deadLetter{b.kafka[b.from[i]], err})
			}
		}
		return c.deadLetters(ctx, dead)
	})
	b.endSpans(err, dead)
	return err
}

// links are the span contexts of b's records, for the batch span (the
// SDK keeps the first 128 by default).
func (b *polled) links() []trace.Link {
	links := make([]trace.Link, 0, len(b.spans))
	for _, span := range b.spans {
		if span != nil {
			links = append(links, trace.Link{SpanContext: span.SpanContext()})
		}
	}
	return links
}

// apply stores recs in up to cfg.Writers concurrent stage-1 transactions,
// each with the events of a disjoint set of players, and returns each
// record's result, as Process.apply does.
func (c *Consumer) apply(ctx context.Context, recs []*record) []error {
	n := c.cfg.Writers
	if n == 1 || len(recs) < 2*c.minShare {
		return c.p.apply(ctx, recs)
	}
	n = min(n, len(recs)/c.minShare)
	parts := make([][]*record, n)
	index := make([][]int, n)
	seed := maphash.MakeSeed()
	for i, r := range recs {
		var h maphash.Hash
		h.SetSeed(seed)
		h.WriteString(r.game)
		h.WriteByte(0)
		h.WriteString(r.subject)
		k := int(h.Sum64() % uint64(n))
		parts[k], index[k] = append(parts[k], r), append(index[k], i)
	}
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	for k := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j, err := range c.p.apply(ctx, parts[k]) {
				errs[index[k][j]] = err
			}
		}()
	}
	wg.Wait()
	return errs
}

// deadLetters copies refused records to the dead-letter topic with why.
func (c *Consumer) deadLetters(ctx context.Context, dead []deadLetter) error {
	if len(dead) == 0 {
		return nil
	}
	out := make([]*kgo.Record, len(dead))
	for i, d := range dead {
		c.log.Info("event sent to the dead-letter topic", "partition", d.rec.Partition, "offset", d.rec.Offset, "err", d.err)
		out[i] = &kgo.Record{
			Topic: kafka.TopicDLQ,
			Key:   d.rec.Key,
			Value: d.rec.Value,
			Headers: append(append([]kgo.RecordHeader(nil), d.rec.Headers...),
				kgo.RecordHeader{Key: HeaderDLQReason, Value: []byte(d.err.Error())},
				kgo.RecordHeader{Key: HeaderDLQStatus, Value: []byte(strconv.Itoa(serving.StatusOf(d.err)))}),
		}
	}
	if err := c.cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
		return errors.Join(errors.New("write dead letters"), err)
	}
	return nil
}

// Close leaves the group and closes the client.
func (c *Consumer) Close() { c.cl.Close() }
