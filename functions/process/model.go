package process

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// Extensions a KafkaSource adds to every event it delivers; they describe
// the delivery, not the event, so they are not stored.
const (
	extKafkaPartition = "knativekafkapartition"
	extKafkaOffset    = "knativekafkaoffset"
)

// record is one valid event, flattened for the database.
type record struct {
	game      string
	id        string
	typ       string
	source    string
	subject   string
	sessionID string
	time      time.Time
	received  time.Time // zero when the event has no receivedtime
	data      []byte    // JSON object, nil when the event has no data
	ext       []byte    // other extensions as a JSON object, nil when none
	day       time.Time // UTC day of time (the events partition)
	local     time.Time // day of time in the game's time zone
	hour      time.Time // UTC hour of time
	p         payload
}

// payload holds the catalogue data fields process aggregates. One struct
// serves every type because their field names do not collide.
type payload struct {
	Platform      string      `json:"platform"`
	AppVersion    string      `json:"app_version"`
	Country       string      `json:"country"`
	LengthS       json.Number `json:"length_s"`
	Currency      string      `json:"currency"`
	AmountMinor   json.Number `json:"amount_minor"`
	Flow          string      `json:"flow"`
	Amount        json.Number `json:"amount"`
	Status        string      `json:"status"`
	Level         string      `json:"level"`
	Event         string      `json:"event"`
	Value         json.Number `json:"value"`
	Action        string      `json:"action"`
	AdType        string      `json:"ad_type"`
	RevenueMicros json.Number `json:"revenue_micros"`
	Severity      string      `json:"severity"`
}

// newRecord flattens an event that passed Validator.ValidateStored. loc is
// the game's time zone.
func newRecord(e *event.Event, game string, loc *time.Location) (*record, error) {
	r := &record{
		game:    game,
		id:      e.ID(),
		typ:     e.Type(),
		source:  e.Source(),
		subject: e.Subject(),
		time:    e.Time().UTC().Truncate(time.Microsecond), // PostgreSQL's precision
	}
	other := map[string]string{}
	for name, v := range e.Extensions() {
		switch name {
		case events.ExtGameID, extKafkaPartition, extKafkaOffset:
		case events.ExtSessionID:
			r.sessionID, _ = types.ToString(v)
		case events.ExtReceivedTime:
			t, err := types.ToTime(v)
			if err != nil {
				return nil, fmt.Errorf("receivedtime: %w", err)
			}
			r.received = t.UTC()
		default:
			s, err := types.Format(v)
			if err != nil {
				return nil, fmt.Errorf("extension %s: %w", name, err)
			}
			other[name] = s
		}
	}
	if len(other) > 0 {
		r.ext, _ = json.Marshal(other)
	}
	if d := bytes.TrimSpace(e.Data()); len(d) > 0 {
		r.data = d
		if err := json.Unmarshal(d, &r.p); err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
	}
	r.day = dayIn(r.time, time.UTC)
	r.local = dayIn(r.time, loc)
	r.hour = hourOf(r.time)
	return r, nil
}

