package process

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
)

// These tests need no server: merge runs against memTables, an in-memory
// copy of the tables aggregation reads and writes, loaded and written with
// the semantics of load and write (aggregate.go).

type memPlayer struct {
	state    playerState
	install  time.Time
	sessions int64
}

type memTables struct {
	players  map[playerKey]*memPlayer
	sessions map[sessionKey]sessionState
	days     map[activityKey]bool
	hours    map[activityKey]bool
	spend    map[spendKey]spendDelta
	cohorts  map[cohortKey]int64
	rollups  map[rollKey]*big.Rat
	sketch   map[activityKey]bool
	// dimensions, concurrency and LTV
	dayTuples map[activityKey]map[int64]bool
	minutes   map[activityKey]uint64
	tuples    map[int64]events.Dims
	revenue   map[revenueKey]int64
	cohortRev map[cohortRevenueKey]int64
	// hourTuples is player_hour_tuples.
	hourTuples map[hourTupleKey]hourTuple
}

type hourTupleKey struct {
	activityKey
	tuple int64
}

func newMemTables() *memTables {
	return &memTables{players: map[playerKey]*memPlayer{}, sessions: map[sessionKey]sessionState{},
		days: map[activityKey]bool{}, hours: map[activityKey]bool{}, spend: map[spendKey]spendDelta{},
		cohorts: map[cohortKey]int64{}, rollups: map[rollKey]*big.Rat{}, sketch: map[activityKey]bool{},
		dayTuples: map[activityKey]map[int64]bool{}, minutes: map[activityKey]uint64{}, tuples: map[int64]events.Dims{},
		revenue: map[revenueKey]int64{}, cohortRev: map[cohortRevenueKey]int64{}, hourTuples: map[hourTupleKey]hourTuple{}}
}

// load is load's semantics: missing players and sessions are created with
// the batch's state and left out of the state; existing rows are read.
func (m *memTables) load(b *batch, zone func(string) *time.Location) *state {
	st := &state{players: map[playerKey]playerState{}, sessions: map[sessionKey]sessionState{},
		days: map[activityKey]bool{}, hours: map[activityKey]bool{},
		dayTuples: map[activityKey][]dayTuple{}, minutes: map[activityKey]uint64{}, tuples: m.tuples}
	for k := range b.days {
		for id, paid := range m.dayTuples[k] {
			st.dayTuples[k] = append(st.dayTuples[k], dayTuple{id, paid})
		}
	}
	for k := range b.hours {
		for _, h := range []activityKey{k, {k.game, k.at.Add(-time.Hour), k.subject}, {k.game, k.at.Add(time.Hour), k.subject}} {
			if v, ok := m.minutes[h]; ok {
				st.minutes[h] = v
			}
		}
	}
	for _, k := range b.pkeys {
		if p, ok := m.players[k]; ok {
			st.players[k] = p.state
			continue
		}
		p := *b.players[k]
		m.players[k] = &memPlayer{state: p, install: dayIn(p.firstSeen, zone(k.game))}
	}
	for _, k := range b.skeys {
		if s, ok := m.sessions[k]; ok {
			st.sessions[k] = s
			continue
		}
		m.sessions[k] = *b.sessions[k]
	}
	for k := range b.days {
		if paid, ok := m.days[k]; ok {
			st.days[k] = paid
		}
	}
	for k := range b.hours {
		if paid, ok := m.hours[k]; ok {
			st.hours[k] = paid
		}
	}
	if movers := b.movers(st, zone); len(movers) > 0 {
		st.history = map[playerKey][]time.Time{}
		st.revenue = map[playerKey][]revenueRow{}
		for k, v := range m.revenue {
			if pk := (playerKey{k.game, k.subject}); slices.Contains(movers, pk) {
				st.revenue[pk] = append(st.revenue[pk], revenueRow{k.currency, k.day, v})
			}
		}
		for k := range m.days {
			if pk := (playerKey{k.game, k.subject}); slices.Contains(movers, pk) {
				st.history[pk] = append(st.history[pk], k.at)
			}
		}
	}
	return st
}

