package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/store"
)

// statusFixture is one test's view of the shared stack: its own game, with
// the partitions a retention run leaves, and its own topic and consumer
// group, so the lag other tests cause does not reach it.
type statusFixture struct {
	ctx   context.Context
	pool  *pgxpool.Pool
	cl    *kgo.Client
	game  string
	topic string
	group string
	env   map[string]string
}

func newStatusFixture(t *testing.T) *statusFixture {
	t.Helper()
	ctx := migrated(t)
	pool, err := store.Open(ctx, stack.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	suffix := fmt.Sprint(time.Now().UnixNano())
	g, _, err := store.NewGames(pool).Create(ctx, "status "+suffix, "UTC")
	if err != nil {
		t.Fatal(err)
	}
	// What retention leaves behind: today's partition and those ahead.
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for i := 0; i <= retentionAheadDays; i++ {
		if err := store.CreateEventPartition(ctx, pool, g.ID, today.AddDate(0, 0, i)); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	f := &statusFixture{ctx: ctx, pool: pool, cl: cl, game: g.ID, topic: "status-" + suffix, group: "gamemetrics-status-" + suffix, env: map[string]string{}}
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 2, -1, nil, f.topic); err != nil {
		t.Fatal(err)
	}
	f.produce(t, 20)
	f.consumeAll(t)
	return f
}

func (f *statusFixture) produce(t *testing.T, n int) {
	t.Helper()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: f.topic, Key: []byte(fmt.Sprint(i)), Value: []byte("{}")})
	}
	if err := f.cl.ProduceSync(f.ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// consumeAll reads the topic to its end in the fixture's group, commits and
// leaves the group: a consumer that caught up and stopped.
func (f *statusFixture) consumeAll(t *testing.T) {
	t.Helper()
	c, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...), kgo.ConsumerGroup(f.group), kgo.ConsumeTopics(f.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ends, err := kadm.NewClient(f.cl).ListEndOffsets(f.ctx, f.topic)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	for got := int64(0); got < want; {
		fetches := c.PollFetches(f.ctx)
		if err := fetches.Err(); err != nil {
			t.Fatal(err)
		}
		got += int64(fetches.NumRecords())
	}
	if err := c.CommitUncommittedOffsets(f.ctx); err != nil {
		t.Fatal(err)
	}
}

func (f *statusFixture) getenv(name string) string {
	if v, ok := f.env[name]; ok {
		return v
	}
	return stack.Getenv(name)
}

// status runs `gamemetrics status` for the fixture's game and group.
func (f *statusFixture) status(t *testing.T) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(f.ctx, []string{"status", "--sample", "500ms", "--groups", f.group, "--game", f.game, "--timeout", "10s"}, f.getenv, &out, &errb)
	return out.String() + errb.String(), err
}

// line returns the output line of one check.
func line(out, check string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, check+" ") {
			return l
		}
	}
	return ""
}

func TestStatusOfAHealthyStackPassesEveryCheck(t *testing.T) {
	f := newStatusFixture(t)
	out, err := f.status(t)
	if err != nil {
		t.Fatalf("status failed on a healthy stack: %v\n%s", err, out)
	}
	for check, want := range map[string]string{
		"postgres":       "ok",
		"migrations":     "all",
		"retention":      "last run on or after",
		"redis":          "reachable",
		"kafka":          "reachable",
		"topics":         "gamemetrics.events ",
		"lag " + f.group: "0 behind on " + f.topic,
		"s3":             "reachable",
	} {
		l := line(out, check)
		if !strings.Contains(l, " ok ") || !strings.Contains(l, want) {
			t.Errorf("check %s: %q, want ok and %q\n%s", check, l, want, out)
		}
	}
	for _, topic := range []string{"gamemetrics.events.dlq", "gamemetrics.notify.dlq", "gamemetrics.recommend.dlq", "gamemetrics.recommendations"} {
		if !strings.Contains(line(out, "topics"), topic) {
			t.Errorf("topics line lacks %s: %s", topic, line(out, "topics"))
		}
	}
}

// A consumer that stopped while records keep arriving: its lag grows
// between the two samples, and status says so and exits non-zero.
func TestStatusFailsOnAStoppedConsumerWhoseLagGrows(t *testing.T) {
	f := newStatusFixture(t)
	ctx, stop := context.WithCancel(f.ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			f.cl.ProduceSync(ctx, &kgo.Record{Topic: f.topic, Key: []byte(fmt.Sprint(i)), Value: []byte("{}")})
			time.Sleep(20 * time.Millisecond)
		}
	}()
	out, err := f.status(t)
	stop()
	wg.Wait()
	if err == nil {
		t.Fatalf("status passed with a stopped consumer falling behind:\n%s", out)
	}
	l := line(out, "lag "+f.group)
	if !strings.Contains(l, " fail ") || !strings.Contains(l, "stopped consumer, lag growing") {
		t.Errorf("lag line = %q, want a failure naming the stopped consumer\n%s", l, out)
	}
	if l := line(out, "postgres"); !strings.Contains(l, " ok ") {
		t.Errorf("only the lag check should fail: %s", l)
	}
}

func TestStatusFailsOnPendingMigrations(t *testing.T) {
	f := newStatusFixture(t)
	name := fmt.Sprintf("status_empty_%d", time.Now().UnixNano())
	if _, err := f.pool.Exec(f.ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.pool.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	u, err := url.Parse(stack.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	f.env["DATABASE_URL"] = u.String()
	out, err := f.status(t)
	if err == nil {
		t.Fatalf("status passed on a database without the schema:\n%s", out)
	}
	if l := line(out, "migrations"); !strings.Contains(l, " fail ") || !strings.Contains(l, "pending: 0001_games") {
		t.Errorf("migrations line = %q\n%s", l, out)
	}
}

func TestStatusFailsWhenRetentionIsOverdue(t *testing.T) {
	f := newStatusFixture(t)
	hot := 7
	if _, err := store.NewGames(f.pool).SetRetention(f.ctx, f.game, &hot, nil); err != nil {
		t.Fatal(err)
	}
	old := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -30)
	if err := store.CreateEventPartition(f.ctx, f.pool, f.game, old); err != nil {
		t.Fatal(err)
	}
	out, err := f.status(t)
	if err == nil {
		t.Fatalf("status passed with a partition past the game's hot days:\n%s", out)
	}
	if l := line(out, "retention"); !strings.Contains(l, " fail ") || !strings.Contains(l, "past its 7 hot days (oldest "+old.Format(time.DateOnly)+")") {
		t.Errorf("retention line = %q\n%s", l, out)
	}
}

func TestStatusFailsWhenADependencyIsUnreachable(t *testing.T) {
	f := newStatusFixture(t)
	f.env["REDIS_URL"] = "redis://127.0.0.1:1/0"
	f.env["S3_ENDPOINT"] = "http://127.0.0.1:1" // the local S3 creates missing buckets, so point elsewhere
	out, err := f.status(t)
	if err == nil {
		t.Fatalf("status passed without Redis and S3:\n%s", out)
	}
	for _, check := range []string{"redis", "s3"} {
		if l := line(out, check); !strings.Contains(l, " fail ") {
			t.Errorf("%s line = %q, want fail\n%s", check, l, out)
		}
	}
}
