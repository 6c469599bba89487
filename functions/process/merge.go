package process

import (
	"slices"
	"strings"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// Stage 2's pure core. An aggregation reads the current state of the rows
// a batch of new events touches (state), and merge turns that state and
// the events into the row changes that make every aggregate count each
// event exactly once (changes). Nothing here does I/O: aggregate.go loads
// the state and writes the changes, and the tests fold merge over random
// batches against an in-memory table set and the independent recount.

type playerKey struct{ game, subject string }
type sessionKey struct{ game, subject, session string }

func cmpPlayer(a, b playerKey) int {
	if c := strings.Compare(a.game, b.game); c != 0 {
		return c
	}
	return strings.Compare(a.subject, b.subject)
}

func cmpSession(a, b sessionKey) int {
	if c := cmpPlayer(playerKey{a.game, a.subject}, playerKey{b.game, b.subject}); c != 0 {
		return c
	}
	return strings.Compare(a.session, b.session)
}

// activityKey addresses a player_days row (at is a day in the game's time
// zone) or a player_hours row (at is a UTC hour).
type activityKey struct {
	game    string
	at      time.Time
	subject string
}

func cmpActivity(a, b activityKey) int {
	if c := strings.Compare(a.game, b.game); c != 0 {
		return c
	}
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	return strings.Compare(a.subject, b.subject)
}

// cohortKey addresses a cohort_days row.
type cohortKey struct {
	game         string
	install, day time.Time
}

func cmpCohort(a, b cohortKey) int {
	if c := strings.Compare(a.game, b.game); c != 0 {
		return c
	}
	if c := a.install.Compare(b.install); c != 0 {
		return c
	}
	return a.day.Compare(b.day)
}

// spendKey addresses a player_spend row.
type spendKey struct{ game, subject, currency string }

type spendDelta struct{ amount, purchases int64 }

// revenueKey addresses a player_revenue_days row.
type revenueKey struct {
	game, subject, currency string
	day                     time.Time
}

// cohortRevenueKey addresses a cohort_revenue row.
type cohortRevenueKey struct {
	game     string
	install  time.Time
	currency string
	day      time.Time
}

func cmpCohortRevenue(a, b cohortRevenueKey) int {
	if c := cmpCohort(cohortKey{a.game, a.install, a.day}, cohortKey{b.game, b.install, b.day}); c != 0 {
		return c
	}
	return strings.Compare(a.currency, b.currency)
}

func cmpRevenue(a, b revenueKey) int {
	if c := cmpSession(sessionKey{a.game, a.subject, a.currency}, sessionKey{b.game, b.subject, b.currency}); c != 0 {
		return c
	}
	return a.day.Compare(b.day)
}

// revenueRow is one day of a player's revenue history.
type revenueRow struct {
	currency string
	day      time.Time
	amount   int64
}

// dayTuple is a player_day_tuples row: whether a purchase carried it.
type dayTuple struct {
	tuple int64
	paid  bool
}

// batch is the new events of one aggregation (each counted by no earlier
// one), grouped by the keys of the tables they change. Every record's
// local day must be in its game's time zone.
type batch struct {
	recs     []*record
	players  map[playerKey]*playerState // merged from this batch's events alone
	sessions map[sessionKey]*sessionState
	days     map[activityKey]bool // each player's days with an event: whether they purchased on it
	hours    map[activityKey]bool
	pkeys    []playerKey  // sorted: rows are locked in this order
	skeys    []sessionKey // sorted
	// dayTuples are the tuples of each player's day (paid as in days),
	// minutes the minutes of each player-hour (bit i: minute i), tuples
	// the values of the batch's tuples.
	dayTuples map[activityKey]map[int64]bool
	minutes   map[activityKey]uint64
	tuples    map[int64]events.Dims
	// hourTuples are the tuples of each player-hour with their minutes
	// and purchases (player_hour_tuples).
	hourTuples map[activityKey]map[int64]hourTuple
}

// hourTuple is what a player-hour's events of one tuple add to its
// player_hour_tuples row.
type hourTuple struct {
	paid    bool
	minutes uint64
}

func newBatch(recs []*record) *batch {
	b := &batch{recs: recs, players: make(map[playerKey]*playerState), sessions: make(map[sessionKey]*sessionState),
		days: make(map[activityKey]bool), hours: make(map[activityKey]bool),
		dayTuples: make(map[activityKey]map[int64]bool), minutes: make(map[activityKey]uint64), tuples: make(map[int64]events.Dims),
		hourTuples: make(map[activityKey]map[int64]hourTuple)}
	for _, r := range recs {
		pk := playerKey{r.game, r.subject}
		ps := playerOf(r)
		if p := b.players[pk]; p != nil {
			p.merge(ps)
		} else {
			b.players[pk] = &ps
		}
		if r.sessionID != "" {
			sk := sessionKey{r.game, r.subject, r.sessionID}
			ss := sessionOf(r)
			if s := b.sessions[sk]; s != nil {
				s.merge(ss)
			} else {
				b.sessions[sk] = &ss
			}
		}
		paid := r.typ == events.TypePurchase
		kd, kh := activityKey{r.game, r.local, r.subject}, activityKey{r.game, r.hour, r.subject}
		b.days[kd] = b.days[kd] || paid
		b.hours[kh] = b.hours[kh] || paid
		bit := uint64(1) << uint(r.time.Sub(r.hour)/time.Minute)
		b.minutes[kh] |= bit
		hts := b.hourTuples[kh]
		if hts == nil {
			hts = make(map[int64]hourTuple, 1)
			b.hourTuples[kh] = hts
		}
		ht := hts[r.tuple]
		hts[r.tuple] = hourTuple{ht.paid || paid, ht.minutes | bit}
		ts := b.dayTuples[kd]
		if ts == nil {
			ts = make(map[int64]bool, 1)
			b.dayTuples[kd] = ts
		}
		ts[r.tuple] = ts[r.tuple] || paid
		b.tuples[r.tuple] = r.dims
	}
	b.pkeys = sortedKeys(b.players, cmpPlayer)
	b.skeys = sortedKeys(b.sessions, cmpSession)
	return b
}

func sortedKeys[K comparable, V any](m map[K]V, cmp func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp)
	return keys
}

