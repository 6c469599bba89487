package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// Stage 2: the aggregator. It runs inside process's pods, continuously
// while events are pending: each round takes a slice of pending events
// (up to Config.AggregateMax, the oldest first), and in one transaction
// claims their pending rows, loads the state of the rows they touch,
// merges (merge.go, pure), writes the changes set-based and deletes the
// pending rows. Replicas share the work by game: a round holds each of its
// games' aggregate lock, tried and never waited for, so two replicas never
// aggregate one game at once (they take turns) and a round never waits
// for another. A replica killed mid-round leaves its rows pending for the
// next one: nothing is lost, nothing counted twice.
type aggregator struct {
	p    *Process
	pool *pgxpool.Pool
	cfg  Config
	log  *slog.Logger

	own    *backlog      // pending rows this process wrote
	wake   chan struct{} // stage 1 stored something
	hurry  chan struct{} // someone waits (Drain, back-pressure): no linger
	urgent atomic.Int32  // how many wait

	quit     chan struct{}
	stopOnce sync.Once
	loops    sync.WaitGroup

	// fault is a test seam: called at each point of a round ("claimed",
	// "loaded", "merged"), an error it returns ends the round right there
	// as a crash would: the connection is closed mid-transaction.
	fault atomic.Pointer[func(point string) error]
}

func newAggregator(p *Process) *aggregator {
	a := &aggregator{p: p, pool: p.pool, cfg: p.cfg, log: p.log.With("stage", "aggregate"), own: newBacklog(),
		wake: make(chan struct{}, 1), hurry: make(chan struct{}, 1), quit: make(chan struct{})}
	for range p.cfg.Aggregators {
		a.loops.Add(1)
		go a.loop()
	}
	return a
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// stored tells the aggregator about rows stage 1 committed.
func (a *aggregator) stored(rows []pendingRow) {
	if len(rows) == 0 {
		return
	}
	a.own.add(rows)
	a.p.metrics.pending.Set(float64(a.own.eventCount()))
	signal(a.wake)
}

// stop ends the loops once their rounds are done (Drain first to empty
// the backlog).
func (a *aggregator) stop() {
	a.stopOnce.Do(func() { close(a.quit) })
	a.loops.Wait()
}

func (a *aggregator) loop() {
	defer a.loops.Done()
	poll := time.NewTicker(a.cfg.AggregatePoll)
	defer poll.Stop()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-a.quit:
			return
		case <-a.wake:
		case <-a.hurry:
		case <-poll.C: // pending rows other replicas stored
		}
		small := true
		for {
			if small && !a.lingered() {
				return
			}
			n, err := a.round(context.Background())
			if err != nil {
				a.log.Warn("aggregation failed, retrying", "in", backoff, "err", err)
				select {
				case <-a.quit:
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			if n == 0 {
				break
			}
			small = n < a.cfg.AggregateMax/2
		}
	}
}

// lingered waits up to AggregateLinger for a larger slice to build up,
// unless someone waits for the aggregator or there is enough already; it
// reports false when the aggregator stops meanwhile.
func (a *aggregator) lingered() bool {
	if a.cfg.AggregateLinger <= 0 || a.urgent.Load() > 0 || a.own.eventCount() >= a.cfg.AggregateMax {
		return true
	}
	t := time.NewTimer(a.cfg.AggregateLinger)
	defer t.Stop()
	select {
	case <-a.quit:
		return false
	case <-a.hurry:
	case <-t.C:
	}
	return true
}

// candidate is a pending row, without its events.
type candidate struct {
	seq     int64
	game    string
	events  int
	created time.Time
}

// claimed is a pending row a round took.
type claimed struct {
	seq     int64
	game    string
	created time.Time
	batch   []byte
}

// round aggregates one slice of pending events and returns how many
// events it counted (0: nothing was pending that this process could
// take). A slice that fails on its data is taken apart to set the one
// event that can never be counted aside (see isolate).
func (a *aggregator) round(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.WriteTimeout)
	defer cancel()
	cands, err := a.candidates(ctx)
	if err != nil || len(cands) == 0 {
		return 0, err
	}
	skip := map[string]bool{}
	for range 3 { // games other replicas hold are skipped: try the next ones
		seqs, games := choose(cands, skip, a.cfg.AggregateMax)
		if len(seqs) == 0 {
			return 0, nil
		}
		n, rows, err := a.aggregateRetrying(ctx, cands, seqs, games)
		switch {
		case err != nil && permanent(err) && len(rows) > 0:
			return 0, a.isolate(ctx, rows, err)
		case err != nil:
			a.p.metrics.aggregationErrors.WithLabelValues(kind(err)).Inc()
			return 0, err
		case len(rows) > 0:
			return n, nil
		}
		for _, g := range games {
			skip[g] = true
		}
	}
	return 0, nil
}

