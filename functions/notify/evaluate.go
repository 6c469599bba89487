package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/gamemetrics/gamemetrics/shared/metrics"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// evalChunk is how many due rules one evaluation transaction claims.
const evalChunk = 1000

// EvalStats says what one Evaluate did.
type EvalStats struct {
	Rules, Windows, Notifications int
}

// alertRow is an alert rule as the evaluator claims it.
type alertRow struct {
	id, game, gameName string
	loc                *time.Location
	spec               AlertSpec
	dests              []string
	snoozedUntil       *time.Time
	st                 ruleState
	evaluatedUntil     time.Time
}

const claimAlerts = `SELECT a.id, a.gameid, g.name, g.timezone, a.spec, a.destinations, a.snoozed_until,
  a.state, a.breaches, a.clears, a.fired_at, a.notified_at, a.evaluated_until
FROM notify_alerts a JOIN games g ON g.id = a.gameid
WHERE a.next_eval_at <= $1
ORDER BY a.next_eval_at
LIMIT $2
FOR UPDATE OF a SKIP LOCKED`

// Evaluate evaluates every alert rule whose next window has closed, in
// chunks, each in one transaction that locks its rules (another replica
// skips them), writes their new state and the notifications their
// transitions make, with their deliveries.
func (n *Notify) Evaluate(ctx context.Context) (EvalStats, error) {
	var (
		total EvalStats
		mu    sync.Mutex
	)
	now := n.now()
	// Two chunks at once: one writes while the other reads its values.
	// SKIP LOCKED gives each its own rules.
	g, gctx := errgroup.WithContext(ctx)
	for range 2 {
		g.Go(func() error {
			for {
				st, err := n.evaluateChunk(gctx, now)
				mu.Lock()
				total.Rules += st.Rules
				total.Windows += st.Windows
				total.Notifications += st.Notifications
				mu.Unlock()
				if err != nil || st.Rules < evalChunk {
					return err
				}
			}
		})
	}
	err := g.Wait()
	if total.Notifications > 0 {
		n.kick()
	}
	return total, err
}

// valueKey is one series of values a chunk needs: a metric with its
// filters, over windows of one kind.
type valueKey struct {
	game, metric, currency, severity, window string
}

// valueSet collects the windows each series needs, then fetches them.
type valueSet struct {
	games   map[string]store.Game
	windows map[valueKey][]metrics.Period
	seen    map[valueKey]map[metrics.Period]bool
	vals    map[valueKey]map[metrics.Period]float64
	errs    map[valueKey]error
}

func newValueSet() *valueSet {
	return &valueSet{games: map[string]store.Game{}, windows: map[valueKey][]metrics.Period{},
		seen: map[valueKey]map[metrics.Period]bool{}, vals: map[valueKey]map[metrics.Period]float64{}, errs: map[valueKey]error{}}
}

func (v *valueSet) need(k valueKey, p metrics.Period) {
	if v.seen[k] == nil {
		v.seen[k] = map[metrics.Period]bool{}
	}
	if !v.seen[k][p] {
		v.seen[k][p] = true
		v.windows[k] = append(v.windows[k], p)
	}
}

// fetch runs one Values query per series, workers at a time. A refused
// parameter is kept per series (the rules using it record it); any other
// error fails the fetch.
func (v *valueSet) fetch(ctx context.Context, q *metrics.Queries, workers int) error {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for k, ps := range v.windows {
		g.Go(func() error {
			s, err := q.Values(gctx, metrics.ValuesQuery{Game: v.games[k.game], Metric: k.metric, Currency: k.currency, Severity: k.severity, Periods: ps})
			mu.Lock()
			defer mu.Unlock()
			var pe *metrics.ParamError
			if errors.As(err, &pe) {
				v.errs[k] = pe
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s of %s: %w", k.metric, k.game, err)
			}
			m := make(map[metrics.Period]float64, len(ps))
			for _, pt := range s.Points {
				m[pt.Period] = pt.Value
			}
			v.vals[k] = m
			return nil
		})
	}
	return g.Wait()
}

// get is a fetched value; the error is the series' refusal, if any.
func (v *valueSet) get(k valueKey, p metrics.Period) (float64, error) {
	if err := v.errs[k]; err != nil {
		return 0, err
	}
	x, ok := v.vals[k][p]
	if !ok {
		return 0, fmt.Errorf("value of %s for %s was not fetched", k.metric, p.Label)
	}
	return x, nil
}

