package process

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
)

// benchEvents returns n events of a realistic mix: ~20 events per player
// spread over the last day, sessions with starts, ends and heartbeats.
func benchEvents(game string, n int, seed uint64) []event.Event {
	g := &simtest.Generator{Game: game, Rand: rand.New(rand.NewPCG(seed, 1))}
	var evs []event.Event
	for len(evs) < n {
		evs = append(evs, g.Players(max(1, n/20), simtest.Traffic{From: time.Now().Add(-24 * time.Hour), Span: 23 * time.Hour})...)
	}
	return evs[:n]
}

// liveEvents returns n events as a live game sends them: many players
// online at once, their events interleaved in time order within the last
// hour (benchEvents is the opposite: one player's day after another, as a
// replay of history).
func liveEvents(game string, n int, seed uint64) []event.Event {
	g := &simtest.Generator{Game: game, Rand: rand.New(rand.NewPCG(seed, 1))}
	var evs []event.Event
	for len(evs) < n {
		evs = append(evs, g.Players(max(1, n/20), simtest.Traffic{From: time.Now().Add(-time.Hour), Span: 50 * time.Minute})...)
	}
	evs = evs[:n]
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time().Before(evs[j].Time()) })
	return evs
}

// Events per second through the HTTP delivery path with 64 concurrent
// deliveries (as a KafkaSource with ordering: unordered would send them),
// for a replay of history: one player's day after another. events/s runs
// until every event is aggregated (stage 2 keeps up, or the figure says
// so); acked-events/s until the last delivery is acknowledged (stage 1).
// Run with e.g. -benchtime=30000x.
func BenchmarkHTTPDeliveries64(b *testing.B) { benchmarkHTTPDeliveries(b, benchEvents) }

// The same for live traffic: many players online at once, their events in
// time order. Every event then changes its player's and session's row.
func BenchmarkHTTPDeliveries64Live(b *testing.B) { benchmarkHTTPDeliveries(b, liveEvents) }

func benchmarkHTTPDeliveries(b *testing.B, events func(game string, n int, seed uint64) []event.Event) {
	game := newGame(b, "UTC")
	p := newProcess(b, benchConfig(b))
	url := httpServer(b, p)
	evs := events(game.ID, b.N, 1)
	cpu := pgCPU(b)
	b.ResetTimer()
	start := time.Now()
	acked := deliver64(b, url, evs)
	drain(b, p) // the run ends when every event is counted, not only stored
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/acked.Seconds(), "acked-events/s")
	cpu(b.N)
	reportBatches(b, p)
	b.ReportMetric(0, "ns/op")
}

// The ceiling of the HTTP delivery path on this machine: the same client
// and deliveries, the same decoding and validation, but nothing written.
// Compare with BenchmarkHTTPDeliveries64 to see what the writes cost.
func BenchmarkHTTPDeliveryFloor64(b *testing.B) {
	game := newGame(b, "UTC")
	p := newProcess(b, benchConfig(b))
	url := httpServer(b, serving.CloudEventHandler(func(ctx context.Context, e event.Event) (*event.Event, error) {
		_, err := p.decode(ctx, &e)
		return nil, err
	}, testLogger(b)))
	evs := benchEvents(game.ID, b.N, 1)
	b.ResetTimer()
	elapsed := deliver64(b, url, evs)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}

// deliver64 posts evs to url from 64 concurrent clients (as a KafkaSource
// with ordering: unordered would) and returns how long that took.
func deliver64(b *testing.B, url string, evs []event.Event) time.Duration {
	return deliver(b, url, evs, 64)
}

// deliver posts evs to url from conc concurrent clients.
func deliver(b *testing.B, url string, evs []event.Event, conc int) time.Duration {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}
	var offset atomic.Int64
	start := time.Now()
	simtest.Feed(b, func(_ context.Context, e event.Event) (*event.Event, error) {
		i := int(offset.Add(1) - 1)
		if status, body := post(b, client, url, e, i); status != http.StatusAccepted {
			return nil, fmt.Errorf("delivery %d: %d %s", i, status, body)
		}
		return nil, nil
	}, evs, conc)
	return time.Since(start)
}

