package simtest

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// Generator makes the events of one game for tests: catalogue events as
// ingest forwards them (gameid and receivedtime set), with ids unique to
// the generator, so one generator per game keeps every id distinct.
type Generator struct {
	Game string
	// Rand drives Players and Deliveries; nil is a fixed seed.
	Rand *rand.Rand
	seq  int
}

func (g *Generator) rng() *rand.Rand {
	if g.Rand == nil {
		g.Rand = rand.New(rand.NewPCG(1, 1))
	}
	return g.Rand
}

// Event returns an event of typ that subject sent at at, in session (none
// if empty), with JSON data (none if empty).
func (g *Generator) Event(typ, subject, session string, at time.Time, data string) event.Event {
	g.seq++
	e := event.New()
	e.SetID(fmt.Sprintf("%s-ev-%05d", subject, g.seq))
	e.SetSource("/test/client/" + subject)
	e.SetType(typ)
	e.SetSubject(subject)
	e.SetTime(at)
	if session != "" {
		e.SetExtension(events.ExtSessionID, session)
	}
	e.SetExtension(events.ExtGameID, g.Game)
	e.SetExtension(events.ExtReceivedTime, at.Add(1500*time.Millisecond))
	if data != "" {
		must(e.SetData(event.ApplicationJSON, []byte(data)))
	}
	return e
}

// Session is one scripted session of subject beginning at start: a start, a
// purchase of 499 EUR cents, a completed level, a design event, a heartbeat
// and an end with its length, a minute apart. Each event also carries the
// client's sequence number in the extension clientseq, as SDKs that count
// their sends do.
func (g *Generator) Session(subject string, start time.Time) []event.Event {
	sid := fmt.Sprintf("s-%s-%d", subject, start.Unix())
	evs := make([]event.Event, 0, 6)
	for i, s := range []struct{ typ, data string }{
		{events.TypeSessionStart, `{"platform":"ios","app_version":"1.2.3","country":"DE"}`},
		{events.TypePurchase, `{"item_id":"gems_100","currency":"EUR","amount_minor":499}`},
		{events.TypeProgression, `{"status":"complete","level":"w1/l2","score":12.5}`},
		{events.TypeDesign, `{"event":"ui:click:play","value":1}`},
		{events.TypeHeartbeat, ""},
		{events.TypeSessionEnd, `{"length_s":300}`},
	} {
		e := g.Event(s.typ, subject, sid, start.Add(time.Duration(i)*time.Minute), s.data)
		e.SetExtension("clientseq", fmt.Sprint(g.seq))
		evs = append(evs, e)
	}
	return evs
}

// Days returns a Session of every player on each day offset before now's
// UTC day (0 is today, at a time already past), the players seven minutes
// apart.
func (g *Generator) Days(players []string, offsets []int, now time.Time) []event.Event {
	utcDay := func(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }
	var evs []event.Event
	for _, off := range offsets {
		base := utcDay(now).AddDate(0, 0, -off).Add(2 * time.Hour)
		if off == 0 {
			base = now.Add(-20 * time.Minute)
			if !utcDay(base).Equal(utcDay(now)) {
				base = utcDay(now).Add(time.Second)
			}
		}
		for i, p := range players {
			evs = append(evs, g.Session(p, base.Add(time.Duration(i)*7*time.Minute))...)
		}
	}
	return evs
}

// Traffic shapes the random play of Generator.Players.
type Traffic struct {
	// Sessions begin in [From, From+Span) (Span defaults to Days days).
	From time.Time
	Span time.Duration
	// Days cuts Span into that many equal days: each player installs on
	// one of them and comes back on each later one with a chance of one in
	// three (retention, cohorts). 0 or 1: every session begins anywhere in
	// Span.
	Days int
	// Sessions is the most sessions a player plays a day (default 3).
	Sessions int
	// Currencies are those of purchases (default USD, EUR and JPY).
	Currencies []string
}

var (
	platforms  = []string{"ios", "android", "web", "windows"}
	levels     = []string{"w1/l1", "w1/l2", "w2/l1"}
	designs    = []string{"ui:click:play", "tutorial:step", "shop:open"}
	decimals   = []string{"1", "0.1", "12.5", "3.75", "100", "0.333", "600.25"}
	adActions  = []string{"show", "show", "click", "reward", "fail"}
	severities = []string{"debug", "warning", "error", "critical"}
)

// Players returns the random play of n players (player-0, player-1, ...),
// in no particular order. It holds every catalogue type and the edge cases
// of real clients: sessions whose start never arrived, repeated starts,
// events sent without their session, ends with and without the client's
// length, ends whose clock is behind the start, sessions that never end,
// decimal amounts and values.
func (g *Generator) Players(n int, tr Traffic) []event.Event {
	days := max(tr.Days, 1)
	if tr.Span <= 0 {
		tr.Span = time.Duration(days) * 24 * time.Hour
	}
	if tr.Sessions <= 0 {
		tr.Sessions = 3
	}
	if len(tr.Currencies) == 0 {
		tr.Currencies = []string{"USD", "EUR", "JPY"}
	}
	slot := max(tr.Span/time.Duration(days), 1)
	r := g.rng()
	var evs []event.Event
	for p := range n {
		subject := fmt.Sprintf("player-%d", p)
		install := r.IntN(days)
		for d := install; d < days; d++ {
			if d != install && r.IntN(3) != 0 {
				continue
			}
			for s := range 1 + r.IntN(tr.Sessions) {
				at := tr.From.Add(time.Duration(d)*slot + time.Duration(r.Int64N(int64(slot)))).Truncate(time.Millisecond)
				evs = append(evs, g.play(subject, fmt.Sprintf("s-%d-%d-%d", p, d, s), at, tr.Currencies)...)
			}
		}
	}
	return evs
}