// state is what the tables held for a batch's keys before the batch. The
// load phase creates a player or session row that did not exist with the
// batch's own state (so it can lock it), and leaves it out of players or
// sessions here: a key missing from them is new.
type state struct {
	players  map[playerKey]playerState
	sessions map[sessionKey]sessionState
	days     map[activityKey]bool // the batch's player_days rows that exist, and their paid
	hours    map[activityKey]bool // the same of player_hours
	// history holds every activity day (player_days) of the players
	// movers names: a player whose install day moves earlier takes them
	// from the old cohort to the new one.
	history map[playerKey][]time.Time
	// revenue is the revenue history (player_revenue_days) of the same
	// players: it moves cohort with them.
	revenue map[playerKey][]revenueRow
	// dayTuples are the player_day_tuples rows of the batch's player
	// days; minutes the player_hours minutes of the batch's player hours
	// and the hours either side; tuples the values of every tuple the
	// loaded rows name.
	dayTuples map[activityKey][]dayTuple
	minutes   map[activityKey]uint64
	tuples    map[int64]events.Dims
}

// dimsOf returns the tuple id's values: the batch's, the loaded ones, the
// all-Unknown tuple for 0 (rows from before dimensions) and for an id
// neither knows (cannot happen: every row's tuple is loaded with it).
func dimsOf(b *batch, st *state) func(int64) tupleRef {
	return func(id int64) tupleRef {
		if d, ok := b.tuples[id]; ok {
			return tupleRef{id, d}
		}
		if d, ok := st.tuples[id]; ok {
			return tupleRef{id, d}
		}
		var d events.Dims
		d.FillUnknown()
		return tupleRef{id, d}
	}
}

// movers are the batch's existing players whose install day the batch
// moves earlier (an older event arrived late): merge needs their history.
func (b *batch) movers(st *state, zone func(game string) *time.Location) []playerKey {
	var out []playerKey
	for _, k := range b.pkeys {
		old, ok := st.players[k]
		if !ok {
			continue
		}
		loc := zone(k.game)
		if b.players[k].firstSeen.Before(old.firstSeen) && dayIn(b.players[k].firstSeen, loc).Before(dayIn(old.firstSeen, loc)) {
			out = append(out, k)
		}
	}
	return out
}

