package process

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/store"
)

func TestSetTimezoneRebuildsEveryAggregateFromRawEvents(t *testing.T) {
	game := newGame(t, "UTC")
	p := newProcess(t, DefaultConfig())
	g := &gen{rng: rand.New(rand.NewPCG(9, 9)), game: game.ID}
	evs := g.players(30, time.Now().Add(-72*time.Hour), 70*time.Hour)
	handleAll(t, p, deliveries(g.rng, evs, 2), 8)
	sameAggregates(t, game, evs)
	ctx := context.Background()
	for _, tz := range []string{"America/Los_Angeles", "Asia/Kolkata", "UTC"} {
		st, err := SetTimezone(ctx, pool, game.ID, tz)
		if err != nil {
			t.Fatalf("SetTimezone(%s): %v", tz, err)
		}
		if want := int64(len(parseT(t, evs))); st.Events != want {
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
	g := &gen{rng: rand.New(rand.NewPCG(10, 10)), game: game.ID}
	evs := g.players(5, time.Now().Add(-48*time.Hour), 40*time.Hour)
	handleAll(t, p, evs, 4)
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
	g := &gen{rng: rand.New(rand.NewPCG(13, 13)), game: game.ID}
	evs := g.players(40, time.Now().Add(-72*time.Hour), 70*time.Hour)
	first, rest := evs[:len(evs)/3], evs[len(evs)/3:]
	handleAll(t, p, first, 8) // process has cached the game's zone (UTC)
	done := make(chan struct{})
	go func() { // deliveries go on during the rebuild
		defer close(done)
		handleAll(t, p, deliveries(g.rng, rest, 2), 8)
	}()
	if _, err := SetTimezone(context.Background(), pool, game.ID, "Asia/Kolkata"); err != nil {
		t.Fatal(err)
	}
	<-done
	handleAll(t, p, rest[:50], 4) // and after it, through the same process
	got, err := store.NewGames(pool).Get(context.Background(), game.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameAggregates(t, got, evs)
}