// play is one random session of subject beginning at at.
func (g *Generator) play(subject, sid string, at time.Time, currencies []string) []event.Event {
	r := g.rng()
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	var evs []event.Event
	// Dimensions as SDKs send them: the player's platform, country, build
	// (now and then a session of an updated one) and segments, on every
	// event; now and then an event of an old SDK without them (unknown,
	// or a session.start's data), or with only some.
	// Drawn from hashes, not from the generator's random stream, so the
	// events themselves are those of a generator without dimensions.
	hash := func(part string) int {
		h := fnv.New32a()
		h.Write([]byte(part))
		return int(h.Sum32() >> 1)
	}
	ps := hash(subject)
	dims := [6]string{platforms[ps%len(platforms)], []string{"DE", "US", "JP"}[ps/7%3], fmt.Sprintf("1.%d", ps/5%3),
		[]string{"a", "b", "c"}[ps/31%3], []string{"x", "y"}[ps/11%2], fmt.Sprintf("v%d", ps/13%2)}
	if hash(sid)%10 == 0 { // the player updated the app
		dims[2] = "1.9"
	}
	add := func(typ, session string, t time.Time, data string, args ...any) {
		e := g.Event(typ, subject, session, t, fmt.Sprintf(data, args...))
		k := hash(e.ID())
		switch {
		case k%20 == 0: // no dimensions
		case k%20 == 1: // some of them
			for i, name := range events.DimensionNames() {
				if k>>(5+i)&1 == 0 {
					e.SetExtension(name, dims[i])
				}
			}
		default:
			for i, name := range events.DimensionNames() {
				e.SetExtension(name, dims[i])
			}
		}
		evs = append(evs, e)
	}
	if r.IntN(10) > 0 { // some sessions never got their start
		add(events.TypeSessionStart, sid, at, `{"platform":%q,"app_version":"1.%d","country":"DE"}`, pick(platforms), r.IntN(3))
	}
	if r.IntN(8) == 0 { // a repeated start, later
		add(events.TypeSessionStart, sid, at.Add(3*time.Second), `{"platform":%q,"app_version":"1.0"}`, pick(platforms))
	}
	t := at
	for k := 2 + r.IntN(8); k > 0; k-- {
		t = t.Add(time.Duration(1+r.IntN(300)) * time.Second)
		sess := sid
		if r.IntN(4) == 0 {
			sess = "" // events other than heartbeats may come without their session
		}
		switch r.IntN(8) {
		case 1:
			add(events.TypePurchase, sess, t, `{"item_id":"gem-pack","currency":%q,"amount_minor":%d}`, pick(currencies), 1+r.IntN(5000))
		case 2:
			add(events.TypeResource, sess, t, `{"flow":%q,"currency":"gold","amount":%s,"item_type":"x","item_id":"y"}`,
				pick([]string{"source", "sink"}), pick(decimals))
		case 3:
			attempt := ""
			if r.IntN(3) > 0 {
				attempt = fmt.Sprintf(`,"attempt":%d`, 1+r.IntN(4))
			}
			add(events.TypeProgression, sess, t, `{"status":%q,"level":%q,"score":%d%s}`,
				pick([]string{"start", "complete", "fail"}), pick(levels), r.IntN(100), attempt)
		case 4:
			value := ""
			if r.IntN(2) == 0 {
				value = `,"value":-` + pick(decimals)
			}
			add(events.TypeDesign, sess, t, `{"event":%q%s}`, pick(designs), value)
		case 5:
			add(events.TypeAd, sess, t, `{"action":%q,"ad_type":%q,"network":"n","revenue_micros":%d}`,
				pick(adActions), pick([]string{"video", "banner"}), r.IntN(4)*1500)
		case 6:
			add(events.TypeError, sess, t, `{"severity":%q,"message":"boom"}`, pick(severities))
		default:
			add(events.TypeHeartbeat, sid, t, "")
		}
	}
	switch r.IntN(4) {
	case 0: // no end: closed by the timeout
	case 1: // an end with the client-measured length
		add(events.TypeSessionEnd, sid, t.Add(time.Second), `{"length_s":%s}`, pick(decimals))
	case 2: // an end whose clock is behind the start
		add(events.TypeSessionEnd, sid, at.Add(-time.Minute), `{}`)
	default:
		add(events.TypeSessionEnd, sid, t.Add(2*time.Second), "")
	}
	return evs
}

// Deliveries returns each event 1 to maxCopies times, shuffled: delivery
// at least once and in any order.
func (g *Generator) Deliveries(evs []event.Event, maxCopies int) []event.Event {
	r := g.rng()
	var out []event.Event
	for _, e := range evs {
		for c := 1 + r.IntN(max(maxCopies, 1)); c > 0; c-- {
			out = append(out, e)
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