func (r *alertRow) key(w window) valueKey {
	return valueKey{game: r.game, metric: r.spec.Metric, currency: r.spec.Currency, severity: r.spec.Severity, window: w.name}
}

func (r *alertRow) volumeKey(w window) valueKey {
	return valueKey{game: r.game, metric: "events", window: w.name}
}

// plannedRule is a claimed rule with the windows to evaluate now.
type plannedRule struct {
	*alertRow
	w       window
	windows []metrics.Period
	next    metrics.Period
	skipped int
	since   time.Time // history start, for anomaly baselines
}

func (n *Notify) evaluateChunk(ctx context.Context, now time.Time) (EvalStats, error) {
	var st EvalStats
	tx, err := n.pool.Begin(ctx)
	if err != nil {
		return st, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	rules, err := claimRules(ctx, tx, now)
	if err != nil {
		return st, err
	}
	st.Rules = len(rules)
	if len(rules) == 0 {
		return st, tx.Commit(ctx)
	}
	until, oldest := now.Add(-n.cfg.EvaluationDelay), now.Add(-n.cfg.CatchUp)
	plans := make([]*plannedRule, len(rules))
	vs := newValueSet()
	var anomalyGames []string
	for i, r := range rules {
		w := r.spec.window()
		ps, skipped, next := dueWindows(w, r.evaluatedUntil, until, oldest, r.loc)
		plans[i] = &plannedRule{alertRow: r, w: w, windows: ps, next: next, skipped: skipped}
		vs.games[r.game] = store.Game{ID: r.game, Name: r.gameName, Timezone: r.loc.String()}
		if r.spec.Condition.Type == condAnomaly && len(ps) > 0 {
			anomalyGames = append(anomalyGames, r.game)
		}
	}
	starts, err := historyStarts(ctx, tx, anomalyGames, now)
	if err != nil {
		return st, err
	}
	for _, p := range plans {
		p.since = starts[p.game]
		if p.w.interval == metrics.Minute {
			if kept := now.AddDate(0, 0, -store.MinuteRollupDays+1); p.since.Before(kept) {
				p.since = kept
			}
		}
		for _, win := range p.windows {
			for _, nd := range p.needs(win) {
				vs.need(nd.key, nd.period)
			}
		}
	}
	if err := vs.fetch(ctx, n.queries, n.cfg.Workers); err != nil {
		return st, err
	}
	var (
		updates []ruleUpdate
		notes   []notification
	)
	for _, p := range plans {
		u, ns := n.advance(p, vs, now)
		updates = append(updates, u)
		notes = append(notes, ns...)
		st.Windows += len(p.windows)
		n.m.skipped.Add(float64(p.skipped))
	}
	if err := writeUpdates(ctx, tx, updates, now); err != nil {
		return st, err
	}
	created, err := n.insertNotifications(ctx, tx, notes, now)
	if err != nil {
		return st, err
	}
	if err := tx.Commit(ctx); err != nil {
		return st, err
	}
	n.countNotifications(notes, created)
	st.Notifications = len(created)
	return st, nil
}

func claimRules(ctx context.Context, tx pgx.Tx, now time.Time) ([]*alertRow, error) {
	rows, err := tx.Query(ctx, claimAlerts, now, evalChunk)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*alertRow, error) {
		r := &alertRow{}
		var (
			tz               string
			spec             []byte
			fired, notified  *time.Time
			breaches, clears int32
		)
		if err := row.Scan(&r.id, &r.game, &r.gameName, &tz, &spec, &r.dests, &r.snoozedUntil,
			&r.st.State, &breaches, &clears, &fired, &notified, &r.evaluatedUntil); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(spec, &r.spec); err != nil {
			return nil, fmt.Errorf("alert %s: spec: %w", r.id, err)
		}
		r.st.Breaches, r.st.Clears = int(breaches), int(clears)
		if fired != nil {
			r.st.FiredAt = *fired
		}
		if notified != nil {
			r.st.NotifiedAt = *notified
		}
		r.loc = store.Game{Timezone: tz}.Location()
		return r, nil
	})
}

