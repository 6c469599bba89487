package process

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
)

// kill stops p as a SIGKILL would: nothing it holds in memory is drained
// (what it acknowledged is durable, which is the point), its aggregator
// stops after the round in flight.
func kill(t testing.TB, p *Process) {
	t.Helper()
	if err := p.batcher.stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.agg.stop()
}

// pendingOf counts a game's pending rows and events.
func pendingOf(t testing.TB, game string) (rows, events int) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), `SELECT count(*), coalesce(sum(events), 0) FROM pending_events WHERE gameid = $1`, game).
		Scan(&rows, &events); err != nil {
		t.Fatal(err)
	}
	return rows, events
}

// waitAggregated waits until nothing of game is pending, whoever stored it.
func waitAggregated(t testing.TB, game string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if rows, _ := pendingOf(t, game); rows == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("pending events still not aggregated after a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countedEventsOf(t testing.TB, game string) int64 {
	t.Helper()
	n, err := countedEvents(context.Background(), game)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A replica that dies after acknowledging deliveries and before its
// aggregator counted them loses nothing: the events are pending in
// PostgreSQL and another replica counts them, once.
func TestAReplicaKilledBetweenTheStagesLosesNothing(t *testing.T) {
	game := newGame(t, "America/Los_Angeles")
	cfg := DefaultConfig()
	cfg.Aggregators = 0 // this replica's aggregator never gets to run
	a := newProcess(t, cfg)
	g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(21, 21))}
	evs := g.Players(30, simtest.Traffic{From: time.Now().Add(-48 * time.Hour), Span: 46 * time.Hour})
	simtest.Feed(t, a.Handle, g.Deliveries(evs, 3), 16)
	kill(t, a)
	if rows, n := pendingOf(t, game.ID); rows == 0 || n != len(simtest.Recount(t, evs, game.Location(), time.Now()).Events) {
		t.Fatalf("after the acknowledgements: %d pending rows with %d events, want every distinct event pending", rows, n)
	}
	if n := countedEventsOf(t, game.ID); n != 0 {
		t.Fatalf("%d events counted by a replica without an aggregator", n)
	}
	newProcess(t, DefaultConfig()) // another replica, which finds them
	waitAggregated(t, game.ID)
	sameAggregates(t, game, evs)
}

// A replica killed in the middle of an aggregation transaction (after
// claiming its slice, after loading the rows' state, after merging) leaves
// the slice pending; the next replica counts every event once.
func TestAReplicaKilledMidAggregationLosesNothingAndCountsNothingTwice(t *testing.T) {
	for _, point := range []string{"claimed", "loaded", "merged"} {
		t.Run(point, func(t *testing.T) {
			game := newGame(t, "Asia/Kolkata")
			a := newProcess(t, DefaultConfig())
			crashed := make(chan struct{})
			var once sync.Once
			fault := func(at string) error {
				if at != point {
					return nil
				}
				once.Do(func() { close(crashed) })
				return errors.New("killed")
			}
			a.agg.fault.Store(&fault)
			g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(22, uint64(len(point))))}
			evs := g.Players(20, simtest.Traffic{From: time.Now().Add(-30 * time.Hour), Span: 29 * time.Hour})
			simtest.Feed(t, a.Handle, g.Deliveries(evs, 2), 8)
			select {
			case <-crashed:
			case <-time.After(30 * time.Second):
				t.Fatal("the aggregator never reached " + point)
			}
			kill(t, a)
			if rows, _ := pendingOf(t, game.ID); rows == 0 {
				t.Fatal("nothing pending after the aggregation crashed: the claim committed without its aggregates")
			}
			if n := countedEventsOf(t, game.ID); n != 0 {
				t.Fatalf("%d events counted by a transaction that never committed", n)
			}
			newProcess(t, DefaultConfig())
			waitAggregated(t, game.ID)
			sameAggregates(t, game, evs)
		})
	}
}

