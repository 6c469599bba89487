package metrics

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// DefaultExactDistinctLimit is the ExactDistinctLimit of New.
const DefaultExactDistinctLimit = 200_000

// Queries runs the metric queries of one PostgreSQL pool (the one process
// writes to, migrated). It is safe for concurrent use. Build it with New.
type Queries struct {
	pool               *pgxpool.Pool
	now                func() time.Time
	exactDistinctLimit int64
}

// Option tunes New.
type Option func(*Queries)

// WithExactDistinctLimit decides how distinct players over a week or month
// are counted: exactly from player_days while the sum of the daily counts
// of the requested range is at most n, else from the daily HyperLogLog
// sketches (relative standard error about 2.3%), which answer in constant
// time per day whatever the game's size. 0 always uses the sketches.
func WithExactDistinctLimit(n int64) Option { return func(q *Queries) { q.exactDistinctLimit = n } }

// New returns the queries of pool. now is the clock (time.Now outside
// tests): it decides which sessions are over and which retention days are
// still in the future.
func New(pool *pgxpool.Pool, now func() time.Time, opts ...Option) *Queries {
	if now == nil {
		now = time.Now
	}
	q := &Queries{pool: pool, now: now, exactDistinctLimit: DefaultExactDistinctLimit}
	for _, o := range opts {
		o(q)
	}
	return q
}

// SeriesQuery asks for one metric of one game as one point per period of
// Interval over the days [From, To]. From and To are days of the game's
// calendar: only their date counts (year, month and day as written in their
// own location), so midnight UTC from time.Parse(time.DateOnly, ...) and
// time.Date(y, m, d, 0, 0, 0, 0, game.Location()) mean the same day.
type SeriesQuery struct {
	Game     store.Game
	Metric   string
	Interval Interval
	From, To time.Time
	// Currency is the currency of revenue, arpdau and arppu (by default the
	// game's only one; a game with revenue in several must name one) and an
	// optional filter of transactions. Other metrics refuse it.
	Currency string
	// Severity optionally filters the errors metric; others refuse it.
	Severity string
	// Minutes is the width of each point of a Minute series: 1 (also 0),
	// 5 or 15, windows aligned to multiples of it in UTC.
	Minutes int
	// Filter keeps only what carried the given dimension values.
	Filter Filter
	// By breaks the series down by one dimension (events.DimensionNames):
	// the answer's Groups, one series per value, instead of Points.
	By string
}

// ValueQuery asks for one metric of one game over one period, such as an
// alert rule's window: PeriodOf(Hour, now, loc) is the current UTC hour,
// PeriodOf(Day, now, loc) the game's today. Currency and Severity are as in
// SeriesQuery.
type ValueQuery struct {
	Game     store.Game
	Metric   string
	Period   Period
	Currency string
	Severity string
}

// Series is a query's answer.
type Series struct {
	// Currency is the currency the revenue metrics were computed in (the
	// query's, or the game's only one); "" for the others.
	Currency string
	Points   []Point
	// Approximate is true when a week or month distinct count came from
	// HyperLogLog sketches.
	Approximate bool
	// Groups is a breakdown's series, one per value (SeriesQuery.By),
	// sorted by total over the range descending, then value; nil without By.
	Groups []Group
}

// Group is one value's series of a breakdown.
type Group struct {
	Value  string
	Points []Point
}

// Point is one period's value.
type Point struct {
	Period
	Value float64
}

// query is a validated request: the periods to answer and how.
type query struct {
	game     string
	metric   string
	interval Interval
	from, to time.Time // the days the periods cover
	currency string
	severity string
	ps       []Period
	dims     Filter // dimension filters
	by       string // dimension of a breakdown, "" for none
	loc      *time.Location
}