// historyStarts is the first hour each game has data in: anomaly
// baselines never reach before it.
func historyStarts(ctx context.Context, tx pgx.Tx, games []string, now time.Time) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	if len(games) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT g, (SELECT hour FROM rollup_hourly WHERE gameid = g ORDER BY hour LIMIT 1)
		FROM unnest($1::text[]) AS g`, games)
	if err != nil {
		return nil, err
	}
	var (
		g string
		h *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&g, &h}, func() error {
		if h != nil {
			out[g] = *h
		} else {
			out[g] = now // no data: no history
		}
		return nil
	})
	return out, err
}

// dueWindows lists the windows of w to evaluate: from the one starting at
// from (where the last evaluation ended), each that closed by until,
// skipping those that closed before oldest (the catch-up bound). It
// returns them, how many were skipped, and the first window left for
// later.
func dueWindows(w window, from, until, oldest time.Time, loc *time.Location) ([]metrics.Period, int, metrics.Period) {
	p := w.periodOf(from, loc)
	skipped := 0
	if p.End(loc).Before(oldest) {
		skipped = int(oldest.Sub(p.Begin(loc)) / w.nominal())
		p = w.periodOf(oldest, loc) // the first window that ended after oldest
	}
	var ps []metrics.Period
	for !p.End(loc).After(until) {
		ps = append(ps, p)
		p = w.next(p, loc)
	}
	return ps, skipped, p
}

// need is one value a window's judgement reads.
type need struct {
	key    valueKey
	period metrics.Period
}

// needs lists the values judging window p reads: the metric, the volume
// (for min_volume), the window compared with (change) or the baseline
// slots (anomaly).
func (p *plannedRule) needs(win metrics.Period) []need {
	k := p.key(p.w)
	out := []need{{k, win}}
	if p.spec.MinVolume > 0 {
		out = append(out, need{p.volumeKey(p.w), win})
	}
	switch p.spec.Condition.Type {
	case condChange:
		out = append(out, need{k, p.reference(win)})
	case condAnomaly:
		_, slots := baselineSlots(p.w, win, p.loc, p.since)
		for _, s := range slots {
			out = append(out, need{k, s})
		}
	}
	return out
}

// reference is the window a change condition compares win with.
func (p *plannedRule) reference(win metrics.Period) metrics.Period {
	if p.spec.Condition.Against == againstPrevious {
		return p.w.back(win, 1, p.loc)
	}
	return p.w.daysBack(win, 7, p.loc)
}

// judgement is what one window said, and why (the notification's facts).
type judgement struct {
	outcome   outcome
	value     float64
	volume    *float64
	reference *reference
	baseline  *baselineFacts
	reason    string // why a window has no data
}

type reference struct {
	Window        windowFacts `json:"window"`
	Value         float64     `json:"value"`
	ChangePercent *float64    `json:"change_percent"` // null: from 0 to more (an infinite rise)
}

type baselineFacts struct {
	Kind        string  `json:"kind"`
	Windows     int     `json:"windows"`
	Median      float64 `json:"median"`
	Spread      float64 `json:"spread"`
	Score       float64 `json:"score"`
	Sensitivity float64 `json:"sensitivity"`
}

// judge reads window win's values and decides its outcome.
func (p *plannedRule) judge(win metrics.Period, vs *valueSet) (judgement, error) {
	k := p.key(p.w)
	x, err := vs.get(k, win)
	if err != nil {
		return judgement{}, err
	}
	j := judgement{value: x, outcome: windowClear}
	if p.spec.MinVolume > 0 {
		vol, err := vs.get(p.volumeKey(p.w), win)
		if err != nil {
			return judgement{}, err
		}
		j.volume = &vol
		if vol < p.spec.MinVolume {
			j.outcome, j.reason = windowNoData, fmt.Sprintf("%g events, fewer than min_volume %g", vol, p.spec.MinVolume)
			return j, nil
		}
	}
	c := p.spec.Condition
	hit := false
	switch c.Type {
	case condAbove:
		hit = x > *c.Value
	case condBelow:
		hit = x < *c.Value
	case condChange:
		refWin := p.reference(win)
		ref, err := vs.get(k, refWin)
		if err != nil {
			return judgement{}, err
		}
		pct := changePercent(x, ref)
		j.reference = &reference{Window: factsOf(refWin, p.loc), Value: ref}
		if !math.IsInf(pct, 0) {
			r := math.Round(pct*100) / 100
			j.reference.ChangePercent = &r
		}
		if c.Above != nil {
			hit = pct > *c.Above
		} else {
			hit = pct < *c.Below
		}
	case condAnomaly:
		kind, slots := baselineSlots(p.w, win, p.loc, p.since)
		if len(slots) == 0 {
			j.outcome, j.reason = windowNoData, "not enough history for a baseline yet"
			return j, nil
		}
		xs := make([]float64, len(slots))
		for i, s := range slots {
			if xs[i], err = vs.get(k, s); err != nil {
				return judgement{}, err
			}
		}
		b := robustBaseline(kind, xs)
		score := anomalyScore(x, b, countsMetric(p.spec.Metric))
		j.baseline = &baselineFacts{Kind: b.Kind, Windows: b.N, Median: b.Median, Spread: math.Round(b.Spread*1000) / 1000,
			Score: math.Round(score*100) / 100, Sensitivity: c.Sensitivity}
		hit = anomalous(score, c.Sensitivity, c.Direction)
	}
	if hit {
		j.outcome = windowBreach
	}
	return j, nil
}

// ruleUpdate is a rule's state after this evaluation.
type ruleUpdate struct {
	id             string
	st             ruleState
	evaluatedUntil time.Time
	nextEval       time.Time
	lastValue      *float64
	lastError      *string
}

// advance runs the rule through its due windows and returns its new state
// and the notifications its transitions make. A window whose value cannot
// be read (a refused parameter, e.g. a currency now ambiguous) stops the
// rule there, keeps the error on the rule and tries again a window later.
func (n *Notify) advance(p *plannedRule, vs *valueSet, now time.Time) (ruleUpdate, []notification) {
	u := ruleUpdate{id: p.id, st: p.st, evaluatedUntil: p.evaluatedUntil, nextEval: p.next.End(p.loc).Add(n.cfg.EvaluationDelay)}
	if p.skipped > 0 && len(p.windows) > 0 {
		u.evaluatedUntil = p.windows[0].Begin(p.loc)
	}
	var notes []notification
	pol := policy{For: p.spec.For, KeepFiringFor: p.spec.KeepFiringFor, Renotify: p.spec.renotifyEvery()}
	for _, win := range p.windows {
		j, err := p.judge(win, vs)
		if err != nil {
			msg := err.Error()
			u.lastError = &msg
			u.nextEval = now.Add(p.w.nominal())
			n.m.evaluations.WithLabelValues("error").Inc()
			return u, notes
		}
		n.m.evaluations.WithLabelValues(map[outcome]string{windowNoData: "no_data", windowClear: "clear", windowBreach: "breach"}[j.outcome]).Inc()
		end := win.End(p.loc)
		prev := u.st
		var tr transition
		u.st, tr = step(pol, u.st, j.outcome, end)
		u.evaluatedUntil = end
		v := j.value
		u.lastValue = &v
		if tr != noTransition && (p.snoozedUntil == nil || end.After(*p.snoozedUntil)) {
			notes = append(notes, n.alertNotification(p, win, tr, j, prev, u.st, now))
		}
	}
	return u, notes
}

func writeUpdates(ctx context.Context, tx pgx.Tx, us []ruleUpdate, now time.Time) error {
	if len(us) == 0 {
		return nil
	}
	var (
		ids, states      = make([]string, len(us)), make([]string, len(us))
		breaches, clears = make([]int32, len(us)), make([]int32, len(us))
		fired, notified  = make([]*time.Time, len(us)), make([]*time.Time, len(us))
		evaluated, next  = make([]time.Time, len(us)), make([]time.Time, len(us))
		values           = make([]*float64, len(us))
		errs             = make([]*string, len(us))
	)
	for i, u := range us {
		ids[i], states[i] = u.id, u.st.State
		breaches[i], clears[i] = int32(u.st.Breaches), int32(u.st.Clears)
		fired[i], notified[i] = optTime(u.st.FiredAt), optTime(u.st.NotifiedAt)
		evaluated[i], next[i] = u.evaluatedUntil, u.nextEval
		values[i], errs[i] = u.lastValue, u.lastError
	}
	_, err := tx.Exec(ctx, `UPDATE notify_alerts a SET state = u.state, breaches = u.breaches, clears = u.clears,
		fired_at = u.fired_at, notified_at = u.notified_at, evaluated_until = u.evaluated_until, next_eval_at = u.next_eval_at,
		last_value = coalesce(u.last_value, a.last_value), last_error = u.last_error, updated_at = $11
	FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::timestamptz[], $6::timestamptz[], $7::timestamptz[],
		$8::timestamptz[], $9::float8[], $10::text[])
		AS u(id, state, breaches, clears, fired_at, notified_at, evaluated_until, next_eval_at, last_value, last_error)
	WHERE a.id = u.id`, ids, states, breaches, clears, fired, notified, evaluated, next, values, errs, now)
	return err
}

// optTime is t, or NULL when it is zero.
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
