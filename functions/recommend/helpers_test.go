package recommend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/functions/functionstest"
	"github.com/gamemetrics/gamemetrics/functions/recommend"
	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

var (
	stack *devstack.Stack
	pool  *pgxpool.Pool
	arc   *archive.Client
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

func setup(t testing.TB) {
	t.Helper()
	c := devstacktest.Connect(t, stack)
	pool, arc = c.Pool, c.Archive
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// testGame is a game with its keys.
type testGame struct {
	store.Game
	keys store.Keys
}

func newGame(t testing.TB) testGame {
	t.Helper()
	setup(t)
	g, keys, err := store.NewGames(pool).Create(context.Background(), "test "+t.Name(), "UTC")
	if err != nil {
		t.Fatal(err)
	}
	return testGame{Game: g, keys: keys}
}

// replica is one recommend replica served over HTTP.
type replica struct {
	*recommend.Recommend
	url string
}

// newReplica builds recommend on the shared stack, polling for models
// every 100ms, with a producer on the local Kafka, and waits until it is
// ready (its promoted models loaded).
func newReplica(t testing.TB, mutate ...func(*recommend.Config)) *replica {
	t.Helper()
	setup(t)
	cfg := recommend.DefaultConfig()
	cfg.ModelPoll = 100 * time.Millisecond
	for _, m := range mutate {
		m(&cfg)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	r := recommend.New(cfg, pool, arc, prod, testLogger(), prometheus.NewRegistry(), nil)
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := r.Stop(ctx); err != nil {
			t.Errorf("stop recommend: %v", err)
		}
		prod.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := r.Ready(context.Background())
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recommend not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &replica{Recommend: r, url: srv.URL}
}

// ingested is e as ingest writes it to Kafka: with the gameid and
// receivedtime extensions.
func ingested(game string, e simulation.Event) event.Event {
	var ce event.Event
	if err := json.Unmarshal(e.JSON(), &ce); err != nil {
		panic(err)
	}
	ce.SetExtension(events.ExtGameID, game)
	ce.SetExtension(events.ExtReceivedTime, e.Time.Add(time.Second))
	return ce
}

// ev builds one event of the catalogue for a game.
func ev(game, typ, id, player string, at time.Time, data map[string]any) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("/test")
	e.SetType(typ)
	e.SetSubject(player)
	e.SetTime(at)
	if typ == events.TypeSessionStart {
		e.SetExtension(events.ExtSessionID, "s-"+id)
	}
	e.SetExtension(events.ExtGameID, game)
	e.SetExtension(events.ExtReceivedTime, at.Add(time.Second))
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		panic(err)
	}
	return e
}

func purchase(game, id, player, item string, amount int, at time.Time) event.Event {
	return ev(game, events.TypePurchase, id, player, at, map[string]any{"item_id": item, "currency": "USD", "amount_minor": amount})
}

func sink(game, id, player, item string, at time.Time) event.Event {
	return ev(game, events.TypeResource, id, player, at, map[string]any{"flow": "sink", "currency": "gold", "amount": 50, "item_type": "shop", "item_id": item})
}

// deliver hands evs to Handle from 16 goroutines at once, as an unordered
// KafkaSource would, and fails on any error.
func deliver(t testing.TB, r *recommend.Recommend, evs []event.Event) {
	t.Helper()
	var wg sync.WaitGroup
	ch := make(chan event.Event)
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for e := range ch {
				if _, err := r.Handle(context.Background(), e); err != nil {
					select {
					case errs <- fmt.Errorf("event %s: %w", e.ID(), err):
					default:
					}
				}
			}
		})
	}
	for _, e := range evs {
		ch <- e
	}
	close(ch)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// simulatedGame generates a simulated game's events for g (players with
// tastes over items) and the catalogue behind them.
func simulatedGame(g testGame, players, items int, seed uint64) ([]event.Event, *simulation.Catalogue) {
	sim := simulation.Generate(simulation.Config{Players: players, Items: items, Days: 20, Seed: seed,
		End: time.Now().UTC().Truncate(time.Second), RunID: g.ID + "-"})
	out := make([]event.Event, len(sim))
	for i, e := range sim {
		out[i] = ingested(g.ID, e)
	}
	return out, simulation.NewCatalogue(items, seed)
}

// shuffledWithDuplicates returns evs in a random order with a share of them
// sent twice.
func shuffledWithDuplicates(evs []event.Event, share float64, seed uint64) []event.Event {
	r := rand.New(rand.NewPCG(seed, seed+1))
	out := append([]event.Event(nil), evs...)
	for _, e := range evs {
		if r.Float64() < share {
			out = append(out, e)
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// call sends an API request and decodes the JSON answer into out (if not nil).
func call(t testing.TB, method, url, key, contentType string, body []byte, out any) int {
	t.Helper()
	code, b := functionstest.Call(t, method, url, key, contentType, body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, code, b, err)
		}
	}
	return code
}

// recommendations asks for a player's recommendations.
func (r *replica) recommendations(t testing.TB, g testGame, player string, limit int) recommend.Answer {
	t.Helper()
	var a recommend.Answer
	url := fmt.Sprintf("%s/v1/games/%s/players/%s/recommendations?limit=%d", r.url, g.ID, player, limit)
	if code := call(t, http.MethodGet, url, g.keys.Read, "", nil, &a); code != http.StatusOK {
		t.Fatalf("GET %s: %d", url, code)
	}
	return a
}

func (r *replica) putItems(t testing.TB, g testGame, items []recommend.Item) {
	t.Helper()
	b, _ := json.Marshal(items)
	var out map[string]any
	if code := call(t, http.MethodPut, r.url+"/v1/games/"+g.ID+"/items", g.keys.Admin, "application/json", b, &out); code != http.StatusOK {
		t.Fatalf("PUT items: %d %v", code, out)
	}
}

func ids(a recommend.Answer) []string {
	var out []string
	for _, it := range a.Items {
		out = append(out, it.ItemID)
	}
	return out
}

// readTopic returns the records of topic whose key starts with prefix,
// waiting until at least n arrived.
func readTopic(t testing.TB, topic, prefix string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records for %s* in %s", len(out), n, prefix, topic)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if bytes.HasPrefix(r.Key, []byte(prefix)) {
				out = append(out, r)
			}
		})
	}
	return out
}

func statusOf(err error) int { return serving.StatusOf(err) }
