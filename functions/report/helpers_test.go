package report

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gamemetrics/gamemetrics/functions/process"
	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

var (
	stack   *devstack.Stack
	pool    *pgxpool.Pool
	rdb     *redis.Client
	objects *archive.Client
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

// setup connects to the shared stack and migrates it, once per binary.
func setup(t testing.TB) {
	t.Helper()
	c := devstacktest.Connect(t, stack)
	pool, rdb, objects = c.Pool, c.Redis, c.Archive
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// testGame is a game with its keys.
type testGame struct {
	store.Game
	keys store.Keys
	loc  *time.Location
}

func newGame(t testing.TB, tz string) testGame {
	t.Helper()
	setup(t)
	g, keys, err := store.NewGames(pool).Create(context.Background(), "test "+t.Name(), tz)
	if err != nil {
		t.Fatal(err)
	}
	return testGame{Game: g, keys: keys, loc: g.Location()}
}

// newReport serves report with a fixed clock at now.
func newReport(t testing.TB, now time.Time) (*Report, string) {
	t.Helper()
	setup(t)
	r := New(DefaultConfig(), pool, rdb, objects, testLogger(), prometheus.NewRegistry(), func() time.Time { return now })
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv.URL
}

// seed delivers evs through process (its Handle, concurrently, as a
// KafkaSource with unordered delivery would) and waits for the commits.
func seed(t testing.TB, evs []event.Event) {
	t.Helper()
	setup(t)
	p := process.New(process.DefaultConfig(), pool, rdb, testLogger(), prometheus.NewRegistry())
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stop process: %v", err)
		}
	}()
	var wg sync.WaitGroup
	ch := make(chan event.Event)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range ch {
				if _, err := p.Handle(context.Background(), e); err != nil {
					t.Errorf("process %s: %v", e.ID(), err)
				}
			}
		}()
	}
	for _, e := range evs {
		ch <- e
	}
	close(ch)
	wg.Wait()
}

// gen writes realistic events of one game.
type gen struct {
	rng  *rand.Rand
	game string
	seq  int
}

func (g *gen) event(typ, subject, session string, at time.Time, data string) event.Event {
	g.seq++
	e := event.New()
	e.SetID(fmt.Sprintf("%s-ev-%d", g.game, g.seq))
	e.SetSource("/test/client")
	e.SetType(typ)
	e.SetSubject(subject)
	e.SetTime(at)
	if session != "" {
		e.SetExtension(events.ExtSessionID, session)
	}
	e.SetExtension(events.ExtGameID, g.game)
	e.SetExtension(events.ExtReceivedTime, at.Add(time.Second))
	if data != "" {
		if err := e.SetData(event.ApplicationJSON, []byte(data)); err != nil {
			panic(err)
		}
	}
	return e
}

func (g *gen) pick(s []string) string { return s[g.rng.IntN(len(s))] }

