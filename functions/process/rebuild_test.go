package process

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

func TestSetTimezoneRebuildsEveryAggregateFromRawEvents(t *testing.T) {
	game := newGame(t, "UTC")
	p := newProcess(t, DefaultConfig())
	g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(9, 9))}
	evs := g.Players(30, simtest.Traffic{From: time.Now().Add(-72 * time.Hour), Span: 70 * time.Hour})
	simtest.Feed(t, p.Handle, g.Deliveries(evs, 2), 8)
	drain(t, p)
	sameAggregates(t, game, evs)
	ctx := context.Background()
	for _, tz := range []string{"America/Los_Angeles", "Asia/Kolkata", "UTC"} {
		st, err := SetTimezone(ctx, pool, game.ID, tz)
		if err != nil {
			t.Fatalf("SetTimezone(%s): %v", tz, err)
		}
		if want := int64(len(simtest.Recount(t, evs, time.UTC, time.Now()).Events)); st.Events != want {
			t.Errorf("SetTimezone(%s) replayed %d events, want %d", tz, st.Events, want)
		}
		got, err := store.NewGames(pool).Get(ctx, game.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Timezone != tz {
			t.Fatalf("timezone = %q, want %q", got.Timezone, tz)
		}
		sameAggregates(t, got, evs)
	}
}

func TestSetTimezoneRefusesUnknownGamesZonesAndArchivedEvents(t *testing.T) {
	ctx := context.Background()
	setup(t)
	if _, err := SetTimezone(ctx, pool, "g-does-not-exist", "UTC"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown game: err = %v, want ErrNotFound", err)
	}
	game := newGame(t, "UTC")
	if _, err := SetTimezone(ctx, pool, game.ID, "Mars/Olympus"); err == nil {
		t.Error("unknown zone accepted")
	}
	p := newProcess(t, DefaultConfig())
	g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(10, 10))}
	evs := g.Players(5, simtest.Traffic{From: time.Now().Add(-48 * time.Hour), Span: 40 * time.Hour})
	simtest.Feed(t, p.Handle, evs, 4)
	// retain archived one event's day: its raw row is gone, its id stays.
	if _, err := pool.Exec(ctx, `DELETE FROM events WHERE gameid = $1 AND id = $2`, game.ID, evs[0].ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := SetTimezone(ctx, pool, game.ID, "Asia/Kolkata"); !errors.Is(err, ErrArchivedEvents) {
		t.Fatalf("err = %v, want ErrArchivedEvents", err)
	}
	got, err := store.NewGames(pool).Get(ctx, game.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Timezone != "UTC" {
		t.Errorf("timezone changed to %q by a refused rebuild", got.Timezone)
	}
}

func TestSetTimezoneWhileProcessRunsBucketsEveryLaterEventByTheNewZone(t *testing.T) {
	game := newGame(t, "UTC")
	p := newProcess(t, DefaultConfig())
	g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(13, 13))}
	evs := g.Players(40, simtest.Traffic{From: time.Now().Add(-72 * time.Hour), Span: 70 * time.Hour})
	first, rest := evs[:len(evs)/3], evs[len(evs)/3:]
	simtest.Feed(t, p.Handle, first, 8) // process has cached the game's zone (UTC)
	done := make(chan struct{})
	go func() { // deliveries go on during the rebuild
		defer close(done)
		simtest.Feed(t, p.Handle, g.Deliveries(rest, 2), 8)
	}()
	if _, err := SetTimezone(context.Background(), pool, game.ID, "Asia/Kolkata"); err != nil {
		t.Fatal(err)
	}
	<-done
	simtest.Feed(t, p.Handle, rest[:50], 4) // and after it, through the same process
	drain(t, p)
	got, err := store.NewGames(pool).Get(context.Background(), game.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameAggregates(t, got, evs)
}
