package process

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

var (
	stack *devstack.Stack
	pool  *pgxpool.Pool
	rdb   *redis.Client
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

// setup connects to the shared stack and migrates it, once per binary.
func setup(t testing.TB) {
	t.Helper()
	c := devstacktest.Connect(t, stack)
	pool, rdb = c.Pool, c.Redis
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// newProcess builds a process on the shared stack, stopped at cleanup.
func newProcess(t testing.TB, cfg Config) *Process {
	t.Helper()
	setup(t)
	p := New(cfg, pool, rdb, testLogger(t), prometheus.NewRegistry())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return p
}

func newGame(t testing.TB, tz string) store.Game {
	t.Helper()
	setup(t)
	g, _, err := store.NewGames(pool).Create(context.Background(), "test "+t.Name(), tz)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// gen produces realistic event streams of one game.
type gen struct {
	rng  *rand.Rand
	game string
	seq  int
}

func (g *gen) event(typ, subject, session string, at time.Time, data string) event.Event {
	g.seq++
	e := event.New()
	e.SetID(fmt.Sprintf("ev-%d-%d", g.seq, g.rng.IntN(1_000_000)))
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

var (
	platformsT  = []string{"ios", "android", "web", "windows"}
	currenciesT = []string{"USD", "EUR", "JPY"}
	levelsT     = []string{"w1/s1/l1", "w1/s1/l2", "w2"}
	designT     = []string{"ui:click:play", "tutorial:step", "shop:open"}
	decimalsT   = []string{"1", "0.1", "12.5", "3.75", "100", "0.333"}
)

func (g *gen) pick(s []string) string { return s[g.rng.IntN(len(s))] }

// players generates sessions for n players between from and from+span,
// with every catalogue type and session edge cases mixed in.
func (g *gen) players(n int, from time.Time, span time.Duration) []event.Event {
	var evs []event.Event
	for p := 0; p < n; p++ {
		subject := fmt.Sprintf("player-%d", p)
		sessions := 1 + g.rng.IntN(3)
		for s := 0; s < sessions; s++ {
			sid := fmt.Sprintf("s-%d-%d", p, s)
			at := from.Add(time.Duration(g.rng.Int64N(int64(span)))).Truncate(time.Millisecond)
			if g.rng.IntN(10) > 0 { // some sessions never got their start
				evs = append(evs, g.event(events.TypeSessionStart, subject, sid, at,
					fmt.Sprintf(`{"platform":%q,"app_version":"1.%d","country":"DE"}`, g.pick(platformsT), g.rng.IntN(3))))
			}
			if g.rng.IntN(8) == 0 { // repeated start, later
				evs = append(evs, g.event(events.TypeSessionStart, subject, sid, at.Add(3*time.Second),
					fmt.Sprintf(`{"platform":%q,"app_version":"1.0"}`, g.pick(platformsT))))
			}
			t := at
			for k := 2 + g.rng.IntN(8); k > 0; k-- {
				t = t.Add(time.Duration(1+g.rng.IntN(300)) * time.Second)
				sess := sid
				if g.rng.IntN(4) == 0 {
					sess = "" // non-session events may come without a session
				}
				switch g.rng.IntN(8) {
				case 0:
					evs = append(evs, g.event(events.TypeHeartbeat, subject, sid, t, ""))
				case 1:
					evs = append(evs, g.event(events.TypePurchase, subject, sess, t,
						fmt.Sprintf(`{"item_id":"gem-pack","currency":%q,"amount_minor":%d}`, g.pick(currenciesT), 1+g.rng.IntN(5000))))
				case 2:
					evs = append(evs, g.event(events.TypeResource, subject, sess, t,
						fmt.Sprintf(`{"flow":%q,"currency":"gold","amount":%s,"item_type":"x","item_id":"y"}`,
							[]string{"source", "sink"}[g.rng.IntN(2)], g.pick(decimalsT))))
				case 3:
					evs = append(evs, g.event(events.TypeProgression, subject, sess, t,
						fmt.Sprintf(`{"status":%q,"level":%q,"score":%d}`, []string{"start", "complete", "fail"}[g.rng.IntN(3)], g.pick(levelsT), g.rng.IntN(100))))
				case 4:
					value := ""
					if g.rng.IntN(2) == 0 {
						value = `,"value":-` + g.pick(decimalsT)
					}
					evs = append(evs, g.event(events.TypeDesign, subject, sess, t, fmt.Sprintf(`{"event":%q%s}`, g.pick(designT), value)))
				case 5:
					evs = append(evs, g.event(events.TypeAd, subject, sess, t,
						fmt.Sprintf(`{"action":%q,"ad_type":%q,"network":"n","revenue_micros":%d}`,
							[]string{"show", "click", "reward", "fail"}[g.rng.IntN(4)], []string{"video", "banner"}[g.rng.IntN(2)], g.rng.IntN(3)*1000)))
				case 6:
					evs = append(evs, g.event(events.TypeError, subject, sess, t,
						fmt.Sprintf(`{"severity":%q,"message":"boom"}`, []string{"debug", "error", "critical"}[g.rng.IntN(3)])))
				default:
					evs = append(evs, g.event(events.TypeHeartbeat, subject, sid, t, ""))
				}
			}
			switch g.rng.IntN(4) {
			case 0: // missing end
			case 1: // end with the client-measured length
				evs = append(evs, g.event(events.TypeSessionEnd, subject, sid, t.Add(time.Second),
					fmt.Sprintf(`{"length_s":%s}`, g.pick(decimalsT))))
			case 2: // end whose clock is behind the start
				evs = append(evs, g.event(events.TypeSessionEnd, subject, sid, at.Add(-time.Minute), `{}`))
			default:
				evs = append(evs, g.event(events.TypeSessionEnd, subject, sid, t.Add(2*time.Second), ""))
			}
		}
	}
	return evs
}

// deliveries returns each event 1–maxCopies times, shuffled.
func deliveries(rng *rand.Rand, evs []event.Event, maxCopies int) []event.Event {
	var out []event.Event
	for _, e := range evs {
		for c := 1 + rng.IntN(maxCopies); c > 0; c-- {
			out = append(out, e)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// post delivers e like a KafkaSource: binary mode, with the Kafka
// partition and offset extensions, and returns the status.
func post(t testing.TB, client *http.Client, url string, e event.Event, offset int) (int, string) {
	t.Helper()
	e = e.Clone()
	e.SetExtension("knativekafkapartition", strconv.Itoa(offset%12))
	e.SetExtension("knativekafkaoffset", strconv.Itoa(offset))
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Prefer", "reply")
	if err := cehttp.WriteRequest(context.Background(), binding.ToMessage(&e), req); err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

// deliverAll posts every event with conc workers, retrying what a
// KafkaSource retries (5xx, 404, 408, 409, 429, network errors) until
// accepted, and fails the test on any other status. It returns how many
// deliveries were retried.
func deliverAll(t testing.TB, url string, evs []event.Event, conc int) int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}, Timeout: 30 * time.Second}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		retries int
		next    int
	)
	deadline := time.Now().Add(2 * time.Minute)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(evs) {
					return
				}
				for {
					status, body := post(t, client, url, evs[i], i)
					if status >= 200 && status < 300 {
						break
					}
					if status != 0 && status < 500 && status != 404 && status != 408 && status != 409 && status != 429 {
						t.Errorf("delivery %d (%s) got %d: %s", i, evs[i].ID(), status, body)
						break
					}
					mu.Lock()
					retries++
					mu.Unlock()
					if time.Now().After(deadline) {
						t.Errorf("delivery %d still failing: %d %s", i, status, body)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	return retries
}

// handleAll calls Handle directly with conc goroutines (no HTTP).
func handleAll(t testing.TB, p *Process, evs []event.Event, conc int) {
	t.Helper()
	var wg sync.WaitGroup
	ch := make(chan event.Event)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range ch {
				if _, err := p.Handle(context.Background(), e); err != nil {
					t.Errorf("handle %s: %v", e.ID(), err)
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

// ---- ground truth, computed from the raw events without the code under test ----

type tev struct {
	typ, subject, session string
	at                    time.Time
	data                  map[string]any
}

func parseT(t testing.TB, evs []event.Event) []tev {
	seen := map[string]bool{}
	var out []tev
	for _, e := range evs {
		if seen[e.ID()] {
			continue
		}
		seen[e.ID()] = true
		x := tev{typ: e.Type(), subject: e.Subject(), at: e.Time().UTC().Truncate(time.Microsecond)}
		x.session, _ = e.Extensions()[events.ExtSessionID].(string)
		if len(e.Data()) > 0 {
			d := jsonDecode(t, e.Data())
			x.data = d
		}
		out = append(out, x)
	}
	return out
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func ratOf(t testing.TB, s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("not a number: %q", s)
	}
	return r
}

// truth returns every aggregate the process should produce for evs, as
// "table|key..." -> value, with numbers in lowest-terms rational form.
func truth(t testing.TB, loc *time.Location, evs []event.Event) map[string]string {
	t.Helper()
	out := map[string]*big.Rat{}
	strs := map[string]string{}
	addBoth := func(at time.Time, metric, dim string, v *big.Rat) {
		for _, k := range []string{
			"daily|" + at.In(loc).Format(time.DateOnly) + "|" + metric + "|" + dim,
			"hourly|" + at.UTC().Truncate(time.Hour).Format(time.RFC3339) + "|" + metric + "|" + dim,
		} {
			if out[k] == nil {
				out[k] = new(big.Rat)
			}
			out[k].Add(out[k], v)
		}
	}
	oneR := big.NewRat(1, 1)
	type sess struct {
		start, first, last time.Time
		ended              bool
		endLen             *big.Rat
		platform           string
	}
	sessions := map[[2]string]*sess{}
	type pl struct{ first, last, firstPay time.Time }
	players := map[string]*pl{}
	active := map[string]bool{}
	spend := map[string][2]int64{}
	for _, e := range parseT(t, evs) {
		addBoth(e.at, "events", e.typ, oneR)
		for _, k := range []string{
			"daily|" + e.at.In(loc).Format(time.DateOnly) + "|active_players||" + e.subject,
			"hourly|" + e.at.UTC().Truncate(time.Hour).Format(time.RFC3339) + "|active_players||" + e.subject,
		} {
			active[k] = true
		}
		p := players[e.subject]
		if p == nil {
			p = &pl{first: e.at, last: e.at}
			players[e.subject] = p
		}
		if e.at.Before(p.first) {
			p.first = e.at
		}
		if e.at.After(p.last) {
			p.last = e.at
		}
		d := e.data
		switch e.typ {
		case events.TypePurchase:
			cur := str(d["currency"])
			amt := ratOf(t, str(d["amount_minor"]))
			addBoth(e.at, "purchases", cur, oneR)
			addBoth(e.at, "revenue_minor", cur, amt)
			for _, k := range []string{
				"daily|" + e.at.In(loc).Format(time.DateOnly) + "|paying_players||" + e.subject,
				"hourly|" + e.at.UTC().Truncate(time.Hour).Format(time.RFC3339) + "|paying_players||" + e.subject,
			} {
				active[k] = true
			}
			if p.firstPay.IsZero() || e.at.Before(p.firstPay) {
				p.firstPay = e.at
			}
			s := spend[e.subject+"|"+cur]
			s[0] += amt.Num().Int64()
			s[1]++
			spend[e.subject+"|"+cur] = s
		case events.TypeAd:
			addBoth(e.at, "ad_events", str(d["action"])+"/"+str(d["ad_type"]), oneR)
			if r := ratOf(t, str(d["revenue_micros"])); r.Sign() > 0 {
				addBoth(e.at, "ad_revenue_micros", str(d["ad_type"]), r)
			}
		case events.TypeError:
			addBoth(e.at, "errors", str(d["severity"]), oneR)
		case events.TypeProgression:
			addBoth(e.at, "progression_"+str(d["status"]), str(d["level"]), oneR)
		case events.TypeResource:
			addBoth(e.at, "resource_"+str(d["flow"]), str(d["currency"]), ratOf(t, str(d["amount"])))
		case events.TypeDesign:
			addBoth(e.at, "design_events", str(d["event"]), oneR)
			if v, ok := d["value"]; ok {
				addBoth(e.at, "design_value_sum", str(d["event"]), ratOf(t, str(v)))
			}
		}
		if e.session == "" {
			continue
		}
		k := [2]string{e.subject, e.session}
		s := sessions[k]
		if s == nil {
			s = &sess{first: e.at, last: e.at}
			sessions[k] = s
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
				s.start, s.platform = e.at, str(d["platform"])
			}
		case events.TypeSessionEnd:
			s.ended = true
			if v, ok := d["length_s"]; ok {
				if l := ratOf(t, str(v)); s.endLen == nil || l.Cmp(s.endLen) > 0 {
					s.endLen = l
				}
			}
		}
	}
	for k := range active {
		i := strings.LastIndex(k, "|")
		addKey := k[:i]
		if out[addKey] == nil {
			out[addKey] = new(big.Rat)
		}
		out[addKey].Add(out[addKey], oneR)
	}
	sessionsPerPlayer := map[string]int{}
	for k, s := range sessions {
		begin := s.start
		if begin.IsZero() {
			begin = s.first
		}
		length := s.endLen
		if length == nil {
			d := s.last.Sub(begin)
			if d < 0 {
				d = 0
			}
			length = new(big.Rat).SetFrac64(d.Microseconds(), 1_000_000)
		}
		addBoth(begin, "sessions", "", oneR)
		addBoth(begin, "session_length_sum_s", "", length)
		addBoth(begin, "session_length_count", "", oneR)
		strs["session|"+k[0]+"|"+k[1]] = fmt.Sprintf("%s %s %s %s %v", begin.Format(time.RFC3339Nano), length.RatString(),
			begin.In(loc).Format(time.DateOnly), s.platform, s.ended)
		sessionsPerPlayer[k[0]]++
	}
	// Cohort activity: players of each install day active on each day.
	cohorts := map[string]int{}
	for k := range active {
		parts := strings.Split(k, "|") // daily|day|active_players||subject
		if parts[0] != "daily" || parts[2] != "active_players" {
			continue
		}
		install := players[parts[4]].first.In(loc).Format(time.DateOnly)
		cohorts["cohort|"+install+"|"+parts[1]]++
	}
	for k, n := range cohorts {
		strs[k] = strconv.Itoa(n)
	}
	for subject, p := range players {
		addBoth(p.first, "new_players", "", oneR)
		fp := ""
		if !p.firstPay.IsZero() {
			addBoth(p.firstPay, "first_time_payers", "", oneR)
			fp = p.firstPay.Format(time.RFC3339Nano)
		}
		strs["player|"+subject] = fmt.Sprintf("%s %s %s %s %d", p.first.Format(time.RFC3339Nano), p.last.Format(time.RFC3339Nano),
			p.first.In(loc).Format(time.DateOnly), fp, sessionsPerPlayer[subject])
	}
	for k, s := range spend {
		strs["spend|"+k] = fmt.Sprintf("%d %d", s[0], s[1])
	}
	for k, v := range out {
		if v.Sign() != 0 {
			strs[k] = v.RatString()
		}
	}
	return strs
}

// stored reads the same aggregates from the database.
func stored(t testing.TB, game string, loc *time.Location) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	// readKeyValues adds the (key, value) rows of sql to out, value normalised by norm.
	readKeyValues := func(sql string, norm func(string) string) {
		rows, _ := pool.Query(ctx, sql, game)
		var k, v string
		if _, err := pgx.ForEachRow(rows, []any{&k, &v}, func() error {
			out[k] = norm(v)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	readKeyValues(`SELECT 'daily|' || to_char(day, 'YYYY-MM-DD') || '|' || metric || '|' || dim, value::text
		FROM rollup_daily WHERE gameid = $1 AND value <> 0
		UNION ALL
		SELECT 'hourly|' || to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || '|' || metric || '|' || dim, value::text
		FROM rollup_hourly WHERE gameid = $1 AND value <> 0`,
		func(v string) string { return ratOf(t, v).RatString() })
	readKeyValues(`SELECT 'cohort|' || to_char(install_day, 'YYYY-MM-DD') || '|' || to_char(day, 'YYYY-MM-DD'), players::text
		FROM cohort_days WHERE gameid = $1 AND players <> 0`, func(v string) string { return v })
	readKeyValues(`SELECT 'spend|' || subject || '|' || currency, amount_minor::text || ' ' || purchases FROM player_spend WHERE gameid = $1`,
		func(v string) string { return v })
	rows, err := pool.Query(ctx, `SELECT subject, sessionid, begin_at, length_s::text, day, coalesce(platform, ''), end_at IS NOT NULL
		FROM sessions WHERE gameid = $1`, game)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var subject, sid, length, platform string
		var begin, day time.Time
		var ended bool
		if err := rows.Scan(&subject, &sid, &begin, &length, &day, &platform, &ended); err != nil {
			t.Fatal(err)
		}
		out["session|"+subject+"|"+sid] = fmt.Sprintf("%s %s %s %s %v", begin.UTC().Format(time.RFC3339Nano), ratOf(t, length).RatString(),
			day.Format(time.DateOnly), platform, ended)
	}
	rows, err = pool.Query(ctx, `SELECT subject, first_seen, last_seen, install_day, first_purchase_at, sessions FROM players WHERE gameid = $1`, game)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var subject string
		var first, last, install time.Time
		var fp *time.Time
		var n int
		if err := rows.Scan(&subject, &first, &last, &install, &fp, &n); err != nil {
			t.Fatal(err)
		}
		fps := ""
		if fp != nil {
			fps = fp.UTC().Format(time.RFC3339Nano)
		}
		out["player|"+subject] = fmt.Sprintf("%s %s %s %s %d", first.UTC().Format(time.RFC3339Nano), last.UTC().Format(time.RFC3339Nano),
			install.Format(time.DateOnly), fps, n)
	}
	return out
}

// sameAggregates compares the database with the ground truth.
func sameAggregates(t testing.TB, game store.Game, evs []event.Event) {
	t.Helper()
	want := truth(t, game.Location(), evs)
	got := stored(t, game.ID, game.Location())
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			diffs = append(diffs, fmt.Sprintf("%s: got %q, want %q", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: got %q, want nothing", k, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("… and %d more", len(diffs)-20))
		}
		t.Errorf("%d of %d aggregates differ from the ground truth:\n%s", len(diffs), len(want), strings.Join(diffs, "\n"))
	}
	var stored int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM events WHERE gameid = $1", game.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if u := len(parseT(t, evs)); stored != u {
		t.Errorf("raw events stored = %d, want %d distinct", stored, u)
	}
}

func jsonDecode(t testing.TB, b []byte) map[string]any {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("test data %s: %v", b, err)
	}
	return m
}

func httpServer(t testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