// changes are the row writes of one aggregation, each list in key order
// (concurrent writers then lock rows in the same order).
type changes struct {
	players  []playerRow  // players rows to set (new rows only when they gained sessions)
	sessions []sessionRow // existing sessions rows whose state changed
	days     []activityRow
	hours    []activityRow
	sketch   []activityKey // new player_days rows: their player joins the day's HyperLogLog
	spend    map[spendKey]*spendDelta
	cohorts  map[cohortKey]int64
	rollups  deltas
	// dayTuples are player_day_tuples rows to insert or mark paid;
	// dimSketch the players of new (day, dimension value) pairs for the
	// per-value HyperLogLog; revenue and cohortRevenue what LTV adds;
	// tuples the batch's tuples (inserted if new).
	dayTuples     []dayTupleRow
	hourTuples    []hourTupleRow
	dimSketch     []dimSketchRow
	revenue       map[revenueKey]int64
	cohortRevenue map[cohortRevenueKey]int64
	tuples        map[int64]events.Dims
}

type dayTupleRow struct {
	key   activityKey
	tuple int64
	paid  bool
}

// hourTupleRow is OR-ed into a player_hour_tuples row.
type hourTupleRow struct {
	key   activityKey
	tuple int64
	hourTuple
}

type dimSketchRow struct {
	game    string
	day     time.Time
	dname   int8
	dvalue  string
	subject string
}

type playerRow struct {
	key         playerKey
	state       playerState
	install     time.Time
	newSessions int64 // added to players.sessions
}

type sessionRow struct {
	key   sessionKey
	state sessionState
}

// activityRow is a player_days or player_hours row to insert, or to mark
// paid when it exists.
type activityRow struct {
	key     activityKey
	paid    bool
	minutes uint64 // player_hours only: minutes with an event (OR-ed in)
}