// dayIn returns the calendar day of t in loc, as midnight UTC of that date
// (how a PostgreSQL date travels).
func dayIn(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// hourOf returns the UTC hour t falls in.
func hourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// minuteOf returns the UTC minute t falls in.
func minuteOf(t time.Time) time.Time { return t.UTC().Truncate(time.Minute) }

// rat parses a JSON number exactly; an empty number is nil.
func rat(n json.Number) *big.Rat {
	if n == "" {
		return nil
	}
	r, ok := new(big.Rat).SetString(string(n))
	if !ok {
		return nil
	}
	return r
}

// decimal formats r exactly as a decimal for a numeric column. Every value
// here is a sum of decimals, so its denominator divides a power of ten.
func decimal(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	d := new(big.Int).Set(r.Denom())
	ten, two, five := big.NewInt(10), big.NewInt(2), big.NewInt(5)
	zero, m := new(big.Int), new(big.Int)
	scale := 0
	for d.Cmp(big.NewInt(1)) != 0 && scale < 1000 {
		switch {
		case m.Mod(d, ten).Cmp(zero) == 0:
			d.Quo(d, ten)
		case m.Mod(d, two).Cmp(zero) == 0:
			d.Quo(d, two)
		case m.Mod(d, five).Cmp(zero) == 0:
			d.Quo(d, five)
		default:
			return r.FloatString(30) // not a decimal fraction; cannot happen for sums of decimals
		}
		scale++
	}
	return r.FloatString(scale)
}

// num is an exact amount: an integer fast path, a rational when needed.
type num struct {
	n int64
	r *big.Rat
}

func (a *num) addInt(n int64) {
	if a.r != nil {
		a.r.Add(a.r, new(big.Rat).SetInt64(n))
		return
	}
	a.n += n
}

func (a *num) addRat(r *big.Rat) {
	if r == nil {
		return
	}
	if r.IsInt() && r.Num().IsInt64() && a.r == nil {
		a.n += r.Num().Int64()
		return
	}
	if a.r == nil {
		a.r = new(big.Rat).SetInt64(a.n)
	}
	a.r.Add(a.r, r)
}

func (a *num) add(b num) {
	if b.r != nil {
		a.addRat(b.r)
		return
	}
	a.addInt(b.n)
}

func (a num) isZero() bool {
	if a.r != nil {
		return a.r.Sign() == 0
	}
	return a.n == 0
}

func (a num) String() string {
	if a.r != nil {
		return decimal(a.r)
	}
	return strconv.FormatInt(a.n, 10)
}

func (a num) neg() num {
	if a.r != nil {
		return num{r: new(big.Rat).Neg(a.r)}
	}
	return num{n: -a.n}
}

// ratNum wraps a rational as a num.
func ratNum(r *big.Rat) num {
	var a num
	a.addRat(r)
	return a
}

// sessionState is what is known of one session, merged from its events. The
// merge is idempotent and commutative, so any delivery order of any number
// of copies gives the same state.
type sessionState struct {
	startAt   time.Time // earliest session.start; zero if none yet
	firstAt   time.Time // earliest event of the session
	lastAt    time.Time // latest event of the session
	endAt     time.Time // latest session.end; zero if none
	endLength *big.Rat  // largest length_s of a session.end; nil if none
	platform  string    // of the earliest session.start (ties: smallest)
	version   string
	country   string
}

// sessionOf is the state a single event gives its session.
func sessionOf(r *record) sessionState {
	s := sessionState{firstAt: r.time, lastAt: r.time}
	switch r.typ {
	case events.TypeSessionStart:
		s.startAt = r.time
		s.platform, s.version, s.country = r.p.Platform, r.p.AppVersion, r.p.Country
	case events.TypeSessionEnd:
		s.endAt = r.time
		s.endLength = rat(r.p.LengthS)
	}
	return s
}

func minTime(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// merge folds o into s.
func (s *sessionState) merge(o sessionState) {
	switch {
	case o.startAt.IsZero():
	case s.startAt.IsZero() || o.startAt.Before(s.startAt) ||
		o.startAt.Equal(s.startAt) && startAttrsLess(o, *s):
		s.platform, s.version, s.country = o.platform, o.version, o.country
	}
	s.startAt = minTime(s.startAt, o.startAt)
	s.firstAt = minTime(s.firstAt, o.firstAt)
	s.lastAt = maxTime(s.lastAt, o.lastAt)
	s.endAt = maxTime(s.endAt, o.endAt)
	if o.endLength != nil && (s.endLength == nil || o.endLength.Cmp(s.endLength) > 0) {
		s.endLength = o.endLength
	}
}

// startAttrsLess breaks ties between two session.start events at the same
// instant, so the chosen platform does not depend on delivery order.
func startAttrsLess(a, b sessionState) bool {
	if a.platform != b.platform {
		return a.platform < b.platform
	}
	if a.version != b.version {
		return a.version < b.version
	}
	return a.country < b.country
}

// begin is when the session began: its earliest session.start, or its
// earliest event if no session.start arrived (yet).
func (s sessionState) begin() time.Time {
	if !s.startAt.IsZero() {
		return s.startAt
	}
	return s.firstAt
}

// length is the session's length in seconds: the length_s a session.end
// reported (the client measured it, immune to clock skew), else the time
// from begin to the latest event, never negative. A session without a
// session.end is closed events.SessionTimeout after its latest event, and its
// length is then exactly this.
func (s sessionState) length() *big.Rat {
	if s.endLength != nil {
		return s.endLength
	}
	d := s.lastAt.Sub(s.begin())
	if d < 0 {
		d = 0
	}
	return new(big.Rat).SetFrac64(d.Microseconds(), 1_000_000)
}

// closed says whether the session counts as over at now.
func (s sessionState) closed(now time.Time) bool {
	return events.SessionClosed(!s.endAt.IsZero(), s.lastAt, now)
}

// playerState is what is known of one player, merged like sessionState.
type playerState struct {
	firstSeen     time.Time
	lastSeen      time.Time
	firstPurchase time.Time // zero if never
}

func playerOf(r *record) playerState {
	p := playerState{firstSeen: r.time, lastSeen: r.time}
	if r.typ == events.TypePurchase {
		p.firstPurchase = r.time
	}
	return p
}

func (p *playerState) merge(o playerState) {
	p.firstSeen = minTime(p.firstSeen, o.firstSeen)
	p.lastSeen = maxTime(p.lastSeen, o.lastSeen)
	p.firstPurchase = minTime(p.firstPurchase, o.firstPurchase)
}

// grain is the length of a rollup table's buckets.
type grain uint8

const (
	daily    grain = iota // rollup_daily: a date in the game's time zone
	hourly                // rollup_hourly: a UTC hour
	minutely              // rollup_minutely: a UTC minute (alert windows of 1m, 5m, 15m)
)

// rollKey addresses one rollup row: the table (grain), the game, the
// bucket, the metric and its one dimension (dim, ” when it has none).
//
// Extension point, for breakdown rollups (by platform, country, app
// version, custom dimensions): give rollKey a comparable dimension tuple,
// e.g. `dims breakdown` with `type breakdown struct{ platform, country,
// version, custom string }`, filled by the merge from the event or its
// session (sessionState keeps platform, version and country of the
// session's start); order it in cmpRollKey; and let queueRollups send keys
// with a non-zero tuple to their own table (one statement per table, in
// key order, as today per grain). deltas.add stays the one place that
// writes every grain, so a breakdown counts in the daily, hourly and
// minute buckets alike, and telescoping contributions (sessions,
// new_players) stay exact as long as the tuple is part of what a
// contribution is computed from.
type rollKey struct {
	game   string
	grain  grain
	bucket time.Time
	metric string
	dim    string
}

// cmpRollKey orders rollup rows as they are locked: by table, then key.
func cmpRollKey(a, b rollKey) int {
	if a.grain != b.grain {
		return int(a.grain) - int(b.grain)
	}
	if c := strings.Compare(a.game, b.game); c != 0 {
		return c
	}
	if c := a.bucket.Compare(b.bucket); c != 0 {
		return c
	}
	if c := strings.Compare(a.metric, b.metric); c != 0 {
		return c
	}
	return strings.Compare(a.dim, b.dim)
}

// Metric names of the rollup tables.
const (
	mEvents         = "events"
	mActivePlayers  = "active_players"
	mNewPlayers     = "new_players"
	mSessions       = "sessions"
	mSessionLenSum  = "session_length_sum_s"
	mSessionLenN    = "session_length_count"
	mPurchases      = "purchases"
	mRevenue        = "revenue_minor"
	mPayingPlayers  = "paying_players"
	mFirstPayers    = "first_time_payers"
	mAdEvents       = "ad_events"
	mAdRevenue      = "ad_revenue_micros"
	mErrors         = "errors"
	mProgression    = "progression_" // + status
	mResource       = "resource_"    // + flow
	mDesignEvents   = "design_events"
	mDesignValueSum = "design_value_sum"
)

// deltas accumulates changes to rollup rows.
type deltas map[rollKey]*num

// add adds v to metric/dim in the daily bucket (day, game time zone), the
// hourly bucket (UTC hour) and the minute bucket (UTC minute) of t.
func (d deltas) add(game string, t time.Time, loc *time.Location, metric, dim string, v num) {
	d.addOne(rollKey{game, daily, dayIn(t, loc), metric, dim}, v)
	d.addOne(rollKey{game, hourly, hourOf(t), metric, dim}, v)
	d.addOne(rollKey{game, minutely, minuteOf(t), metric, dim}, v)
}

func (d deltas) addOne(k rollKey, v num) {
	a := d[k]
	if a == nil {
		a = &num{}
		d[k] = a
	}
	a.add(v)
}

var one = num{n: 1}

// countEvent adds what one new event contributes to the rollups directly
// (activity, players and sessions are counted from their own tables).
func (d deltas) countEvent(r *record, loc *time.Location) {
	g, t := r.game, r.time
	d.add(g, t, loc, mEvents, r.typ, one)
	p := &r.p
	switch r.typ {
	case events.TypePurchase:
		d.add(g, t, loc, mPurchases, p.Currency, one)
		if n, err := p.AmountMinor.Int64(); err == nil {
			d.add(g, t, loc, mRevenue, p.Currency, num{n: n})
		}
	case events.TypeAd:
		d.add(g, t, loc, mAdEvents, p.Action+"/"+p.AdType, one)
		if n, err := p.RevenueMicros.Int64(); err == nil && n > 0 {
			d.add(g, t, loc, mAdRevenue, p.AdType, num{n: n})
		}
	case events.TypeError:
		d.add(g, t, loc, mErrors, p.Severity, one)
	case events.TypeProgression:
		d.add(g, t, loc, mProgression+p.Status, p.Level, one)
	case events.TypeResource:
		d.add(g, t, loc, mResource+p.Flow, p.Currency, ratNum(rat(p.Amount)))
	case events.TypeDesign:
		d.add(g, t, loc, mDesignEvents, p.Event, one)
		if v := rat(p.Value); v != nil {
			d.add(g, t, loc, mDesignValueSum, p.Event, ratNum(v))
		}
	}
}

// sessionContribution adds sign times what a session in state s contributes.
func (d deltas) sessionContribution(game string, s sessionState, loc *time.Location, sign int64) {
	b := s.begin()
	l := ratNum(s.length())
	if sign < 0 {
		l = l.neg()
	}
	d.add(game, b, loc, mSessions, "", num{n: sign})
	d.add(game, b, loc, mSessionLenSum, "", l)
	d.add(game, b, loc, mSessionLenN, "", num{n: sign})
}

// playerContribution adds sign times what a player in state p contributes:
// one new player on the day and hour first seen, one first-time payer on
// the day and hour of the first purchase.
func (d deltas) playerContribution(game string, p playerState, loc *time.Location, sign int64) {
	d.add(game, p.firstSeen, loc, mNewPlayers, "", num{n: sign})
	if !p.firstPurchase.IsZero() {
		d.add(game, p.firstPurchase, loc, mFirstPayers, "", num{n: sign})
	}
}
