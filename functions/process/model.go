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
	// raw are the dimensions the event carries (events.DimsOf: extensions,
	// a session.start's data, Unknown); dims are raw with custom values
	// beyond the game's events.MaxCustomValues as Other (set by
	// registrar.resolve before aggregation), tuple is dims.ID().
	raw   events.Dims
	dims  events.Dims
	tuple int64
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
	ItemType      string      `json:"item_type"`
	ItemID        string      `json:"item_id"`
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
		case events.DimPlatform, events.DimCountry, events.DimAppVersion, events.Dim1, events.Dim2, events.Dim3:
			s, _ := types.ToString(v)
			r.raw[events.DimIndex(name)] = s
			other[name] = s
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
	r.fillDims()
	r.day = dayIn(r.time, time.UTC)
	r.local = dayIn(r.time, loc)
	r.hour = hourOf(r.time)
	return r, nil
}

// fillDims completes raw from a session.start's data and Unknown, and
// sets dims and tuple to it uncapped (resolve caps them).
func (r *record) fillDims() {
	if r.typ == events.TypeSessionStart {
		r.raw.FillFromStart(r.p.Platform, r.p.AppVersion, r.p.Country)
	}
	r.raw.FillUnknown()
	r.dims, r.tuple = r.raw, r.raw.ID()
}

