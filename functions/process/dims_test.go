package process

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
)

// A game keeps its first 100 values of a custom dimension; later ones
// count as other, every event exactly once whatever the delivery.
func TestCustomDimensionsBeyondTheHundredthValueCountAsOther(t *testing.T) {
	game := newGame(t, "Europe/Berlin")
	p := newProcess(t, DefaultConfig())
	url := httpServer(t, p)
	g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(5, 5))}
	at := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	var evs []event.Event
	for i := range 150 {
		e := g.Event(events.TypeHeartbeat, fmt.Sprintf("p%03d", i), "s", at.Add(time.Duration(i)*time.Second), "")
		e.SetExtension(events.Dim1, fmt.Sprintf("seg%03d", i))
		e.SetExtension(events.Dim2, []string{"x", "y"}[i%2])
		evs = append(evs, e)
	}
	deliverAll(t, url, g.Deliveries(evs, 3), 16)
	drain(t, p)
	ctx := context.Background()
	var kept int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM dim_values WHERE gameid = $1 AND dim = 'dim1'`, game.ID).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept != events.MaxCustomValues {
		t.Fatalf("%d dim1 values kept, want %d", kept, events.MaxCustomValues)
	}
	counts := func(dname string) map[string]int {
		rows, err := pool.Query(ctx, `SELECT dvalue, sum(value)::int FROM rollup_dim_daily
			WHERE gameid = $1 AND metric = 'active_players' AND dname = $2 GROUP BY 1`, game.ID, dname)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int{}
		for rows.Next() {
			var v string
			var n int
			if err := rows.Scan(&v, &n); err != nil {
				t.Fatal(err)
			}
			out[v] = n
		}
		return out
	}
	dim1 := counts("dim1")
	if len(dim1) != events.MaxCustomValues+1 || dim1[events.Other] != 150-events.MaxCustomValues {
		t.Fatalf("dim1 breakdown has %d values, other = %d; want %d values and other = %d", len(dim1), dim1[events.Other],
			events.MaxCustomValues+1, 150-events.MaxCustomValues)
	}
	total := 0
	for v, n := range dim1 {
		total += n
		if v != events.Other && n != 1 {
			t.Errorf("dim1=%s counts %d players, want 1", v, n)
		}
	}
	if total != 150 {
		t.Errorf("dim1 breakdown counts %d players, want 150", total)
	}
	if dim2 := counts("dim2"); dim2["x"] != 75 || dim2["y"] != 75 || len(dim2) != 2 {
		t.Errorf("dim2 breakdown = %v, want x and y 75 each", dim2)
	}
	// A new value after the cap counts as other too, and a value the game
	// keeps stays its own.
	late := g.Event(events.TypeHeartbeat, "p999", "s", at.Add(time.Hour), "")
	late.SetExtension(events.Dim1, "seg999")
	again := g.Event(events.TypeHeartbeat, "p998", "s", at.Add(time.Hour), "")
	kept1 := ""
	if err := pool.QueryRow(ctx, `SELECT min(value) FROM dim_values WHERE gameid = $1 AND dim = 'dim1'`, game.ID).Scan(&kept1); err != nil {
		t.Fatal(err)
	}
	again.SetExtension(events.Dim1, kept1)
	deliverAll(t, url, []event.Event{late, again}, 2)
	drain(t, p)
	after := counts("dim1")
	if after[events.Other] != dim1[events.Other]+1 || after[kept1] != dim1[kept1]+1 {
		t.Errorf("after two more players: other %d -> %d, %s %d -> %d; want one more each", dim1[events.Other], after[events.Other],
			kept1, dim1[kept1], after[kept1])
	}
}

// A client putting a unique value in a custom dimension (a timestamp, a
// user id) must not grow process's memory: the registrar remembers the
// values a game keeps and that the dimension is full, not each refusal.
func TestHighCardinalityCustomValuesKeepTheRegistrarBounded(t *testing.T) {
	game := newGame(t, "UTC")
	p := newProcess(t, DefaultConfig())
	url := httpServer(t, p)
	g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(6, 6))}
	at := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	const n = 10_000
	evs := make([]event.Event, 0, n)
	for i := range n {
		e := g.Event(events.TypeHeartbeat, fmt.Sprintf("p%05d", i%500), "s", at.Add(time.Duration(i)*time.Millisecond), "")
		e.SetExtension(events.Dim1, fmt.Sprintf("ts-%d", at.UnixNano()+int64(i)))
		evs = append(evs, e)
	}
	deliverAll(t, url, evs, 16)
	drain(t, p)
	p.dims.mu.Lock()
	kept, full := len(p.dims.kept), len(p.dims.full)
	p.dims.mu.Unlock()
	if kept > events.MaxCustomValues || full != 1 {
		t.Fatalf("after %d distinct dim1 values the registrar holds %d kept values and %d full dimensions; want at most %d and 1",
			n, kept, full, events.MaxCustomValues)
	}
	var other, total int
	if err := pool.QueryRow(context.Background(), `SELECT coalesce(sum(value) FILTER (WHERE dvalue = 'other'), 0)::int, coalesce(sum(value), 0)::int
		FROM rollup_dim_daily WHERE gameid = $1 AND metric = 'events' AND dname = 'dim1'`, game.ID).Scan(&other, &total); err != nil {
		t.Fatal(err)
	}
	if total != n || other != n-events.MaxCustomValues {
		t.Errorf("dim1 breakdown counts %d events, %d as other; want %d and %d", total, other, n, n-events.MaxCustomValues)
	}
}
