package metrics

import (
	"context"
	"fmt"
	mbits "math/bits"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// Filter keeps what carried one of the listed values of each dimension it
// names (events.DimensionNames): OR within a dimension, AND across them.
// An empty Filter keeps everything.
type Filter map[string][]string

// MaxFilterValues bounds the values of one dimension's filter.
const MaxFilterValues = 100

// FilterOf reads the dimension filters of a query string: each dimension's
// parameter, its values comma-separated. A platform that is not in the
// catalogue, a country that is not ISO 3166-1 alpha-2 (or unknown), or a
// value no event could carry is a *ParamError naming the dimension.
func FilterOf(q url.Values) (Filter, error) {
	var f Filter
	for _, name := range events.DimensionNames() {
		raw, ok := q[name]
		if !ok {
			continue
		}
		var vals []string
		for _, r := range raw {
			for _, v := range strings.Split(r, ",") {
				v = strings.TrimSpace(v)
				if err := CheckDimValue(name, v); err != nil {
					return nil, err
				}
				if !slices.Contains(vals, v) {
					vals = append(vals, v)
				}
			}
		}
		if len(vals) > MaxFilterValues {
			return nil, paramError(name, "at most %d values", MaxFilterValues)
		}
		if f == nil {
			f = Filter{}
		}
		sort.Strings(vals)
		f[name] = vals
	}
	return f, nil
}

// CheckDimValue refuses a value dimension name can never have.
func CheckDimValue(name, v string) error {
	if v == events.Unknown || v == events.Other && events.IsCustomDim(events.DimIndex(name)) {
		return nil
	}
	if rej := events.CheckDim(name, v); rej != nil {
		return paramError(name, "%s", rej.Reason)
	}
	return nil
}

// CheckBy refuses a breakdown dimension that is not one.
func CheckBy(by string) error {
	if by != "" && events.DimIndex(by) < 0 {
		return paramError("by", "want one of %s, got %q", strings.Join(events.DimensionNames(), ", "), by)
	}
	return nil
}

// MaxCCUDimDays is the longest range of a ccu_peak with a breakdown or
// dimension filters: it is counted from the player-hour rows of the range
// when asked (about one row per active player and hour), not kept.
const MaxCCUDimDays = 31

// checkDims checks a series' dimensions: by names a dimension, filters
// are valid, and the interval has breakdowns (minute windows
// are kept for the whole game only: they serve alert rules).
func checkDims(interval Interval, f Filter, by string) error {
	if err := CheckBy(by); err != nil {
		return err
	}
	for name, vals := range f {
		if events.DimIndex(name) < 0 {
			return paramError(name, "is not a dimension")
		}
		for _, v := range vals {
			if err := CheckDimValue(name, v); err != nil {
				return err
			}
		}
	}
	if by == "" && len(f) == 0 {
		return nil
	}
	param := "by"
	if by == "" {
		param = firstDim(f)
	}
	if interval == Minute {
		return paramError(param, "minute series are kept for the whole game only (they serve alert windows); use hour or day for breakdowns and dimension filters")
	}
	return nil
}

func firstDim(f Filter) string {
	for _, name := range events.DimensionNames() {
		if _, ok := f[name]; ok {
			return name
		}
	}
	return "by"
}

// grouped are a query's values per breakdown value ("" without one), one
// per period.
type grouped map[string][]float64

func ratioG(a, b grouped, places int) grouped {
	if a == nil || b == nil {
		return nil
	}
	out := grouped{}
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for k := range keys {
		x, y := a[k], b[k]
		n := max(len(x), len(y))
		if x == nil {
			x = make([]float64, n)
		}
		if y == nil {
			y = make([]float64, n)
		}
		out[k] = ratio(x, y, places)
	}
	return out
}

// dimSQL is the WHERE clause (from $first on) that keeps the rows of
// tuple alias t that f keeps, and its arguments; and the column of by.
func dimSQL(f Filter, by string, first int) (where string, args []any, col string) {
	var b strings.Builder
	for _, name := range events.DimensionNames() {
		vals, ok := f[name]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, " AND t.%s = ANY($%d::text[])", name, first+len(args))
		args = append(args, vals)
	}
	col = "''"
	if by != "" {
		col = "t." + by
	}
	return b.String(), args, col
}

// planEach makes PostgreSQL plan a dimension query for its parameters on
// every call (an unnamed statement): the generic plan pgx's statement
// cache gets after five calls cannot see how few rows a range of hours or
// a filter's tuples hold, and took 2 s where the custom plan takes 0.2 s
// (hourly DAU by country over 7 days, 100,000 players).
const planEach = pgx.QueryExecModeDescribeExec

