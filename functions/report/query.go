package report

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// Intervals of a metric series.
const (
	Hour  = "hour"
	Day   = "day"
	Week  = "week"
	Month = "month"
)

// Metrics lists every metric the API serves, in documentation order.
func Metrics() []string {
	return []string{"events", "dau", "new_players", "sessions", "session_length_avg", "playtime_per_dau",
		"revenue", "transactions", "paying_players", "first_time_payers", "arpdau", "arppu", "conversion",
		"ad_impressions", "ad_revenue_micros", "errors"}
}

// period is one point of a series: whole days [from, to] of the game's
// calendar (dates as midnight UTC, how PostgreSQL dates travel), or for the
// hour interval the UTC hour starting at hour.
type period struct {
	t        string
	from, to time.Time
	hour     time.Time
}

// periods splits the dates [from, to] (inclusive, the game's calendar) into
// the points of interval. Weeks start on Monday (ISO 8601) and months on the
// 1st; a partial week or month at either end counts only its days inside
// the range, and its t is its first day inside the range. Hours are the UTC
// hours (the hourly rollups' buckets) that start inside the range in loc;
// their t is RFC 3339 in the game's offset.
func periods(interval string, from, to time.Time, loc *time.Location) []period {
	var ps []period
	switch interval {
	case Hour:
		start := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, loc)
		end := time.Date(to.Year(), to.Month(), to.Day()+1, 0, 0, 0, 0, loc)
		h := start.UTC().Truncate(time.Hour)
		if h.Before(start) {
			h = h.Add(time.Hour)
		}
		for ; h.Before(end); h = h.Add(time.Hour) {
			ps = append(ps, period{t: h.In(loc).Format(time.RFC3339), hour: h, from: localDay(h, loc), to: localDay(h, loc)})
		}
		return ps
	}
	for d := from; !d.After(to); {
		var next time.Time
		switch interval {
		case Week:
			next = d.AddDate(0, 0, 7-(int(d.Weekday())+6)%7)
		case Month:
			next = time.Date(d.Year(), d.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		default:
			next = d.AddDate(0, 0, 1)
		}
		end := next.AddDate(0, 0, -1)
		if end.After(to) {
			end = to
		}
		ps = append(ps, period{t: d.Format(time.DateOnly), from: d, to: end})
		d = next
	}
	return ps
}

