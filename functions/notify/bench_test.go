package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// benchRules makes games×perGame alert rules of a realistic mix (windows
// 1m to 1d; thresholds, changes and anomalies; metrics with filters) on
// games with 5 weeks of hourly and daily rollups and 2 days of minute
// rollups, written straight into the rollup tables, and one webhook
// destination per game. About 1 rule in 50 fires on the next tick.
func benchRules(b *testing.B, games, perGame int, hook string) (*pgxpool.Pool, []string) {
	b.Helper()
	c := devstacktest.Connect(b, stack)
	ctx := context.Background()
	now := time.Now().UTC()
	var ids []string
	r := rand.New(rand.NewPCG(7, 7))
	for g := range games {
		game, _, err := store.NewGames(c.Pool).Create(ctx, fmt.Sprint("bench ", g), []string{"UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata"}[g%4])
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, game.ID)
		for _, sql := range []string{
			`INSERT INTO rollup_minutely (gameid, minute, metric, dim, value)
SELECT $1, m, x.metric, x.dim, (x.base * (1.2 + sin(extract(epoch FROM m) / 13751)) + random() * 5)::int
FROM generate_series(date_trunc('minute', $2::timestamptz) - interval '2 days', date_trunc('minute', $2::timestamptz), interval '1 minute') AS m,
     (VALUES ('events', 'com.gamemetrics.heartbeat', 200), ('errors', 'error', 3), ('errors', 'critical', 1), ('purchases', 'USD', 2), ('revenue_minor', 'USD', 900)) AS x(metric, dim, base)`,
			`INSERT INTO rollup_hourly (gameid, hour, metric, dim, value)
SELECT $1, h, x.metric, x.dim, (x.base * 60 * (1.2 + sin(extract(epoch FROM h) / 13751)) + random() * 50)::int
FROM generate_series(date_trunc('hour', $2::timestamptz) - interval '35 days', date_trunc('hour', $2::timestamptz), interval '1 hour') AS h,
     (VALUES ('events', 'com.gamemetrics.heartbeat', 200), ('errors', 'error', 3), ('purchases', 'USD', 2), ('revenue_minor', 'USD', 900), ('active_players', '', 40)) AS x(metric, dim, base)`,
			`INSERT INTO rollup_daily (gameid, day, metric, dim, value)
SELECT $1, d::date, x.metric, x.dim, (x.base * 1440 + random() * 500)::int
FROM generate_series($2::timestamptz - interval '35 days', $2::timestamptz, interval '1 day') AS d,
     (VALUES ('events', 'com.gamemetrics.heartbeat', 200), ('errors', 'error', 3), ('purchases', 'USD', 2), ('revenue_minor', 'USD', 900), ('active_players', '', 40)) AS x(metric, dim, base)`,
		} {
			if _, err := c.Pool.Exec(ctx, sql, game.ID, now); err != nil {
				b.Fatal(err)
			}
		}
		dst := newID("dst_")
		if _, err := c.Pool.Exec(ctx, `INSERT INTO notify_destinations (id, gameid, name, kind, target, secret) VALUES ($1, $2, 'bench', 'webhook', $3, $4)`,
			dst, game.ID, hook, newSigningSecret()); err != nil {
			b.Fatal(err)
		}
		var (
			aid, gid, names []string
			specs           []string
			dests           [][]string
		)
		for i := range perGame {
			s := benchSpec(r, i, dst)
			if p := s.normalize(); len(p) > 0 {
				b.Fatalf("bench rule %+v: %v", s, p)
			}
			body, _ := json.Marshal(s)
			aid, gid, names, specs, dests = append(aid, newID("alr_")), append(gid, game.ID), append(names, s.Name), append(specs, string(body)), append(dests, s.Destinations)
		}
		if _, err := c.Pool.Exec(ctx, `INSERT INTO notify_alerts (id, gameid, name, spec, destinations, evaluated_until, next_eval_at)
			SELECT x.id, x.g, x.n, x.s::jsonb, ARRAY[x.d], $6, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS x(id, g, n, s, d)`,
			aid, gid, names, specs, firstOf(dests), now); err != nil {
			b.Fatal(err)
		}
	}
	return c.Pool, ids
}

func firstOf(ds [][]string) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d[0]
	}
	return out
}

func benchSpec(r *rand.Rand, i int, dst string) AlertSpec {
	windows := []string{"1m", "1m", "1m", "1m", "5m", "5m", "5m", "15m", "15m", "1h", "1h", "1d"}
	s := AlertSpec{Name: fmt.Sprint("rule ", i), Window: windows[r.IntN(len(windows))], Destinations: []string{dst}}
	switch r.IntN(4) {
	case 0:
		s.Metric = "events"
	case 1:
		s.Metric, s.Severity = "errors", []string{"", "error", "critical"}[r.IntN(3)]
	case 2:
		s.Metric, s.Currency = "revenue", "USD"
	default:
		s.Metric = "transactions"
	}
	if s.Window == "1h" || s.Window == "1d" {
		if r.IntN(3) == 0 {
			s.Metric = "dau"
			s.Severity, s.Currency = "", ""
		}
	}
	switch k := r.IntN(10); {
	case k < 5:
		v := 1e9
		if r.IntN(50) == 0 {
			v = -1 // fires
		}
		s.Condition = Condition{Type: "above", Value: &v}
	case k < 8:
		against := againstPrevious
		if r.IntN(2) == 0 {
			against = map[bool]string{true: againstDayLastWeek, false: againstHourLastWeek}[s.Window == "1d"]
		}
		s.Condition = Condition{Type: "change", Against: against, Below: f(-99)}
	default:
		s.Condition = Condition{Type: "anomaly", Sensitivity: 6}
		if s.Window != "1h" && s.Window != "1d" {
			// The seeded minute rollups span 2 days, not the 4 weeks a
			// minute window's weekly baseline reads in production.
			s.Window = "1h"
		}
	}
	if s.Condition.Type == "change" && s.Metric != "events" && s.Metric != "dau" {
		s.Metric, s.Currency, s.Severity = "events", "", "" // low counts change by -100% when they hit 0
	}
	if r.IntN(4) == 0 {
		s.MinVolume = 10
	}
	return s
}