// hourRange is the UTC span of an hour query's periods and each hour's
// period: one index range for the whole series.
func (qq *query) hourRange() (from, to time.Time, at map[time.Time]int) {
	at = make(map[time.Time]int, len(qq.ps))
	for i, p := range qq.ps {
		h := p.Hour.UTC()
		at[h] = i
		if i == 0 || h.Before(from) {
			from = h
		}
		if e := h.Add(time.Hour); e.After(to) {
			to = e
		}
	}
	return from, to, at
}

// plain says the query needs no dimension rows.
func (qq *query) plain() bool { return qq.by == "" && len(qq.dims) == 0 }

// byOnly says the query breaks down by one dimension without filters: it
// reads the per-value rollups.
func (qq *query) byOnly() bool { return qq.by != "" && len(qq.dims) == 0 }

// oneValue rewrites a query filtered on one value of one dimension,
// without a breakdown, as a breakdown by that dimension (whose group of
// that value is the answer): per day it reads the per-value rollups, a row
// per day, instead of every tuple row or player-day of the range. Not for
// hours (kept per tuple only).
func (qq *query) oneValue() (*query, string, bool) {
	if qq.by != "" || len(qq.dims) != 1 || qq.interval == Hour {
		return nil, "", false
	}
	for name, vals := range qq.dims {
		if len(vals) == 1 {
			q2 := *qq
			q2.dims, q2.by = nil, name
			return &q2, vals[0], true
		}
	}
	return nil, "", false
}

// valueOf is group v of g as the answer of a query without a breakdown.
func valueOf(g grouped, v string, n int) grouped {
	if x, ok := g[v]; ok {
		return grouped{"": x}
	}
	return grouped{"": make([]float64, n)}
}

// collect reads (key, group, value) rows into g, key mapped to a period
// index by at (false: skip the row).
func collect(rows pgx.Rows, n int, g grouped, key any, at func() (int, bool)) error {
	var (
		grp string
		v   float64
	)
	_, err := pgx.ForEachRow(rows, []any{key, &grp, &v}, func() error {
		i, ok := at()
		if !ok {
			return nil
		}
		if g[grp] == nil {
			g[grp] = make([]float64, n)
		}
		g[grp][i] += v
		return nil
	})
	return err
}

func single(v []float64, err error) (grouped, error) {
	if err != nil {
		return nil, err
	}
	return grouped{"": v}, nil
}

// sumsG adds a rollup metric up per period and group.
func (q *Queries) sumsG(ctx context.Context, qq *query, metric string, f dimFilter) (grouped, error) {
	if qq.plain() {
		return single(q.sums(ctx, qq, metric, f))
	}
	if q2, v, ok := qq.oneValue(); ok {
		g, err := q.sumsG(ctx, q2, metric, f)
		if err != nil {
			return nil, err
		}
		return valueOf(g, v, len(qq.ps)), nil
	}
	g := grouped{}
	if qq.interval == Hour {
		from, to, at := qq.hourRange()
		where, args, col := dimSQL(qq.dims, qq.by, 7)
		rows, err := q.pool.Query(ctx, `SELECT r.hour, `+col+`, sum(r.value)::float8
FROM rollup_tuple_hourly r JOIN dim_tuples t ON t.gameid = r.gameid AND t.tuple = r.tuple
WHERE r.gameid = $1 AND r.hour >= $2 AND r.hour < $3 AND r.metric = $4
  AND ($5::text IS NULL OR r.dim = $5) AND ($6::text IS NULL OR r.dim LIKE $6 || '%')`+where+`
GROUP BY 1, 2`, append([]any{planEach, qq.game, from, to, metric, f.exact, f.prefix}, args...)...)
		if err != nil {
			return nil, err
		}
		var h time.Time
		return g, collect(rows, len(qq.ps), g, &h, func() (int, bool) { i, ok := at[h.UTC()]; return i, ok })
	}
	idx := qq.dayIndex()
	var rows pgx.Rows
	var err error
	if qq.byOnly() {
		rows, err = q.pool.Query(ctx, `SELECT day, dvalue, sum(value)::float8 FROM rollup_dim_daily
WHERE gameid = $1 AND metric = $4 AND dname = $7 AND day BETWEEN $2 AND $3
  AND ($5::text IS NULL OR dim = $5) AND ($6::text IS NULL OR dim LIKE $6 || '%')
GROUP BY 1, 2`, qq.game, qq.from, qq.to, metric, f.exact, f.prefix, qq.by)
	} else {
		where, args, col := dimSQL(qq.dims, qq.by, 7)
		rows, err = q.pool.Query(ctx, `SELECT r.day, `+col+`, sum(r.value)::float8 FROM rollup_tuple_daily r
JOIN dim_tuples t ON t.gameid = r.gameid AND t.tuple = r.tuple
WHERE r.gameid = $1 AND r.day BETWEEN $2 AND $3 AND r.metric = $4
  AND ($5::text IS NULL OR r.dim = $5) AND ($6::text IS NULL OR r.dim LIKE $6 || '%')`+where+`
GROUP BY 1, 2`, append([]any{planEach, qq.game, qq.from, qq.to, metric, f.exact, f.prefix}, args...)...)
	}
	if err != nil {
		return nil, err
	}
	var d time.Time
	return g, collect(rows, len(qq.ps), g, &d, func() (int, bool) { i, ok := idx[d]; return i, ok })
}

