package process

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/cache"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
)

func TestDuplicatedShuffledConcurrentDeliveriesGiveExactAggregates(t *testing.T) {
	for _, tz := range []string{"UTC", "America/Los_Angeles", "Asia/Kolkata"} {
		t.Run(tz, func(t *testing.T) {
			game := newGame(t, tz)
			p := newProcess(t, DefaultConfig())
			url := httpServer(t, p)
			rng := rand.New(rand.NewPCG(1, uint64(len(tz))))
			g := &simtest.Generator{Game: game.ID, Rand: rng}
			evs := g.Players(40, simtest.Traffic{From: time.Now().Add(-72 * time.Hour), Span: 70 * time.Hour})
			deliverAll(t, url, g.Deliveries(evs, 5), 32)
			drain(t, p)
			sameAggregates(t, game, evs)
		})
	}
}

func TestSessionEdgeCasesYieldOneSessionWithTheRightLength(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 23, 50, 0, 0, time.UTC)
	type step struct {
		typ  string
		at   time.Duration // after t0
		data string
	}
	start := func(at time.Duration, platform string) step {
		return step{events.TypeSessionStart, at, `{"platform":"` + platform + `","app_version":"1"}`}
	}
	tests := []struct {
		name       string
		steps      []step // delivered in this order
		wantBegin  time.Duration
		wantLength string
		wantPlat   string
	}{
		{"end delivered before start", []step{
			{events.TypeSessionEnd, 10 * time.Minute, ""}, {events.TypeHeartbeat, 5 * time.Minute, ""}, start(0, "ios")},
			0, "600", "ios"},
		{"end timestamped before start without length", []step{
			start(2*time.Minute, "ios"), {events.TypeSessionEnd, time.Minute, `{}`}},
			2 * time.Minute, "0", "ios"},
		{"end with client length wins over clocks", []step{
			{events.TypeSessionEnd, time.Minute, `{"length_s":754.25}`}, start(2*time.Minute, "web")},
			2 * time.Minute, "3017/4", "web"},
		{"missing end: length is last activity minus start", []step{
			start(0, "android"), {events.TypeHeartbeat, 7 * time.Minute, ""}, {events.TypeHeartbeat, 3 * time.Minute, ""}},
			0, "420", "android"},
		{"repeated start keeps the earliest", []step{
			start(5*time.Minute, "web"), start(0, "ios"), start(5*time.Minute, "web"), {events.TypeSessionEnd, 20 * time.Minute, ""}},
			0, "1200", "ios"},
		{"no start at all begins at the first event", []step{
			{events.TypeHeartbeat, 15 * time.Minute, ""}, {events.TypeHeartbeat, 12 * time.Minute, ""}},
			12 * time.Minute, "180", ""},
		{"start arriving late moves the session to the previous day", []step{
			{events.TypeHeartbeat, 11 * time.Minute, ""}, {events.TypeSessionEnd, 12 * time.Minute, ""}, start(0, "mac")},
			0, "720", "mac"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			game := newGame(t, "Europe/Berlin") // t0 + 10 min crosses midnight in Berlin
			p := newProcess(t, DefaultConfig())
			g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(2, 2))}
			var evs []event.Event
			for _, s := range tc.steps {
				evs = append(evs, g.Event(s.typ, "p1", "sess-1", t0.Add(s.at), s.data))
			}
			for _, e := range evs { // one by one, in the given order: each its own batch
				if _, err := p.Handle(context.Background(), e); err != nil {
					t.Fatal(err)
				}
				drain(t, p) // and each its own aggregation
			}
			sameAggregates(t, game, evs)
			var n int
			var begin time.Time
			var length, platform string
			err := pool.QueryRow(context.Background(), `SELECT count(*) OVER (), begin_at, length_s::text, coalesce(platform, '')
				FROM sessions WHERE gameid = $1`, game.ID).Scan(&n, &begin, &length, &platform)
			if err != nil {
				t.Fatal(err)
			}
			if n != 1 || !begin.Equal(t0.Add(tc.wantBegin)) || ratOf(t, length).RatString() != tc.wantLength || platform != tc.wantPlat {
				t.Errorf("sessions = %d, begin %s, length %s, platform %q; want 1, %s, %s, %q",
					n, begin.UTC(), length, platform, t0.Add(tc.wantBegin), tc.wantLength, tc.wantPlat)
			}
		})
	}
}

