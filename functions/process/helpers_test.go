package process

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
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
	"github.com/gamemetrics/gamemetrics/shared/simulation"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

var (
	stack *devstack.Stack
	pool  *pgxpool.Pool
	rdb   *redis.Client
)

// TestMain starts the real local stack once. Fuzzing workers re-run the
// test binary many times and the fuzz targets need no server, so under
// -fuzz the stack is not started (run the tests without -fuzz).
func TestMain(m *testing.M) {
	flag.Parse()
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			os.Exit(m.Run())
		}
	}
	os.Exit(devstacktest.Main(m, &stack))
}

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

// drain waits until p has aggregated every event it acknowledged: a
// delivery is answered once its event is durable, and counted just after.
func drain(t testing.TB, p *Process) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
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
	var retries, offset atomic.Int64
	deadline := time.Now().Add(2 * time.Minute)
	simtest.Feed(t, func(_ context.Context, e event.Event) (*event.Event, error) {
		i := int(offset.Add(1) - 1)
		for {
			status, body := post(t, client, url, e, i)
			switch {
			case status >= 200 && status < 300:
				return nil, nil
			case status != 0 && status < 500 && status != 404 && status != 408 && status != 409 && status != 429:
				return nil, fmt.Errorf("delivery %d got %d: %s", i, status, body)
			case time.Now().After(deadline):
				return nil, fmt.Errorf("delivery %d still failing: %d %s", i, status, body)
			}
			retries.Add(1)
			time.Sleep(50 * time.Millisecond)
		}
	}, evs, conc)
	return int(retries.Load())
}

// ---- ground truth: the recount of the raw events, as stored rows ----

func ratOf(t testing.TB, s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("not a number: %q", s)
	}
	return r
}

