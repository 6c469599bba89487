package recommend_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// interactionRows reads a game's stored interactions and segments as text.
func interactionRows(t *testing.T, game string) (map[string]string, map[string]string) {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT subject, item_id, purchases, amount_minor::text, sinks, views, first_at, last_at
		FROM recommend_interactions WHERE gameid = $1`, game)
	if err != nil {
		t.Fatal(err)
	}
	inter := map[string]string{}
	var player, item, amount string
	var purchases, sinks, views int64
	var first, last time.Time
	if _, err := pgx.ForEachRow(rows, []any{&player, &item, &purchases, &amount, &sinks, &views, &first, &last}, func() error {
		inter[player+"/"+item] = fmt.Sprintf("purchases=%d amount=%s sinks=%d views=%d first=%s last=%s",
			purchases, amount, sinks, views, first.UTC().Format(time.RFC3339Nano), last.UTC().Format(time.RFC3339Nano))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rows, err = pool.Query(ctx, `SELECT subject, coalesce(platform, ''), coalesce(country, '') FROM recommend_players WHERE gameid = $1`, game)
	if err != nil {
		t.Fatal(err)
	}
	segs := map[string]string{}
	var platform, country string
	if _, err := pgx.ForEachRow(rows, []any{&player, &platform, &country}, func() error {
		segs[player] = platform + "/" + country
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return inter, segs
}

// expectedRows computes what the stored rows must be, from the distinct
// events alone: per (player, item) the purchases, their amount, the sinks,
// the earliest and latest time; per player the platform and country of the
// latest session start (by time, then id), and a row for every player with
// an interaction or a session start.
func expectedRows(evs []event.Event) (map[string]string, map[string]string) {
	type acc struct {
		purchases, amount, sinks int64
		first, last              time.Time
	}
	seen := map[string]bool{}
	inter := map[string]*acc{}
	type seg struct {
		at       time.Time
		id, text string
	}
	segs := map[string]seg{}
	players := map[string]bool{}
	for _, e := range evs {
		if seen[e.ID()] {
			continue
		}
		seen[e.ID()] = true
		var d map[string]any
		json.Unmarshal(e.Data(), &d)
		item := ""
		var a acc
		switch e.Type() {
		case events.TypePurchase:
			item = d["item_id"].(string)
			a = acc{purchases: 1, amount: int64(d["amount_minor"].(float64))}
		case events.TypeResource:
			if d["flow"] == "sink" {
				item = d["item_id"].(string)
				a = acc{sinks: 1}
			}
		case events.TypeSessionStart:
			players[e.Subject()] = true
			country, _ := d["country"].(string)
			s := seg{e.Time(), e.ID(), d["platform"].(string) + "/" + country}
			if cur, ok := segs[e.Subject()]; !ok || s.at.After(cur.at) || (s.at.Equal(cur.at) && s.id > cur.id) {
				segs[e.Subject()] = s
			}
		}
		if item == "" {
			continue
		}
		players[e.Subject()] = true
		k := e.Subject() + "/" + item
		cur := inter[k]
		if cur == nil {
			cur = &acc{first: e.Time(), last: e.Time()}
			inter[k] = cur
		}
		cur.purchases += a.purchases
		cur.amount += a.amount
		cur.sinks += a.sinks
		if e.Time().Before(cur.first) {
			cur.first = e.Time()
		}
		if e.Time().After(cur.last) {
			cur.last = e.Time()
		}
	}
	wantInter := map[string]string{}
	for k, a := range inter {
		wantInter[k] = fmt.Sprintf("purchases=%d amount=%d sinks=%d views=0 first=%s last=%s",
			a.purchases, a.amount, a.sinks, a.first.UTC().Format(time.RFC3339Nano), a.last.UTC().Format(time.RFC3339Nano))
	}
	wantSegs := map[string]string{}
	for p := range players {
		wantSegs[p] = "/"
		if s, ok := segs[p]; ok {
			wantSegs[p] = s.text
		}
	}
	return wantInter, wantSegs
}

func diff(want, got map[string]string) []string {
	var out []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			out = append(out, fmt.Sprintf("%s: missing, want %s", k, w))
		} else if g != w {
			out = append(out, fmt.Sprintf("%s: got %s, want %s", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s: unexpected %s", k, g))
		}
	}
	sort.Strings(out)
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("… %d more", len(out)-10))
	}
	return out
}

// Under a KafkaSource events arrive at least once, concurrently and in any
// order: the stored interactions and segments must be exactly what the
// distinct events say, however they were delivered, and a second full
// redelivery changes nothing.
func TestInteractionsAreExactUnderDuplicateAndShuffledDelivery(t *testing.T) {
	g := newGame(t)
	r := newReplica(t)
	evs, _ := simulatedGame(g, 300, 120, 3)
	wantInter, wantSegs := expectedRows(evs)
	if len(wantInter) < 200 {
		t.Fatalf("the simulation gave only %d interactions", len(wantInter))
	}
	deliver(t, r.Recommend, shuffledWithDuplicates(evs, 0.2, 1))
	gotInter, gotSegs := interactionRows(t, g.ID)
	if d := diff(wantInter, gotInter); len(d) > 0 {
		t.Errorf("interactions differ from the events:\n  %s", join(d))
	}
	if d := diff(wantSegs, gotSegs); len(d) > 0 {
		t.Errorf("segments differ from the events:\n  %s", join(d))
	}
	deliver(t, r.Recommend, shuffledWithDuplicates(evs, 0, 2))
	again, _ := interactionRows(t, g.ID)
	if d := diff(gotInter, again); len(d) > 0 {
		t.Errorf("a second delivery of every event changed interactions:\n  %s", join(d))
	}
}

func join(lines []string) string {
	out := ""
	for i, l := range lines {
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}

// Events recommend does not keep are acknowledged without work; events
// that did not come through ingest, or are invalid, are refused with a 4xx
// (dead-lettered, never retried).
func TestIntakeRefusesWhatItCannotCount(t *testing.T) {
	g := newGame(t)
	r := newReplica(t)
	now := time.Now().UTC()
	noGame := purchase(g.ID, "p-nogame", "alice", "sword", 100, now)
	noGame.SetExtension(events.ExtGameID, nil)
	unknownGame := purchase("g-does-not-exist", "p-unknown", "alice", "sword", 100, now)
	invalid := ev(g.ID, events.TypePurchase, "p-invalid", "alice", now, map[string]any{"item_id": "sword", "currency": "USD", "amount_minor": -5})
	for _, tc := range []struct {
		name   string
		e      event.Event
		status int
	}{
		{"no gameid", noGame, 400},
		{"unknown game", unknownGame, 422},
		{"invalid data", invalid, 400},
		{"a heartbeat", ev(g.ID, events.TypeHeartbeat, "hb", "alice", now, nil), 0},
		{"a source of gold", ev(g.ID, events.TypeResource, "src", "alice", now, map[string]any{"flow": "source", "currency": "gold", "amount": 5, "item_type": "loot", "item_id": "chest"}), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Handle(context.Background(), tc.e)
			got := 0
			if err != nil {
				got = statusOf(err)
			}
			if got != tc.status {
				t.Errorf("status %d (%v), want %d", got, err, tc.status)
			}
		})
	}
	if inter, _ := interactionRows(t, g.ID); len(inter) != 0 {
		t.Errorf("refused events were counted: %v", inter)
	}
}