// benchConfig is the default configuration with PROCESS_MAX_BATCH,
// PROCESS_FLUSHERS and PROCESS_LINGER from the environment, to compare
// settings.
func benchConfig(b *testing.B) Config {
	cfg, err := ConfigFromEnv(os.Getenv)
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// pgCPU starts measuring PostgreSQL's CPU time (every server process,
// from the kernel's accounting, so other load on the machine does not
// change it); the function it returns reports it per event of the run.
//
// With GAMEMETRICS_PG_STAT_STATEMENTS=1 (the local stack then loads
// pg_stat_statements) it also logs the statements that took the most
// server time during the run: run with -v to see them.
func pgCPU(b *testing.B) func(events int) {
	b.Helper()
	statements := os.Getenv("GAMEMETRICS_PG_STAT_STATEMENTS") != ""
	if statements {
		if _, err := pool.Exec(context.Background(), "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()"); err != nil {
			b.Fatal(err)
		}
	}
	before, err := stack.PostgresCPU()
	if err != nil {
		b.Fatal(err)
	}
	return func(events int) {
		b.Helper()
		after, err := stack.PostgresCPU()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(after-before)/float64(time.Microsecond)/float64(events), "pg-µs/event")
		if statements {
			logStatements(b, events)
		}
	}
}

// logStatements logs the 15 statements with the most execution time.
func logStatements(b *testing.B, events int) {
	rows, err := pool.Query(context.Background(), `SELECT calls, total_exec_time, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 110)
		FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var calls, n int64
		var ms float64
		var q string
		if err := rows.Scan(&calls, &ms, &n, &q); err != nil {
			b.Fatal(err)
		}
		b.Logf("%7.2f µs/event %8d calls %9d rows  %s", ms*1000/float64(events), calls, n, q)
	}
}

// reportBatches adds the mean batch size and transaction time.
func reportBatches(b *testing.B, p *Process) {
	var size, dur dto.Metric
	if p.metrics.batchSize.Write(&size) != nil || p.metrics.batchDuration.Write(&dur) != nil {
		return
	}
	if n := float64(size.GetHistogram().GetSampleCount()); n > 0 {
		b.ReportMetric(size.GetHistogram().GetSampleSum()/n, "events/batch")
		b.ReportMetric(dur.GetHistogram().GetSampleSum()/n*1000, "ms/batch")
	}
	var agg dto.Metric
	if p.metrics.aggregationSize.Write(&agg) == nil {
		if n := float64(agg.GetHistogram().GetSampleCount()); n > 0 {
			b.ReportMetric(agg.GetHistogram().GetSampleSum()/n, "events/aggregation")
		}
	}
}

// produceAll writes evs to a new topic and returns its name.
func produceAll(b *testing.B, game string, evs []event.Event, partitions int32) (string, *kgo.Client) {
	b.Helper()
	ctx := context.Background()
	topic := "bench-" + game
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
		b.Fatal(err)
	}
	if len(evs) == 0 {
		return topic, cl
	}
	recs := make([]*kgo.Record, len(evs))
	for i := range evs {
		if recs[i], err = kafka.Record(ctx, &evs[i], topic, game+"/"+evs[i].Subject()); err != nil {
			b.Fatal(err)
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	return topic, cl
}

func countedEvents(ctx context.Context, game string) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(value), 0)::bigint FROM rollup_daily WHERE gameid = $1 AND metric = 'events'`, game).Scan(&n)
	return n, err
}

