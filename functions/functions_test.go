package functions

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/serving"
)

var stack *devstack.Stack

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

// `gamemetrics dev` builds every function at once from one Deps: each
// client must be opened exactly once (run with -race: the lazy opens are
// what raced before), and closed once however often Close is called.
func TestFunctionsBuiltConcurrentlyShareOneOfEachClient(t *testing.T) {
	devstacktest.Connect(t, stack) // migrated
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deps := NewDeps(stack.Getenv, slog.New(slog.DiscardHandler))
	const rounds = 3 // several builds of each function, all at once
	var wg sync.WaitGroup
	var mu sync.Mutex
	var built []serving.Function
	for range rounds {
		for _, name := range Implemented() {
			wg.Go(func() {
				fn, err := Build(ctx, name, deps, prometheus.NewRegistry())
				if err != nil {
					t.Errorf("build %s: %v", name, err)
					return
				}
				mu.Lock()
				built = append(built, fn)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if len(built) != rounds*len(Implemented()) {
		t.Fatalf("built %d functions, want %d", len(built), rounds*len(Implemented()))
	}
	for name, opens := range map[string]int{"PostgreSQL pool": deps.pool.opens, "Redis client": deps.redis.opens,
		"Kafka producer": deps.producer.opens, "S3 client": deps.archive.opens} {
		if opens != 1 {
			t.Errorf("%s opened %d times, want once", name, opens)
		}
	}
	for _, fn := range built {
		if ok, err := fn.Ready(ctx); !ok {
			t.Errorf("%T not ready: %v", fn, err)
		}
		if err := fn.Stop(ctx); err != nil {
			t.Errorf("stop %T: %v", fn, err)
		}
	}
	deps.Close()
	deps.Close() // a second Close must not close a client again (pgxpool would hang or panic)
	if _, err := deps.Pool(ctx); err == nil {
		t.Error("Pool after Close handed out a closed pool")
	}
}

// The direct consumer is built typed, so the CLI needs no assertion.
func TestBuildConsumerWiresProcessToKafka(t *testing.T) {
	devstacktest.Connect(t, stack)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deps := NewDeps(stack.Getenv, slog.New(slog.DiscardHandler))
	defer deps.Close()
	p, cons, err := BuildConsumer(ctx, deps, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cons.Close()
	if err := p.Stop(ctx); err != nil {
		t.Error(err)
	}
	bad := func(name string) string {
		if name == "PROCESS_KAFKA_WRITERS" {
			return "many"
		}
		return stack.Getenv(name)
	}
	if _, _, err := BuildConsumer(ctx, NewDeps(bad, slog.New(slog.DiscardHandler)), prometheus.NewRegistry()); err == nil {
		t.Error("a bad PROCESS_KAFKA_WRITERS was ignored")
	}
}