// Series answers sq, one point per period of Periods(sq.Interval, ...),
// zeros included. A bad parameter is a *ParamError.
func (q *Queries) Series(ctx context.Context, sq SeriesQuery) (Series, error) {
	if err := sq.Validate(); err != nil {
		return Series{}, err
	}
	currency, err := q.currencyOf(ctx, sq.Game.ID, sq.Metric, sq.Currency)
	if err != nil {
		return Series{}, err
	}
	from, to := civilDay(sq.From), civilDay(sq.To)
	ps := Periods(sq.Interval, from, to, sq.Game.Location())
	if sq.Interval == Minute {
		ps = MinutePeriods(max(sq.Minutes, 1), from, to, sq.Game.Location())
	}
	return q.run(ctx, query{game: sq.Game.ID, metric: sq.Metric, interval: sq.Interval, from: from, to: to,
		currency: currency, severity: sq.Severity, ps: ps, dims: sq.Filter, by: sq.By, loc: sq.Game.Location()})
}

// Value answers vq as a series of its one period: the value equals the
// point of the same period in a Series whose range covers the period whole.
// A bad parameter is a *ParamError.
func (q *Queries) Value(ctx context.Context, vq ValueQuery) (Series, error) {
	if err := vq.Validate(); err != nil {
		return Series{}, err
	}
	currency, err := q.currencyOf(ctx, vq.Game.ID, vq.Metric, vq.Currency)
	if err != nil {
		return Series{}, err
	}
	p := normalPeriod(vq.Period, vq.Game.Location())
	return q.run(ctx, query{game: vq.Game.ID, metric: vq.Metric, interval: p.Interval, from: p.From, to: p.To,
		currency: currency, severity: vq.Severity, ps: []Period{p}})
}

// normalPeriod is p as Periods would make it: its days as midnight UTC,
// its label, and for hours and minutes the days derived from the start.
func normalPeriod(p Period, loc *time.Location) Period {
	switch p.Interval {
	case Hour:
		return hourPeriod(p.Hour.UTC(), loc)
	case Minute:
		return minutePeriod(p.Start.UTC(), p.Minutes, loc)
	}
	p.From, p.To = civilDay(p.From), civilDay(p.To)
	if p.Label == "" {
		p.Label = p.From.Format(time.DateOnly)
	}
	return p
}

// ValuesQuery asks for one metric of one game over many periods of one
// kind (the same interval, and for minutes the same width), in any order
// and not necessarily adjacent: an alert rule's windows with the windows
// it compares them with. Each value equals Value of the same period.
type ValuesQuery struct {
	Game     store.Game
	Metric   string
	Currency string
	Severity string
	Periods  []Period
}

// Values answers vq, one point per period in vq's order. Periods may
// repeat; week and month periods are not accepted (alert windows are
// minutes, hours and days). A bad parameter is a *ParamError.
func (q *Queries) Values(ctx context.Context, vq ValuesQuery) (Series, error) {
	if len(vq.Periods) == 0 {
		return Series{Points: []Point{}}, nil
	}
	first := vq.Periods[0]
	for _, p := range vq.Periods {
		if err := (ValueQuery{Game: vq.Game, Metric: vq.Metric, Period: p, Currency: vq.Currency, Severity: vq.Severity}).Validate(); err != nil {
			return Series{}, err
		}
		if p.Interval != first.Interval || p.Minutes != first.Minutes {
			return Series{}, paramError("period", "all periods of one query are of one kind: %s and %s", first.Interval, p.Interval)
		}
		if p.Interval == Week || p.Interval == Month {
			return Series{}, paramError("period", "Values answers minutes, hours and days, not %s", p.Interval)
		}
	}
	currency, err := q.currencyOf(ctx, vq.Game.ID, vq.Metric, vq.Currency)
	if err != nil {
		return Series{}, err
	}
	loc := vq.Game.Location()
	idx := make(map[Period]int, len(vq.Periods))
	var ps []Period
	at := make([]int, len(vq.Periods))
	for i, p := range vq.Periods {
		p = normalPeriod(p, loc)
		j, ok := idx[p]
		if !ok {
			j = len(ps)
			idx[p] = j
			ps = append(ps, p)
		}
		at[i] = j
	}
	from, to := ps[0].From, ps[0].To
	for _, p := range ps {
		if p.From.Before(from) {
			from = p.From
		}
		if p.To.After(to) {
			to = p.To
		}
	}
	s, err := q.run(ctx, query{game: vq.Game.ID, metric: vq.Metric, interval: first.Interval, from: from, to: to,
		currency: currency, severity: vq.Severity, ps: ps})
	if err != nil {
		return Series{}, err
	}
	out := Series{Currency: s.Currency, Approximate: s.Approximate, Points: make([]Point, len(at))}
	for i, j := range at {
		out.Points[i] = s.Points[j]
	}
	return out, nil
}