// Events per second through the direct consumer mode: b.N events are
// produced first (not timed), then consumed, written and committed.
// Run with e.g. -benchtime=200000x.
func BenchmarkConsumerMode(b *testing.B) {
	game := newGame(b, "UTC")
	p := newProcess(b, benchConfig(b))
	evs := benchEvents(game.ID, b.N, 2)
	topic, _ := produceAll(b, game.ID, evs, 12)
	cfg, err := ConsumerConfigFromEnv(os.Getenv) // PROCESS_KAFKA_WRITERS etc. to compare settings
	if err != nil {
		b.Fatal(err)
	}
	cfg.Topic, cfg.Group = topic, "bench-"+game.ID
	c, err := NewConsumer(p, kafkaConfig(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cpu := pgCPU(b)
	b.ResetTimer()
	start := time.Now()
	go c.Run(ctx)
	for {
		n, err := countedEvents(ctx, game.ID)
		if err != nil {
			b.Fatal(err)
		}
		if n == int64(b.N) {
			break
		}
		if time.Since(start) > 90*time.Second {
			b.Fatalf("only %d of %d events counted after 90 s", n, b.N)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	cpu(b.N)
	b.ReportMetric(0, "ns/op")
}

func kafkaConfig() kafka.Config { return kafka.Config{Brokers: stack.KafkaBrokers} }

// Freshness: events are produced to Kafka at 10,000 events/s for 5 s while
// the consumer runs; the time from each event's produce acknowledgement to
// the moment the rollups count it is reported as p50 and p99. The rollup
// count is polled every 2 ms; event k is taken as counted when the count
// first reaches k+1 (the stream is consumed close to FIFO, so this is the
// order-statistic view of the same delays). Run with -benchtime=1x.
func BenchmarkFreshness10kPerSecond(b *testing.B) {
	const (
		rate     = 10_000
		duration = 5 * time.Second
	)
	for i := 0; i < b.N; i++ {
		game := newGame(b, "UTC")
		cfg := DefaultConfig()
		p := newProcess(b, cfg)
		total := int(rate * duration / time.Second)
		evs := benchEvents(game.ID, total, 3)
		topic, prod := produceAll(b, game.ID, nil, 12)
		ccfg := DefaultConsumerConfig()
		ccfg.Topic, ccfg.Group = topic, "fresh-"+game.ID
		c, err := NewConsumer(p, kafkaConfig(), ccfg, kgo.FetchMaxWait(20*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go c.Run(ctx)

		acked := make([]time.Time, total)
		var ackMu sync.Mutex
		ackN := 0
		ackTimes := make([]time.Time, 0, total)
		done := make(chan struct{})
		go func() { // producer at a steady rate, in ticks of 1 ms
			defer close(done)
			start := time.Now()
			sent := 0
			for sent < total {
				due := min(total, int(time.Since(start).Seconds()*rate)+1)
				for ; sent < due; sent++ {
					rec, err := kafka.Record(ctx, &evs[sent], topic, game.ID+"/"+evs[sent].Subject())
					if err != nil {
						b.Error(err)
						return
					}
					prod.Produce(ctx, rec, func(_ *kgo.Record, err error) {
						if err != nil {
							b.Error(err)
						}
						ackMu.Lock()
						ackTimes = append(ackTimes, time.Now())
						ackN++
						ackMu.Unlock()
					})
				}
				time.Sleep(time.Millisecond)
			}
		}()
		counted := make([]time.Time, 0, total)
		deadline := time.Now().Add(duration + 30*time.Second)
		for len(counted) < total && time.Now().Before(deadline) {
			n, err := countedEvents(ctx, game.ID)
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			for int64(len(counted)) < n {
				counted = append(counted, now)
			}
			time.Sleep(2 * time.Millisecond)
		}
		<-done
		prod.Flush(ctx)
		cancel()
		c.Close()
		if len(counted) < total {
			b.Fatalf("only %d of %d events counted", len(counted), total)
		}
		ackMu.Lock()
		copy(acked, ackTimes)
		ackMu.Unlock()
		lat := make([]float64, total)
		for k := range lat {
			lat[k] = counted[k].Sub(acked[k]).Seconds()
		}
		sort.Float64s(lat)
		b.ReportMetric(lat[total/2]*1000, "p50-ms")
		b.ReportMetric(lat[total*99/100]*1000, "p99-ms")
		b.ReportMetric(lat[total-1]*1000, "max-ms")
		b.ReportMetric(0, "ns/op")
	}
}

// An upper bound for concurrent batch transactions that share no rows: two
// games, each with its own process (one batch transaction at a time) and
// 32 of the 64 deliveries in flight, so the two transactions never queue on
// each other's rollup rows. Compare with BenchmarkHTTPDeliveries64.
func BenchmarkHTTPDeliveries64TwoGames(b *testing.B) {
	var (
		urls [2]string
		evs  [2][]event.Event
		ps   [2]*Process
	)
	for i := range urls {
		game := newGame(b, "UTC")
		ps[i] = newProcess(b, benchConfig(b))
		urls[i] = httpServer(b, ps[i])
		evs[i] = benchEvents(game.ID, b.N/2, uint64(1+i))
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	var elapsed [2]time.Duration
	for i := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			deliver(b, urls[i], evs[i], 32)
			drain(b, ps[i])
			elapsed[i] = time.Since(start)
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(len(evs[0])+len(evs[1]))/max(elapsed[0], elapsed[1]).Seconds(), "events/s")
	reportBatches(b, ps[0])
	b.ReportMetric(0, "ns/op")
}
