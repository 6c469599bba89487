// Package devstack starts the real servers GameMetrics needs on one machine:
// PostgreSQL from the Debian server binaries, redis-server, a franz-go kfake
// Kafka cluster and an in-process S3 (gofakes3). `gamemetrics dev`, the
// tests and the benchmarks all use it, so what runs locally is what is
// tested. Each part is replaced by an external server when its variable
// (DATABASE_URL, REDIS_URL, KAFKA_BROKERS, S3_ENDPOINT) is set.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// Config chooses where the stack keeps its data and how it is tuned.
type Config struct {
	// Dir keeps the data of every server across restarts. Empty means a
	// temporary directory removed by Close.
	Dir string
	// Getenv reads the override variables; nil means no overrides.
	Getenv func(string) string
	// Log receives progress messages; nil discards them.
	Log *slog.Logger
	// Ephemeral turns off fsync in PostgreSQL and Redis persistence: right
	// for tests and benchmarks whose data is thrown away, wrong for dev.
	Ephemeral bool
	// KafkaPartitions per topic (default 12).
	KafkaPartitions int32
	// S3Bucket is created up front (default "gamemetrics").
	S3Bucket string
}

// Stack is a running set of servers and the addresses to reach them.
type Stack struct {
	DatabaseURL  string
	RedisURL     string
	KafkaBrokers []string
	S3Endpoint   string
	S3Bucket     string
	// Kafka is the in-process cluster, nil when KAFKA_BROKERS was given.
	// Tests use it to inject broker faults.
	Kafka *kfake.Cluster

	dir     string
	tempDir bool
	log     *slog.Logger
	closers []func() error
}

// Start brings every server up, or fails naming the one that would not start.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	if cfg.Getenv == nil {
		cfg.Getenv = func(string) string { return "" }
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.KafkaPartitions == 0 {
		cfg.KafkaPartitions = 12
	}
	if cfg.S3Bucket == "" {
		cfg.S3Bucket = "gamemetrics"
	}
	s := &Stack{dir: cfg.Dir, log: cfg.Log, S3Bucket: cfg.S3Bucket}
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "gamemetrics-stack-"); err != nil {
			return nil, err
		}
		s.tempDir = true
	} else if s.dir, err = filepath.Abs(s.dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	if url := cfg.Getenv("DATABASE_URL"); url != "" {
		s.DatabaseURL = url
	} else if s.DatabaseURL, err = s.startPostgres(ctx, cfg); err != nil {
		return nil, fmt.Errorf("PostgreSQL: %w", err)
	}
	if url := cfg.Getenv("REDIS_URL"); url != "" {
		s.RedisURL = url
	} else if s.RedisURL, err = s.startRedis(ctx, cfg); err != nil {
		return nil, fmt.Errorf("Redis: %w", err)
	}
	if b := cfg.Getenv("KAFKA_BROKERS"); b != "" {
		s.KafkaBrokers = strings.Split(b, ",")
	} else if err = s.startKafka(cfg); err != nil {
		return nil, fmt.Errorf("Kafka (kfake): %w", err)
	}
	if err = s.ensureTopics(ctx, cfg); err != nil {
		return nil, fmt.Errorf("Kafka topics on %v: %w", s.KafkaBrokers, err)
	}
	if ep := cfg.Getenv("S3_ENDPOINT"); ep != "" {
		s.S3Endpoint = ep
		if b := cfg.Getenv("S3_BUCKET"); b != "" {
			s.S3Bucket = b
		}
	} else if s.S3Endpoint, err = s.startS3(cfg); err != nil {
		return nil, fmt.Errorf("S3 (gofakes3): %w", err)
	}
	return s, nil
}

// StartMigrated starts the stack, opens a pool on its PostgreSQL and applies
// the schema migrations: what `gamemetrics dev` and the benchmarks need
// before anything else. Close the pool before the stack.
func StartMigrated(ctx context.Context, cfg Config) (*Stack, *pgxpool.Pool, error) {
	s, err := Start(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	pool, err := s.Migrated(ctx)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, pool, nil
}

// Migrated opens a pool on the stack's PostgreSQL and applies the embedded
// migrations (a no-op when they are applied already).
func (s *Stack) Migrated(ctx context.Context) (*pgxpool.Pool, error) {
	pool, err := store.Open(ctx, s.DatabaseURL)
	if err != nil {
		return nil, err
	}
	if _, err := store.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate %s: %w", s.DatabaseURL, err)
	}
	return pool, nil
}

// Env returns the variables that point a process at this stack.
func (s *Stack) Env() []string {
	return []string{
		"DATABASE_URL=" + s.DatabaseURL,
		"REDIS_URL=" + s.RedisURL,
		"KAFKA_BROKERS=" + strings.Join(s.KafkaBrokers, ","),
		"S3_ENDPOINT=" + s.S3Endpoint,
		"S3_BUCKET=" + s.S3Bucket,
		"S3_REGION=us-east-1",
		"S3_FORCE_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + S3AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + S3SecretKey,
	}
}

// Getenv looks a variable up in Env, for code that takes a getenv function.
func (s *Stack) Getenv(name string) string {
	for _, kv := range s.Env() {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v
		}
	}
	return ""
}

// Close stops every server the stack started, newest first.
func (s *Stack) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	s.closers = nil
	if s.tempDir {
		errs = append(errs, os.RemoveAll(s.dir))
	}
	return errors.Join(errs...)
}

func (s *Stack) startKafka(cfg Config) error {
	opts := []kfake.Opt{
		kfake.NumBrokers(3),
		kfake.SeedTopics(cfg.KafkaPartitions, kafka.Topics()...),
		// Real clusters cap group sessions too; a short minimum lets tests
		// that kill consumers see rebalances quickly.
		kfake.GroupMinSessionTimeout(time.Second),
	}
	if !cfg.Ephemeral {
		opts = append(opts, kfake.DataDir(filepath.Join(s.dir, "kafka")))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	s.Kafka = c
	s.KafkaBrokers = c.ListenAddrs()
	s.closers = append(s.closers, func() error { c.Close(); return nil })
	s.log.Info("kafka (kfake) started", "brokers", s.KafkaBrokers)
	return nil
}

func (s *Stack) ensureTopics(ctx context.Context, cfg Config) error {
	// An external cluster (KAFKA_BROKERS) is reached with its TLS and SASL
	// settings; the local kfake cluster needs neither.
	var cl *kgo.Client
	var err error
	if s.Kafka != nil {
		cl, err = kafka.Config{Brokers: s.KafkaBrokers}.Client()
	} else {
		cl, err = kafka.ClientFromEnv(cfg.Getenv)
	}
	if err != nil {
		return err
	}
	defer cl.Close()
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return kafka.EnsureTopics(tctx, cl, cfg.KafkaPartitions, -1)
}

// freePort asks the kernel for a port nobody listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls check until it succeeds, the process exits, or time runs out.
func waitFor(ctx context.Context, d time.Duration, exited <-chan struct{}, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("server exited during start-up")
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w", d, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