// distinctG counts distinct players (paid: paying) per period and group:
// per day from the per-value rollups (a breakdown) or player_day_tuples
// (filters); over weeks and months exactly from player_day_tuples, or for a
// breakdown of a range past WithExactDistinctLimit from the per-value
// HyperLogLog sketches (approximate).
func (q *Queries) distinctG(ctx context.Context, qq *query, paid bool) (grouped, bool, error) {
	if qq.plain() {
		v, a, err := q.distinctPlayers(ctx, qq, paid)
		if err != nil {
			return nil, false, err
		}
		return grouped{"": v}, a, nil
	}
	if q2, v, ok := qq.oneValue(); ok {
		g, a, err := q.distinctG(ctx, q2, paid)
		if err != nil {
			return nil, false, err
		}
		return valueOf(g, v, len(qq.ps)), a, nil
	}
	if qq.interval == Hour {
		from, to, at := qq.hourRange()
		where, args, col := dimSQL(qq.dims, qq.by, 5)
		rows, err := q.pool.Query(ctx, `SELECT h.hour, `+col+`, count(DISTINCT h.subject)::float8
FROM player_hour_tuples h JOIN dim_tuples t ON t.gameid = h.gameid AND t.tuple = h.tuple
WHERE h.gameid = $1 AND h.hour >= $2 AND h.hour < $3 AND (NOT $4 OR h.paid)`+where+`
GROUP BY 1, 2`, append([]any{planEach, qq.game, from, to, paid}, args...)...)
		if err != nil {
			return nil, false, err
		}
		g := grouped{}
		var h time.Time
		return g, false, collect(rows, len(qq.ps), g, &h, func() (int, bool) { i, ok := at[h.UTC()]; return i, ok })
	}
	if qq.interval == Day && qq.byOnly() {
		metric := "active_players"
		if paid {
			metric = "paying_players"
		}
		g, err := q.sumsG(ctx, qq, metric, anyDim())
		return g, false, err
	}
	starts, ends := make([]time.Time, len(qq.ps)), make([]time.Time, len(qq.ps))
	for i, p := range qq.ps {
		starts[i], ends[i] = p.From, p.To
	}
	g := grouped{}
	if qq.byOnly() && !paid {
		var total int64
		if err := q.pool.QueryRow(ctx, `SELECT coalesce(sum(value), 0)::bigint FROM rollup_dim_daily
			WHERE gameid = $1 AND metric = 'active_players' AND dname = $4 AND day BETWEEN $2 AND $3`,
			qq.game, qq.from, qq.to, qq.by).Scan(&total); err != nil {
			return nil, false, err
		}
		if total > q.exactDistinctLimit {
			rows, err := q.pool.Query(ctx, `SELECT p.i::int, h.dvalue, coalesce(round(hll_cardinality(hll_union_agg(h.players))), 0)::float8
FROM unnest($2::date[], $3::date[]) WITH ORDINALITY AS p(s, e, i)
JOIN players_hll_dim_daily h ON h.gameid = $1 AND h.dname = $4 AND h.day BETWEEN p.s AND p.e
GROUP BY 1, 2`, qq.game, starts, ends, qq.by)
			if err != nil {
				return nil, false, err
			}
			var i int
			return g, true, collect(rows, len(qq.ps), g, &i, func() (int, bool) { return i - 1, i >= 1 && i <= len(qq.ps) })
		}
	}
	where, args, col := dimSQL(qq.dims, qq.by, 5)
	rows, err := q.pool.Query(ctx, `SELECT p.i::int, `+col+`, count(DISTINCT d.subject)::float8
FROM unnest($2::date[], $3::date[]) WITH ORDINALITY AS p(s, e, i)
JOIN player_day_tuples d ON d.gameid = $1 AND d.day BETWEEN p.s AND p.e AND (NOT $4 OR d.paid)
JOIN dim_tuples t ON t.gameid = d.gameid AND t.tuple = d.tuple
WHERE true`+where+` GROUP BY 1, 2`, append([]any{planEach, qq.game, starts, ends, paid}, args...)...)
	if err != nil {
		return nil, false, err
	}
	var i int
	return g, false, collect(rows, len(qq.ps), g, &i, func() (int, bool) { return i - 1, i >= 1 && i <= len(qq.ps) })
}