// localDay is t's calendar day in loc as midnight UTC.
func localDay(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// seriesQuery is a validated metrics request.
type seriesQuery struct {
	game     string
	loc      *time.Location
	metric   string
	interval string
	from, to time.Time
	currency string // revenue metrics: the currency (resolved)
	severity string // errors: optional severity
	ps       []period
}

// dimFilter selects rollup rows by dimension: every row, exactly one
// dimension, or dimensions with a prefix.
type dimFilter struct {
	exact, prefix *string
}

func anyDim() dimFilter            { return dimFilter{} }
func exactDim(s string) dimFilter  { return dimFilter{exact: &s} }
func prefixDim(s string) dimFilter { return dimFilter{prefix: &s} }
func optionalDim(s string) dimFilter {
	if s == "" {
		return anyDim()
	}
	return exactDim(s)
}

// series answers a metrics request: one value per period and whether any
// value is a HyperLogLog estimate.
func (r *Report) series(ctx context.Context, q *seriesQuery) ([]float64, bool, error) {
	var (
		approx bool
		out    []float64
		err    error
	)
	sums := func(metric string, f dimFilter) []float64 {
		if err != nil {
			return nil
		}
		var v []float64
		v, err = r.sums(ctx, q, metric, f)
		return v
	}
	active := func() []float64 {
		if err != nil {
			return nil
		}
		var (
			v []float64
			a bool
		)
		v, a, err = r.distinctPlayers(ctx, q, false)
		approx = approx || a
		return v
	}
	paying := func() []float64 {
		if err != nil {
			return nil
		}
		var v []float64
		v, _, err = r.distinctPlayers(ctx, q, true)
		return v
	}
	switch q.metric {
	case "events":
		out = sums("events", anyDim())
	case "dau":
		out = active()
	case "new_players":
		out = sums("new_players", anyDim())
	case "sessions":
		out = sums("sessions", anyDim())
	case "session_length_avg":
		var s, n []float64
		s, n, err = r.endedSessions(ctx, q)
		out = ratio(s, n, 2)
	case "playtime_per_dau":
		out = ratio(sums("session_length_sum_s", anyDim()), active(), 2)
	case "revenue":
		out = sums("revenue_minor", exactDim(q.currency))
	case "transactions":
		out = sums("purchases", optionalDim(q.currency))
	case "paying_players":
		out = paying()
	case "first_time_payers":
		out = sums("first_time_payers", anyDim())
	case "arpdau":
		out = ratio(sums("revenue_minor", exactDim(q.currency)), active(), 2)
	case "arppu":
		out = ratio(sums("revenue_minor", exactDim(q.currency)), paying(), 2)
	case "conversion":
		out = ratio(paying(), active(), 4)
	case "ad_impressions":
		out = sums("ad_events", prefixDim("show/"))
	case "ad_revenue_micros":
		out = sums("ad_revenue_micros", anyDim())
	case "errors":
		out = sums("errors", optionalDim(q.severity))
	default:
		return nil, false, fmt.Errorf("unknown metric %q", q.metric)
	}
	if err != nil {
		return nil, false, err
	}
	return out, approx, nil
}

// ratio divides a by b point by point, rounded to places decimals; a zero
// denominator gives 0.
func ratio(a, b []float64, places int) []float64 {
	if a == nil || b == nil {
		return nil
	}
	out := make([]float64, len(a))
	for i := range a {
		if b[i] != 0 {
			out[i] = round(a[i]/b[i], places)
		}
	}
	return out
}

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

// dayIndex maps each day of q's periods to its period.
func (q *seriesQuery) dayIndex() map[time.Time]int {
	m := make(map[time.Time]int)
	for i, p := range q.ps {
		for d := p.from; !d.After(p.to); d = d.AddDate(0, 0, 1) {
			m[d] = i
		}
	}
	return m
}

// hourRange is the UTC range covered by the periods of an hour query.
func (q *seriesQuery) hourRange() (time.Time, time.Time) {
	if len(q.ps) == 0 {
		return time.Time{}, time.Time{}
	}
	return q.ps[0].hour, q.ps[len(q.ps)-1].hour.Add(time.Hour)
}

const (
	sumDaily = `SELECT day, sum(value)::float8 FROM rollup_daily
WHERE gameid = $1 AND day BETWEEN $2 AND $3 AND metric = $4
  AND ($5::text IS NULL OR dim = $5) AND ($6::text IS NULL OR dim LIKE $6 || '%')
GROUP BY day`
	sumHourly = `SELECT hour, sum(value)::float8 FROM rollup_hourly
WHERE gameid = $1 AND hour >= $2 AND hour < $3 AND metric = $4
  AND ($5::text IS NULL OR dim = $5) AND ($6::text IS NULL OR dim LIKE $6 || '%')
GROUP BY hour`
)

// sums adds a rollup metric up per period.
func (r *Report) sums(ctx context.Context, q *seriesQuery, metric string, f dimFilter) ([]float64, error) {
	out := make([]float64, len(q.ps))
	if len(q.ps) == 0 {
		return out, nil
	}
	if q.interval == Hour {
		start, end := q.hourRange()
		rows, err := r.pool.Query(ctx, sumHourly, q.game, start, end, metric, f.exact, f.prefix)
		if err != nil {
			return nil, err
		}
		var (
			h time.Time
			v float64
		)
		_, err = pgx.ForEachRow(rows, []any{&h, &v}, func() error {
			i := int(h.Sub(start) / time.Hour)
			if i >= 0 && i < len(out) {
				out[i] += v
			}
			return nil
		})
		return out, err
	}
	idx := q.dayIndex()
	rows, err := r.pool.Query(ctx, sumDaily, q.game, q.from, q.to, metric, f.exact, f.prefix)
	if err != nil {
		return nil, err
	}
	var (
		d time.Time
		v float64
	)
	_, err = pgx.ForEachRow(rows, []any{&d, &v}, func() error {
		if i, ok := idx[d]; ok {
			out[i] += v
		}
		return nil
	})
	return out, err
}

const (
	distinctExact = `SELECT p.i::int, count(DISTINCT d.subject)::float8
FROM unnest($2::date[], $3::date[]) WITH ORDINALITY AS p(s, e, i)
JOIN player_days d ON d.gameid = $1 AND d.day BETWEEN p.s AND p.e AND (NOT $4 OR d.paid)
GROUP BY p.i`
	distinctHLL = `SELECT p.i::int, coalesce(round(hll_cardinality(hll_union_agg(h.players))), 0)::float8
FROM unnest($2::date[], $3::date[]) WITH ORDINALITY AS p(s, e, i)
JOIN players_hll_daily h ON h.gameid = $1 AND h.day BETWEEN p.s AND p.e
GROUP BY p.i`
)

// distinctPlayers counts the players active (or, with paid, paying) in each
// period. Days and hours come from the exact rollups; weeks and months are
// distinct counts over the period: exact from player_days when the range is
// small enough (Config.ExactDistinctLimit) or for paying players, else from
// the HyperLogLog sketches (the second result is then true).
func (r *Report) distinctPlayers(ctx context.Context, q *seriesQuery, paid bool) ([]float64, bool, error) {
	metric := "active_players"
	if paid {
		metric = "paying_players"
	}
	if q.interval == Day || q.interval == Hour {
		v, err := r.sums(ctx, q, metric, anyDim())
		return v, false, err
	}
	starts, ends := make([]time.Time, len(q.ps)), make([]time.Time, len(q.ps))
	for i, p := range q.ps {
		starts[i], ends[i] = p.from, p.to
	}
	sql, approx := distinctExact, false
	if !paid {
		var total int64
		if err := r.pool.QueryRow(ctx, `SELECT coalesce(sum(value), 0)::bigint FROM rollup_daily
			WHERE gameid = $1 AND day BETWEEN $2 AND $3 AND metric = 'active_players' AND dim = ''`,
			q.game, q.from, q.to).Scan(&total); err != nil {
			return nil, false, err
		}
		if total > r.cfg.ExactDistinctLimit {
			sql, approx = distinctHLL, true
		}
	}
	out := make([]float64, len(q.ps))
	args := []any{q.game, starts, ends, paid}
	if approx {
		args = args[:3]
	}
	rows, err := r.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, err
	}
	var (
		i int
		v float64
	)
	_, err = pgx.ForEachRow(rows, []any{&i, &v}, func() error {
		if i >= 1 && i <= len(out) {
			out[i-1] = v
		}
		return nil
	})
	return out, approx, err
}