func TestNeverProcessableEventsGetA4xxThatIsNotRetried(t *testing.T) {
	game := newGame(t, "UTC")
	p := newProcess(t, DefaultConfig())
	url := httpServer(t, p)
	g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(3, 3))}
	now := time.Now().UTC()
	tests := []struct {
		name   string
		event  func() event.Event
		reason string
	}{
		{"no gameid", func() event.Event {
			e := g.Event(events.TypeHeartbeat, "p", "s", now, "")
			e.SetExtension(events.ExtGameID, nil)
			return e
		}, "gameid"},
		{"unknown game", func() event.Event {
			e := g.Event(events.TypeHeartbeat, "p", "s", now, "")
			e.SetExtension(events.ExtGameID, "gnosuchgame")
			return e
		}, "unknown game"},
		{"type not in the catalogue", func() event.Event {
			e := g.Event("dev.knative.kafka.event", "p", "", now, `{}`)
			return e
		}, "catalogue"},
		{"invalid data", func() event.Event {
			return g.Event(events.TypePurchase, "p", "", now, `{"item_id":"x","currency":"USD","amount_minor":-5}`)
		}, "amount_minor"},
		{"session event without session", func() event.Event {
			return g.Event(events.TypeHeartbeat, "p", "", now, "")
		}, "sessionid"},
		{"data PostgreSQL cannot store", func() event.Event {
			return g.Event(events.TypeDesign, "p", "", now, `{"event":"a:b","note":"nul \u0000 byte"}`)
		}, "cannot be stored"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, http.DefaultClient, url, tc.event(), i)
			retried := status >= 500 || status == 404 || status == 408 || status == 409 || status == 429
			if status < 400 || status >= 500 || retried {
				t.Fatalf("status %d, want a 4xx KafkaSource sends to the dead-letter sink: %s", status, body)
			}
			if !strings.Contains(body, tc.reason) {
				t.Errorf("body %s does not give the reason (%q)", body, tc.reason)
			}
		})
	}
}

func TestPoisonEventFailsAloneAndItsBatchNeighboursCommit(t *testing.T) {
	game := newGame(t, "UTC")
	cfg := DefaultConfig()
	cfg.Linger = 50 * time.Millisecond // all deliveries below share one batch
	p := newProcess(t, cfg)
	g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(4, 4))}
	now := time.Now().UTC().Truncate(time.Second)
	var good []event.Event
	for i := 0; i < 20; i++ {
		good = append(good, g.Event(events.TypeDesign, fmt.Sprint("p", i), "", now, `{"event":"a:b","value":1.5}`))
	}
	poison := g.Event(events.TypeDesign, "p-bad", "", now, `{"event":"a:b","x":"\u0000"}`)
	var wg sync.WaitGroup
	errs := make([]error, len(good)+1)
	for i, e := range append(good, poison) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.Handle(context.Background(), e)
		}()
	}
	wg.Wait()
	for i, err := range errs[:len(good)] {
		if err != nil {
			t.Errorf("good event %d: %v", i, err)
		}
	}
	if s := statusOf(errs[len(good)]); s != http.StatusUnprocessableEntity {
		t.Errorf("poison event status %d (%v), want 422", s, errs[len(good)])
	}
	drain(t, p)
	sameAggregates(t, game, good)
}