// players generates n players installing between from and from+days and
// playing on random later days, with every metric's event types, sessions
// with and without ends, and events near every local midnight.
func (g *gen) players(n int, from time.Time, days int, currencies []string) []event.Event {
	var evs []event.Event
	for p := 0; p < n; p++ {
		subject := fmt.Sprintf("player-%d", p)
		install := g.rng.IntN(days)
		for d := install; d < days; d++ {
			if d != install && g.rng.IntN(3) != 0 {
				continue
			}
			for s := 0; s < 1+g.rng.IntN(2); s++ {
				sid := fmt.Sprintf("s-%d-%d-%d", p, d, s)
				at := from.AddDate(0, 0, d).Add(time.Duration(g.rng.Int64N(int64(24 * time.Hour)))).Truncate(time.Millisecond)
				evs = append(evs, g.event(events.TypeSessionStart, subject, sid, at,
					fmt.Sprintf(`{"platform":%q,"app_version":"1.0"}`, g.pick([]string{"ios", "android", "web"}))))
				t := at
				for k := 1 + g.rng.IntN(6); k > 0; k-- {
					t = t.Add(time.Duration(1+g.rng.IntN(600)) * time.Second)
					switch g.rng.IntN(7) {
					case 0:
						evs = append(evs, g.event(events.TypePurchase, subject, sid, t,
							fmt.Sprintf(`{"item_id":"gems","currency":%q,"amount_minor":%d}`, g.pick(currencies), 99+g.rng.IntN(5000))))
					case 1:
						evs = append(evs, g.event(events.TypeAd, subject, sid, t,
							fmt.Sprintf(`{"action":%q,"ad_type":"video","network":"n","revenue_micros":%d}`,
								g.pick([]string{"show", "show", "click", "reward"}), g.rng.IntN(4)*1500)))
					case 2:
						evs = append(evs, g.event(events.TypeError, subject, sid, t,
							fmt.Sprintf(`{"severity":%q,"message":"boom"}`, g.pick([]string{"warning", "error", "critical"}))))
					case 3:
						attempt := ""
						if g.rng.IntN(3) > 0 {
							attempt = fmt.Sprintf(`,"attempt":%d`, 1+g.rng.IntN(4))
						}
						evs = append(evs, g.event(events.TypeProgression, subject, sid, t,
							fmt.Sprintf(`{"status":%q,"level":%q%s}`, g.pick([]string{"start", "complete", "fail"}),
								g.pick([]string{"w1/l1", "w1/l2", "w2/l1"}), attempt)))
					default:
						evs = append(evs, g.event(events.TypeHeartbeat, subject, sid, t, ""))
					}
				}
				switch g.rng.IntN(3) {
				case 0: // no end: closed by the timeout
				case 1:
					evs = append(evs, g.event(events.TypeSessionEnd, subject, sid, t.Add(time.Second),
						fmt.Sprintf(`{"length_s":%s}`, g.pick([]string{"30", "12.5", "600.25", "7"}))))
				default:
					evs = append(evs, g.event(events.TypeSessionEnd, subject, sid, t.Add(2*time.Second), ""))
				}
			}
		}
	}
	return evs
}

// ---- ground truth, from the raw events, without the code under test ----

type tev struct {
	id, typ, subject, session string
	at                        time.Time
	data                      map[string]any
}

func parseEvents(t testing.TB, evs []event.Event) []tev {
	seen := map[string]bool{}
	var out []tev
	for _, e := range evs {
		if seen[e.ID()] {
			continue
		}
		seen[e.ID()] = true
		x := tev{id: e.ID(), typ: e.Type(), subject: e.Subject(), at: e.Time().UTC().Truncate(time.Microsecond)}
		x.session, _ = e.Extensions()[events.ExtSessionID].(string)
		if len(e.Data()) > 0 {
			dec := json.NewDecoder(strings.NewReader(string(e.Data())))
			dec.UseNumber()
			if err := dec.Decode(&x.data); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, x)
	}
	return out
}

// truth answers metric questions over the raw events of one game.
type truth struct {
	loc  *time.Location
	now  time.Time
	evs  []tev
	sess map[string]*tsess
	// first event and first purchase per player
	first, firstPay map[string]time.Time
}

type tsess struct {
	begin, first, last time.Time
	start              time.Time
	ended              bool
	endLen             *big.Rat
}

func (s *tsess) length() *big.Rat {
	if s.endLen != nil {
		return s.endLen
	}
	b := s.start
	if b.IsZero() {
		b = s.first
	}
	d := s.last.Sub(b)
	if d < 0 {
		d = 0
	}
	return new(big.Rat).SetFrac64(d.Microseconds(), 1_000_000)
}