// endedSessionsG is endedSessions per group (sessions count under their
// earliest event's dimensions).
func (q *Queries) endedSessionsG(ctx context.Context, qq *query) (grouped, grouped, error) {
	if qq.plain() {
		s, n, err := q.endedSessions(ctx, qq)
		if err != nil {
			return nil, nil, err
		}
		return grouped{"": s}, grouped{"": n}, nil
	}
	cutoff := events.SessionCutoff(q.now())
	where, args, col := dimSQL(qq.dims, qq.by, 5)
	var rows pgx.Rows
	var err error
	sum, cnt := grouped{}, grouped{}
	if qq.interval == Hour {
		starts, ends := qq.spans()
		where, args, col = dimSQL(qq.dims, qq.by, 7)
		rows, err = q.pool.Query(ctx, `SELECT p.i::int, `+col+`, sum(s.length_s)::float8, count(*)::float8
FROM unnest($2::timestamptz[], $3::timestamptz[], $4::date[], $5::date[]) WITH ORDINALITY AS p(s, e, d0, d1, i)
JOIN sessions s ON s.gameid = $1 AND s.day BETWEEN p.d0 AND p.d1 AND s.begin_at >= p.s AND s.begin_at < p.e
  AND (s.end_at IS NOT NULL OR s.last_at <= $6)
JOIN dim_tuples t ON t.gameid = s.gameid AND t.tuple = s.tuple
WHERE true`+where+` GROUP BY 1, 2`, append([]any{planEach, qq.game, starts, ends, qq.dayBounds(-1), qq.dayBounds(1), cutoff}, args...)...)
		if err != nil {
			return nil, nil, err
		}
		var (
			i    int
			grp  string
			a, c float64
		)
		_, err = pgx.ForEachRow(rows, []any{&i, &grp, &a, &c}, func() error {
			if i >= 1 && i <= len(qq.ps) {
				add(sum, grp, len(qq.ps), i-1, a)
				add(cnt, grp, len(qq.ps), i-1, c)
			}
			return nil
		})
		return sum, cnt, err
	}
	idx := qq.dayIndex()
	rows, err = q.pool.Query(ctx, `SELECT s.day, `+col+`, sum(s.length_s)::float8, count(*)::float8 FROM sessions s
JOIN dim_tuples t ON t.gameid = s.gameid AND t.tuple = s.tuple
WHERE s.gameid = $1 AND s.day BETWEEN $2 AND $3 AND (s.end_at IS NOT NULL OR s.last_at <= $4)`+where+`
GROUP BY 1, 2`, append([]any{planEach, qq.game, qq.from, qq.to, cutoff}, args...)...)
	if err != nil {
		return nil, nil, err
	}
	var (
		d    time.Time
		grp  string
		a, c float64
	)
	_, err = pgx.ForEachRow(rows, []any{&d, &grp, &a, &c}, func() error {
		if i, ok := idx[d]; ok {
			add(sum, grp, len(qq.ps), i, a)
			add(cnt, grp, len(qq.ps), i, c)
		}
		return nil
	})
	return sum, cnt, err
}

func add(g grouped, grp string, n, i int, v float64) {
	if g[grp] == nil {
		g[grp] = make([]float64, n)
	}
	g[grp][i] += v
}

