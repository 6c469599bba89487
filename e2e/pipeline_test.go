// Package e2e runs the whole GameMetrics pipeline the way production does:
// the real local stack, every function as its own HTTP server, the local
// eventing runtime running the real eventing/base manifests, and simulated
// game clients sending through ingest. What the report API answers is
// compared, exactly, with the simulator's truth.
package e2e

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/functions"
	"github.com/gamemetrics/gamemetrics/functions/functionstest"
	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
	"github.com/gamemetrics/gamemetrics/shared/store"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

var stack *devstack.Stack

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

// platform is the pipeline of one test.
type platform struct {
	t       testing.TB
	servers *functionstest.Servers
	game    store.Game
	keys    store.Keys
	log     *slog.Logger
}

func newPlatform(t testing.TB, timezone string) *platform {
	t.Helper()
	return newPlatformOf(t, timezone, nil)
}

// newPlatformOf is newPlatform with only the named functions and the
// sources feeding them (nil: all of them).
func newPlatformOf(t testing.TB, timezone string, names []string) *platform {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// The stack's addresses, then the environment (PROCESS_FLUSHERS and
	// the like, to compare settings in the benchmarks).
	deps := functions.NewDeps(func(name string) string {
		if v := stack.Getenv(name); v != "" {
			return v
		}
		return os.Getenv(name)
	}, log)
	t.Cleanup(deps.Close)
	game, keys, err := store.NewGames(devstacktest.Connect(t, stack).Pool).Create(ctx, t.Name(), timezone)
	if err != nil {
		t.Fatal(err)
	}
	servers := functionstest.PlatformOf(t, deps, log, "../eventing/base", stack.KafkaBrokers, telemetry.NewRegistry(), names)
	p := &platform{t: t, servers: servers, game: game, keys: keys, log: log}
	return p
}

func (p *platform) url(name string) string { return p.servers.URL(name) }

// reader reads the report API with the game's read key.
func (p *platform) reader() simulation.Reader {
	return simulation.Reader{BaseURL: p.url(serving.Report), Game: p.game.ID, ReadKey: p.keys.Read}
}

// waitForTruth polls the report API until it agrees with the truth exactly.
func (p *platform) waitForTruth(truth simulation.Truth, within time.Duration) {
	p.t.Helper()
	functionstest.WaitForTruth(p.t, p.reader(), truth, within)
}

// A simulated game with 5% duplicate sends, shuffled batches, late and
// malformed events, whose process function is killed and restarted while
// the events flow: the report API must still match the truth exactly.
func TestPipelineIsExactThroughDuplicatesMalformedEventsAndAProcessRestart(t *testing.T) {
	p := newPlatform(t, "America/Los_Angeles")
	loc := p.game.Location()
	now := time.Now().UTC()
	evs := simulation.Generate(simulation.Config{Players: 250, Days: 6, End: now, Location: loc, Seed: 11, RunID: "e2e1-"})
	cfg := simulation.SendConfig{URL: p.url(serving.Ingest), WriteKey: p.keys.Write, Batch: 50, Concurrency: 4,
		Duplicates: 0.05, Late: 0.02, Malformed: 0.01, Shuffle: true, Seed: 11, Rate: 4000}
	stream, malformed, _ := simulation.Plan(evs, cfg)
	third := len(stream) / 3

	ctx := context.Background()
	st1, err := simulation.Send(ctx, stream[:third], cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Kill process mid-stream: deliveries fail and are retried by the
	// eventing runtime with the manifest's backoff until it is back.
	addr := p.servers.Get(serving.Process).Addr
	p.servers.Stop(serving.Process)
	st2, err := simulation.Send(ctx, stream[third:2*third], cfg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	p.servers.Start(serving.Process, addr)
	st3, err := simulation.Send(ctx, stream[2*third:], cfg)
	if err != nil {
		t.Fatal(err)
	}
	rejected := st1.Rejected + st2.Rejected + st3.Rejected
	if rejected != int64(malformed) {
		t.Errorf("ingest rejected %d events, want exactly the %d malformed ones", rejected, malformed)
	}
	truth := simulation.ComputeTruth(evs, loc, time.Now(), []int{1, 3, 7})
	// The bound only ends a failing run: on a loaded machine (-race, other
	// packages' tests at once) the backlog the restart left takes a while.
	p.waitForTruth(truth, 3*time.Minute)
}

// A burst sent faster than process can write builds a backlog in Kafka;
// it must drain with nothing lost.
func TestABurstBeyondProcessSpeedDrainsWithNothingLost(t *testing.T) {
	p := newPlatform(t, "Asia/Kolkata")
	loc := p.game.Location()
	evs := simulation.Generate(simulation.Config{Players: 500, Days: 4, End: time.Now().UTC(), Location: loc, Seed: 12, RunID: "e2e2-"})
	cfg := simulation.SendConfig{URL: p.url(serving.Ingest), WriteKey: p.keys.Write, Batch: 250, Concurrency: 8, Seed: 12}
	stream, _, _ := simulation.Plan(evs, cfg)
	start := time.Now()
	st, err := simulation.Send(context.Background(), stream, cfg)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if st.Accepted != int64(len(evs)) {
		t.Fatalf("ingest accepted %d of %d events", st.Accepted, len(evs))
	}
	t.Logf("burst: %d events accepted in %s (%.0f events/s)", st.Accepted, took.Round(time.Millisecond), float64(st.Accepted)/took.Seconds())
	p.waitForTruth(simulation.ComputeTruth(evs, loc, time.Now(), []int{1, 3}), 120*time.Second)
	t.Logf("backlog drained %s after the burst started", time.Since(start).Round(time.Millisecond))
}