// currencyOf resolves the currency of a revenue metric: the one asked for,
// or the game's only one.
func (q *Queries) currencyOf(ctx context.Context, game, metric, currency string) (string, error) {
	if currency != "" || !slices.Contains(RevenueMetrics(), metric) {
		return currency, nil
	}
	cs, err := q.Currencies(ctx, game)
	if err != nil {
		return "", err
	}
	switch len(cs) {
	case 0:
		return "", nil
	case 1:
		return cs[0], nil
	}
	return "", paramError("currency", "game %s has revenue in %s: choose one with currency=", game, strings.Join(cs, ", "))
}

func (q *Queries) run(ctx context.Context, qq query) (Series, error) {
	if qq.loc == nil {
		qq.loc = time.UTC
	}
	groups, approx, err := q.values(ctx, &qq)
	if err != nil {
		return Series{}, err
	}
	points := func(vals []float64) []Point {
		out := make([]Point, len(qq.ps))
		for i, p := range qq.ps {
			out[i] = Point{Period: p}
			if vals != nil {
				out[i].Value = vals[i]
			}
		}
		return out
	}
	s := Series{Currency: qq.currency, Approximate: approx}
	if qq.by == "" {
		s.Points = points(groups[""])
		return s, nil
	}
	s.Groups = []Group{}
	totals := map[string]float64{}
	for v, vals := range groups {
		for _, x := range vals {
			totals[v] += x
		}
		s.Groups = append(s.Groups, Group{Value: v, Points: points(vals)})
	}
	slices.SortFunc(s.Groups, func(a, b Group) int {
		if ta, tb := totals[a.Value], totals[b.Value]; ta != tb {
			if ta > tb {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Value, b.Value)
	})
	return s, nil
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

// values answers a query: per group (the breakdown's values, "" without
// one) one value per period, and whether any value is a HyperLogLog
// estimate.
func (q *Queries) values(ctx context.Context, qq *query) (grouped, bool, error) {
	var (
		approx bool
		out    grouped
		err    error
	)
	sums := func(metric string, f dimFilter) grouped {
		if err != nil {
			return nil
		}
		var v grouped
		v, err = q.sumsG(ctx, qq, metric, f)
		return v
	}
	active := func() grouped {
		if err != nil {
			return nil
		}
		var (
			v grouped
			a bool
		)
		v, a, err = q.distinctG(ctx, qq, false)
		approx = approx || a
		return v
	}
	paying := func() grouped {
		if err != nil {
			return nil
		}
		var v grouped
		v, _, err = q.distinctG(ctx, qq, true)
		return v
	}
	switch qq.metric {
	case "events":
		out = sums("events", anyDim())
	case "dau":
		out = active()
	case "new_players":
		out = sums("new_players", anyDim())
	case "sessions":
		out = sums("sessions", anyDim())
	case "session_length_avg":
		var s, n grouped
		s, n, err = q.endedSessionsG(ctx, qq)
		out = ratioG(s, n, 2)
	case "playtime_per_dau":
		out = ratioG(sums("session_length_sum_s", anyDim()), active(), 2)
	case "revenue":
		out = sums("revenue_minor", exactDim(qq.currency))
	case "transactions":
		out = sums("purchases", optionalDim(qq.currency))
	case "paying_players":
		out = paying()
	case "first_time_payers":
		out = sums("first_time_payers", anyDim())
	case "arpdau":
		out = ratioG(sums("revenue_minor", exactDim(qq.currency)), active(), 2)
	case "arppu":
		out = ratioG(sums("revenue_minor", exactDim(qq.currency)), paying(), 2)
	case "conversion":
		out = ratioG(paying(), active(), 4)
	case "ad_impressions":
		out = sums("ad_events", prefixDim("show/"))
	case "ad_revenue_micros":
		out = sums("ad_revenue_micros", anyDim())
	case "errors":
		out = sums("errors", optionalDim(qq.severity))
	case "ccu_peak":
		out, err = q.ccuPeak(ctx, qq)
	default:
		return nil, false, fmt.Errorf("unknown metric %q", qq.metric)
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

// round rounds x to places decimals.
func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

// dayIndex maps each day of qq's periods to its period.
func (qq *query) dayIndex() map[time.Time]int {
	m := make(map[time.Time]int)
	for i, p := range qq.ps {
		for d := p.From; !d.After(p.To); d = d.AddDate(0, 0, 1) {
			m[d] = i
		}
	}
	return m
}

// spans are the UTC starts and ends of the periods of an hour or minute
// query, for the SQL that joins them (periods need not be adjacent).
func (qq *query) spans() ([]time.Time, []time.Time) {
	starts, ends := make([]time.Time, len(qq.ps)), make([]time.Time, len(qq.ps))
	for i, p := range qq.ps {
		starts[i], ends[i] = p.Begin(time.UTC), p.End(time.UTC)
	}
	return starts, ends
}

const (
	sumDaily = `SELECT day, sum(value)::float8 FROM rollup_daily
WHERE gameid = $1 AND day BETWEEN $2 AND $3 AND metric = $4
  AND ($5::text IS NULL OR dim = $5) AND ($6::text IS NULL OR dim LIKE $6 || '%')
GROUP BY day`
	// sumSpans adds up the rows of each period of an hour or minute query
	// (%[1]s the table, %[2]s its bucket column): one index range per
	// period, so windows weeks apart cost no more than adjacent ones.
	sumSpans = `SELECT p.i::int, sum(r.value)::float8
FROM unnest($2::timestamptz[], $3::timestamptz[]) WITH ORDINALITY AS p(s, e, i)
JOIN %[1]s r ON r.gameid = $1 AND r.%[2]s >= p.s AND r.%[2]s < p.e AND r.metric = $4
  AND ($5::text IS NULL OR r.dim = $5) AND ($6::text IS NULL OR r.dim LIKE $6 || '%%')
GROUP BY p.i`
)

var (
	sumHourly   = fmt.Sprintf(sumSpans, "rollup_hourly", "hour")
	sumMinutely = fmt.Sprintf(sumSpans, "rollup_minutely", "minute")
)

// sums adds a rollup metric up per period.
func (q *Queries) sums(ctx context.Context, qq *query, metric string, f dimFilter) ([]float64, error) {
	out := make([]float64, len(qq.ps))
	if len(qq.ps) == 0 {
		return out, nil
	}
	if qq.interval == Hour || qq.interval == Minute {
		sql := sumHourly
		if qq.interval == Minute {
			sql = sumMinutely
		}
		starts, ends := qq.spans()
		rows, err := q.pool.Query(ctx, sql, qq.game, starts, ends, metric, f.exact, f.prefix)
		if err != nil {
			return nil, err
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
		return out, err
	}
	idx := qq.dayIndex()
	rows, err := q.pool.Query(ctx, sumDaily, qq.game, qq.from, qq.to, metric, f.exact, f.prefix)
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
// small enough (WithExactDistinctLimit) or for paying players, else from
// the HyperLogLog sketches (the second result is then true).
func (q *Queries) distinctPlayers(ctx context.Context, qq *query, paid bool) ([]float64, bool, error) {
	metric := "active_players"
	if paid {
		metric = "paying_players"
	}
	if qq.interval == Day || qq.interval == Hour {
		v, err := q.sums(ctx, qq, metric, anyDim())
		return v, false, err
	}
	starts, ends := make([]time.Time, len(qq.ps)), make([]time.Time, len(qq.ps))
	for i, p := range qq.ps {
		starts[i], ends[i] = p.From, p.To
	}
	sql, approx := distinctExact, false
	if !paid {
		var total int64
		if err := q.pool.QueryRow(ctx, `SELECT coalesce(sum(value), 0)::bigint FROM rollup_daily
			WHERE gameid = $1 AND day BETWEEN $2 AND $3 AND metric = 'active_players' AND dim = ''`,
			qq.game, qq.from, qq.to).Scan(&total); err != nil {
			return nil, false, err
		}
		if total > q.exactDistinctLimit {
			sql, approx = distinctHLL, true
		}
	}
	out := make([]float64, len(qq.ps))
	args := []any{qq.game, starts, ends, paid}
	if approx {
		args = args[:3]
	}
	rows, err := q.pool.Query(ctx, sql, args...)
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
// the sessions that began in it and are over (events.SessionClosed: a
// session.end arrived, or events.SessionTimeout passed without events).
func (q *Queries) endedSessions(ctx context.Context, qq *query) ([]float64, []float64, error) {
	sum, n := make([]float64, len(qq.ps)), make([]float64, len(qq.ps))
	if len(qq.ps) == 0 {
		return sum, n, nil
	}
	cutoff := events.SessionCutoff(q.now())
	var (
		rows pgx.Rows
		err  error
	)
	if qq.interval == Hour || qq.interval == Minute {
		// A session's day is its begin's day in the game's zone; the
		// period's days, one either side, find its rows by the day index.
		starts, ends := qq.spans()
		rows, err = q.pool.Query(ctx, `SELECT p.i::int, sum(s.length_s)::float8, count(*)::float8
			FROM unnest($2::timestamptz[], $3::timestamptz[], $4::date[], $5::date[]) WITH ORDINALITY AS p(s, e, d0, d1, i)
			JOIN sessions s ON s.gameid = $1 AND s.day BETWEEN p.d0 AND p.d1 AND s.begin_at >= p.s AND s.begin_at < p.e
			  AND (s.end_at IS NOT NULL OR s.last_at <= $6)
			GROUP BY p.i`, qq.game, starts, ends, qq.dayBounds(-1), qq.dayBounds(1), cutoff)
		if err != nil {
			return nil, nil, err
		}
		var (
			i    int
			s, c float64
		)
		_, err = pgx.ForEachRow(rows, []any{&i, &s, &c}, func() error {
			if i >= 1 && i <= len(sum) {
				sum[i-1], n[i-1] = s, c
			}
			return nil
		})
		return sum, n, err
	}
	idx := qq.dayIndex()
	rows, err = q.pool.Query(ctx, `SELECT day, sum(length_s)::float8, count(*)::float8 FROM sessions
		WHERE gameid = $1 AND day BETWEEN $2 AND $3 AND (end_at IS NOT NULL OR last_at <= $4) GROUP BY day`,
		qq.game, qq.from, qq.to, cutoff)
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

// dayBounds is each period's first day moved by delta days (delta < 0)
// or its last day moved by delta days (delta > 0).
func (qq *query) dayBounds(delta int) []time.Time {
	out := make([]time.Time, len(qq.ps))
	for i, p := range qq.ps {
		if delta < 0 {
			out[i] = p.From.AddDate(0, 0, delta)
		} else {
			out[i] = p.To.AddDate(0, 0, delta)
		}
	}
	return out
}

// Currencies lists the currencies game has revenue in, sorted.
func (q *Queries) Currencies(ctx context.Context, game string) ([]string, error) {
	rows, err := q.pool.Query(ctx, `SELECT DISTINCT dim FROM rollup_daily
		WHERE gameid = $1 AND metric = 'revenue_minor' AND value <> 0 ORDER BY dim`, game)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