// extDims reads the dimensions of an events row's extensions column.
func extDims(ext []byte, into *events.Dims) error {
	if len(ext) == 0 {
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(ext, &m); err != nil {
		return err
	}
	for i, name := range events.DimensionNames() {
		into[i] = m[name]
	}
	return nil
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
	tuple     int64 // dimensions of the earliest event (ties: the smaller id)
}

// sessionOf is the state a single event gives its session.
func sessionOf(r *record) sessionState {
	s := sessionState{firstAt: r.time, lastAt: r.time, tuple: r.tuple}
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

// earlier says whether the tuple a of an event at ta wins over b at tb:
// the earliest event's, ties to the smaller id, so the winner does not
// depend on delivery order. A zero ta never wins, a zero tb always loses.
func earlier(ta time.Time, a int64, tb time.Time, b int64) bool {
	switch {
	case ta.IsZero():
		return false
	case tb.IsZero():
		return true
	}
	return ta.Before(tb) || ta.Equal(tb) && a < b
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
	if earlier(o.firstAt, o.tuple, s.firstAt, s.tuple) {
		s.tuple = o.tuple
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
	tuple         int64     // dimensions of the earliest event (install)
	purchaseTuple int64     // of the first purchase
}

func playerOf(r *record) playerState {
	p := playerState{firstSeen: r.time, lastSeen: r.time, tuple: r.tuple}
	if r.typ == events.TypePurchase {
		p.firstPurchase, p.purchaseTuple = r.time, r.tuple
	}
	return p
}

func (p *playerState) merge(o playerState) {
	if earlier(o.firstSeen, o.tuple, p.firstSeen, p.tuple) {
		p.tuple = o.tuple
	}
	if earlier(o.firstPurchase, o.purchaseTuple, p.firstPurchase, p.purchaseTuple) {
		p.purchaseTuple = o.purchaseTuple
	}
	p.firstSeen = minTime(p.firstSeen, o.firstSeen)
	p.lastSeen = maxTime(p.lastSeen, o.lastSeen)
	p.firstPurchase = minTime(p.firstPurchase, o.firstPurchase)
}

// grain is a rollup table: the length of its buckets and what its rows
// are keyed by besides metric and dim.
type grain uint8

const (
	daily       grain = iota // rollup_daily: a date in the game's time zone
	hourly                   // rollup_hourly: a UTC hour
	minutely                 // rollup_minutely: a UTC minute (alert windows of 1m, 5m, 15m)
	tupleDaily               // rollup_tuple_daily: daily per dimension tuple
	dimDaily                 // rollup_dim_daily: daily per single dimension value
	tupleHourly              // rollup_tuple_hourly: per UTC hour and dimension tuple
)

// rollKey addresses one rollup row: the table (grain), the game, the
// bucket, the metric and its one dimension (dim, "" when it has none);
// tuple for the tuple grains, dname (index into events.DimensionNames)
// and dvalue for dimDaily.
type rollKey struct {
	game   string
	grain  grain
	bucket time.Time
	metric string
	dim    string
	tuple  int64
	dname  int8
	dvalue string
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
	if c := strings.Compare(a.dim, b.dim); c != 0 {
		return c
	}
	if a.tuple != b.tuple {
		if a.tuple < b.tuple {
			return -1
		}
		return 1
	}
	if a.dname != b.dname {
		return int(a.dname) - int(b.dname)
	}
	return strings.Compare(a.dvalue, b.dvalue)
}

// tupleRef is a dimension tuple: its id and values.
type tupleRef struct {
	id   int64
	dims events.Dims
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
	mEconomy        = "economy_" // + flow; dim currency \x1f item_type \x1f item_id (daily grains only)
	mOnline         = "online"   // rollup_minutely only: players with an event in the minute or the one before
)

// deltas accumulates changes to rollup rows.
type deltas map[rollKey]*num

// add adds v to metric/dim in the daily bucket (day, game time zone), the
// hourly bucket (UTC hour) and the minute bucket (UTC minute) of t, and
// under tuple tp in its daily and hourly tuple rows and the daily row of
// each of its values (for the metrics the report API breaks down).
// Minute windows stay whole-game: they serve alert rules, and a row per
// tuple and minute would be about a row per event.
func (d deltas) add(game string, tp tupleRef, t time.Time, loc *time.Location, metric, dim string, v num) {
	day, hour := dayIn(t, loc), hourOf(t)
	d.addOne(rollKey{game: game, grain: daily, bucket: day, metric: metric, dim: dim}, v)
	d.addOne(rollKey{game: game, grain: hourly, bucket: hour, metric: metric, dim: dim}, v)
	d.addOne(rollKey{game: game, grain: minutely, bucket: minuteOf(t), metric: metric, dim: dim}, v)
	d.addTuple(game, tp, day, hour, metric, dim, v)
}

// addTuple adds v under tp (the tuple's daily and hourly rows, each single
// value's daily row), for the metrics the report API breaks down and
// with only the detail its queries read (breakdownDim): a few rows per
// tuple and day, not one per event type.
func (d deltas) addTuple(game string, tp tupleRef, day, hour time.Time, metric, dim string, v num) {
	dim, ok := breakdownDim(metric, dim)
	if !ok {
		return
	}
	d.addOne(rollKey{game: game, grain: tupleDaily, bucket: day, metric: metric, dim: dim, tuple: tp.id}, v)
	if !strings.HasPrefix(metric, mProgression) { // progression is answered per day only
		d.addOne(rollKey{game: game, grain: tupleHourly, bucket: hour, metric: metric, dim: dim, tuple: tp.id}, v)
	}
	for i, val := range tp.dims {
		d.addOne(rollKey{game: game, grain: dimDaily, bucket: day, metric: metric, dim: dim, dname: int8(i), dvalue: val}, v)
	}
}

// breakdownDim is the detail a breakdown row of metric keeps of dim, and
// whether the metric has breakdown rows at all: only what the report API
// reads (currencies, severities, levels, the ad action), so the rows a
// batch writes stay few.
func breakdownDim(metric, dim string) (string, bool) {
	switch metric {
	case mEvents, mNewPlayers, mSessions, mSessionLenSum, mFirstPayers, mAdRevenue:
		return "", true
	case mPurchases, mRevenue, mErrors, mProgression + "start", mProgression + "complete", mProgression + "fail":
		return dim, true
	case mAdEvents:
		action, _, _ := strings.Cut(dim, "/")
		return action + "/", true
	}
	return "", false
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
	g, t, tp := r.game, r.time, tupleRef{r.tuple, r.dims}
	d.add(g, tp, t, loc, mEvents, r.typ, one)
	p := &r.p
	switch r.typ {
	case events.TypePurchase:
		d.add(g, tp, t, loc, mPurchases, p.Currency, one)
		if n, err := p.AmountMinor.Int64(); err == nil {
			d.add(g, tp, t, loc, mRevenue, p.Currency, num{n: n})
		}
	case events.TypeAd:
		d.add(g, tp, t, loc, mAdEvents, p.Action+"/"+p.AdType, one)
		if n, err := p.RevenueMicros.Int64(); err == nil && n > 0 {
			d.add(g, tp, t, loc, mAdRevenue, p.AdType, num{n: n})
		}
	case events.TypeError:
		d.add(g, tp, t, loc, mErrors, p.Severity, one)
	case events.TypeProgression:
		d.add(g, tp, t, loc, mProgression+p.Status, p.Level, one)
	case events.TypeResource:
		amt := ratNum(rat(p.Amount))
		d.add(g, tp, t, loc, mResource+p.Flow, p.Currency, amt)
		// The economy: per currency, item type and item, daily only.
		day, item := dayIn(t, loc), p.Currency+"\x1f"+p.ItemType+"\x1f"+p.ItemID
		d.addOne(rollKey{game: g, grain: daily, bucket: day, metric: mEconomy + p.Flow, dim: item}, amt)
		d.addOne(rollKey{game: g, grain: tupleDaily, bucket: day, metric: mEconomy + p.Flow, dim: item, tuple: r.tuple}, amt)
	case events.TypeDesign:
		d.add(g, tp, t, loc, mDesignEvents, p.Event, one)
		if v := rat(p.Value); v != nil {
			d.add(g, tp, t, loc, mDesignValueSum, p.Event, ratNum(v))
		}
	}
}

// sessionContribution adds sign times what a session in state s contributes.
func (d deltas) sessionContribution(game string, s sessionState, loc *time.Location, dims func(int64) tupleRef, sign int64) {
	tp := dims(s.tuple)
	b := s.begin()
	l := ratNum(s.length())
	if sign < 0 {
		l = l.neg()
	}
	d.add(game, tp, b, loc, mSessions, "", num{n: sign})
	d.add(game, tp, b, loc, mSessionLenSum, "", l)
	d.add(game, tp, b, loc, mSessionLenN, "", num{n: sign})
}

// playerContribution adds sign times what a player in state p contributes:
// one new player on the day and hour first seen, one first-time payer on
// the day and hour of the first purchase.
func (d deltas) playerContribution(game string, p playerState, loc *time.Location, dims func(int64) tupleRef, sign int64) {
	d.add(game, dims(p.tuple), p.firstSeen, loc, mNewPlayers, "", num{n: sign})
	if !p.firstPurchase.IsZero() {
		d.add(game, dims(p.purchaseTuple), p.firstPurchase, loc, mFirstPayers, "", num{n: sign})
	}
}