func newTruth(t testing.TB, loc *time.Location, now time.Time, evs []event.Event) *truth {
	tr := &truth{loc: loc, now: now, evs: parseEvents(t, evs), sess: map[string]*tsess{},
		first: map[string]time.Time{}, firstPay: map[string]time.Time{}}
	for _, e := range tr.evs {
		if f, ok := tr.first[e.subject]; !ok || e.at.Before(f) {
			tr.first[e.subject] = e.at
		}
		if e.typ == events.TypePurchase {
			if f, ok := tr.firstPay[e.subject]; !ok || e.at.Before(f) {
				tr.firstPay[e.subject] = e.at
			}
		}
		if e.session == "" {
			continue
		}
		k := e.subject + "/" + e.session
		s := tr.sess[k]
		if s == nil {
			s = &tsess{first: e.at, last: e.at}
			tr.sess[k] = s
		}
		if e.at.Before(s.first) {
			s.first = e.at
		}
		if e.at.After(s.last) {
			s.last = e.at
		}
		switch e.typ {
		case events.TypeSessionStart:
			if s.start.IsZero() || e.at.Before(s.start) {
				s.start = e.at
			}
		case events.TypeSessionEnd:
			s.ended = true
			if v, ok := e.data["length_s"]; ok {
				l, _ := new(big.Rat).SetString(fmt.Sprint(v))
				if s.endLen == nil || l.Cmp(s.endLen) > 0 {
					s.endLen = l
				}
			}
		}
	}
	for _, s := range tr.sess {
		s.begin = s.start
		if s.begin.IsZero() {
			s.begin = s.first
		}
	}
	return tr
}

func (tr *truth) day(at time.Time) time.Time { return localDay(at, tr.loc) }

// in says whether at falls in the period (days in the game's zone, or the
// UTC hour).
func (tr *truth) in(p period, interval string, at time.Time) bool {
	if interval == Hour {
		return at.UTC().Truncate(time.Hour).Equal(p.hour)
	}
	d := tr.day(at)
	return !d.Before(p.from) && !d.After(p.to)
}

// value computes metric over one period from the raw events.
func (tr *truth) value(metric, interval string, p period, currency, severity string) float64 {
	count := func(f func(e tev) bool) float64 {
		n := 0.0
		for _, e := range tr.evs {
			if tr.in(p, interval, e.at) && f(e) {
				n++
			}
		}
		return n
	}
	distinct := func(f func(e tev) bool) float64 {
		set := map[string]bool{}
		for _, e := range tr.evs {
			if tr.in(p, interval, e.at) && f(e) {
				set[e.subject] = true
			}
		}
		return float64(len(set))
	}
	all := func(tev) bool { return true }
	revenue := func() float64 {
		v := 0.0
		for _, e := range tr.evs {
			if tr.in(p, interval, e.at) && e.typ == events.TypePurchase && e.data["currency"] == currency {
				n, _ := e.data["amount_minor"].(json.Number).Float64()
				v += n
			}
		}
		return v
	}
	div := func(a, b float64, places int) float64 {
		if b == 0 {
			return 0
		}
		return round(a/b, places)
	}
	isPurchase := func(e tev) bool {
		return e.typ == events.TypePurchase && (currency == "" || e.data["currency"] == currency)
	}
	paying := func(e tev) bool { return e.typ == events.TypePurchase }
	switch metric {
	case "events":
		return count(all)
	case "dau":
		return distinct(all)
	case "new_players":
		n := 0.0
		for _, f := range tr.first {
			if tr.in(p, interval, f) {
				n++
			}
		}
		return n
	case "first_time_payers":
		n := 0.0
		for _, f := range tr.firstPay {
			if tr.in(p, interval, f) {
				n++
			}
		}
		return n
	case "sessions", "session_length_avg", "playtime_per_dau":
		n, ended := 0.0, 0.0
		sum, endedSum := new(big.Rat), new(big.Rat)
		for _, s := range tr.sess {
			if !tr.in(p, interval, s.begin) {
				continue
			}
			n++
			sum.Add(sum, s.length())
			if s.ended || tr.now.Sub(s.last) >= events.SessionTimeout {
				ended++
				endedSum.Add(endedSum, s.length())
			}
		}
		switch metric {
		case "sessions":
			return n
		case "session_length_avg":
			f, _ := endedSum.Float64()
			return div(f, ended, 2)
		}
		f, _ := sum.Float64()
		return div(f, distinct(all), 2)
	case "revenue":
		return revenue()
	case "transactions":
		return count(isPurchase)
	case "paying_players":
		return distinct(paying)
	case "arpdau":
		return div(revenue(), distinct(all), 2)
	case "arppu":
		return div(revenue(), distinct(paying), 2)
	case "conversion":
		return div(distinct(paying), distinct(all), 4)
	case "ad_impressions":
		return count(func(e tev) bool { return e.typ == events.TypeAd && e.data["action"] == "show" })
	case "ad_revenue_micros":
		v := 0.0
		for _, e := range tr.evs {
			if tr.in(p, interval, e.at) && e.typ == events.TypeAd {
				n, _ := e.data["revenue_micros"].(json.Number).Float64()
				v += n
			}
		}
		return v
	case "errors":
		return count(func(e tev) bool {
			return e.typ == events.TypeError && (severity == "" || e.data["severity"] == severity)
		})
	}
	panic("no truth for " + metric)
}