// Two replicas store deliveries of one game at once (with duplicates
// across them) and both aggregate: they take turns on the game, and
// between them count each distinct event exactly once.
func TestTwoReplicasAggregatingOneGameCountEachEventOnce(t *testing.T) {
	game := newGame(t, "Europe/London")
	cfg := DefaultConfig()
	cfg.AggregateMax = 300 // many rounds, so the replicas interleave
	replicas := []*Process{newProcess(t, cfg), newProcess(t, cfg)}
	g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(23, 23))}
	evs := g.Players(60, simtest.Traffic{From: time.Now().Add(-26 * time.Hour), Span: 25 * time.Hour})
	ds := g.Deliveries(evs, 3)
	var wg sync.WaitGroup
	for i, p := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []event.Event
			for j, e := range ds {
				if j%2 == i || j%7 == 0 { // every 7th delivery goes to both
					mine = append(mine, e)
				}
			}
			simtest.Feed(t, p.Handle, mine, 16)
		}()
	}
	wg.Wait()
	for _, p := range replicas {
		drain(t, p)
	}
	waitAggregated(t, game.ID)
	sameAggregates(t, game, evs)
	var counted [2]float64
	for i, p := range replicas {
		counted[i] = counterValue(p.metrics.aggregated.WithLabelValues("counted"))
	}
	distinct := len(simtest.Recount(t, evs, game.Location(), time.Now()).Events)
	if int(counted[0]+counted[1]) < distinct {
		t.Errorf("the replicas counted %v events, fewer than the %d distinct ones", counted, distinct)
	}
	t.Logf("replica counts: %v of %d distinct events (other tests' pending events may be among them)", counted, distinct)
}