func (a *aggregator) candidates(ctx context.Context) ([]candidate, error) {
	rows, _ := a.pool.Query(ctx, pendingCandidates, 4*a.cfg.MaxBatch+1000)
	var out []candidate
	var c candidate
	var events int32
	_, err := pgx.ForEachRow(rows, []any{&c.seq, &c.game, &events, &c.created}, func() error {
		c.events = int(events)
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pending events: %w", err)
	}
	return out, nil
}

// choose picks, oldest first, pending rows of games not in skip until
// they hold budget events (at least one row), and their games.
func choose(cands []candidate, skip map[string]bool, budget int) (seqs []int64, games []string) {
	total := 0
	for _, c := range cands {
		if skip[c.game] {
			continue
		}
		if total >= budget {
			break
		}
		total += c.events
		seqs = append(seqs, c.seq)
		if !slices.Contains(games, c.game) {
			games = append(games, c.game)
		}
	}
	return seqs, games
}

// aggregateRetrying runs aggregate, again when it lost a deadlock to a
// writer of another kind (retain, an older process).
func (a *aggregator) aggregateRetrying(ctx context.Context, cands []candidate, seqs []int64, games []string) (int, []claimed, error) {
	for attempt := 0; ; attempt++ {
		n, rows, err := a.aggregateOnce(ctx, cands, seqs, games)
		if err == nil || !retryable(err) || attempt >= a.cfg.Retries {
			return n, rows, err
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
}

func (a *aggregator) aggregateOnce(ctx context.Context, cands []candidate, seqs []int64, games []string) (int, []claimed, error) {
	conn, err := a.pool.Acquire(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Release() // destroys the connection if it is still in a transaction
	start := time.Now()
	n, rows, fresh, err := a.aggregate(ctx, conn.Conn(), cands, seqs, games)
	if err != nil {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			if _, rerr := conn.Exec(ctx, "ROLLBACK"); rerr != nil {
				conn.Conn().Close(ctx)
			}
		}
		return 0, rows, err
	}
	if len(rows) == 0 {
		return 0, nil, nil
	}
	done := make([]int64, len(rows))
	for i, r := range rows {
		done[i] = r.seq
	}
	a.own.remove(done)
	m := a.p.metrics
	m.pending.Set(float64(a.own.eventCount()))
	m.aggregationSize.Observe(float64(n))
	m.aggregationDuration.Observe(time.Since(start).Seconds())
	now := a.p.now()
	for _, r := range fresh {
		if !r.received.IsZero() {
			m.lag.Observe(now.Sub(r.received).Seconds())
		}
	}
	a.p.recordLive(fresh)
	return n, rows, nil
}

// crash ends a round as a killed process would: the connection closes with
// the transaction open, and the server rolls it back.
var errCrash = errors.New("aggregation crashed (test fault)")

func (a *aggregator) checkpoint(conn *pgx.Conn, point string) error {
	f := a.fault.Load()
	if f == nil {
		return nil
	}
	if err := (*f)(point); err != nil {
		conn.PgConn().Close(context.Background())
		return fmt.Errorf("%w at %s: %v", errCrash, point, err)
	}
	return nil
}

// aggregate is one round's transaction on conn, in four round trips:
// claim (BEGIN, the games' locks, the rows, their zones and recent
// erasures), load, [history of movers,] write (and COMMIT). It returns the
// events counted, the rows claimed (also on error, so that a fault of the
// data can be isolated) and the counted events.
func (a *aggregator) aggregate(ctx context.Context, conn *pgx.Conn, cands []candidate, seqs []int64, games []string) (int, []claimed, []*record, error) {
	bySeq := make(map[int64]candidate, len(cands))
	for _, c := range cands {
		bySeq[c.seq] = c
	}
	rowGames := make([]string, len(seqs))
	since := time.Time{}
	for i, s := range seqs {
		c := bySeq[s]
		rowGames[i] = c.game
		if since.IsZero() || c.created.Before(since) {
			since = c.created
		}
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL plan_cache_mode = force_generic_plan")
	var rows []claimed
	b.Queue(claimPending, seqs, rowGames, games).Query(func(r pgx.Rows) error {
		var c claimed
		_, err := pgx.ForEachRow(r, []any{&c.seq, &c.game, &c.created, &c.batch}, func() error {
			rows = append(rows, c)
			c = claimed{}
			return nil
		})
		return err
	})
	zones := map[string]*time.Location{}
	b.Queue(readZones, games).Query(func(r pgx.Rows) error {
		var id, tz string
		_, err := pgx.ForEachRow(r, []any{&id, &tz}, func() error {
			loc, err := time.LoadLocation(tz)
			if err != nil {
				return fmt.Errorf("game %s: time zone %q: %w", id, tz, err)
			}
			zones[id] = loc
			return nil
		})
		return err
	})
	type erasure struct{ game, hash string }
	erasures := map[erasure]time.Time{}
	b.Queue(recentErasures, games, since.Add(-time.Microsecond)).Query(func(r pgx.Rows) error {
		var e erasure
		var at time.Time
		_, err := pgx.ForEachRow(r, []any{&e.game, &e.hash, &at}, func() error {
			erasures[e] = at
			return nil
		})
		return err
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return 0, nil, nil, fmt.Errorf("claim pending events: %w", err)
	}
	if len(rows) == 0 {
		_, err := conn.Exec(ctx, "COMMIT")
		return 0, nil, nil, err
	}
	if err := a.checkpoint(conn, "claimed"); err != nil {
		return 0, rows, nil, err
	}
	zone := func(game string) *time.Location {
		if loc := zones[game]; loc != nil {
			return loc
		}
		return time.UTC
	}
	var recs, held []*record
	for _, row := range rows {
		evs, err := decodePending(row.game, row.batch)
		if err != nil {
			return 0, rows, nil, fmt.Errorf("pending row %d: %w", row.seq, err)
		}
		loc := zone(row.game)
		hashes := map[string]string{}
		for _, r := range evs {
			r.local = dayIn(r.time, loc)
			if len(erasures) > 0 {
				// An erasure that began after this row was stored holds
				// every event of the player in it: they were received
				// before the erasure (stage 1 applied earlier ones).
				h, ok := hashes[r.subject]
				if !ok {
					h = store.PlayerHash(r.game, r.subject)
					hashes[r.subject] = h
				}
				if at, ok := erasures[erasure{r.game, h}]; ok && at.After(row.created) {
					held = append(held, r)
					continue
				}
			}
			recs = append(recs, r)
		}
	}
	if err := a.p.dims.resolve(ctx, recs); err != nil {
		return 0, rows, nil, err
	}
	bt := newBatch(recs)
	st, err := load(ctx, conn, bt, zone)
	if err != nil {
		return 0, rows, nil, err
	}
	if err := a.checkpoint(conn, "loaded"); err != nil {
		return 0, rows, nil, err
	}
	ch := merge(bt, st, zone)
	if err := a.checkpoint(conn, "merged"); err != nil {
		return 0, rows, nil, err
	}
	if err := write(ctx, conn, ch, held, zone, true); err != nil {
		return 0, rows, nil, err
	}
	a.p.metrics.aggregated.WithLabelValues("counted").Add(float64(len(recs)))
	a.p.metrics.aggregated.WithLabelValues("erased").Add(float64(len(held)))
	return len(recs), rows, recs, nil
}

// isolate takes a slice that failed on its data apart: each row again on
// its own, a row of one failing row split into one row per event, and a
// single event that still fails set aside in pending_events_failed.
func (a *aggregator) isolate(ctx context.Context, rows []claimed, cause error) error {
	a.p.metrics.aggregationErrors.WithLabelValues("data").Inc()
	if len(rows) > 1 {
		a.log.Warn("aggregation failed on its data, retrying pending row by row", "rows", len(rows), "err", cause)
		for _, r := range rows {
			cands := []candidate{{seq: r.seq, game: r.game, events: 1, created: r.created}}
			_, one, err := a.aggregateRetrying(ctx, cands, []int64{r.seq}, []string{r.game})
			if err != nil && permanent(err) && len(one) == 1 {
				err = a.isolate(ctx, one, err)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	r := rows[0]
	evs, err := decodePending(r.game, r.batch)
	if err == nil && len(evs) > 1 {
		a.log.Warn("aggregation failed on its data, retrying the pending row event by event", "seq", r.seq, "events", len(evs), "err", cause)
		days, batches := make([]time.Time, len(evs)), make([][]byte, len(evs))
		for i, e := range evs {
			days[i], batches[i] = e.day, encodePending(nil, []*record{e})
		}
		_, err := a.pool.Exec(ctx, splitPending, r.seq, days, batches)
		return err
	}
	a.log.Error("an event can never be aggregated: set aside in pending_events_failed (its raw event is stored)", "seq", r.seq, "gameid", r.game, "err", cause)
	a.p.metrics.aggregated.WithLabelValues("failed").Inc()
	_, err = a.pool.Exec(ctx, failPending, r.seq, cause.Error())
	if err == nil {
		a.own.remove([]int64{r.seq})
	}
	return err
}

// querier is what aggregation reads and writes through: a connection in
// a transaction the round began, or the transaction of a rebuild.
type querier interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// load locks and reads the rows b touches (one round trip, and one more
// for the activity history of players whose install day moves).
func load(ctx context.Context, q querier, b *batch, zone func(string) *time.Location) (*state, error) {
	st := &state{players: make(map[playerKey]playerState), sessions: make(map[sessionKey]sessionState),
		days: make(map[activityKey]bool), hours: make(map[activityKey]bool),
		dayTuples: make(map[activityKey][]dayTuple), minutes: make(map[activityKey]uint64), tuples: make(map[int64]events.Dims)}
	if len(b.recs) == 0 {
		return st, nil
	}
	q1 := &pgx.Batch{}
	newPlayers := make(map[playerKey]bool)
	{
		m := len(b.pkeys)
		games, subjects, first, last, install, fp := make([]string, m), make([]string, m), make([]time.Time, m),
			make([]time.Time, m), make([]time.Time, m), make([]pgtype.Timestamptz, m)
		tuples, ptuples := make([]int64, m), make([]int64, m)
		for i, k := range b.pkeys {
			p := b.players[k]
			games[i], subjects[i], first[i], last[i] = k.game, k.subject, p.firstSeen, p.lastSeen
			install[i], fp[i] = dayIn(p.firstSeen, zone(k.game)), tstz(p.firstPurchase)
			tuples[i], ptuples[i] = p.tuple, p.purchaseTuple
		}
		q1.Queue(insertPlayers, games, subjects, first, last, install, fp, tuples, ptuples).Query(func(rows pgx.Rows) error {
			var k playerKey
			_, err := pgx.ForEachRow(rows, []any{&k.game, &k.subject}, func() error {
				newPlayers[k] = true
				return nil
			})
			return err
		})
		q1.Queue(lockPlayers, games, subjects).Query(func(rows pgx.Rows) error {
			var k playerKey
			var first, last time.Time
			var fp pgtype.Timestamptz
			var tuple, ptuple int64
			_, err := pgx.ForEachRow(rows, []any{&k.game, &k.subject, &first, &last, &fp, &tuple, &ptuple}, func() error {
				if !newPlayers[k] {
					st.players[k] = playerState{firstSeen: first.UTC(), lastSeen: last.UTC(), firstPurchase: fp.Time.UTC(),
						tuple: tuple, purchaseTuple: ptuple}
				}
				return nil
			})
			return err
		})
	}
	if len(b.skeys) > 0 {
		newSessions := make(map[sessionKey]bool)
		q1.Queue(insertSessions, sessionArgs(b.skeys, b.sessions, zone)...).Query(func(rows pgx.Rows) error {
			var k sessionKey
			_, err := pgx.ForEachRow(rows, []any{&k.game, &k.subject, &k.session}, func() error {
				newSessions[k] = true
				return nil
			})
			return err
		})
		m := len(b.skeys)
		games, subjects, sids := make([]string, m), make([]string, m), make([]string, m)
		for i, k := range b.skeys {
			games[i], subjects[i], sids[i] = k.game, k.subject, k.session
		}
		q1.Queue(lockSessions, games, subjects, sids).Query(func(rows pgx.Rows) error {
			var k sessionKey
			var start, firstAt, lastAt, end pgtype.Timestamptz
			var endLen, platform, version, country pgtype.Text
			var tuple int64
			_, err := pgx.ForEachRow(rows, []any{&k.game, &k.subject, &k.session, &start, &firstAt, &lastAt, &end, &endLen, &platform, &version, &country, &tuple}, func() error {
				if newSessions[k] {
					return nil
				}
				s := sessionState{firstAt: firstAt.Time.UTC(), lastAt: lastAt.Time.UTC(), tuple: tuple,
					platform: platform.String, version: version.String, country: country.String}
				if start.Valid {
					s.startAt = start.Time.UTC()
				}
				if end.Valid {
					s.endAt = end.Time.UTC()
				}
				if endLen.Valid {
					s.endLength = rat(json.Number(endLen.String))
				}
				st.sessions[k] = s
				return nil
			})
			return err
		})
	}
	queueActivityLoad(q1, loadDays, b.days, st.days)
	queueHoursLoad(q1, b, st)
	dayKeys := queueDayTuplesLoad(q1, b, st)
	queueTuplesLoad(q1, b, dayKeys, st)
	if err := q.SendBatch(ctx, q1).Close(); err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	if movers := b.movers(st, zone); len(movers) > 0 {
		st.history = make(map[playerKey][]time.Time, len(movers))
		games, subjects := make([]string, len(movers)), make([]string, len(movers))
		for i, k := range movers {
			games[i], subjects[i] = k.game, k.subject
		}
		q2 := &pgx.Batch{}
		st.revenue = make(map[playerKey][]revenueRow, len(movers))
		q2.Queue(loadRevenueHistory, games, subjects).Query(func(rows pgx.Rows) error {
			var k playerKey
			var r revenueRow
			_, err := pgx.ForEachRow(rows, []any{&k.game, &k.subject, &r.currency, &r.day, &r.amount}, func() error {
				st.revenue[k] = append(st.revenue[k], r)
				return nil
			})
			return err
		})
		q2.Queue(loadHistory, games, subjects).Query(func(rows pgx.Rows) error {
			var k playerKey
			var day time.Time
			_, err := pgx.ForEachRow(rows, []any{&k.game, &k.subject, &day}, func() error {
				st.history[k] = append(st.history[k], day)
				return nil
			})
			return err
		})
		if err := q.SendBatch(ctx, q2).Close(); err != nil {
			return nil, fmt.Errorf("load activity history: %w", err)
		}
	}
	return st, nil
}

// queueHoursLoad queues the read of the batch's player_hours rows, and of
// the hours either side where the batch has a player's minute 0 or 59
// (whether the player was online across the hour's edge), into st.hours
// (the batch's own keys) and st.minutes (all).
func queueHoursLoad(q *pgx.Batch, b *batch, st *state) {
	n := len(b.hours)
	games, ats, subjects := make([]string, 0, n), make([]time.Time, 0, n), make([]string, 0, n)
	for k := range b.hours {
		games, ats, subjects = append(games, k.game), append(ats, k.at), append(subjects, k.subject)
		m := b.minutes[k]
		if m&1 != 0 {
			games, ats, subjects = append(games, k.game), append(ats, k.at.Add(-time.Hour)), append(subjects, k.subject)
		}
		if m&(1<<59) != 0 {
			games, ats, subjects = append(games, k.game), append(ats, k.at.Add(time.Hour)), append(subjects, k.subject)
		}
	}
	q.Queue(loadHours, games, ats, subjects).Query(func(rows pgx.Rows) error {
		var k activityKey
		var paid bool
		var minutes int64
		_, err := pgx.ForEachRow(rows, []any{&k.game, &k.at, &k.subject, &paid, &minutes}, func() error {
			k.at = k.at.UTC()
			if _, ok := b.hours[k]; ok {
				st.hours[k] = paid
			}
			st.minutes[k] = uint64(minutes)
			return nil
		})
		return err
	})
}

// queueDayTuplesLoad queues the read of the tuples of the batch's player
// days; it returns the keys' columns for queueTuplesLoad.
func queueDayTuplesLoad(q *pgx.Batch, b *batch, st *state) [3]any {
	n := len(b.days)
	games, days, subjects := make([]string, 0, n), make([]time.Time, 0, n), make([]string, 0, n)
	for k := range b.days {
		games, days, subjects = append(games, k.game), append(days, k.at), append(subjects, k.subject)
	}
	q.Queue(loadDayTuples, games, days, subjects).Query(func(rows pgx.Rows) error {
		var k activityKey
		var t dayTuple
		_, err := pgx.ForEachRow(rows, []any{&k.game, &k.at, &k.subject, &t.tuple, &t.paid}, func() error {
			st.dayTuples[k] = append(st.dayTuples[k], t)
			return nil
		})
		return err
	})
	return [3]any{games, days, subjects}
}

// queueTuplesLoad queues the read of the values of the tuples the batch's
// existing rows name.
func queueTuplesLoad(q *pgx.Batch, b *batch, dayKeys [3]any, st *state) {
	games := map[string]bool{}
	pg, ps := make([]string, len(b.pkeys)), make([]string, len(b.pkeys))
	for i, k := range b.pkeys {
		pg[i], ps[i] = k.game, k.subject
		games[k.game] = true
	}
	sg, sp, ss := make([]string, len(b.skeys)), make([]string, len(b.skeys)), make([]string, len(b.skeys))
	for i, k := range b.skeys {
		sg[i], sp[i], ss[i] = k.game, k.subject, k.session
	}
	q.Queue(loadTuples, sortedKeys(games, strings.Compare), pg, ps, sg, sp, ss, dayKeys[0], dayKeys[1], dayKeys[2]).Query(func(rows pgx.Rows) error {
		var id int64
		var d events.Dims
		_, err := pgx.ForEachRow(rows, []any{&id, &d[0], &d[1], &d[2], &d[3], &d[4], &d[5]}, func() error {
			st.tuples[id] = d
			return nil
		})
		return err
	})
}

// queueActivityLoad queues the read of the activity rows of keys into into.
func queueActivityLoad(q *pgx.Batch, sql string, keys map[activityKey]bool, into map[activityKey]bool) {
	games, ats, subjects := make([]string, 0, len(keys)), make([]time.Time, 0, len(keys)), make([]string, 0, len(keys))
	for k := range keys {
		games, ats, subjects = append(games, k.game), append(ats, k.at), append(subjects, k.subject)
	}
	q.Queue(sql, games, ats, subjects).Query(func(rows pgx.Rows) error {
		var k activityKey
		var paid bool
		_, err := pgx.ForEachRow(rows, []any{&k.game, &k.at, &k.subject, &paid}, func() error {
			k.at = k.at.UTC()
			into[k] = paid
			return nil
		})
		return err
	})
}

// write applies c (and removes the raw events and ids of held records,
// which an erasure holds) in one round trip, committing when commit is
// set. Rows every round of a game writes (cohorts, sketches, rollups) come
// last, each statement in key order.
func write(ctx context.Context, q querier, c *changes, held []*record, zone func(string) *time.Location, commit bool) error {
	b := &pgx.Batch{}
	queueWrite(b, c, held, zone)
	if commit {
		b.Queue("COMMIT")
	}
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write aggregates: %w", err)
	}
	return nil
}

// queueWrite queues the statements of write.
func queueWrite(b *pgx.Batch, c *changes, held []*record, zone func(string) *time.Location) {
	if len(held) > 0 {
		m := len(held)
		games, days, ids := make([]string, m), make([]time.Time, m), make([]string, m)
		for i, r := range held {
			games[i], days[i], ids[i] = r.game, r.day, r.id
		}
		b.Queue(deleteEvents, games, days, ids)
		b.Queue(deleteEventIDs, games, ids)
	}
	if m := len(c.players); m > 0 {
		games, subjects, first, last, install, fp, ns := make([]string, m), make([]string, m), make([]time.Time, m),
			make([]time.Time, m), make([]time.Time, m), make([]pgtype.Timestamptz, m), make([]int64, m)
		tuples, ptuples := make([]int64, m), make([]int64, m)
		for i, p := range c.players {
			games[i], subjects[i], first[i], last[i] = p.key.game, p.key.subject, p.state.firstSeen, p.state.lastSeen
			install[i], fp[i], ns[i] = p.install, tstz(p.state.firstPurchase), p.newSessions
			tuples[i], ptuples[i] = p.state.tuple, p.state.purchaseTuple
		}
		b.Queue(updatePlayers, games, subjects, first, last, install, fp, ns, tuples, ptuples)
	}
	if len(c.sessions) > 0 {
		keys := make([]sessionKey, len(c.sessions))
		states := make(map[sessionKey]*sessionState, len(c.sessions))
		for i := range c.sessions {
			keys[i] = c.sessions[i].key
			states[keys[i]] = &c.sessions[i].state
		}
		b.Queue(updateSessions, sessionArgs(keys, states, zone)...)
	}
	queueActivity(b, upsertDays, c.days)
	queueHours(b, c.hours)
	queueDimRows(b, c)
	if len(c.spend) > 0 {
		keys := sortedKeys(c.spend, func(a, b spendKey) int {
			return cmpSession(sessionKey{a.game, a.subject, a.currency}, sessionKey{b.game, b.subject, b.currency})
		})
		m := len(keys)
		games, subs, curs, amts, cnts := make([]string, m), make([]string, m), make([]string, m), make([]string, m), make([]int64, m)
		for i, k := range keys {
			games[i], subs[i], curs[i] = k.game, k.subject, k.currency
			amts[i], cnts[i] = fmt.Sprint(c.spend[k].amount), c.spend[k].purchases
		}
		b.Queue(upsertSpend, games, subs, curs, amts, cnts)
	}
	// From here on rows every round of the game writes: last, so they stay
	// locked for as short a time as possible.
	{
		var games []string
		var installs, days []time.Time
		var ns []int64
		for _, k := range sortedKeys(c.cohorts, cmpCohort) {
			if n := c.cohorts[k]; n != 0 {
				games, installs, days, ns = append(games, k.game), append(installs, k.install), append(days, k.day), append(ns, n)
			}
		}
		if len(games) > 0 {
			b.Queue(upsertCohorts, games, installs, days, ns)
		}
	}
	if m := len(c.sketch); m > 0 {
		games, days, subs := make([]string, m), make([]time.Time, m), make([]string, m)
		for i, k := range c.sketch {
			games[i], days[i], subs[i] = k.game, k.at, k.subject
		}
		b.Queue(upsertHLL, games, days, subs)
	}
	queueRollups(b, c.rollups)
	queueCCU(b, c.rollups, zone)
}

func queueHours(b *pgx.Batch, rows []activityRow) {
	if len(rows) == 0 {
		return
	}
	m := len(rows)
	games, ats, subs, paid, mins := make([]string, m), make([]time.Time, m), make([]string, m), make([]bool, m), make([]int64, m)
	for i, r := range rows {
		games[i], ats[i], subs[i], paid[i], mins[i] = r.key.game, r.key.at, r.key.subject, r.paid, int64(r.minutes)
	}
	b.Queue(upsertHours, games, ats, subs, paid, mins)
}

// queueDimRows queues the rows of dimensions and LTV: tuples, player day
// tuples, per-value sketches, revenue days and cohort revenue.
func queueDimRows(b *pgx.Batch, c *changes) {
	if len(c.tuples) > 0 {
		var games []string
		var ids []int64
		var vals [6][]string
		for _, r := range c.rollupsTuples() {
			games, ids = append(games, r.game), append(ids, r.id)
			for i := range vals {
				vals[i] = append(vals[i], r.dims[i])
			}
		}
		b.Queue(insertTuples, games, ids, vals[0], vals[1], vals[2], vals[3], vals[4], vals[5])
	}
	if m := len(c.dayTuples); m > 0 {
		games, days, subs, tuples, paid := make([]string, m), make([]time.Time, m), make([]string, m), make([]int64, m), make([]bool, m)
		for i, r := range c.dayTuples {
			games[i], days[i], subs[i], tuples[i], paid[i] = r.key.game, r.key.at, r.key.subject, r.tuple, r.paid
		}
		b.Queue(upsertDayTuples, games, days, subs, tuples, paid)
	}
	if m := len(c.hourTuples); m > 0 {
		games, hours, subs, tuples, paid, mins := make([]string, m), make([]time.Time, m), make([]string, m), make([]int64, m),
			make([]bool, m), make([]int64, m)
		for i, r := range c.hourTuples {
			games[i], hours[i], subs[i], tuples[i], paid[i], mins[i] = r.key.game, r.key.at, r.key.subject, r.tuple, r.paid, int64(r.minutes)
		}
		b.Queue(upsertHourTuples, games, hours, subs, tuples, paid, mins)
	}
	if m := len(c.dimSketch); m > 0 {
		games, days, names, vals, subs := make([]string, m), make([]time.Time, m), make([]string, m), make([]string, m), make([]string, m)
		dn := events.DimensionNames()
		for i, r := range c.dimSketch {
			games[i], days[i], names[i], vals[i], subs[i] = r.game, r.day, dn[r.dname], r.dvalue, r.subject
		}
		b.Queue(upsertDimHLL, games, days, names, vals, subs)
	}
	if len(c.revenue) > 0 {
		var games, subs, curs []string
		var days []time.Time
		var amts []int64
		for _, k := range sortedKeys(c.revenue, cmpRevenue) {
			games, subs, curs, days, amts = append(games, k.game), append(subs, k.subject), append(curs, k.currency), append(days, k.day), append(amts, c.revenue[k])
		}
		b.Queue(upsertRevenueDays, games, subs, curs, days, amts)
	}
	var games, curs []string
	var installs, days []time.Time
	var amts []int64
	for _, k := range sortedKeys(c.cohortRevenue, cmpCohortRevenue) {
		if v := c.cohortRevenue[k]; v != 0 {
			games, installs, curs, days, amts = append(games, k.game), append(installs, k.install), append(curs, k.currency), append(days, k.day), append(amts, v)
		}
	}
	if len(games) > 0 {
		b.Queue(upsertCohortRevenue, games, installs, curs, days, amts)
	}
}

// batchTuple is one of a batch's tuples with its game.
type batchTuple struct {
	game string
	id   int64
	dims events.Dims
}

// rollupsTuples lists the (game, tuple) pairs the changes' tuple rollups
// name, in order, with their values.
func (c *changes) rollupsTuples() []batchTuple {
	seen := map[batchTuple]bool{}
	var out []batchTuple
	for k := range c.rollups {
		if k.grain != tupleDaily && k.grain != tupleHourly {
			continue
		}
		d, ok := c.tuples[k.tuple]
		if !ok {
			continue // an old tuple: its row exists
		}
		t := batchTuple{k.game, k.tuple, d}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, r := range c.dayTuples {
		if d, ok := c.tuples[r.tuple]; ok {
			t := batchTuple{r.key.game, r.tuple, d}
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	slices.SortFunc(out, func(a, b batchTuple) int {
		if c := strings.Compare(a.game, b.game); c != 0 {
			return c
		}
		return cmpInt(a.id, b.id)
	})
	return out
}

// queueCCU adds the online counts of the minutes that changed and keeps
// the hourly and daily peaks (one statement, after the other rollups).
func queueCCU(b *pgx.Batch, d deltas, zone func(string) *time.Location) {
	var keys []rollKey
	for k, v := range d {
		if k.grain == minutely && k.metric == mOnline && !v.isZero() {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return
	}
	slices.SortFunc(keys, cmpRollKey)
	games, minutes, hours, days, values := make([]string, len(keys)), make([]time.Time, len(keys)), make([]time.Time, len(keys)),
		make([]time.Time, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		games[i], minutes[i], hours[i], days[i] = k.game, k.bucket, hourOf(k.bucket), dayIn(k.bucket, zone(k.game))
		values[i] = d[k].n
	}
	b.Queue(upsertOnline, games, minutes, hours, days, values)
}

func queueActivity(b *pgx.Batch, sql string, rows []activityRow) {
	if len(rows) == 0 {
		return
	}
	m := len(rows)
	games, ats, subs, paid := make([]string, m), make([]time.Time, m), make([]string, m), make([]bool, m)
	for i, r := range rows {
		games[i], ats[i], subs[i], paid[i] = r.key.game, r.key.at, r.key.subject, r.paid
	}
	b.Queue(sql, games, ats, subs, paid)
}

// sessionArgs are the arguments of insertSessions and updateSessions.
func sessionArgs(keys []sessionKey, states map[sessionKey]*sessionState, zone func(string) *time.Location) []any {
	m := len(keys)
	games, subjects, sids := make([]string, m), make([]string, m), make([]string, m)
	start, first, last, end := make([]pgtype.Timestamptz, m), make([]time.Time, m), make([]time.Time, m), make([]pgtype.Timestamptz, m)
	endLen := make([]pgtype.Text, m)
	platform, version, country := make([]pgtype.Text, m), make([]pgtype.Text, m), make([]pgtype.Text, m)
	begin, length, day, hour := make([]time.Time, m), make([]string, m), make([]time.Time, m), make([]time.Time, m)
	tuples := make([]int64, m)
	for i, k := range keys {
		s := states[k]
		tuples[i] = s.tuple
		games[i], subjects[i], sids[i] = k.game, k.subject, k.session
		start[i], first[i], last[i], end[i] = tstz(s.startAt), s.firstAt, s.lastAt, tstz(s.endAt)
		if s.endLength != nil {
			endLen[i] = pgtype.Text{String: decimal(s.endLength), Valid: true}
		}
		platform[i], version[i], country[i] = optText(s.platform), optText(s.version), optText(s.country)
		begin[i], length[i] = s.begin(), decimal(s.length())
		day[i], hour[i] = dayIn(begin[i], zone(k.game)), hourOf(begin[i])
	}
	return []any{games, subjects, sids, start, first, last, end, endLen, platform, version, country, begin, length, day, hour, tuples}
}

// queueRollups adds the non-zero deltas, in key order, one statement per
// grain, daily first: every round takes its locks in the same order.
func queueRollups(b *pgx.Batch, d deltas) {
	keys := make([]rollKey, 0, len(d))
	for k, v := range d {
		if !v.isZero() && (k.grain != minutely || k.metric != mOnline) { // online: queueCCU
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, cmpRollKey)
	for len(keys) > 0 {
		g := keys[0].grain
		n := slices.IndexFunc(keys, func(k rollKey) bool { return k.grain != g })
		if n < 0 {
			n = len(keys)
		}
		games, metrics, dims, values := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		buckets := make([]time.Time, n)
		for i, k := range keys[:n] {
			games[i], buckets[i], metrics[i], dims[i], values[i] = k.game, k.bucket, k.metric, k.dim, d[k].String()
		}
		switch g {
		case tupleDaily, tupleHourly:
			tuples := make([]int64, n)
			for i, k := range keys[:n] {
				tuples[i] = k.tuple
			}
			b.Queue(upsertRollups(g), games, buckets, metrics, dims, tuples, values)
		case dimDaily:
			names, vals := make([]string, n), make([]string, n)
			dn := events.DimensionNames()
			for i, k := range keys[:n] {
				names[i], vals[i] = dn[k.dname], k.dvalue
			}
			b.Queue(upsertRollups(g), games, buckets, metrics, dims, names, vals, values)
		default:
			b.Queue(upsertRollups(g), games, buckets, metrics, dims, values)
		}
		keys = keys[n:]
	}
}

// backlog is the pending rows a process wrote and has not seen
// aggregated yet (by itself or another replica).
type backlog struct {
	mu      sync.Mutex
	rows    map[int64]int
	events  int
	changed chan struct{} // closed and replaced on every change
}

func newBacklog() *backlog {
	return &backlog{rows: make(map[int64]int), changed: make(chan struct{})}
}

func (l *backlog) add(rows []pendingRow) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range rows {
		l.rows[r.seq] = r.events
		l.events += r.events
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *backlog) remove(seqs []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range seqs {
		if n, ok := l.rows[s]; ok {
			l.events -= n
			delete(l.rows, s)
		}
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *backlog) eventCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.events
}

// snapshot returns the rows, their events and a channel closed at the next change.
func (l *backlog) snapshot() ([]int64, int, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seqs := make([]int64, 0, len(l.rows))
	for s := range l.rows {
		seqs = append(seqs, s)
	}
	return seqs, l.events, l.changed
}

// waitUntil waits until done(events pending) holds, hurrying the
// aggregator and asking the database every 100 ms which rows are gone
// (another replica may have aggregated them).
func (a *aggregator) waitUntil(ctx context.Context, done func(events int) bool) error {
	if done(a.own.eventCount()) {
		return nil // the common case: nothing to wait for, no hurry
	}
	a.urgent.Add(1)
	defer a.urgent.Add(-1)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		seqs, events, changed := a.own.snapshot()
		if done(events) {
			return nil
		}
		signal(a.hurry)
		select {
		case <-changed:
		case <-tick.C:
			rows, _ := a.pool.Query(ctx, reconcilePending, seqs)
			still, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				continue // the database is away: keep waiting
			}
			pending := make(map[int64]bool, len(still))
			for _, s := range still {
				pending[s] = true
			}
			if gone := slices.DeleteFunc(seqs, func(s int64) bool { return pending[s] }); len(gone) > 0 {
				a.own.remove(gone)
				a.p.metrics.pending.Set(float64(a.own.eventCount()))
			}
		case <-ctx.Done():
			return fmt.Errorf("%d stored events not aggregated yet: %w", events, ctx.Err())
		}
	}
}