// endedSessions returns, per period, the total length and the number of
// the sessions that began in it and are over (a session.end arrived, or
// events.SessionTimeout passed without events: events.SessionClosed).
func (r *Report) endedSessions(ctx context.Context, q *seriesQuery) ([]float64, []float64, error) {
	sum, n := make([]float64, len(q.ps)), make([]float64, len(q.ps))
	if len(q.ps) == 0 {
		return sum, n, nil
	}
	cutoff := events.SessionCutoff(r.now())
	var (
		rows pgx.Rows
		err  error
	)
	if q.interval == Hour {
		start, end := q.hourRange()
		rows, err = r.pool.Query(ctx, `SELECT hour, sum(length_s)::float8, count(*)::float8 FROM sessions
			WHERE gameid = $1 AND day BETWEEN $2 AND $3 AND hour >= $4 AND hour < $5
			  AND (end_at IS NOT NULL OR last_at <= $6) GROUP BY hour`,
			q.game, q.from.AddDate(0, 0, -1), q.to.AddDate(0, 0, 1), start, end, cutoff)
		if err != nil {
			return nil, nil, err
		}
		var (
			h    time.Time
			s, c float64
		)
		_, err = pgx.ForEachRow(rows, []any{&h, &s, &c}, func() error {
			if i := int(h.Sub(start) / time.Hour); i >= 0 && i < len(sum) {
				sum[i] += s
				n[i] += c
			}
			return nil
		})
		return sum, n, err
	}
	idx := q.dayIndex()
	rows, err = r.pool.Query(ctx, `SELECT day, sum(length_s)::float8, count(*)::float8 FROM sessions
		WHERE gameid = $1 AND day BETWEEN $2 AND $3 AND (end_at IS NOT NULL OR last_at <= $4) GROUP BY day`,
		q.game, q.from, q.to, cutoff)
	if err != nil {
		return nil, nil, err
	}
	var (
		d    time.Time
		s, c float64
	)
	_, err = pgx.ForEachRow(rows, []any{&d, &s, &c}, func() error {
		if i, ok := idx[d]; ok {
			sum[i] += s
			n[i] += c
		}
		return nil
	})
	return sum, n, err
}

