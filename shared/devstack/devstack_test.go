package devstack_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/kafka"
)

// The stack must survive a restart on the same directory: `make dev` keeps
// its data under .gamemetrics/.
func TestStackStartsEveryServerAndKeepsDataAcrossRestart(t *testing.T) {
	// Not t.TempDir: its parent is private to root, and PostgreSQL runs as
	// the postgres account when the tests run as root.
	dir, err := os.MkdirTemp("", "devstack-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	s, err := devstack.Start(ctx, devstack.Config{Dir: dir})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	pg, err := pgx.Connect(ctx, s.DatabaseURL)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	if _, err := pg.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	pg.Close(ctx)
	opts, _ := redis.ParseURL(s.RedisURL)
	rdb := redis.NewClient(opts)
	if err := rdb.Set(ctx, "kept", "yes", 0).Err(); err != nil {
		t.Fatalf("redis: %v", err)
	}
	rdb.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: kafka.TopicEvents, Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatalf("kafka produce: %v", err)
	}
	cl.Close()
	if len(s.KafkaBrokers) != 3 {
		t.Errorf("kafka brokers = %d, want 3", len(s.KafkaBrokers))
	}
	if s.S3Endpoint == "" {
		t.Error("no S3 endpoint")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	s, err = devstack.Start(ctx, devstack.Config{Dir: dir})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer s.Close()
	pg, err = pgx.Connect(ctx, s.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := pg.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Errorf("postgres row after restart = %d, %v; want 42", v, err)
	}
	pg.Close(ctx)
	opts, _ = redis.ParseURL(s.RedisURL)
	rdb = redis.NewClient(opts)
	defer rdb.Close()
	if got, err := rdb.Get(ctx, "kept").Result(); err != nil || got != "yes" {
		t.Errorf("redis key after restart = %q, %v", got, err)
	}
	cl, _ = kgo.NewClient(kgo.SeedBrokers(s.KafkaBrokers...))
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, kafka.TopicEvents)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != 1 {
		t.Errorf("kafka records after restart = %d, want 1", total)
	}
}
