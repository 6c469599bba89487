package retain_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gamemetrics/gamemetrics/functions/recommend"
	"github.com/gamemetrics/gamemetrics/functions/retain"
	"github.com/gamemetrics/gamemetrics/shared/events"
)

// recommendEvent is an event as recommend receives it from ingest.
func recommendEvent(game, typ, id, player string, received time.Time, data map[string]any) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("/test")
	e.SetType(typ)
	e.SetSubject(player)
	e.SetTime(received.Add(-time.Second))
	e.SetExtension(events.ExtGameID, game)
	e.SetExtension(events.ExtReceivedTime, received)
	if typ == events.TypeSessionStart {
		e.SetExtension(events.ExtSessionID, "s-"+id)
	}
	e.SetData(event.ApplicationJSON, data)
	return e
}

func recommendRows(t *testing.T, game, player string) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM recommend_interactions WHERE gameid = $1 AND subject = $2) +
		(SELECT count(*) FROM recommend_event_ids WHERE gameid = $1 AND subject = $2) +
		(SELECT count(*) FROM recommend_players WHERE gameid = $1 AND subject = $2)`, game, player).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Erasing a player removes what recommend learned about them (their
// interactions, segment and counted event ids) and nothing of anyone else;
// their events still on their way are not counted again, and what they do
// after the erasure is new data.
func TestErasureRemovesThePlayersInteractions(t *testing.T) {
	ctx := context.Background()
	g := newGame(t, 30, 400)
	r := newRetain(t, 1000)
	rec := recommend.New(recommend.DefaultConfig(), pool, arc, nil, testLogger(), prometheus.NewRegistry(), nil)
	t.Cleanup(func() { rec.Stop(context.Background()) })
	now := time.Now()
	alice := fmt.Sprintf("alice-rec-%d", now.UnixNano())
	bob := fmt.Sprintf("bob-rec-%d", now.UnixNano())
	handle := func(e event.Event) {
		t.Helper()
		if _, err := rec.Handle(ctx, e); err != nil {
			t.Fatalf("recommend %s: %v", e.ID(), err)
		}
	}
	before := now.Add(-time.Hour)
	for _, p := range []string{alice, bob} {
		handle(recommendEvent(g.ID, events.TypeSessionStart, p+"-s", p, before, map[string]any{"platform": "ios", "app_version": "1", "country": "DE"}))
		handle(recommendEvent(g.ID, events.TypePurchase, p+"-p", p, before, map[string]any{"item_id": "sword", "currency": "EUR", "amount_minor": 499}))
		handle(recommendEvent(g.ID, events.TypeResource, p+"-r", p, before, map[string]any{"flow": "sink", "currency": "gold", "amount": 10, "item_type": "shop", "item_id": "shield"}))
	}
	bobBefore := recommendRows(t, g.ID, bob)
	if n := recommendRows(t, g.ID, alice); n != 6 {
		t.Fatalf("recommend keeps %d rows of alice, want 6 (2 interactions, 3 event ids, 1 player)", n)
	}
	res, err := r.Erase(ctx, retain.ErasureRequest{ID: fmt.Sprintf("erase-rec-%d", now.UnixNano()), Game: g.ID, Player: alice,
		RequestedBy: "dpo@studio.example", RequestedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed["postgres.recommend_interactions"] != 2 || res.Removed["postgres.recommend_event_ids"] != 3 || res.Removed["postgres.recommend_players"] != 1 {
		t.Errorf("removed %v, want 2 interactions, 3 event ids and 1 player of recommend", res.Removed)
	}
	if found := traces(t, alice); len(found) > 0 {
		t.Errorf("alice is still stored: %v", found)
	}
	if got := recommendRows(t, g.ID, bob); got != bobBefore {
		t.Errorf("bob's recommend rows went from %d to %d", bobBefore, got)
	}

	// A redelivery of an event ingest received before the erasure, and a new
	// one it did not count yet: neither brings alice back.
	handle(recommendEvent(g.ID, events.TypePurchase, alice+"-p", alice, before, map[string]any{"item_id": "sword", "currency": "EUR", "amount_minor": 499}))
	handle(recommendEvent(g.ID, events.TypePurchase, alice+"-late", alice, before.Add(time.Minute), map[string]any{"item_id": "bow", "currency": "EUR", "amount_minor": 299}))
	if found := traces(t, alice); len(found) > 0 {
		t.Errorf("events from before the erasure brought alice back: %v", found)
	}
	// Alice plays again after the erasure: new data.
	handle(recommendEvent(g.ID, events.TypePurchase, alice+"-again", alice, time.Now().Add(time.Second), map[string]any{"item_id": "bow", "currency": "EUR", "amount_minor": 299}))
	if n := recommendRows(t, g.ID, alice); n != 3 {
		t.Errorf("alice's purchase after the erasure left %d recommend rows, want 3 (interaction, event id, player)", n)
	}
}