// currencies lists the currencies the game has revenue in, sorted.
func (r *Report) currencies(ctx context.Context, game string) ([]string, error) {
	rows, err := r.pool.Query(ctx, `SELECT DISTINCT dim FROM rollup_daily
		WHERE gameid = $1 AND metric = 'revenue_minor' AND value <> 0 ORDER BY dim`, game)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Cohort is one install day's retention.
type Cohort struct {
	Cohort   string            `json:"cohort"`
	Size     int64             `json:"size"`
	Retained map[string]*int64 `json:"retained"`
}

// retention returns the cohorts installed on the days [from, to]: their
// size and, for each n in days, how many of them had any event on calendar
// day cohort+n (nil while that day is still in the future; today counts
// what has arrived so far). process keeps these counts in cohort_days, so
// the answer reads at most one row per cell whatever the game's size.
func (r *Report) retention(ctx context.Context, game string, loc *time.Location, from, to time.Time, days []int) ([]Cohort, error) {
	today := localDay(r.now(), loc)
	var cohorts []Cohort
	index := map[time.Time]int{}
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		c := Cohort{Cohort: d.Format(time.DateOnly), Retained: map[string]*int64{}}
		for _, n := range days {
			if !d.AddDate(0, 0, n).After(today) {
				c.Retained[strconv.Itoa(n)] = new(int64)
			} else {
				c.Retained[strconv.Itoa(n)] = nil
			}
		}
		index[d] = len(cohorts)
		cohorts = append(cohorts, c)
	}
	// Offset 0 is the cohort's size; the others are the cells asked for.
	offsets := []int32{0}
	for _, n := range days {
		offsets = append(offsets, int32(n))
	}
	rows, err := r.pool.Query(ctx, `SELECT install_day, (day - install_day)::int, players FROM cohort_days
		WHERE gameid = $1 AND install_day BETWEEN $2 AND $3 AND day <= $4
		  AND (day - install_day) = ANY($5::int[])`, game, from, to, today, offsets)
	if err != nil {
		return nil, err
	}
	var (
		d   time.Time
		n   int32
		cnt int64
	)
	_, err = pgx.ForEachRow(rows, []any{&d, &n, &cnt}, func() error {
		i, ok := index[d]
		if !ok {
			return nil
		}
		if n == 0 {
			cohorts[i].Size = cnt
		}
		if p := cohorts[i].Retained[strconv.Itoa(int(n))]; p != nil {
			*p = cnt
		}
		return nil
	})
	return cohorts, err
}

// Level is one progression level's funnel.
type Level struct {
	Level     string  `json:"level"`
	Starts    int64   `json:"starts"`
	Completes int64   `json:"completes"`
	Fails     int64   `json:"fails"`
	FailRate  float64 `json:"fail_rate"`
	// AvgAttempts is the average `attempt` of the level's complete events
	// that carry one (raw events still in PostgreSQL); nil when none do.
	AvgAttempts *float64 `json:"avg_attempts_on_complete"`
}

// progression returns every level with progression events on the days
// [from, to], sorted by level. fail_rate = fails / (completes + fails).
func (r *Report) progression(ctx context.Context, game string, loc *time.Location, from, to time.Time) ([]Level, error) {
	rows, err := r.pool.Query(ctx, `SELECT dim, metric, sum(value)::bigint FROM rollup_daily
		WHERE gameid = $1 AND day BETWEEN $2 AND $3
		  AND metric IN ('progression_start', 'progression_complete', 'progression_fail')
		GROUP BY dim, metric`, game, from, to)
	if err != nil {
		return nil, err
	}
	levels := map[string]*Level{}
	get := func(name string) *Level {
		l := levels[name]
		if l == nil {
			l = &Level{Level: name}
			levels[name] = l
		}
		return l
	}
	var (
		dim, metric string
		v           int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&dim, &metric, &v}, func() error {
		l := get(dim)
		switch metric {
		case "progression_start":
			l.Starts += v
		case "progression_complete":
			l.Completes += v
		case "progression_fail":
			l.Fails += v
		}
		return nil
	}); err != nil {
		return nil, err
	}
	start := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, loc)
	end := time.Date(to.Year(), to.Month(), to.Day()+1, 0, 0, 0, 0, loc)
	rows, err = r.pool.Query(ctx, `SELECT data->>'level', avg((data->>'attempt')::numeric)::float8
		FROM events
		WHERE gameid = $1 AND day BETWEEN $2 AND $3 AND time >= $4 AND time < $5
		  AND type = 'com.gamemetrics.progression' AND data->>'status' = 'complete' AND data ? 'attempt'
		GROUP BY 1`, game, start.UTC().Truncate(24*time.Hour), end.UTC().Truncate(24*time.Hour), start, end)
	if err != nil {
		return nil, err
	}
	var (
		level pgtype.Text
		avg   pgtype.Float8
	)
	if _, err := pgx.ForEachRow(rows, []any{&level, &avg}, func() error {
		if level.Valid && avg.Valid {
			a := round(avg.Float64, 2)
			get(level.String).AvgAttempts = &a
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]Level, 0, len(levels))
	for _, l := range levels {
		if l.Completes+l.Fails > 0 {
			l.FailRate = round(float64(l.Fails)/float64(l.Completes+l.Fails), 4)
		}
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Level < out[j].Level })
	return out, nil
}
