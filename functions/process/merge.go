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
}

func newBatch(recs []*record) *batch {
	b := &batch{recs: recs, players: make(map[playerKey]*playerState), sessions: make(map[sessionKey]*sessionState),
		days: make(map[activityKey]bool), hours: make(map[activityKey]bool)}
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
	key  activityKey
	paid bool
}

// merge computes what b changes, given the state of its rows. Player and
// session state merges with min/max (order-free); rollups derived from it
// move by "new contribution minus old", so they telescope to the final
// state's contribution whatever the batches and their order; activity
// rows count a player once per day and hour; every event adds its own
// counters once (b holds only events no earlier batch counted).
func merge(b *batch, st *state, zone func(game string) *time.Location) *changes {
	c := &changes{spend: make(map[spendKey]*spendDelta), cohorts: make(map[cohortKey]int64), rollups: make(deltas)}
	newSessions := make(map[playerKey]int64)
	for _, k := range b.skeys {
		loc := zone(k.game)
		s := *b.sessions[k]
		old, ok := st.sessions[k]
		if !ok {
			c.rollups.sessionContribution(k.game, s, loc, +1)
			newSessions[playerKey{k.game, k.subject}]++
			continue
		}
		merged := old
		merged.merge(s)
		if sameSession(old, merged) {
			continue
		}
		c.rollups.sessionContribution(k.game, old, loc, -1)
		c.rollups.sessionContribution(k.game, merged, loc, +1)
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
			c.rollups.playerContribution(k.game, p, loc, +1)
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
		c.rollups.playerContribution(k.game, old, loc, -1)
		c.rollups.playerContribution(k.game, merged, loc, +1)
		c.players = append(c.players, playerRow{k, merged, install[k], n})
		if from := dayIn(old.firstSeen, loc); !from.Equal(install[k]) {
			for _, d := range st.history[k] {
				c.cohorts[cohortKey{k.game, from, d}]--
				c.cohorts[cohortKey{k.game, install[k], d}]++
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
			c.days = append(c.days, activityRow{k, paid})
			c.sketch = append(c.sketch, k)
			c.rollups.addOne(rollKey{game: k.game, grain: daily, bucket: k.at, metric: mActivePlayers}, one)
			c.cohorts[cohortKey{k.game, install[playerKey{k.game, k.subject}], k.at}]++
		case paid && !had:
			c.days = append(c.days, activityRow{k, true})
		default:
			continue
		}
		if paid {
			c.rollups.addOne(rollKey{game: k.game, grain: daily, bucket: k.at, metric: mPayingPlayers}, one)
		}
	}
	for _, k := range sortedKeys(b.hours, cmpActivity) {
		paid := b.hours[k]
		had, exists := st.hours[k]
		switch {
		case !exists:
			c.hours = append(c.hours, activityRow{k, paid})
			c.rollups.addOne(rollKey{game: k.game, grain: hourly, bucket: k.at, metric: mActivePlayers}, one)
		case paid && !had:
			c.hours = append(c.hours, activityRow{k, true})
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
		}
	}
	return c
}

func samePlayer(a, b playerState) bool {
	return a.firstSeen.Equal(b.firstSeen) && a.lastSeen.Equal(b.lastSeen) && a.firstPurchase.Equal(b.firstPurchase)
}

func sameSession(a, b sessionState) bool {
	return a.startAt.Equal(b.startAt) && a.firstAt.Equal(b.firstAt) && a.lastAt.Equal(b.lastAt) && a.endAt.Equal(b.endAt) &&
		(a.endLength == nil) == (b.endLength == nil) && (a.endLength == nil || a.endLength.Cmp(b.endLength) == 0) &&
		a.platform == b.platform && a.version == b.version && a.country == b.country
}