// merge computes what b changes, given the state of its rows. Player and
// session state merges with min/max (order-free); rollups derived from it
// move by "new contribution minus old", so they telescope to the final
// state's contribution whatever the batches and their order; activity
// rows count a player once per day and hour; every event adds its own
// counters once (b holds only events no earlier batch counted).
func merge(b *batch, st *state, zone func(game string) *time.Location) *changes {
	c := &changes{spend: make(map[spendKey]*spendDelta), cohorts: make(map[cohortKey]int64), rollups: make(deltas),
		revenue: make(map[revenueKey]int64), cohortRevenue: make(map[cohortRevenueKey]int64), tuples: b.tuples}
	dims := dimsOf(b, st)
	newSessions := make(map[playerKey]int64)
	for _, k := range b.skeys {
		loc := zone(k.game)
		s := *b.sessions[k]
		old, ok := st.sessions[k]
		if !ok {
			c.rollups.sessionContribution(k.game, s, loc, dims, +1)
			newSessions[playerKey{k.game, k.subject}]++
			continue
		}
		merged := old
		merged.merge(s)
		if sameSession(old, merged) {
			continue
		}
		c.rollups.sessionContribution(k.game, old, loc, dims, -1)
		c.rollups.sessionContribution(k.game, merged, loc, dims, +1)
		c.sessions = append(c.sessions, sessionRow{k, merged})
	}
	install := make(map[playerKey]time.Time, len(b.pkeys))
	for _, k := range b.pkeys {
		loc := zone(k.game)
		p := *b.players[k]
		n := newSessions[k]
		old, ok := st.players[k]
		if !ok {
			install[k] = dayIn(p.firstSeen, loc)
			c.rollups.playerContribution(k.game, p, loc, dims, +1)
			if n > 0 {
				c.players = append(c.players, playerRow{k, p, install[k], n})
			}
			continue
		}
		merged := old
		merged.merge(p)
		install[k] = dayIn(merged.firstSeen, loc)
		if samePlayer(merged, old) && n == 0 {
			continue
		}
		// The contributions of the old state move to the new one; when the
		// buckets did not change the two cancel out and nothing is written.
		c.rollups.playerContribution(k.game, old, loc, dims, -1)
		c.rollups.playerContribution(k.game, merged, loc, dims, +1)
		c.players = append(c.players, playerRow{k, merged, install[k], n})
		if from := dayIn(old.firstSeen, loc); !from.Equal(install[k]) {
			for _, d := range st.history[k] {
				c.cohorts[cohortKey{k.game, from, d}]--
				c.cohorts[cohortKey{k.game, install[k], d}]++
			}
			for _, r := range st.revenue[k] {
				c.cohortRevenue[cohortRevenueKey{k.game, from, r.currency, r.day}] -= r.amount
				c.cohortRevenue[cohortRevenueKey{k.game, install[k], r.currency, r.day}] += r.amount
			}
		}
	}
	// Activity: a new day row counts an active player (and one of the
	// player's install cohort), a row that is new or turns paid counts a
	// paying player; likewise per hour, without cohorts.
	for _, k := range sortedKeys(b.days, cmpActivity) {
		paid := b.days[k]
		had, exists := st.days[k]
		switch {
		case !exists:
			c.days = append(c.days, activityRow{key: k, paid: paid})
			c.sketch = append(c.sketch, k)
			c.rollups.addOne(rollKey{game: k.game, grain: daily, bucket: k.at, metric: mActivePlayers}, one)
			c.cohorts[cohortKey{k.game, install[playerKey{k.game, k.subject}], k.at}]++
		case paid && !had:
			c.days = append(c.days, activityRow{key: k, paid: true})
		default:
			continue
		}
		if paid {
			c.rollups.addOne(rollKey{game: k.game, grain: daily, bucket: k.at, metric: mPayingPlayers}, one)
		}
	}
	c.dimActivity(b, st, dims)
	for _, k := range sortedKeys(b.hourTuples, cmpActivity) {
		for _, id := range sortedKeys(b.hourTuples[k], func(a, b int64) int { return cmpInt(a, b) }) {
			c.hourTuples = append(c.hourTuples, hourTupleRow{k, id, b.hourTuples[k][id]})
		}
	}
	c.online(b, st)
	for _, k := range sortedKeys(b.hours, cmpActivity) {
		paid := b.hours[k]
		had, exists := st.hours[k]
		gained := b.minutes[k] &^ st.minutes[k]
		switch {
		case !exists:
			c.hours = append(c.hours, activityRow{k, paid, b.minutes[k]})
			c.rollups.addOne(rollKey{game: k.game, grain: hourly, bucket: k.at, metric: mActivePlayers}, one)
		case paid && !had || gained != 0:
			c.hours = append(c.hours, activityRow{k, paid || had, gained})
			if !paid || had {
				continue
			}
		default:
			continue
		}
		if paid {
			c.rollups.addOne(rollKey{game: k.game, grain: hourly, bucket: k.at, metric: mPayingPlayers}, one)
		}
	}
	for _, r := range b.recs {
		c.rollups.countEvent(r, zone(r.game))
		if r.typ != events.TypePurchase {
			continue
		}
		if amt, err := r.p.AmountMinor.Int64(); err == nil {
			k := spendKey{r.game, r.subject, r.p.Currency}
			s := c.spend[k]
			if s == nil {
				s = &spendDelta{}
				c.spend[k] = s
			}
			s.amount += amt
			s.purchases++
			c.revenue[revenueKey{r.game, r.subject, r.p.Currency, r.local}] += amt
			c.cohortRevenue[cohortRevenueKey{r.game, install[playerKey{r.game, r.subject}], r.p.Currency, r.local}] += amt
		}
	}
	return c
}

