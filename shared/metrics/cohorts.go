package metrics

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// RetentionQuery asks for the cohorts that installed on the days [From, To]
// (the game's calendar; only the dates count, as in SeriesQuery) and, for
// each n in Days, how many of them came back on day n.
type RetentionQuery struct {
	Game     store.Game
	From, To time.Time
	Days     []int
	// Filter keeps the players whose install (earliest event) carried
	// its values.
	Filter Filter
}

// Cohort is one install day's retention.
type Cohort struct {
	// Cohort is the install day, YYYY-MM-DD in the game's time zone.
	Cohort string `json:"cohort"`
	Size   int64  `json:"size"`
	// Retained maps each n of the query's days (in decimal) to how many of
	// the cohort had any event on calendar day cohort+n; nil while that day
	// is still in the future (today counts what has arrived so far).
	Retained map[string]*int64 `json:"retained"`
}

// Retention answers rq, one cohort per install day. process keeps these
// counts in cohort_days, so the answer reads at most one row per cell
// whatever the game's size. A bad parameter is a *ParamError.
func (q *Queries) Retention(ctx context.Context, rq RetentionQuery) ([]Cohort, error) {
	if err := rq.Validate(); err != nil {
		return nil, err
	}
	from, to := civilDay(rq.From), civilDay(rq.To)
	today := LocalDay(q.now(), rq.Game.Location())
	var cohorts []Cohort
	index := map[time.Time]int{}
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		c := Cohort{Cohort: d.Format(time.DateOnly), Retained: map[string]*int64{}}
		for _, n := range rq.Days {
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
	for _, n := range rq.Days {
		offsets = append(offsets, int32(n))
	}
	sql := `SELECT install_day, (day - install_day)::int, players FROM cohort_days
		WHERE gameid = $1 AND install_day BETWEEN $2 AND $3 AND day <= $4
		  AND (day - install_day) = ANY($5::int[])`
	args := []any{rq.Game.ID, from, to, today, offsets}
	if len(rq.Filter) > 0 {
		where, dargs, _ := dimSQL(rq.Filter, "", 6)
		sql = `SELECT p.install_day, (d.day - p.install_day)::int, count(*) FROM players p
		JOIN dim_tuples t ON t.gameid = p.gameid AND t.tuple = p.tuple
		JOIN player_days d ON d.gameid = p.gameid AND d.subject = p.subject
		WHERE p.gameid = $1 AND p.install_day BETWEEN $2 AND $3 AND d.day <= $4
		  AND (d.day - p.install_day) = ANY($5::int[])` + where + ` GROUP BY 1, 2`
		args = append(args, dargs...)
	}
	rows, err := q.pool.Query(ctx, sql, args...)
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

// ProgressionQuery asks for the progression funnel of the days [From, To]
// (the game's calendar; only the dates count, as in SeriesQuery).
type ProgressionQuery struct {
	Game     store.Game
	From, To time.Time
	// Filter keeps the progression events that carried its values.
	Filter Filter
}

// Level is one progression level's funnel.
type Level struct {
	Level     string `json:"level"`
	Starts    int64  `json:"starts"`
	Completes int64  `json:"completes"`
	Fails     int64  `json:"fails"`
	// FailRate = Fails / (Completes + Fails), 4 decimals; 0 without either.
	FailRate float64 `json:"fail_rate"`
	// AvgAttempts is the average `attempt` of the level's complete events
	// that carry one (raw events still in PostgreSQL), 2 decimals; nil when
	// none do.
	AvgAttempts *float64 `json:"avg_attempts_on_complete"`
}

// Progression answers pq: every level with progression events on its days,
// sorted by level. A bad parameter is a *ParamError.
func (q *Queries) Progression(ctx context.Context, pq ProgressionQuery) ([]Level, error) {
	if err := pq.Validate(); err != nil {
		return nil, err
	}
	from, to := civilDay(pq.From), civilDay(pq.To)
	loc := pq.Game.Location()
	sql := `SELECT dim, metric, sum(value)::bigint FROM rollup_daily
		WHERE gameid = $1 AND day BETWEEN $2 AND $3
		  AND metric IN ('progression_start', 'progression_complete', 'progression_fail')
		GROUP BY dim, metric`
	args := []any{pq.Game.ID, from, to}
	if len(pq.Filter) > 0 {
		where, dargs, _ := dimSQL(pq.Filter, "", 4)
		sql = `SELECT r.dim, r.metric, sum(r.value)::bigint FROM rollup_tuple_daily r
		JOIN dim_tuples t ON t.gameid = r.gameid AND t.tuple = r.tuple
		WHERE r.gameid = $1 AND r.day BETWEEN $2 AND $3
		  AND r.metric IN ('progression_start', 'progression_complete', 'progression_fail')` + where + `
		GROUP BY 1, 2`
		args = append(args, dargs...)
	}
	rows, err := q.pool.Query(ctx, sql, args...)
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
	// Attempts come from the raw events: their dimension extensions
	// (missing = unknown) decide the filter.
	var where strings.Builder
	aargs := []any{pq.Game.ID, start.UTC().Truncate(24 * time.Hour), end.UTC().Truncate(24 * time.Hour), start, end}
	for _, name := range events.DimensionNames() {
		if vals, ok := pq.Filter[name]; ok {
			fmt.Fprintf(&where, " AND coalesce(extensions->>'%s', 'unknown') = ANY($%d::text[])", name, len(aargs)+1)
			aargs = append(aargs, vals)
		}
	}
	rows, err = q.pool.Query(ctx, `SELECT data->>'level', avg((data->>'attempt')::numeric)::float8
		FROM events
		WHERE gameid = $1 AND day BETWEEN $2 AND $3 AND time >= $4 AND time < $5
		  AND type = 'com.gamemetrics.progression' AND data->>'status' = 'complete' AND data ? 'attempt'`+where.String()+`
		GROUP BY 1`, aargs...)
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