func TestDatabaseRestartMidStreamGives5xxThenExactAggregates(t *testing.T) {
	game := newGame(t, "America/New_York")
	cfg := DefaultConfig()
	cfg.WriteTimeout = 2 * time.Second
	p := newProcess(t, cfg)
	url := httpServer(t, p)
	rng := rand.New(rand.NewPCG(5, 5))
	g := &simtest.Generator{Game: game.ID, Rand: rng}
	evs := g.Players(60, simtest.Traffic{From: time.Now().Add(-48 * time.Hour), Span: 47 * time.Hour})
	ds := g.Deliveries(evs, 3)
	// Warm the game cache so the outage hits the writes, not only the lookup.
	half := len(ds) / 3
	deliverAll(t, url, ds[:half], 8)

	var retried atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		retried.Store(int64(deliverAll(t, url, ds[half:], 8)))
	}()
	time.Sleep(30 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := stack.RestartPostgres(ctx, 1500*time.Millisecond); err != nil {
		t.Fatalf("restart: %v", err)
	}
	<-done
	if retried.Load() == 0 {
		t.Error("no delivery got a 5xx while PostgreSQL was down")
	}
	t.Logf("%d deliveries were answered 5xx and retried", retried.Load())
	drain(t, p)
	sameAggregates(t, game, evs)
}

func TestConsumerModeEndToEndThroughKafka(t *testing.T) {
	for _, tc := range []struct {
		name             string
		records, writers int
	}{
		{"one transaction per poll", 100, 1},
		{"polls split over concurrent transactions", 10_000, 3},
	} {
		t.Run(tc.name, func(t *testing.T) { testConsumerMode(t, tc.records, tc.writers) })
	}
}

func testConsumerMode(t *testing.T, records, writers int) {
	setup(t)
	game := newGame(t, "Asia/Tokyo")
	p := newProcess(t, DefaultConfig())
	rng := rand.New(rand.NewPCG(6, 6))
	g := &simtest.Generator{Game: game.ID, Rand: rng}
	evs := g.Players(50, simtest.Traffic{From: time.Now().Add(-24 * time.Hour), Span: 23 * time.Hour})
	ds := g.Deliveries(evs, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// A topic of our own, so other tests' records do not interfere.
	topic := "process-test-" + game.ID
	prod, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := kadm.NewClient(prod).CreateTopic(ctx, 4, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for _, e := range ds {
		r, err := kafka.Record(ctx, &e, topic, game.ID+"/"+e.Subject())
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	bad := g.Event("com.example.unknown", "p", "", time.Now(), `{}`)
	badRec, _ := kafka.Record(ctx, &bad, topic, "x")
	recs = append(recs, badRec)
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cfg := DefaultConsumerConfig()
	cfg.Topic, cfg.Group, cfg.MaxRecords, cfg.Writers = topic, "group-"+game.ID, records, writers
	kc := kafka.Config{Brokers: stack.KafkaBrokers}
	c, err := NewConsumer(p, kc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.minShare = 1 // split even the small polls of this test
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(rctx) }()
	// Wait until every offset is committed: only then is everything in the database.
	adm := kadm.NewClient(prod)
	for {
		offs, err := adm.FetchOffsets(ctx, cfg.Group)
		var total int64
		if err == nil {
			offs.Each(func(o kadm.OffsetResponse) { total += o.At })
		}
		if total == int64(len(recs)) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("committed %d of %d offsets", total, len(recs))
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-ran; err != nil {
		t.Errorf("run: %v", err)
	}
	c.Close()
	drain(t, p)
	sameAggregates(t, game, evs)
	var batches dto.Metric
	if err := p.metrics.batchSize.Write(&batches); err != nil {
		t.Fatal(err)
	}
	if n := batches.GetHistogram().GetSampleCount(); writers > 1 && n < uint64(writers) {
		t.Errorf("%d transactions: the polls were not split over %d writers", n, writers)
	}
	if n := counterValue(p.metrics.events.WithLabelValues("rejected")); n != 1 {
		t.Errorf("rejected = %v, want the one unknown-type record (sent to the DLQ)", n)
	}
}

func TestPropertyRandomDuplicationAndOrderGiveTheGroundTruth(t *testing.T) {
	seeds := 8
	if testing.Short() {
		seeds = 3
	}
	zones := []string{"UTC", "Pacific/Chatham", "America/St_Johns", "Europe/London", "Australia/Adelaide"}
	for seed := 0; seed < seeds; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 99))
			game := newGame(t, zones[rng.IntN(len(zones))])
			cfg := DefaultConfig()
			cfg.MaxBatch = 1 + rng.IntN(300)
			cfg.Linger = time.Duration(rng.IntN(5)) * time.Millisecond
			cfg.Flushers = 1 + rng.IntN(3) // concurrent transactions of one game
			p := newProcess(t, cfg)
			g := &simtest.Generator{Game: game.ID, Rand: rng}
			evs := g.Players(1+rng.IntN(30), simtest.Traffic{From: time.Now().Add(-time.Duration(1+rng.IntN(200)) * time.Hour), Span: time.Duration(1+rng.IntN(100)) * time.Hour})
			simtest.Feed(t, p.Handle, g.Deliveries(evs, 1+rng.IntN(5)), 1+rng.IntN(64))
			drain(t, p)
			sameAggregates(t, game, evs)
		})
	}
}

