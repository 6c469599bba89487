package simulation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// SessionTimeout closes a session that has no session.end once it has been
// idle this long. It restates the product's rule (shared/events) rather than
// importing it, so that a change to the rule shows up as a test failure.
const SessionTimeout = 30 * time.Minute

// Fact is one event as the recount reads it.
type Fact struct {
	ID, Type, Subject, Session string
	// Time is kept to the microsecond, as PostgreSQL stores it.
	Time time.Time
	// Data is the event's data object: decoded JSON (see DecodeData), or as
	// a generated Event holds it (numbers as int or float64); nil when there
	// is none.
	Data map[string]any
	// Dims are the dimension extensions the event carried ("" when not);
	// in a Recount's Events, the dimensions it counts under: a
	// session.start's data fills platform, appversion and country it did
	// not carry as extensions, the rest is unknown.
	Dims events.Dims
}

// DecodeData decodes an event's JSON data object with its numbers kept as
// json.Number, so that sums of decimals stay exact; empty data is nil.
func DecodeData(b []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("event data %s: %w", b, err)
	}
	return m, nil
}

// Text is the data field key as text ("" when absent).
func (f Fact) Text(key string) string {
	v, ok := f.Data[key]
	if !ok || v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// Rat is the data field key as an exact number; false when it is absent or
// not a number.
func (f Fact) Rat(key string) (*big.Rat, bool) {
	switch n := f.Data[key].(type) {
	case json.Number:
		return new(big.Rat).SetString(n.String())
	case int:
		return big.NewRat(int64(n), 1), true
	case int64:
		return big.NewRat(n, 1), true
	case float64:
		r := new(big.Rat)
		if r.SetFloat64(n) == nil {
			return nil, false
		}
		return r, true
	}
	return nil, false
}

// Float is the data field key as a float64 (0 when absent or not a number).
func (f Fact) Float(key string) float64 {
	switch n := f.Data[key].(type) {
	case json.Number:
		v, _ := n.Float64()
		return v
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case float64:
		return n
	}
	return 0
}

// SessionKey names a session: session ids are the client's, unique per player.
type SessionKey struct{ Subject, Session string }

// Session is what the events carrying one session id say about it.
type Session struct {
	// Start is the earliest session.start (zero if none arrived); First and
	// Last are the earliest and latest events of the session.
	Start, First, Last time.Time
	// Platform is that of the earliest session.start.
	Platform string
	// Ended says a session.end arrived; EndLength is the largest length_s
	// the ends carried (nil if none did).
	Ended     bool
	EndLength *big.Rat
	// Dims are those of the session's earliest event (ties: the smaller
	// events.Dims.ID).
	Dims events.Dims
}

// Begin is when the session began: its start, or its first event without one.
func (s *Session) Begin() time.Time {
	if s.Start.IsZero() {
		return s.First
	}
	return s.Start
}

// Length is the session's length in seconds: the client's measure from the
// end if it sent one, otherwise the last event minus the beginning (never
// negative).
func (s *Session) Length() *big.Rat {
	if s.EndLength != nil {
		return s.EndLength
	}
	d := max(s.Last.Sub(s.Begin()), 0)
	return new(big.Rat).SetFrac64(d.Microseconds(), 1_000_000)
}

// Over says whether the session is over at now: ended, or idle for
// SessionTimeout.
func (s *Session) Over(now time.Time) bool {
	return s.Ended || now.Sub(s.Last) >= SessionTimeout
}

// Player is what the events say about one player (subject).
type Player struct {
	// First and Last are the earliest and latest events; FirstPurchase the
	// earliest purchase (zero if none).
	First, Last, FirstPurchase time.Time
	// Sessions counts the player's sessions.
	Sessions int
	// Days are the game's calendar days (midnight UTC) with any event.
	Days map[time.Time]bool
	// Dims are those of the earliest event (install), PurchaseDims of the
	// first purchase (ties: the smaller events.Dims.ID).
	Dims, PurchaseDims events.Dims
	// Revenue is the player's purchases per currency and calendar day.
	Revenue map[string]map[time.Time]int64
}

// Period is a span of the game's calendar days [From, To] (dates as
// midnight UTC), or, when Hour is set, the one UTC hour beginning at Hour,
// or, when Minutes is set, the Minutes UTC minutes beginning at Start
// (windows of 1, 5 or 15 minutes never cross an hour).
type Period struct {
	From, To time.Time
	Hour     time.Time
	Start    time.Time
	Minutes  int
}

// inMinutes says whether t falls in a minute period.
func (p Period) inMinutes(t time.Time) bool {
	return !t.Before(p.Start) && t.Before(p.Start.Add(time.Duration(p.Minutes)*time.Minute))
}

// Filter narrows a metric as the report API's parameters do: Currency for
// revenue, arpdau, arppu and transactions (empty: every currency), Severity
// for errors (empty: every severity), Dims by dimension name the values
// kept (OR within a dimension, AND across them).
type Filter struct {
	Currency, Severity string
	Dims               map[string][]string
}

// Keeps says whether d passes the filter's dimensions.
func (f Filter) Keeps(d events.Dims) bool {
	for name, vals := range f.Dims {
		i := events.DimIndex(name)
		ok := false
		for _, v := range vals {
			ok = ok || d[i] == v
		}
		if !ok {
			return false
		}
	}
	return true
}

// With is f with dimension name narrowed to value.
func (f Filter) With(name, value string) Filter {
	g := f
	g.Dims = map[string][]string{}
	for k, v := range f.Dims {
		g.Dims[k] = v
	}
	g.Dims[name] = []string{value}
	return g
}

// Level is one progression level's funnel, as the report API answers it.
type Level struct {
	Level       string   `json:"level"`
	Starts      int64    `json:"starts"`
	Completes   int64    `json:"completes"`
	Fails       int64    `json:"fails"`
	FailRate    float64  `json:"fail_rate"`
	AvgAttempts *float64 `json:"avg_attempts_on_complete"`
}

// Recount is an independent recount of one game's events: every number
// GameMetrics must derive from them (its stored aggregates and the report
// API's answers), computed from the events alone without any of its code.
type Recount struct {
	// Location is the game's time zone: its calendar days.
	Location *time.Location
	// Now decides which sessions are over and which retention days are
	// still in the future.
	Now time.Time
	// Events are the distinct events by id, in the order given: a later
	// copy of an id is a resend and is ignored, as GameMetrics does.
	Events   []Fact
	Sessions map[SessionKey]*Session
	Players  map[string]*Player

	byDay, byHour                 map[time.Time][]int // into Events
	sessionsByDay, sessionsByHour map[time.Time][]*Session
}

// NewRecount recounts facts of a game in loc, as of now.
func NewRecount(facts []Fact, loc *time.Location, now time.Time) *Recount {
	r := &Recount{Location: loc, Now: now, Events: make([]Fact, 0, len(facts)), Sessions: map[SessionKey]*Session{}, Players: map[string]*Player{},
		byDay: map[time.Time][]int{}, byHour: map[time.Time][]int{},
		sessionsByDay: map[time.Time][]*Session{}, sessionsByHour: map[time.Time][]*Session{}}
	seen := make(map[string]bool, len(facts))
	for _, f := range facts {
		if seen[f.ID] {
			continue
		}
		seen[f.ID] = true
		f.Time = f.Time.UTC().Truncate(time.Microsecond)
		f.Dims = dimsOf(f)
		day, hour := r.Day(f.Time), f.Time.Truncate(time.Hour)
		r.byDay[day] = append(r.byDay[day], len(r.Events))
		r.byHour[hour] = append(r.byHour[hour], len(r.Events))
		r.Events = append(r.Events, f)
		r.count(f, day)
	}
	for k, s := range r.Sessions {
		r.Players[k.Subject].Sessions++
		b := s.Begin()
		r.sessionsByDay[r.Day(b)] = append(r.sessionsByDay[r.Day(b)], s)
		r.sessionsByHour[b.Truncate(time.Hour)] = append(r.sessionsByHour[b.Truncate(time.Hour)], s)
	}
	return r
}

// dimsOf restates the dimension rule: the extensions, then a
// session.start's data, then unknown.
func dimsOf(f Fact) events.Dims {
	d := f.Dims
	if f.Type == events.TypeSessionStart {
		for i, key := range map[int]string{0: "platform", 1: "country", 2: "app_version"} {
			if d[i] == "" {
				d[i] = f.Text(key)
			}
		}
	}
	for i := range d {
		if d[i] == "" {
			d[i] = "unknown"
		}
	}
	return d
}

// wins says whether dims a of an event at ta replace b of one at tb.
func wins(ta time.Time, a events.Dims, tb time.Time, b events.Dims) bool {
	return ta.Before(tb) || ta.Equal(tb) && a.ID() < b.ID()
}

func (r *Recount) count(f Fact, day time.Time) {
	p := r.Players[f.Subject]
	if p == nil {
		p = &Player{First: f.Time, Last: f.Time, Days: map[time.Time]bool{}, Dims: f.Dims, Revenue: map[string]map[time.Time]int64{}}
		r.Players[f.Subject] = p
	}
	if wins(f.Time, f.Dims, p.First, p.Dims) {
		p.Dims = f.Dims
	}
	if f.Type == events.TypePurchase {
		if p.FirstPurchase.IsZero() || wins(f.Time, f.Dims, p.FirstPurchase, p.PurchaseDims) {
			p.PurchaseDims = f.Dims
		}
		cur := f.Text("currency")
		if p.Revenue[cur] == nil {
			p.Revenue[cur] = map[time.Time]int64{}
		}
		amt, _ := f.Rat("amount_minor")
		p.Revenue[cur][day] += amt.Num().Int64()
	}
	if f.Time.Before(p.First) {
		p.First = f.Time
	}
	if f.Time.After(p.Last) {
		p.Last = f.Time
	}
	p.Days[day] = true
	if f.Type == events.TypePurchase && (p.FirstPurchase.IsZero() || f.Time.Before(p.FirstPurchase)) {
		p.FirstPurchase = f.Time
	}
	if f.Session == "" {
		return
	}
	k := SessionKey{f.Subject, f.Session}
	s := r.Sessions[k]
	if s == nil {
		s = &Session{First: f.Time, Last: f.Time, Dims: f.Dims}
		r.Sessions[k] = s
	}
	if wins(f.Time, f.Dims, s.First, s.Dims) {
		s.Dims = f.Dims
	}
	if f.Time.Before(s.First) {
		s.First = f.Time
	}
	if f.Time.After(s.Last) {
		s.Last = f.Time
	}
	switch f.Type {
	case events.TypeSessionStart:
		if s.Start.IsZero() || f.Time.Before(s.Start) {
			s.Start, s.Platform = f.Time, f.Text("platform")
		}
	case events.TypeSessionEnd:
		s.Ended = true
		if l, ok := f.Rat("length_s"); ok && (s.EndLength == nil || l.Cmp(s.EndLength) > 0) {
			s.EndLength = l
		}
	}
}

// Day is t's calendar day in the game's zone, as midnight UTC.
func (r *Recount) Day(t time.Time) time.Time {
	y, m, d := t.In(r.Location).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// in says whether t falls in p.
func (r *Recount) in(p Period, t time.Time) bool {
	if p.Minutes > 0 {
		return p.inMinutes(t)
	}
	if !p.Hour.IsZero() {
		return t.UTC().Truncate(time.Hour).Equal(p.Hour)
	}
	d := r.Day(t)
	return !d.Before(p.From) && !d.After(p.To)
}

// each calls fn with every event of p.
func (r *Recount) each(p Period, fn func(*Fact)) {
	visit := func(is []int) {
		for _, i := range is {
			fn(&r.Events[i])
		}
	}
	if p.Minutes > 0 {
		for _, i := range r.byHour[p.Start.UTC().Truncate(time.Hour)] {
			if p.inMinutes(r.Events[i].Time) {
				fn(&r.Events[i])
			}
		}
		return
	}
	if !p.Hour.IsZero() {
		visit(r.byHour[p.Hour.UTC()])
		return
	}
	for d := p.From; !d.After(p.To); d = d.AddDate(0, 0, 1) {
		visit(r.byDay[d])
	}
}

// sessionsIn returns the sessions that began in p.
func (r *Recount) sessionsIn(p Period) []*Session {
	if p.Minutes > 0 {
		var out []*Session
		for _, s := range r.sessionsByHour[p.Start.UTC().Truncate(time.Hour)] {
			if p.inMinutes(s.Begin()) {
				out = append(out, s)
			}
		}
		return out
	}
	if !p.Hour.IsZero() {
		return r.sessionsByHour[p.Hour.UTC()]
	}
	var out []*Session
	for d := p.From; !d.After(p.To); d = d.AddDate(0, 0, 1) {
		out = append(out, r.sessionsByDay[d]...)
	}
	return out
}

// Value is metric over p as the report API must answer it: counts, sums
// and distinct players exactly; averages and ratios rounded as the API
// documents (2 decimals, conversion 4). It panics on a metric it does not
// know, a mistake in the calling test.
func (r *Recount) Value(metric string, p Period, f Filter) float64 {
	each := func(p Period, fn func(*Fact)) {
		r.each(p, func(e *Fact) {
			if f.Keeps(e.Dims) {
				fn(e)
			}
		})
	}
	count := func(keep func(*Fact) bool) float64 {
		n := 0.0
		each(p, func(e *Fact) {
			if keep(e) {
				n++
			}
		})
		return n
	}
	distinct := func(keep func(*Fact) bool) float64 {
		set := map[string]bool{}
		each(p, func(e *Fact) {
			if keep(e) {
				set[e.Subject] = true
			}
		})
		return float64(len(set))
	}
	sum := func(keep func(*Fact) bool, key string) float64 {
		v := 0.0
		each(p, func(e *Fact) {
			if keep(e) {
				v += e.Float(key)
			}
		})
		return v
	}
	firsts := func(at func(*Player) time.Time, dims func(*Player) events.Dims) float64 {
		n := 0.0
		for _, pl := range r.Players {
			if t := at(pl); !t.IsZero() && r.in(p, t) && f.Keeps(dims(pl)) {
				n++
			}
		}
		return n
	}
	div := func(a, b float64, places int) float64 {
		if b == 0 {
			return 0
		}
		return round(a/b, places)
	}
	all := func(*Fact) bool { return true }
	paid := func(e *Fact) bool { return e.Type == events.TypePurchase }
	purchase := func(e *Fact) bool {
		return e.Type == events.TypePurchase && (f.Currency == "" || e.Text("currency") == f.Currency)
	}
	revenue := func() float64 { return sum(purchase, "amount_minor") }
	switch metric {
	case "events":
		return count(all)
	case "dau":
		return distinct(all)
	case "new_players":
		return firsts(func(pl *Player) time.Time { return pl.First }, func(pl *Player) events.Dims { return pl.Dims })
	case "first_time_payers":
		return firsts(func(pl *Player) time.Time { return pl.FirstPurchase }, func(pl *Player) events.Dims { return pl.PurchaseDims })
	case "sessions", "session_length_avg", "playtime_per_dau":
		ss := r.sessionsIn(p)
		total, overTotal, over := new(big.Rat), new(big.Rat), 0.0
		ss = slices.DeleteFunc(slices.Clone(ss), func(s *Session) bool { return !f.Keeps(s.Dims) })
		for _, s := range ss {
			total.Add(total, s.Length())
			if s.Over(r.Now) {
				over++
				overTotal.Add(overTotal, s.Length())
			}
		}
		switch metric {
		case "sessions":
			return float64(len(ss))
		case "session_length_avg":
			v, _ := overTotal.Float64()
			return div(v, over, 2)
		}
		v, _ := total.Float64()
		return div(v, distinct(all), 2)
	case "revenue":
		return revenue()
	case "transactions":
		return count(purchase)
	case "paying_players":
		return distinct(paid)
	case "arpdau":
		return div(revenue(), distinct(all), 2)
	case "arppu":
		return div(revenue(), distinct(paid), 2)
	case "conversion":
		return div(distinct(paid), distinct(all), 4)
	case "ad_impressions":
		return count(func(e *Fact) bool { return e.Type == events.TypeAd && e.Text("action") == "show" })
	case "ad_revenue_micros":
		return sum(func(e *Fact) bool { return e.Type == events.TypeAd }, "revenue_micros")
	case "errors":
		return count(func(e *Fact) bool {
			return e.Type == events.TypeError && (f.Severity == "" || e.Text("severity") == f.Severity)
		})
	case "ccu_peak":
		return float64(r.CCUPeakUnder(p, f))
	}
	panic("simulation: no recount of metric " + metric)
}

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

// Retention returns the cohorts installed on the days [from, to]: each
// one's size and, for each n in days, how many of its players had an event
// on the cohort's day + n (nil while that day is after Now's).
func (r *Recount) Retention(from, to time.Time, days []int) []Cohort {
	today := r.Day(r.Now)
	members := map[time.Time][]*Player{}
	for _, pl := range r.Players {
		members[r.Day(pl.First)] = append(members[r.Day(pl.First)], pl)
	}
	var out []Cohort
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		c := Cohort{Cohort: d.Format(time.DateOnly), Size: len(members[d]), Retained: map[string]*int{}}
		for _, n := range days {
			target := d.AddDate(0, 0, n)
			if target.After(today) {
				c.Retained[strconv.Itoa(n)] = nil
				continue
			}
			k := 0
			for _, pl := range members[d] {
				if pl.Days[target] {
					k++
				}
			}
			c.Retained[strconv.Itoa(n)] = &k
		}
		out = append(out, c)
	}
	return out
}

// Progression returns every level with progression events on the days
// [from, to], sorted by name: fail_rate = fails / (completes + fails), and
// the average attempt of the completes that carry one.
func (r *Recount) Progression(from, to time.Time) []Level {
	levels := map[string]*Level{}
	attempts := map[string][]float64{}
	r.each(Period{From: from, To: to}, func(e *Fact) {
		if e.Type != events.TypeProgression {
			return
		}
		name := e.Text("level")
		l := levels[name]
		if l == nil {
			l = &Level{Level: name}
			levels[name] = l
		}
		switch e.Text("status") {
		case "start":
			l.Starts++
		case "complete":
			l.Completes++
			if _, ok := e.Data["attempt"]; ok {
				attempts[name] = append(attempts[name], e.Float("attempt"))
			}
		case "fail":
			l.Fails++
		}
	})
	var out []Level
	for name, l := range levels {
		if l.Completes+l.Fails > 0 {
			l.FailRate = round(float64(l.Fails)/float64(l.Completes+l.Fails), 4)
		}
		if a := attempts[name]; len(a) > 0 {
			total := 0.0
			for _, x := range a {
				total += x
			}
			avg := round(total/float64(len(a)), 2)
			l.AvgAttempts = &avg
		}
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Level < out[j].Level })
	return out
}