// A late event that moves a player's install day earlier, counted by a
// later aggregation than the player's other events, moves every one of
// their activity days to the new cohort.
func TestALateEventInALaterAggregationMovesThePlayersCohort(t *testing.T) {
	game := newGame(t, "Pacific/Auckland")
	p := newProcess(t, DefaultConfig())
	g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(24, 24))}
	now := time.Now()
	evs := g.Days([]string{"offline", "steady"}, []int{3, 2, 1}, now)
	simtest.Feed(t, p.Handle, evs, 4)
	drain(t, p)
	late := []event.Event{
		g.Event(events.TypeHeartbeat, "offline", "s-offline", now.AddDate(0, 0, -6), ""),
		g.Event(events.TypeDesign, "offline", "", now.AddDate(0, 0, -6).Add(time.Minute), `{"event":"tutorial:done"}`),
	}
	simtest.Feed(t, p.Handle, late, 2)
	drain(t, p)
	all := append(evs, late...)
	sameAggregates(t, game, all)
	var cohorts int
	installDay := dayIn(now.AddDate(0, 0, -6).UTC(), game.Location())
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM cohort_days WHERE gameid = $1 AND install_day = $2 AND players > 0`,
		game.ID, installDay).Scan(&cohorts); err != nil {
		t.Fatal(err)
	}
	if cohorts != 4 { // the late day and the player's three earlier days
		t.Errorf("the late player's new cohort has %d active days, want 4", cohorts)
	}
}

// Stop is what a SIGTERM (Knative scale-down) calls: whatever the
// aggregator's linger, it counts everything the replica acknowledged
// before it returns.
func TestStopDrainsEverythingAcknowledged(t *testing.T) {
	game := newGame(t, "UTC")
	cfg := DefaultConfig()
	cfg.AggregateLinger = time.Hour // left alone, the aggregator would wait
	p := newProcess(t, cfg)
	g := &simtest.Generator{Game: game.ID, Rand: rand.New(rand.NewPCG(25, 25))}
	evs := g.Players(15, simtest.Traffic{From: time.Now().Add(-5 * time.Hour), Span: 4 * time.Hour})
	simtest.Feed(t, p.Handle, evs, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if rows, _ := pendingOf(t, game.ID); rows != 0 {
		t.Fatalf("%d pending rows left after Stop", rows)
	}
	t.Logf("drained in %s", time.Since(start).Round(time.Millisecond))
	sameAggregates(t, game, evs)
	if _, err := p.Handle(ctx, g.Event(events.TypeHeartbeat, "late", "s", time.Now(), "")); err == nil {
		t.Error("a stopped process accepted a delivery")
	}
}

func TestPendingEventsRoundTripAndRefuseCorruptRows(t *testing.T) {
	g := &simtest.Generator{Game: "g", Rand: rand.New(rand.NewPCG(26, 26))}
	evs := g.Players(10, simtest.Traffic{From: time.Now().Add(-3 * time.Hour), Span: 2 * time.Hour})
	var recs []*record
	for i := range evs {
		r, err := newRecord(&evs[i], "g", time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	blob := encodePending(nil, recs)
	back, err := decodePending("g", blob)
	if err != nil || len(back) != len(recs) {
		t.Fatalf("decode: %d events, %v", len(back), err)
	}
	for i, r := range recs {
		b := back[i]
		if b.id != r.id || b.typ != r.typ || b.subject != r.subject || b.sessionID != r.sessionID || !b.time.Equal(r.time) ||
			!b.received.Equal(r.received) || b.p != r.p || !b.day.Equal(r.day) || !b.hour.Equal(r.hour) || b.game != "g" ||
			b.raw != r.raw || b.tuple != r.tuple {
			t.Fatalf("event %d changed on the way: %+v, want %+v", i, *b, *r)
		}
	}
	// A row of the format before dimensions (version 1) still decodes: its
	// events count under a session.start's data, else unknown.
	v1 := []byte{pendingV1}
	v1 = binary.AppendUvarint(v1, uint64(len(recs)))
	for _, r := range recs {
		p := &r.p
		for _, s := range [...]string{r.id, r.typ, r.subject, r.sessionID,
			p.Platform, p.AppVersion, p.Country, string(p.LengthS), p.Currency, string(p.AmountMinor), p.Flow,
			string(p.Amount), p.Status, p.Level, p.Event, string(p.Value), p.Action, p.AdType, string(p.RevenueMicros), p.Severity} {
			v1 = binary.AppendUvarint(v1, uint64(len(s)))
			v1 = append(v1, s...)
		}
		v1 = binary.AppendVarint(v1, r.time.UnixMicro())
		v1 = binary.AppendVarint(v1, r.received.UnixMicro())
	}
	old, err := decodePending("g", v1)
	if err != nil || len(old) != len(recs) {
		t.Fatalf("decode a version 1 row: %d events, %v", len(old), err)
	}
	for i, b := range old {
		want := events.Dims{events.Unknown, events.Unknown, events.Unknown, events.Unknown, events.Unknown, events.Unknown}
		if b.typ == events.TypeSessionStart {
			want.FillFromStart(b.p.Platform, b.p.AppVersion, b.p.Country)
			want = events.Dims{b.p.Platform, b.p.Country, b.p.AppVersion, events.Unknown, events.Unknown, events.Unknown}
			if b.p.Country == "" {
				want[1] = events.Unknown
			}
		}
		if b.id != recs[i].id || b.raw != want {
			t.Fatalf("version 1 event %d: %s dims %v, want %s %v", i, b.id, b.raw, recs[i].id, want)
		}
	}
	for _, bad := range [][]byte{nil, {}, {99}, blob[:len(blob)-1], append(append([]byte(nil), blob...), 0)} {
		if _, err := decodePending("g", bad); err == nil {
			t.Errorf("decoded a corrupt row of %d bytes", len(bad))
		}
	}
}

func FuzzDecodePending(f *testing.F) {
	g := &simtest.Generator{Game: "g", Rand: rand.New(rand.NewPCG(27, 27))}
	evs := g.Players(2, simtest.Traffic{From: time.Now().Add(-time.Hour), Span: time.Hour})
	var recs []*record
	for i := range evs {
		if r, err := newRecord(&evs[i], "g", time.UTC); err == nil {
			recs = append(recs, r)
		}
	}
	f.Add(encodePending(nil, recs))
	f.Add([]byte{pendingVersion, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := decodePending("g", b)
		if err != nil {
			return
		}
		if again, err := decodePending("g", encodePending(nil, recs)); err != nil || len(again) != len(recs) {
			t.Fatalf("a decoded row does not encode back: %v", err)
		}
	})
}