// retention returns the expected cohorts for install days [from, to].
func (tr *truth) retention(from, to time.Time, days []int) []Cohort {
	active := map[string]map[time.Time]bool{}
	for _, e := range tr.evs {
		if active[e.subject] == nil {
			active[e.subject] = map[time.Time]bool{}
		}
		active[e.subject][tr.day(e.at)] = true
	}
	today := tr.day(tr.now)
	var out []Cohort
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		c := Cohort{Cohort: d.Format(time.DateOnly), Retained: map[string]*int64{}}
		var members []string
		for s, f := range tr.first {
			if tr.day(f).Equal(d) {
				members = append(members, s)
			}
		}
		c.Size = int64(len(members))
		for _, n := range days {
			target := d.AddDate(0, 0, n)
			if target.After(today) {
				c.Retained[fmt.Sprint(n)] = nil
				continue
			}
			k := int64(0)
			for _, s := range members {
				if active[s][target] {
					k++
				}
			}
			c.Retained[fmt.Sprint(n)] = &k
		}
		out = append(out, c)
	}
	return out
}

// progression returns the expected levels for days [from, to].
func (tr *truth) progression(from, to time.Time) []Level {
	levels := map[string]*Level{}
	attempts := map[string][]float64{}
	p := period{from: from, to: to}
	for _, e := range tr.evs {
		if e.typ != events.TypeProgression || !tr.in(p, Day, e.at) {
			continue
		}
		name := fmt.Sprint(e.data["level"])
		l := levels[name]
		if l == nil {
			l = &Level{Level: name}
			levels[name] = l
		}
		switch e.data["status"] {
		case "start":
			l.Starts++
		case "complete":
			l.Completes++
			if a, ok := e.data["attempt"]; ok {
				f, _ := a.(json.Number).Float64()
				attempts[name] = append(attempts[name], f)
			}
		case "fail":
			l.Fails++
		}
	}
	var out []Level
	for name, l := range levels {
		if l.Completes+l.Fails > 0 {
			l.FailRate = round(float64(l.Fails)/float64(l.Completes+l.Fails), 4)
		}
		if a := attempts[name]; len(a) > 0 {
			sum := 0.0
			for _, x := range a {
				sum += x
			}
			avg := round(sum/float64(len(a)), 2)
			l.AvgAttempts = &avg
		}
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Level < out[j].Level })
	return out
}

// ---- HTTP helpers ----

func get(t testing.TB, url, key string, header ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func getJSON(t testing.TB, url, key string, v any) {
	t.Helper()
	status, body, _ := get(t, url, key)
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", url, status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

func getCSV(t testing.TB, url, key string, header ...string) [][]string {
	t.Helper()
	status, body, h := get(t, url, key, header...)
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", url, status, body)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Fatalf("GET %s: Content-Type %q, want text/csv", url, ct)
	}
	rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatalf("GET %s: bad CSV: %v\n%s", url, err, body)
	}
	return rows
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