// apply is write's semantics.
func (m *memTables) apply(c *changes) {
	for _, p := range c.players {
		row := m.players[p.key]
		row.state, row.install, row.sessions = p.state, p.install, row.sessions+p.newSessions
	}
	for _, s := range c.sessions {
		m.sessions[s.key] = s.state
	}
	for _, d := range c.days {
		m.days[d.key] = m.days[d.key] || d.paid
	}
	for _, h := range c.hours {
		m.hours[h.key] = m.hours[h.key] || h.paid
		m.minutes[h.key] |= h.minutes
	}
	for _, h := range c.hourTuples {
		k := hourTupleKey{h.key, h.tuple}
		old := m.hourTuples[k]
		m.hourTuples[k] = hourTuple{old.paid || h.paid, old.minutes | h.minutes}
	}
	for _, d := range c.dayTuples {
		if m.dayTuples[d.key] == nil {
			m.dayTuples[d.key] = map[int64]bool{}
		}
		m.dayTuples[d.key][d.tuple] = m.dayTuples[d.key][d.tuple] || d.paid
	}
	for id, d := range c.tuples {
		m.tuples[id] = d
	}
	for k, v := range c.revenue {
		m.revenue[k] += v
	}
	for k, v := range c.cohortRevenue {
		m.cohortRev[k] += v
	}
	for _, k := range c.sketch {
		m.sketch[k] = true
	}
	for k, s := range c.spend {
		old := m.spend[k]
		m.spend[k] = spendDelta{old.amount + s.amount, old.purchases + s.purchases}
	}
	for k, n := range c.cohorts {
		m.cohorts[k] += n
	}
	for k, v := range c.rollups {
		r, ok := new(big.Rat).SetString(v.String())
		if !ok {
			panic(v.String())
		}
		if m.rollups[k] == nil {
			m.rollups[k] = new(big.Rat)
		}
		m.rollups[k].Add(m.rollups[k], r)
	}
}