// truth returns every aggregate the process should produce for the
// recounted events, as "table|key..." -> value, with numbers in
// lowest-terms rational form.
func truth(t testing.TB, r *simulation.Recount) map[string]string {
	t.Helper()
	sums := map[string]*big.Rat{}
	strs := map[string]string{}
	one := big.NewRat(1, 1)
	buckets := func(at time.Time) []string {
		return []string{"daily|" + r.Day(at).Format(time.DateOnly), "hourly|" + at.UTC().Truncate(time.Hour).Format(time.RFC3339)}
	}
	// Additive metrics have minute rows too; distinct players do not.
	add := func(at time.Time, metric, dim string, v *big.Rat) {
		for _, b := range append(buckets(at), "minutely|"+at.UTC().Truncate(time.Minute).Format(time.RFC3339)) {
			k := b + "|" + metric + "|" + dim
			if sums[k] == nil {
				sums[k] = new(big.Rat)
			}
			sums[k].Add(sums[k], v)
		}
	}
	// distinct players per bucket: "daily|day|active_players|" -> subjects
	players := map[string]map[string]bool{}
	seen := func(at time.Time, metric, subject string) {
		for _, b := range buckets(at) {
			k := b + "|" + metric + "|"
			if players[k] == nil {
				players[k] = map[string]bool{}
			}
			players[k][subject] = true
		}
	}
	number := func(e simulation.Fact, key string) *big.Rat {
		v, ok := e.Rat(key)
		if !ok {
			t.Fatalf("event %s: %s = %v is not a number", e.ID, key, e.Data[key])
		}
		return v
	}
	spend := map[string][2]int64{}
	// Per single dimension value, daily (a selection of metrics).
	// Per single dimension value, daily and per UTC hour (a selection of
	// metrics; hourly ones are read from the tuple rows).
	dimBuckets := func(at time.Time) []string {
		return []string{"dim|" + r.Day(at).Format(time.DateOnly), "dimh|" + at.UTC().Truncate(time.Hour).Format(time.RFC3339)}
	}
	dimAdd := func(at time.Time, d events.Dims, metric, dim string, v *big.Rat) {
		for _, b := range dimBuckets(at) {
			for i, name := range events.DimensionNames() {
				k := b + "|" + metric + "|" + dim + "|" + name + "=" + d[i]
				if sums[k] == nil {
					sums[k] = new(big.Rat)
				}
				sums[k].Add(sums[k], v)
			}
		}
	}
	dimSeen := func(at time.Time, d events.Dims, metric, subject string) {
		for _, b := range dimBuckets(at) {
			for i, name := range events.DimensionNames() {
				k := b + "|" + metric + "||" + name + "=" + d[i]
				if players[k] == nil {
					players[k] = map[string]bool{}
				}
				players[k][subject] = true
			}
		}
	}
	// player_hour_tuples: the minutes and purchases of each player, UTC
	// hour and tuple.
	type hourTuple struct {
		minutes uint64
		paid    bool
	}
	hourTuples := map[string]hourTuple{}
	for _, e := range r.Events {
		add(e.Time, "events", e.Type, one)
		seen(e.Time, "active_players", e.Subject)
		dimAdd(e.Time, e.Dims, "events", "", one)
		dimSeen(e.Time, e.Dims, "active_players", e.Subject)
		hour := e.Time.UTC().Truncate(time.Hour)
		hk := "pht|" + hour.Format(time.RFC3339) + "|" + e.Subject + "|" + strings.Join(e.Dims[:], "/")
		ht := hourTuples[hk]
		hourTuples[hk] = hourTuple{ht.minutes | 1<<uint(e.Time.Sub(hour)/time.Minute), ht.paid || e.Type == events.TypePurchase}
		switch e.Type {
		case events.TypePurchase:
			cur, amt := e.Text("currency"), number(e, "amount_minor")
			add(e.Time, "purchases", cur, one)
			add(e.Time, "revenue_minor", cur, amt)
			seen(e.Time, "paying_players", e.Subject)
			dimSeen(e.Time, e.Dims, "paying_players", e.Subject)
			dimAdd(e.Time, e.Dims, "revenue_minor", cur, amt)
			s := spend[e.Subject+"|"+cur]
			spend[e.Subject+"|"+cur] = [2]int64{s[0] + amt.Num().Int64(), s[1] + 1}
		case events.TypeAd:
			add(e.Time, "ad_events", e.Text("action")+"/"+e.Text("ad_type"), one)
			if v := number(e, "revenue_micros"); v.Sign() > 0 {
				add(e.Time, "ad_revenue_micros", e.Text("ad_type"), v)
			}
		case events.TypeError:
			add(e.Time, "errors", e.Text("severity"), one)
		case events.TypeProgression:
			add(e.Time, "progression_"+e.Text("status"), e.Text("level"), one)
		case events.TypeResource:
			add(e.Time, "resource_"+e.Text("flow"), e.Text("currency"), number(e, "amount"))
			k := "daily|" + r.Day(e.Time).Format(time.DateOnly) + "|economy_" + e.Text("flow") + "|" + e.Text("currency") + "\x1f" + e.Text("item_type") + "\x1f" + e.Text("item_id")
			if sums[k] == nil {
				sums[k] = new(big.Rat)
			}
			sums[k].Add(sums[k], number(e, "amount"))
		case events.TypeDesign:
			add(e.Time, "design_events", e.Text("event"), one)
			if _, ok := e.Data["value"]; ok {
				add(e.Time, "design_value_sum", e.Text("event"), number(e, "value"))
			}
		}
	}
	for k, set := range players {
		sums[k] = big.NewRat(int64(len(set)), 1)
	}
	for k, s := range r.Sessions {
		begin, length := s.Begin(), s.Length()
		add(begin, "sessions", "", one)
		dimAdd(begin, s.Dims, "sessions", "", one)
		add(begin, "session_length_sum_s", "", length)
		add(begin, "session_length_count", "", one)
		strs["session|"+k.Subject+"|"+k.Session] = fmt.Sprintf("%s %s %s %s %v", begin.Format(time.RFC3339Nano), length.RatString(),
			r.Day(begin).Format(time.DateOnly), s.Platform, s.Ended)
	}
	cohorts := map[string]int{} // players of each install day active on each day
	for subject, p := range r.Players {
		install := r.Day(p.First).Format(time.DateOnly)
		for d := range p.Days {
			cohorts["cohort|"+install+"|"+d.Format(time.DateOnly)]++
		}
		add(p.First, "new_players", "", one)
		dimAdd(p.First, p.Dims, "new_players", "", one)
		for cur, days := range p.Revenue {
			for d, amt := range days {
				k := "ltv|" + install + "|" + d.Format(time.DateOnly) + "|" + cur
				if sums[k] == nil {
					sums[k] = new(big.Rat)
				}
				sums[k].Add(sums[k], big.NewRat(amt, 1))
			}
		}
		fp := ""
		if !p.FirstPurchase.IsZero() {
			add(p.FirstPurchase, "first_time_payers", "", one)
			fp = p.FirstPurchase.Format(time.RFC3339Nano)
		}
		strs["player|"+subject] = fmt.Sprintf("%s %s %s %s %d", p.First.Format(time.RFC3339Nano), p.Last.Format(time.RFC3339Nano),
			install, fp, p.Sessions)
	}
	for k, n := range cohorts {
		strs[k] = strconv.Itoa(n)
	}
	for m, n := range r.OnlineMinutes() {
		if n > 0 {
			strs["online|"+m.UTC().Format(time.RFC3339)] = strconv.Itoa(n)
		}
	}
	for k, s := range spend {
		strs["spend|"+k] = fmt.Sprintf("%d %d", s[0], s[1])
	}
	for k, h := range hourTuples {
		strs[k] = fmt.Sprintf("%d %v", int64(h.minutes), h.paid)
	}
	for k, v := range sums {
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
		FROM rollup_hourly WHERE gameid = $1 AND value <> 0
		UNION ALL
		SELECT 'minutely|' || to_char(minute AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || '|' || metric || '|' || dim, value::text
		FROM rollup_minutely WHERE gameid = $1 AND value <> 0 AND metric <> 'online'
		UNION ALL
		SELECT 'dim|' || to_char(day, 'YYYY-MM-DD') || '|' || metric || '|' || dim || '|' || dname || '=' || dvalue, value::text
		FROM rollup_dim_daily WHERE gameid = $1 AND value <> 0
		  AND metric IN ('active_players', 'paying_players', 'new_players', 'sessions', 'revenue_minor', 'events')
		UNION ALL
		SELECT 'dimh|' || to_char(r.hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || '|' || r.metric || '|' || r.dim || '|' || n.name || '=' || n.val,
		  sum(r.value)::text
		FROM rollup_tuple_hourly r JOIN dim_tuples t ON t.gameid = r.gameid AND t.tuple = r.tuple
		CROSS JOIN LATERAL (VALUES ('platform', t.platform), ('country', t.country), ('appversion', t.appversion),
		  ('dim1', t.dim1), ('dim2', t.dim2), ('dim3', t.dim3)) AS n(name, val)
		WHERE r.gameid = $1 AND r.metric IN ('new_players', 'sessions', 'revenue_minor', 'events')
		GROUP BY 1 HAVING sum(r.value) <> 0
		UNION ALL
		SELECT 'dimh|' || to_char(h.hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || '|' || m.metric || '||' || n.name || '=' || n.val,
		  count(DISTINCT h.subject) FILTER (WHERE m.metric = 'active_players' OR h.paid)::text
		FROM player_hour_tuples h JOIN dim_tuples t ON t.gameid = h.gameid AND t.tuple = h.tuple
		CROSS JOIN LATERAL (VALUES ('platform', t.platform), ('country', t.country), ('appversion', t.appversion),
		  ('dim1', t.dim1), ('dim2', t.dim2), ('dim3', t.dim3)) AS n(name, val)
		CROSS JOIN (VALUES ('active_players'), ('paying_players')) AS m(metric)
		WHERE h.gameid = $1
		GROUP BY 1 HAVING count(DISTINCT h.subject) FILTER (WHERE m.metric = 'active_players' OR h.paid) <> 0
		UNION ALL
		SELECT 'ltv|' || to_char(install_day, 'YYYY-MM-DD') || '|' || to_char(day, 'YYYY-MM-DD') || '|' || currency, amount_minor::text
		FROM cohort_revenue WHERE gameid = $1 AND amount_minor <> 0
		UNION ALL
		SELECT 'online|' || to_char(minute AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), value::text
		FROM rollup_minutely WHERE gameid = $1 AND value <> 0 AND metric = 'online'`,
		func(v string) string { return ratOf(t, v).RatString() })
	readKeyValues(`SELECT 'cohort|' || to_char(install_day, 'YYYY-MM-DD') || '|' || to_char(day, 'YYYY-MM-DD'), players::text
		FROM cohort_days WHERE gameid = $1 AND players <> 0`, func(v string) string { return v })
	readKeyValues(`SELECT 'pht|' || to_char(h.hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || '|' || h.subject || '|'
		  || concat_ws('/', t.platform, t.country, t.appversion, t.dim1, t.dim2, t.dim3), h.minutes || ' ' || h.paid
		FROM player_hour_tuples h JOIN dim_tuples t ON t.gameid = h.gameid AND t.tuple = h.tuple WHERE h.gameid = $1`,
		func(v string) string { return v })
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
	r := simtest.Recount(t, evs, game.Location(), time.Now())
	want := truth(t, r)
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
	if u := len(r.Events); stored != u {
		t.Errorf("raw events stored = %d, want %d distinct", stored, u)
	}
}

func httpServer(t testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
