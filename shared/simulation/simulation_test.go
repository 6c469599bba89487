package simulation

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

var end = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestGenerateIsDeterministicAndEveryEventIsValid(t *testing.T) {
	cfg := Config{Players: 200, Days: 7, End: end, Seed: 42}
	a, b := Generate(cfg), Generate(cfg)
	if len(a) == 0 || !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed gave different traffic (%d vs %d events)", len(a), len(b))
	}
	v := events.NewValidator()
	types := map[string]int{}
	for _, e := range a {
		var ce event.Event
		if err := json.Unmarshal(e.JSON(), &ce); err != nil {
			t.Fatalf("event %s does not decode: %v", e.ID, err)
		}
		if r := v.Validate(&ce, end); r != nil {
			t.Fatalf("generated an invalid event %s: %v", e.ID, r)
		}
		types[e.Type]++
	}
	for _, typ := range events.Types() {
		if types[typ] == 0 {
			t.Errorf("no %s events in 200 players × 7 days", typ)
		}
	}
}

func TestPlanAddsMalformedEventsThatIngestRejects(t *testing.T) {
	evs := Generate(Config{Players: 50, Days: 3, End: end, Seed: 1})
	stream, malformed, duplicates := Plan(evs, SendConfig{Duplicates: 0.05, Malformed: 0.02, Late: 0.05, Shuffle: true, Seed: 3})
	if want := len(evs) + malformed + duplicates; len(stream) != want {
		t.Fatalf("stream has %d events, want %d", len(stream), want)
	}
	if malformed == 0 || duplicates == 0 {
		t.Fatalf("malformed=%d duplicates=%d, want some of each", malformed, duplicates)
	}
	v := events.NewValidator()
	invalid := 0
	for _, raw := range stream {
		var ce event.Event
		if err := json.Unmarshal(raw, &ce); err != nil || v.Validate(&ce, end) != nil {
			invalid++
		}
	}
	if invalid != malformed {
		t.Errorf("%d events are invalid, want exactly the %d malformed ones", invalid, malformed)
	}
}

func TestTruthOnAHandCountedExample(t *testing.T) {
	loc, _ := time.LoadLocation("America/Los_Angeles")
	at := func(s string) time.Time { tt, _ := time.Parse(time.RFC3339, s); return tt }
	evs := []Event{
		// 2026-11-20 05:00Z is still 11-19 in Los Angeles.
		{ID: "1", Subject: "a", Type: events.TypeSessionStart, SessionID: "s1", Time: at("2026-11-20T05:00:00Z")},
		{ID: "2", Subject: "a", Type: events.TypeSessionEnd, SessionID: "s1", Time: at("2026-11-20T05:10:00Z"), Data: map[string]any{"length_s": 600.0}},
		{ID: "2", Subject: "a", Type: events.TypeSessionEnd, SessionID: "s1", Time: at("2026-11-20T05:10:00Z"), Data: map[string]any{"length_s": 600.0}},
		{ID: "3", Subject: "b", Type: events.TypePurchase, Time: at("2026-11-20T20:00:00Z"), Data: map[string]any{"amount_minor": 499, "currency": "USD"}},
		{ID: "4", Subject: "a", Type: events.TypeAd, Time: at("2026-11-21T20:00:00Z"), Data: map[string]any{"action": "show", "revenue_micros": 1500}},
	}
	tr := ComputeTruth(evs, loc, at("2026-11-22T20:00:00Z"), []int{1, 7})
	if tr.From != "2026-11-19" || tr.To != "2026-11-21" || tr.Events != 4 {
		t.Fatalf("range %s..%s events %d", tr.From, tr.To, tr.Events)
	}
	want := map[string][]float64{
		"events":             {2, 1, 1},
		"dau":                {1, 1, 1},
		"new_players":        {1, 1, 0},
		"sessions":           {1, 0, 0},
		"session_length_avg": {600, 0, 0},
		"revenue":            {0, 499, 0},
		"paying_players":     {0, 1, 0},
		"first_time_payers":  {0, 1, 0},
		"ad_impressions":     {0, 0, 1},
		"ad_revenue_micros":  {0, 0, 1500},
	}
	for m, values := range want {
		for i, v := range values {
			if got := tr.Metrics[m][i].Value; got != v {
				t.Errorf("%s[%s] = %v, want %v", m, tr.Metrics[m][i].T, got, v)
			}
		}
	}
	// Player a installed 11-19 and came back 11-21 (day 2, not day 1); day 7 is in the future.
	c := tr.Retention[0]
	if c.Cohort != "2026-11-19" || c.Size != 1 || *c.Retained["1"] != 0 || c.Retained["7"] != nil {
		t.Errorf("cohort = %+v", c)
	}
}

func TestLivePlayersStartASessionThenKeepSendingValidEvents(t *testing.T) {
	l := NewLive(Config{Players: 100, Seed: 5, RunID: "t-"}, 0.05)
	v := events.NewValidator()
	first, second := l.Tick(end), l.Tick(end.Add(time.Second))
	if len(first) != 5 {
		t.Fatalf("first tick has %d events, want a session start for each of 5 online players", len(first))
	}
	for _, e := range first {
		if e.Type != events.TypeSessionStart {
			t.Errorf("first event of a live player is %s, want a session start", e.Type)
		}
	}
	ids := map[string]bool{}
	for _, e := range append(first, second...) {
		var ce event.Event
		if err := json.Unmarshal(e.JSON(), &ce); err != nil {
			t.Fatal(err)
		}
		if r := v.Validate(&ce, end.Add(time.Second)); r != nil {
			t.Errorf("invalid live event: %v", r)
		}
		if ids[e.ID] {
			t.Errorf("id %s sent twice", e.ID)
		}
		ids[e.ID] = true
	}
}