// aggregates reads memTables as stored (helpers_test.go) reads the database.
func (m *memTables) aggregates(zone func(string) *time.Location) map[string]string {
	out := map[string]string{}
	for k, v := range m.rollups {
		if v.Sign() == 0 {
			continue
		}
		var b string
		switch k.grain {
		case daily:
			b = "daily|" + k.bucket.Format(time.DateOnly)
		case hourly:
			b = "hourly|" + k.bucket.UTC().Format(time.RFC3339)
		case minutely:
			b = "minutely|" + k.bucket.UTC().Format(time.RFC3339)
			if k.metric == mOnline {
				continue // compared by the dimension tests
			}
		case tupleHourly:
			if k.metric == mNewPlayers || k.metric == mSessions || k.metric == mRevenue || k.metric == mEvents {
				for i, val := range m.tuples[k.tuple] {
					key := "dimh|" + k.bucket.UTC().Format(time.RFC3339) + "|" + k.metric + "|" + k.dim + "|" + events.DimensionNames()[i] + "=" + val
					sum := new(big.Rat)
					if prev, ok := out[key]; ok {
						sum.SetString(prev)
					}
					if sum.Add(sum, v); sum.Sign() == 0 {
						delete(out, key)
					} else {
						out[key] = sum.RatString()
					}
				}
			}
			continue
		case dimDaily:
			if k.metric == mActivePlayers || k.metric == mPayingPlayers || k.metric == mNewPlayers || k.metric == mSessions || k.metric == mRevenue || k.metric == mEvents {
				out["dim|"+k.bucket.Format(time.DateOnly)+"|"+k.metric+"|"+k.dim+"|"+events.DimensionNames()[k.dname]+"="+k.dvalue] = v.RatString()
			}
			continue
		default:
			continue
		}
		out[b+"|"+k.metric+"|"+k.dim] = v.RatString()
	}
	hourPlayers := map[string]map[string]bool{}
	for k, h := range m.hourTuples {
		hour := k.at.UTC().Format(time.RFC3339)
		d := m.tuples[k.tuple]
		out["pht|"+hour+"|"+k.subject+"|"+strings.Join(d[:], "/")] = fmt.Sprintf("%d %v", int64(h.minutes), h.paid)
		for i, val := range d {
			for _, metric := range []string{mActivePlayers, mPayingPlayers} {
				if metric == mPayingPlayers && !h.paid {
					continue
				}
				key := "dimh|" + hour + "|" + metric + "||" + events.DimensionNames()[i] + "=" + val
				if hourPlayers[key] == nil {
					hourPlayers[key] = map[string]bool{}
				}
				hourPlayers[key][k.subject] = true
			}
		}
	}
	for key, set := range hourPlayers {
		out[key] = fmt.Sprint(len(set))
	}
	for k, n := range m.cohortRev {
		if n != 0 {
			out["ltv|"+k.install.Format(time.DateOnly)+"|"+k.day.Format(time.DateOnly)+"|"+k.currency] = fmt.Sprint(n)
		}
	}
	online := map[time.Time]int64{}
	for k, v := range m.rollups {
		if k.grain == minutely && k.metric == mOnline && v.Sign() != 0 {
			online[k.bucket] += v.Num().Int64()
		}
	}
	for minute, n := range online {
		out["online|"+minute.UTC().Format(time.RFC3339)] = fmt.Sprint(n)
	}
	for k, n := range m.cohorts {
		if n != 0 {
			out["cohort|"+k.install.Format(time.DateOnly)+"|"+k.day.Format(time.DateOnly)] = fmt.Sprint(n)
		}
	}
	for k, s := range m.spend {
		out["spend|"+k.subject+"|"+k.currency] = fmt.Sprintf("%d %d", s.amount, s.purchases)
	}
	for k, s := range m.sessions {
		begin := s.begin()
		out["session|"+k.subject+"|"+k.session] = fmt.Sprintf("%s %s %s %s %v", begin.Format(time.RFC3339Nano), s.length().RatString(),
			dayIn(begin, zone(k.game)).Format(time.DateOnly), s.platform, !s.endAt.IsZero())
	}
	for k, p := range m.players {
		fp := ""
		if !p.state.firstPurchase.IsZero() {
			fp = p.state.firstPurchase.Format(time.RFC3339Nano)
		}
		out["player|"+k.subject] = fmt.Sprintf("%s %s %s %s %d", p.state.firstSeen.Format(time.RFC3339Nano), p.state.lastSeen.Format(time.RFC3339Nano),
			p.install.Format(time.DateOnly), fp, p.sessions)
	}
	return out
}

