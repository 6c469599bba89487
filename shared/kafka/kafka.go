// Package kafka adapts franz-go to GameMetrics: topic names, client
// configuration from the environment (MSK/Strimzi with SASL and TLS), topic
// creation, and the mapping between CloudEvents and Kafka records in binary
// content mode, the form a Knative KafkaSource passes through unchanged.
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/settings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Topics GameMetrics uses.
const (
	// TopicEvents holds every accepted event, keyed by "<gameid>/<subject>".
	TopicEvents = "gamemetrics.events"
	// TopicRejected holds refused events with the reason, for data-quality counts.
	TopicRejected = "gamemetrics.events.rejected"
	// TopicDLQ holds events the eventing layer could not deliver to process.
	TopicDLQ = "gamemetrics.events.dlq"
	// TopicNotifyDLQ holds events the eventing layer could not deliver to notify.
	TopicNotifyDLQ = "gamemetrics.notify.dlq"
	// TopicRecommendDLQ holds events the eventing layer could not deliver to recommend.
	TopicRecommendDLQ = "gamemetrics.recommend.dlq"
	// TopicRecommendations holds every recommendation recommend served, as a CloudEvent.
	TopicRecommendations = "gamemetrics.recommendations"
)

// Topics lists every topic the platform needs, for creating them up front
// (locally; in a cluster they are the KafkaTopics of eventing/overlays).
func Topics() []string {
	return []string{TopicEvents, TopicRejected, TopicDLQ, TopicNotifyDLQ, TopicRecommendDLQ, TopicRecommendations}
}

// Config says how to reach the Kafka cluster.
type Config struct {
	Brokers []string
	// TLS dials brokers over TLS (MSK port 9094/9096).
	TLS bool
	// SASLMechanism is "", "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	SASLMechanism string
	SASLUser      string
	SASLPassword  string
	// Linger is how long the producer waits to fill a batch. The default
	// is none: records produced while a produce request is in flight
	// (there are up to 5 per broker) wait for it and go together in the
	// next, so concurrent requests batch by themselves, and measured on
	// ingest a linger of 1ms cost more CPU per request than it saved, as
	// well as the latency (bench-ingest, README).
	Linger time.Duration
	// Compression of produced batches: "lz4" (the default: cheap, and it
	// shrinks the repetitive ce_ headers several times over), "snappy",
	// "zstd" (smaller, more CPU), "gzip" or "none" (no CPU, most bytes on
	// the network and disk).
	Compression string
}

// ConfigFromEnv reads KAFKA_BROKERS, KAFKA_TLS, KAFKA_SASL_MECHANISM,
// KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_LINGER and
// KAFKA_COMPRESSION.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	env := settings.From(getenv)
	c := Config{
		Brokers:       env.List("KAFKA_BROKERS", nil),
		TLS:           env.Bool("KAFKA_TLS", false),
		SASLMechanism: env.OneOf("KAFKA_SASL_MECHANISM", "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
		SASLUser:      env.String("KAFKA_SASL_USERNAME", ""),
		SASLPassword:  getenv("KAFKA_SASL_PASSWORD"),
		Linger:        env.Duration("KAFKA_LINGER", 0, 0),
		Compression:   env.OneOf("KAFKA_COMPRESSION", "lz4", "lz4", "snappy", "zstd", "gzip", "none"),
	}
	return c, env.Err()
}

// OptsFromEnv returns the connection options (brokers, TLS, SASL) for the
// cluster the environment names, for code that builds several clients
// itself, such as the local eventing runtime.
func OptsFromEnv(getenv func(string) string) ([]kgo.Opt, error) {
	c, err := ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	return c.Opts()
}

// ClientFromEnv builds a franz-go client for the cluster the environment
// names (KAFKA_BROKERS, KAFKA_TLS, KAFKA_SASL_*), with extra options (topics,
// consumer groups) after the connection ones. The CLI's admin commands,
// replay and the local eventing runtime all connect through it.
func ClientFromEnv(getenv func(string) string, extra ...kgo.Opt) (*kgo.Client, error) {
	c, err := ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	return c.Client(extra...)
}

// Client builds a franz-go client for c with extra options appended.
func (c Config) Client(extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := c.Opts()
	if err != nil {
		return nil, err
	}
	return kgo.NewClient(append(opts, extra...)...)
}

// Opts returns the client options common to producers, consumers and admin.
func (c Config) Opts() ([]kgo.Opt, error) {
	if len(c.Brokers) == 0 {
		return nil, errors.New("no Kafka brokers configured (set KAFKA_BROKERS)")
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.TLS {
		opts = append(opts, kgo.Dialer((&tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second},
			Config: &tls.Config{MinVersion: tls.VersionTLS12}}).DialContext))
	}
	switch c.SASLMechanism {
	case "":
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("KAFKA_SASL_MECHANISM=%q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
	}
	return opts, nil
}

// NewProducer returns a client tuned for durable writes: acks from all
// in-sync replicas and the idempotent producer (both franz-go defaults,
// stated here because ingest's 202 depends on them), and a delivery timeout
// so a broker outage surfaces as an error instead of an unbounded wait.
//
// By default franz-go will not fail an idempotent record that is in flight
// (it cannot know whether the broker stored it), so a hung broker would hang
// ingest. We allow the cancellation: the client is told 503 and resends the
// same event ids, and process deduplicates by (gameid, id), so a possible
// duplicate in Kafka costs nothing while an unbounded wait would.
func NewProducer(c Config, deliveryTimeout time.Duration, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := c.Opts()
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(c.Linger),
		kgo.RecordDeliveryTimeout(deliveryTimeout),
		kgo.AllowIdempotentProduceCancellation(),
		kgo.ProducerBatchCompression(c.codecs()...),
		kgo.MaxBufferedRecords(200_000),
	)
	return kgo.NewClient(append(opts, extra...)...)
}

// codecs are the producer's compression preferences: the configured codec,
// then none for brokers that lack it.
func (c Config) codecs() []kgo.CompressionCodec {
	switch c.Compression {
	case "none":
		return []kgo.CompressionCodec{kgo.NoCompression()}
	case "snappy":
		return []kgo.CompressionCodec{kgo.SnappyCompression(), kgo.NoCompression()}
	case "zstd":
		return []kgo.CompressionCodec{kgo.ZstdCompression(), kgo.NoCompression()}
	case "gzip":
		return []kgo.CompressionCodec{kgo.GzipCompression(), kgo.NoCompression()}
	}
	return []kgo.CompressionCodec{kgo.Lz4Compression(), kgo.NoCompression()}
}

// EnsureTopics creates the platform topics that do not exist yet.
func EnsureTopics(ctx context.Context, cl *kgo.Client, partitions int32, replication int16) error {
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, partitions, replication, nil, Topics()...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}
