package simtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

var now = time.Date(2026, 10, 22, 12, 0, 0, 0, time.UTC)

func TestPlayersSendValidEventsOfEveryTypeWithTheEdgeCasesOfRealClients(t *testing.T) {
	g := &Generator{Game: "g1", Rand: rand.New(rand.NewPCG(1, 2))}
	evs := g.Players(40, Traffic{From: now.AddDate(0, 0, -20), Days: 20, Sessions: 2, Currencies: []string{"INR"}})
	v := events.NewValidator()
	types := map[string]int{}
	ids := map[string]bool{}
	for _, e := range evs {
		if r := v.ValidateStored(&e); r != nil {
			t.Fatalf("invalid event %s: %v", e, r)
		}
		if ids[e.ID()] {
			t.Fatalf("id %s made twice", e.ID())
		}
		ids[e.ID()] = true
		if e.Extensions()[events.ExtGameID] != "g1" || e.Extensions()[events.ExtReceivedTime] == nil {
			t.Fatalf("event %s lacks what ingest adds: %v", e.ID(), e.Extensions())
		}
		if e.Type() == events.TypePurchase && !strings.Contains(string(e.Data()), `"INR"`) {
			t.Errorf("purchase in another currency: %s", e.Data())
		}
		if e.Time().Before(now.AddDate(0, 0, -20)) || !e.Time().Before(now.Add(24*time.Hour)) {
			t.Errorf("event %s at %s, outside the traffic's days", e.ID(), e.Time())
		}
		types[e.Type()]++
	}
	for _, typ := range events.Types() {
		if types[typ] == 0 {
			t.Errorf("no %s events", typ)
		}
	}
	r := Recount(t, evs, time.UTC, now)
	var noStart, behind, open, returning int
	for _, s := range r.Sessions {
		if s.Start.IsZero() {
			noStart++
		}
		if s.First.Before(s.Start) {
			behind++
		}
		if !s.Ended {
			open++
		}
	}
	for _, p := range r.Players {
		if len(p.Days) > 1 {
			returning++
		}
	}
	sessionless := 0
	for _, e := range r.Events {
		if e.Session == "" {
			sessionless++
		}
	}
	if noStart == 0 || behind == 0 || open == 0 || sessionless == 0 || returning == 0 {
		t.Errorf("edge cases: %d sessions without a start, %d ends behind the start, %d never ended, %d events without a session, %d returning players; want some of each",
			noStart, behind, open, sessionless, returning)
	}
}

func TestDaysPlaysOneScriptedSessionPerPlayerAndDay(t *testing.T) {
	g := &Generator{Game: "g2"}
	evs := g.Days([]string{"a", "b"}, []int{3, 0}, now)
	if len(evs) != 2*2*6 {
		t.Fatalf("%d events, want 6 for each of 2 players on 2 days", len(evs))
	}
	v := events.NewValidator()
	perDay := map[string]int{}
	for i, e := range evs {
		if r := v.Validate(&e, now); r != nil {
			t.Fatalf("invalid event %s: %v", e.ID(), r)
		}
		if e.Extensions()["clientseq"] != fmt.Sprint(i+1) {
			t.Errorf("event %d: clientseq %v", i, e.Extensions()["clientseq"])
		}
		if e.Time().After(now) {
			t.Errorf("event %s at %s is after now", e.ID(), e.Time())
		}
		perDay[e.Time().UTC().Format(time.DateOnly)]++
	}
	if perDay["2026-10-19"] != 12 || perDay["2026-10-22"] != 12 {
		t.Errorf("events per day %v, want 12 on 2026-10-19 and on 2026-10-22", perDay)
	}
}

func TestDeliveriesRepeatEveryEventUpToMaxCopies(t *testing.T) {
	g := &Generator{Game: "g3", Rand: rand.New(rand.NewPCG(3, 3))}
	evs := g.Days([]string{"a"}, []int{1, 2, 3}, now)
	copies := map[string]int{}
	for _, e := range g.Deliveries(evs, 3) {
		copies[e.ID()]++
	}
	seen := map[int]bool{}
	for _, e := range evs {
		n := copies[e.ID()]
		if n < 1 || n > 3 {
			t.Errorf("event %s delivered %d times", e.ID(), n)
		}
		seen[n] = true
	}
	if !seen[1] || !seen[3] {
		t.Errorf("copies seen %v, want 1 to 3", seen)
	}
}

// recorder keeps the errors a helper reports instead of failing the test.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestFeedCallsTheHandlerOnceForEveryDeliveryAndReportsRefusals(t *testing.T) {
	g := &Generator{Game: "g4"}
	evs := g.Days([]string{"a", "b", "c"}, []int{1, 2}, now)
	var mu sync.Mutex
	handled := map[string]int{}
	handle := func(_ context.Context, e event.Event) (*event.Event, error) {
		mu.Lock()
		defer mu.Unlock()
		handled[e.ID()]++
		if e.Type() == events.TypeHeartbeat {
			return nil, errors.New("refused")
		}
		return nil, nil
	}
	rec := &recorder{TB: t}
	refused := Feed(rec, handle, append(evs, evs[0]), 4)
	if refused != 6 || len(rec.errs) != 6 {
		t.Errorf("refused = %d with errors %q, want the 6 heartbeats", refused, rec.errs)
	}
	for i, e := range evs {
		want := 1
		if i == 0 {
			want = 2 // delivered twice
		}
		if handled[e.ID()] != want {
			t.Errorf("event %s handled %d times, want %d", e.ID(), handled[e.ID()], want)
		}
	}
}

func TestImportsNoFunction(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/gamemetrics/gamemetrics/functions") {
			t.Errorf("simtest depends on %s: the function tests it serves would import each other", pkg)
		}
	}
}