// resetRules makes every rule due again for exactly the window it just
// evaluated.
func resetRules(b *testing.B, pool *pgxpool.Pool, games []string, at time.Time) {
	b.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `DELETE FROM notify_notifications WHERE gameid = ANY($1)`, games); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE notify_alerts a SET state = 'ok', breaches = 0, clears = 0, fired_at = NULL, notified_at = NULL,
		evaluated_until = CASE spec->>'window' WHEN '1m' THEN date_trunc('minute', $2::timestamptz) - interval '1 minute'
			WHEN '5m' THEN date_bin('5 minutes', $2::timestamptz, 'epoch') - interval '5 minutes'
			WHEN '15m' THEN date_bin('15 minutes', $2::timestamptz, 'epoch') - interval '15 minutes'
			WHEN '1h' THEN date_trunc('hour', $2::timestamptz) - interval '1 hour'
			ELSE (date_trunc('day', $2::timestamptz AT TIME ZONE g.timezone) - interval '1 day') AT TIME ZONE g.timezone END,
		next_eval_at = $2 - interval '1 second' FROM games g WHERE g.id = a.gameid AND a.gameid = ANY($1)`, games, at); err != nil {
		b.Fatal(err)
	}
}

// benchSetup is the seeded games, made once for every run of the benchmark
// (the testing package calls it again with a larger b.N).
var benchSetup struct {
	pool  *pgxpool.Pool
	games []string
}

// 10,000 rules across 100 games evaluated on one tick, then what fired
// sent: the time from the tick to every rule evaluated and its
// notifications written (target: 5 s), and from the tick to each first
// delivery attempt at a local receiver (target p95: 10 s).
//
//	go test -run '^$' -bench Tick -benchtime 3x ./functions/notify/
func BenchmarkTickOf10000RulesAcross100Games(b *testing.B) {
	var (
		mu    sync.Mutex
		first = map[string]time.Time{}
	)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if id := r.Header.Get("webhook-id"); first[id].IsZero() {
			first[id] = time.Now()
		}
		mu.Unlock()
	}))
	defer rcv.Close()
	if benchSetup.games == nil {
		setup := time.Now()
		benchSetup.pool, benchSetup.games = benchRules(b, 100, 100, rcv.URL)
		b.Logf("seeded 100 games, 10,000 rules in %s", time.Since(setup).Round(time.Second))
	}
	pool, games := benchSetup.pool, benchSetup.games
	if _, err := pool.Exec(context.Background(), `UPDATE notify_destinations SET target = $2 WHERE gameid = ANY($1)`, games, rcv.URL); err != nil {
		b.Fatal(err)
	}
	cfg := testConfig()
	cfg.EvaluationDelay = 0
	cfg.DispatchBudget = time.Minute
	var (
		evals, lat []float64
		windows    int
	)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		at := time.Now().UTC()
		resetRules(b, pool, games, at)
		mu.Lock()
		clear(first)
		mu.Unlock()
		n := New(cfg, pool, testLogger(), prometheus.NewRegistry(), time.Now)
		b.StartTimer()
		tick := time.Now()
		st, err := n.Evaluate(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		evals = append(evals, time.Since(tick).Seconds())
		if err := n.DispatchDue(context.Background()); err != nil {
			b.Fatal(err)
		}
		// The dispatcher woken by the tick may still be sending its share.
		for pending := 1; pending > 0; time.Sleep(10 * time.Millisecond) {
			if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM notify_deliveries WHERE gameid = ANY($1) AND state = 'pending'`, games).Scan(&pending); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		n.Stop(context.Background())
		if st.Rules != 10_000 {
			b.Fatalf("evaluated %d rules, want 10000", st.Rules)
		}
		windows += st.Windows
		mu.Lock()
		for _, t := range first {
			lat = append(lat, t.Sub(tick).Seconds())
		}
		got := len(first)
		mu.Unlock()
		if got != st.Notifications {
			b.Fatalf("%d notifications, %d reached the receiver", st.Notifications, got)
		}
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(evals)
	slices.Sort(lat)
	p95 := 0.0
	if len(lat) > 0 {
		p95 = lat[int(0.95*float64(len(lat)-1))]
	}
	b.ReportMetric(evals[len(evals)/2], "s/evaluation")
	b.ReportMetric(p95, "s-p95-first-attempt")
	b.ReportMetric(float64(windows)/float64(b.N), "windows/tick")
	b.ReportMetric(float64(len(lat))/float64(b.N), "notifications/tick")
	b.Logf("10,000 rules: evaluation median %.2fs (max %.2fs) for %d windows per tick; tick to first attempt p95 %.2fs over %d notifications",
		evals[len(evals)/2], evals[len(evals)-1], windows/b.N, p95, len(lat))
}