// dimActivity counts distinct players per day and dimension value: a
// player's day counts once under each value any of the day's events
// carried (paying: any purchase), whatever the tuples around it, and the
// player_day_tuples rows that say so are written.
func (c *changes) dimActivity(b *batch, st *state, dims func(int64) tupleRef) {
	type seen struct{ any, paid bool }
	for _, k := range sortedKeys(b.dayTuples, cmpActivity) {
		old := st.dayTuples[k]
		var before, after [len(events.Dims{})]map[string]seen
		for i := range before {
			before[i], after[i] = map[string]seen{}, map[string]seen{}
		}
		mark := func(into *[len(events.Dims{})]map[string]seen, id int64, paid bool) {
			for i, v := range dims(id).dims {
				s := into[i][v]
				into[i][v] = seen{true, s.paid || paid}
			}
		}
		had := make(map[int64]bool, len(old))
		exists := make(map[int64]bool, len(old))
		for _, t := range old {
			mark(&before, t.tuple, t.paid)
			mark(&after, t.tuple, t.paid)
			had[t.tuple], exists[t.tuple] = t.paid, true
		}
		ids := sortedKeys(b.dayTuples[k], func(a, b int64) int { return cmpInt(a, b) })
		for _, id := range ids {
			paid := b.dayTuples[k][id]
			mark(&after, id, paid)
			if !exists[id] || paid && !had[id] {
				c.dayTuples = append(c.dayTuples, dayTupleRow{k, id, paid})
			}
		}
		for i := range after {
			for _, v := range sortedKeys(after[i], strings.Compare) {
				was, now := before[i][v], after[i][v]
				if !was.any {
					c.rollups.addOne(rollKey{game: k.game, grain: dimDaily, bucket: k.at, metric: mActivePlayers, dname: int8(i), dvalue: v}, one)
					c.dimSketch = append(c.dimSketch, dimSketchRow{k.game, k.at, int8(i), v, k.subject})
				}
				if now.paid && !was.paid {
					c.rollups.addOne(rollKey{game: k.game, grain: dimDaily, bucket: k.at, metric: mPayingPlayers, dname: int8(i), dvalue: v}, one)
				}
			}
		}
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// online counts, per UTC minute, the players online in it (an event in
// that minute or the one before, the live view's two minutes), from the
// minutes of each player-hour: a minute a player gains can put them
// online in it and in the next one, and each counts only if the player
// was not online there already (old minutes, the hours either side
// included), so the count is exact whatever the batches and their order.
func (c *changes) online(b *batch, st *state) {
	type pm struct {
		game, subject string
		minute        time.Time
	}
	bits := func(k activityKey, withBatch bool) uint64 {
		v := st.minutes[k]
		if withBatch {
			v |= b.minutes[k]
		}
		return v
	}
	active := func(game, subject string, m time.Time, withBatch bool) bool {
		h := m.Truncate(time.Hour)
		return bits(activityKey{game, h, subject}, withBatch)&(1<<uint(m.Sub(h)/time.Minute)) != 0
	}
	cands := map[pm]bool{}
	for k, mins := range b.minutes {
		gained := mins &^ st.minutes[k]
		for i := 0; gained != 0; i++ {
			if gained&1 != 0 {
				m := k.at.Add(time.Duration(i) * time.Minute)
				cands[pm{k.game, k.subject, m}] = true
				cands[pm{k.game, k.subject, m.Add(time.Minute)}] = true
			}
			gained >>= 1
		}
	}
	for p := range cands {
		prev := p.minute.Add(-time.Minute)
		now := active(p.game, p.subject, p.minute, true) || active(p.game, p.subject, prev, true)
		was := active(p.game, p.subject, p.minute, false) || active(p.game, p.subject, prev, false)
		if now && !was {
			c.rollups.addOne(rollKey{game: p.game, grain: minutely, bucket: p.minute, metric: mOnline}, one)
		}
	}
}

func samePlayer(a, b playerState) bool {
	return a.firstSeen.Equal(b.firstSeen) && a.lastSeen.Equal(b.lastSeen) && a.firstPurchase.Equal(b.firstPurchase) &&
		a.tuple == b.tuple && a.purchaseTuple == b.purchaseTuple
}

func sameSession(a, b sessionState) bool {
	return a.startAt.Equal(b.startAt) && a.firstAt.Equal(b.firstAt) && a.lastAt.Equal(b.lastAt) && a.endAt.Equal(b.endAt) &&
		(a.endLength == nil) == (b.endLength == nil) && (a.endLength == nil || a.endLength.Cmp(b.endLength) == 0) &&
		a.platform == b.platform && a.version == b.version && a.country == b.country && a.tuple == b.tuple
}