func TestLiveViewFollowsCommitsAndRedisFailureDoesNotFailDeliveries(t *testing.T) {
	game := newGame(t, "UTC")
	p := newProcess(t, DefaultConfig())
	g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(8, 8))}
	now := time.Now().UTC()
	var evs []event.Event
	for i := 0; i < 5; i++ { // 5 players online now
		evs = append(evs, g.Event(events.TypeHeartbeat, fmt.Sprint("on-", i), "s", now.Add(-time.Duration(i)*time.Minute), ""))
	}
	evs = append(evs, g.Event(events.TypeHeartbeat, "idle", "s", now.Add(-20*time.Minute), ""))
	simtest.Feed(t, p.Handle, g.Deliveries(evs, 3), 4)
	// Handle answers once its event is durable; the live view follows the
	// aggregation commit: stopping process waits for that.
	ctx := context.Background()
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	live := cache.NewLive(rdb)
	online, err := live.OnlineNow(ctx, game.ID, time.Now())
	if err != nil || online != 5 {
		t.Errorf("online now = %d, %v; want 5", online, err)
	}
	wantPerMinute := map[int64]int64{}
	for _, e := range evs {
		wantPerMinute[e.Time().Unix()/60]++
	}
	perMinute, err := live.EventsPerMinute(ctx, game.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range perMinute {
		if m.Events != wantPerMinute[m.Minute.Unix()/60] {
			t.Errorf("events in minute %s = %d, want %d", m.Minute, m.Events, wantPerMinute[m.Minute.Unix()/60])
		}
	}
	today := cache.Today(time.Now(), game.Location())
	wantActive := int64(0)
	for _, e := range evs {
		if cache.Today(e.Time(), game.Location()).Equal(today) {
			wantActive++
		}
	}
	if n, err := live.ActiveOn(ctx, game.ID, today); err != nil || n != wantActive {
		t.Errorf("active today = %d, %v; want %d", n, err, wantActive)
	}

	// Redis down: deliveries still succeed, the failure is counted.
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer dead.Close()
	q := New(DefaultConfig(), pool, dead, testLogger(t), prometheus.NewRegistry())
	defer q.Stop(context.Background())
	more := []event.Event{g.Event(events.TypeHeartbeat, "late", "s2", now, "")}
	if _, err := q.Handle(ctx, more[0]); err != nil {
		t.Fatalf("delivery failed because Redis is down: %v", err)
	}
	// The live view is updated after the delivery is acknowledged, once
	// the event is aggregated.
	for deadline := time.Now().Add(5 * time.Second); counterValue(q.metrics.liveErrors) != 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := counterValue(q.metrics.liveErrors); n != 1 {
		t.Errorf("live errors = %v, want 1", n)
	}
	drain(t, q)
	sameAggregates(t, game, append(evs, more...))
}

func statusOf(err error) int {
	if err == nil {
		return http.StatusOK
	}
	return serving.StatusOf(err)
}

func counterValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	return d.GetCounter().GetValue()
}
