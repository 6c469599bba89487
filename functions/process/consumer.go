package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/function"
	"github.com/gamemetrics/gamemetrics/shared/kafka"
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
}

// DefaultConsumerConfig consumes gamemetrics.events in group gamemetrics-process.
func DefaultConsumerConfig() ConsumerConfig {
	return ConsumerConfig{Group: "gamemetrics-process", Topic: kafka.TopicEvents, MaxRecords: 10_000, Backoff: 100 * time.Millisecond}
}

// ConsumerConfigFromEnv reads PROCESS_KAFKA_GROUP and PROCESS_KAFKA_MAX_RECORDS
// over the defaults (bad numbers keep the default).
func ConsumerConfigFromEnv(getenv func(string) string) ConsumerConfig {
	c := DefaultConsumerConfig()
	if v := getenv("PROCESS_KAFKA_GROUP"); v != "" {
		c.Group = v
	}
	if n, err := strconv.Atoi(getenv("PROCESS_KAFKA_MAX_RECORDS")); err == nil && n > 0 {
		c.MaxRecords = n
	}
	return c
}

// Header names on records process sends to the dead-letter topic.
const (
	HeaderDLQReason = "gamemetrics_reason"
	HeaderDLQStatus = "gamemetrics_status"
)

// Consumer feeds process directly from Kafka, for deployments without
// Knative eventing. It polls a batch, writes it with the same batch writer
// as HTTP deliveries, and commits the offsets only after the database
// commit, so a crash at any point means redelivery, never loss; redelivery
// is harmless because writes are idempotent. Events that can never be
// processed go to gamemetrics.events.dlq with the reason, as a KafkaSource
// would send them to its dead-letter sink.
type Consumer struct {
	p   *Process
	cl  *kgo.Client
	cfg ConsumerConfig
	log *slog.Logger
}

// NewConsumer connects a consumer-group client (auto-commit off) for p.
// extra options are appended (tests shorten timeouts with them).
func NewConsumer(p *Process, kc kafka.Config, cfg ConsumerConfig, extra ...kgo.Opt) (*Consumer, error) {
	opts, err := kc.Opts()
	if err != nil {
		return nil, err
	}
	if cfg.MaxRecords < 1 {
		cfg.MaxRecords = DefaultConsumerConfig().MaxRecords
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultConsumerConfig().Backoff
	}
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	return &Consumer{p: p, cl: cl, cfg: cfg, log: p.log.With("mode", "consumer", "group", cfg.Group)}, nil
}

// Run consumes until ctx ends. Offsets of records not yet committed to the
// database are never committed to Kafka.
func (c *Consumer) Run(ctx context.Context) error {
	c.log.Info("consuming", "topic", c.cfg.Topic)
	for {
		fetches := c.cl.PollRecords(ctx, c.cfg.MaxRecords)
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
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
		if err := c.process(ctx, recs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := c.cl.CommitRecords(ctx, recs...); err != nil {
			// Harmless: these records will be delivered again and deduplicated.
			c.p.metrics.commitErrors.Inc()
			c.log.Warn("offset commit failed", "records", len(recs), "err", err)
		}
	}
}

// process writes one poll's records, retrying transient faults until they
// are committed or ctx ends.
func (c *Consumer) process(ctx context.Context, recs []*kgo.Record) error {
	backoff := c.cfg.Backoff
	for {
		err := c.attempt(ctx, recs)
		if err == nil {
			return nil
		}
		c.log.Warn("batch not committed, retrying", "records", len(recs), "in", backoff, "err", err)
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

func (c *Consumer) attempt(ctx context.Context, recs []*kgo.Record) error {
	var (
		rs   []*record
		dead []deadLetter
	)
	for _, kr := range recs {
		ev, err := kafka.Event(ctx, kr)
		if err != nil {
			dead = append(dead, deadLetter{kr, function.Reject(400, "record at %s/%d@%d is not a CloudEvent: %v", kr.Topic, kr.Partition, kr.Offset, err)})
			continue
		}
		r, err := c.p.decode(ctx, ev)
		if err != nil {
			if function.StatusOf(err) >= 500 {
				return err
			}
			c.p.metrics.events.WithLabelValues("rejected").Inc()
			dead = append(dead, deadLetter{kr, err})
			continue
		}
		rs = append(rs, r)
	}
	var fresh []*record
	if len(rs) > 0 {
		errs, f := c.p.apply(ctx, rs)
		for i, err := range errs {
			if err == nil {
				continue
			}
			if function.StatusOf(err) >= 500 {
				return err
			}
			dead = append(dead, deadLetter{recFor(recs, rs[i]), err})
		}
		fresh = f
	}
	if err := c.deadLetters(ctx, dead); err != nil {
		return err
	}
	c.p.recordLive(fresh)
	return nil
}

// recFor finds the Kafka record a poison record came from (rare path).
func recFor(recs []*kgo.Record, r *record) *kgo.Record {
	for _, kr := range recs {
		for _, h := range kr.Headers {
			if h.Key == "ce_id" && string(h.Value) == r.id {
				return kr
			}
		}
	}
	return &kgo.Record{Value: r.data}
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
				kgo.RecordHeader{Key: HeaderDLQStatus, Value: []byte(strconv.Itoa(function.StatusOf(d.err)))}),
		}
	}
	if err := c.cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
		return errors.Join(errors.New("write dead letters"), err)
	}
	return nil
}

// Close leaves the group and closes the client.
func (c *Consumer) Close() { c.cl.Close() }