// ccuPeak is the highest number of players online in any minute of each
// period (hours and days; process keeps the peaks per UTC hour and per day
// of the game's zone).
func (q *Queries) ccuPeak(ctx context.Context, qq *query) (grouped, error) {
	if !qq.plain() {
		return q.ccuPeakG(ctx, qq)
	}
	out := make([]float64, len(qq.ps))
	var rows pgx.Rows
	var err error
	if qq.interval == Hour {
		starts, _ := qq.spans()
		idx := map[time.Time]int{}
		for i, s := range starts {
			idx[s.UTC()] = i
		}
		rows, err = q.pool.Query(ctx, `SELECT hour, peak::float8 FROM ccu_hourly WHERE gameid = $1 AND hour = ANY($2)`, qq.game, starts)
		if err != nil {
			return nil, err
		}
		var (
			h time.Time
			v float64
		)
		_, err = pgx.ForEachRow(rows, []any{&h, &v}, func() error {
			if i, ok := idx[h.UTC()]; ok {
				out[i] = max(out[i], v)
			}
			return nil
		})
		return grouped{"": out}, err
	}
	idx := qq.dayIndex()
	rows, err = q.pool.Query(ctx, `SELECT day, peak::float8 FROM ccu_daily WHERE gameid = $1 AND day BETWEEN $2 AND $3`, qq.game, qq.from, qq.to)
	if err != nil {
		return nil, err
	}
	var (
		d time.Time
		v float64
	)
	_, err = pgx.ForEachRow(rows, []any{&d, &v}, func() error {
		if i, ok := idx[d]; ok {
			out[i] = max(out[i], v)
		}
		return nil
	})
	return grouped{"": out}, err
}

// ccuPeakG is ccuPeak per breakdown value and under dimension filters,
// counted from the minutes of player_hour_tuples: a player is online in a
// minute under a value when one of their events carrying it fell in that
// minute or the one before (the hour before the range is read for its
// last minute). Rows come ordered by group, player and hour, so a
// player's previous hour is the previous row: no per-player lookups.
func (q *Queries) ccuPeakG(ctx context.Context, qq *query) (grouped, error) {
	g := grouped{}
	if len(qq.ps) == 0 {
		return g, nil
	}
	from, to := qq.ps[0].Begin(qq.loc), qq.ps[len(qq.ps)-1].End(qq.loc)
	base := from.UTC().Truncate(time.Hour).Add(-time.Hour)
	hours := int(to.Sub(base)/time.Hour) + 1
	where, args, col := dimSQL(qq.dims, qq.by, 4)
	rows, err := q.pool.Query(ctx, `SELECT `+col+`, h.subject, h.hour, bit_or(h.minutes)
FROM player_hour_tuples h JOIN dim_tuples t ON t.gameid = h.gameid AND t.tuple = h.tuple
WHERE h.gameid = $1 AND h.hour >= $2 AND h.hour < $3`+where+` GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
		append([]any{planEach, qq.game, base, to}, args...)...)
	if err != nil {
		return nil, err
	}
	online := map[string][]int32{} // per group, players online per minute since base
	var (
		grp, subject, lastGrp, lastSubject string
		hour                               time.Time
		b                                  int64
		counts                             []int32
		lastHour                           = -2
		lastBits                           uint64
	)
	const last = uint64(1) << 59
	add := func(h int, on uint64) {
		for on != 0 && h < hours {
			m := mbits.TrailingZeros64(on)
			counts[h*60+m]++
			on &= on - 1
		}
	}
	flush := func() { // the minute after the last row's last minute
		if lastBits&last != 0 {
			add(lastHour+1, 1)
		}
	}
	if _, err := pgx.ForEachRow(rows, []any{&grp, &subject, &hour, &b}, func() error {
		h, bits := int(hour.Sub(base)/time.Hour), uint64(b)
		samePlayer := grp == lastGrp && subject == lastSubject && counts != nil
		if !samePlayer || h != lastHour+1 {
			flush()
		}
		if grp != lastGrp || counts == nil {
			if counts = online[grp]; counts == nil {
				counts = make([]int32, hours*60)
				online[grp] = counts
			}
		}
		on := bits | bits<<1&(last<<1-1)
		if samePlayer && h == lastHour+1 && lastBits&last != 0 {
			on |= 1
		}
		add(h, on)
		lastGrp, lastSubject, lastHour, lastBits = grp, subject, h, bits
		return nil
	}); err != nil {
		return nil, err
	}
	if counts != nil {
		flush()
	}
	for grp, counts := range online {
		vals := make([]float64, len(qq.ps))
		for i, p := range qq.ps {
			lo, hi := int(p.Begin(qq.loc).Sub(base)/time.Minute), int(p.End(qq.loc).Sub(base)/time.Minute)
			for m := max(lo, 0); m < min(hi, len(counts)); m++ {
				vals[i] = max(vals[i], float64(counts[m]))
			}
		}
		g[grp] = vals
	}
	return g, nil
}