// records flattens generated events as stage 1 stores them and stage 2
// reads them back: through the pending encoding.
func records(t testing.TB, game string, loc *time.Location, evs []event.Event) []*record {
	t.Helper()
	var recs []*record
	for i := range evs {
		r, err := newRecord(&evs[i], game, loc)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	back, err := decodePending(game, encodePending(nil, recs))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range back {
		r.local = dayIn(r.time, loc)
	}
	return back
}

func diffAggregates(t *testing.T, got, want map[string]string) {
	t.Helper()
	var diffs []string
	for k, w := range want {
		if g := got[k]; g != w {
			diffs = append(diffs, fmt.Sprintf("%s: got %q, want %q", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: got %q, want nothing", k, g))
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 15 {
		diffs = append(diffs[:15], fmt.Sprintf("… and %d more", len(diffs)-15))
	}
	for _, d := range diffs {
		t.Error(d)
	}
}

// Folding merge over the events cut into random batches, in random order,
// gives exactly the independent recount, in every time zone.
func TestPropertyMergeOverAnyBatchesGivesTheRecount(t *testing.T) {
	zones := []string{"UTC", "Pacific/Chatham", "America/St_Johns", "Asia/Kolkata", "America/Los_Angeles"}
	seeds := 40
	if testing.Short() {
		seeds = 10
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			loc, err := time.LoadLocation(zones[rng.IntN(len(zones))])
			if err != nil {
				t.Fatal(err)
			}
			zone := func(string) *time.Location { return loc }
			g := &simtest.Generator{Game: "g-merge", Rand: rng}
			now := time.Now()
			evs := g.Players(1+rng.IntN(25), simtest.Traffic{From: now.Add(-time.Duration(1+rng.IntN(200)) * time.Hour), Span: time.Duration(1+rng.IntN(120)) * time.Hour})
			recs := records(t, g.Game, loc, evs)
			rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
			m := newMemTables()
			for len(recs) > 0 {
				n := 1 + rng.IntN(min(len(recs), 1+rng.IntN(200)))
				b := newBatch(recs[:n])
				m.apply(merge(b, m.load(b, zone), zone))
				recs = recs[n:]
			}
			diffAggregates(t, m.aggregates(zone), truth(t, simtest.Recount(t, evs, loc, now)))
		})
	}
}

func TestMergeOfOneBatchGivesTheRowChangesOfItsEvents(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	zone := func(string) *time.Location { return berlin }
	t0 := time.Date(2026, 3, 10, 22, 30, 0, 0, time.UTC) // 23:30 in Berlin
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	g := &simtest.Generator{Game: "g", Rand: rand.New(rand.NewPCG(1, 1))}
	ev := func(typ, subject, session string, at time.Duration, data string) event.Event {
		return g.Event(typ, subject, session, t0.Add(at), data)
	}
	type rollup struct {
		grain  grain
		bucket time.Time
		metric string
		dim    string
		value  string
	}
	tests := []struct {
		name     string
		before   []event.Event // counted by earlier batches
		batch    []event.Event
		rollups  []rollup // some of the batch's rollup deltas
		cohorts  map[cohortKey]int64
		days     int // activity day rows written
		sketched int
	}{
		{"a new player counts once on their install day, hour and minute",
			nil,
			[]event.Event{ev(events.TypeHeartbeat, "p", "s1", 0, ""), ev(events.TypeHeartbeat, "p", "s1", time.Minute, "")},
			[]rollup{
				{daily, day("2026-03-10"), mNewPlayers, "", "1"}, {hourly, t0.Truncate(time.Hour), mNewPlayers, "", "1"},
				{minutely, t0, mNewPlayers, "", "1"}, {daily, day("2026-03-10"), mActivePlayers, "", "1"},
				{daily, day("2026-03-10"), mEvents, events.TypeHeartbeat, "2"}, {daily, day("2026-03-10"), mSessions, "", "1"},
			},
			map[cohortKey]int64{{"g", day("2026-03-10"), day("2026-03-10")}: 1}, 1, 1},
		{"a second batch the same day adds events but no active player",
			[]event.Event{ev(events.TypeHeartbeat, "p", "s1", 0, "")},
			[]event.Event{ev(events.TypeHeartbeat, "p", "s1", 10*time.Minute, "")},
			[]rollup{{daily, day("2026-03-10"), mEvents, events.TypeHeartbeat, "1"}, {daily, day("2026-03-10"), mActivePlayers, "", ""},
				{daily, day("2026-03-10"), mNewPlayers, "", ""}},
			map[cohortKey]int64{}, 0, 0},
		{"a purchase on a day already active marks it paid and counts a paying player and a first-time payer",
			[]event.Event{ev(events.TypeHeartbeat, "p", "s1", 0, "")},
			[]event.Event{ev(events.TypePurchase, "p", "", 5*time.Minute, `{"item_id":"gems","currency":"EUR","amount_minor":199}`)},
			[]rollup{{daily, day("2026-03-10"), mPayingPlayers, "", "1"}, {daily, day("2026-03-10"), mFirstPayers, "", "1"},
				{daily, day("2026-03-10"), mRevenue, "EUR", "199"}, {daily, day("2026-03-10"), mActivePlayers, "", ""}},
			map[cohortKey]int64{}, 1, 0},
		{"a late event moves the install day: every earlier day changes cohort, the new day joins the new one",
			[]event.Event{ev(events.TypeHeartbeat, "p", "s2", 2*time.Hour, ""), ev(events.TypeHeartbeat, "p", "s3", 26*time.Hour, "")},
			[]event.Event{ev(events.TypeHeartbeat, "p", "s1", -24*time.Hour, "")},
			[]rollup{{daily, day("2026-03-09"), mNewPlayers, "", "1"}, {daily, day("2026-03-11"), mNewPlayers, "", "-1"}},
			map[cohortKey]int64{
				{"g", day("2026-03-11"), day("2026-03-11")}: -1, {"g", day("2026-03-11"), day("2026-03-12")}: -1,
				{"g", day("2026-03-09"), day("2026-03-11")}: 1, {"g", day("2026-03-09"), day("2026-03-12")}: 1,
				{"g", day("2026-03-09"), day("2026-03-09")}: 1,
			}, 1, 1},
		{"a session.end arriving later moves the session's length: old contribution out, new in",
			[]event.Event{ev(events.TypeSessionStart, "p", "s1", 0, `{"platform":"ios","app_version":"1"}`), ev(events.TypeHeartbeat, "p", "s1", time.Minute, "")},
			[]event.Event{ev(events.TypeSessionEnd, "p", "s1", 5*time.Minute, `{"length_s":300}`)},
			[]rollup{{daily, day("2026-03-10"), mSessions, "", ""}, {daily, day("2026-03-10"), mSessionLenSum, "", "240"},
				{minutely, t0, mSessionLenN, "", ""}},
			map[cohortKey]int64{}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemTables()
			if len(tc.before) > 0 {
				b := newBatch(records(t, "g", berlin, tc.before))
				m.apply(merge(b, m.load(b, zone), zone))
			}
			b := newBatch(records(t, "g", berlin, tc.batch))
			c := merge(b, m.load(b, zone), zone)
			for _, r := range tc.rollups {
				got := ""
				if v := c.rollups[rollKey{game: "g", grain: r.grain, bucket: r.bucket, metric: r.metric, dim: r.dim}]; v != nil && !v.isZero() {
					got = v.String()
				}
				if got != r.value {
					t.Errorf("%s %v %s/%s delta = %q, want %q", []string{"daily", "hourly", "minutely"}[r.grain], r.bucket, r.metric, r.dim, got, r.value)
				}
			}
			gotCohorts := map[cohortKey]int64{}
			for k, n := range c.cohorts {
				if n != 0 {
					gotCohorts[k] = n
				}
			}
			if fmt.Sprint(gotCohorts) != fmt.Sprint(tc.cohorts) {
				t.Errorf("cohort deltas = %v, want %v", gotCohorts, tc.cohorts)
			}
			if len(c.days) != tc.days || len(c.sketch) != tc.sketched {
				t.Errorf("%d day rows written and %d sketched, want %d and %d", len(c.days), len(c.sketch), tc.days, tc.sketched)
			}
		})
	}
}

// A batch that is merged twice (a round whose commit was lost and that
// is retried sees the state it wrote) would count twice: what prevents it
// is that a pending row is consumed in the same transaction. merge itself
// must only be deterministic: the same state and events give the same
// changes, whatever the order of the events.
func TestMergeDependsOnlyOnStateAndEventsNotTheirOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	zone := func(string) *time.Location { return time.UTC }
	g := &simtest.Generator{Game: "g", Rand: rng}
	evs := g.Players(10, simtest.Traffic{From: time.Now().Add(-30 * time.Hour), Span: 28 * time.Hour})
	recs := records(t, "g", time.UTC, evs)
	half := len(recs) / 2
	m1, m2 := newMemTables(), newMemTables()
	for _, m := range []*memTables{m1, m2} {
		b := newBatch(recs[:half])
		m.apply(merge(b, m.load(b, zone), zone))
	}
	rest := slices.Clone(recs[half:])
	b1 := newBatch(rest)
	rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	b2 := newBatch(rest)
	m1.apply(merge(b1, m1.load(b1, zone), zone))
	m2.apply(merge(b2, m2.load(b2, zone), zone))
	diffAggregates(t, m2.aggregates(zone), m1.aggregates(zone))
}
