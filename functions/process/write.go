package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// writer applies batches of records to PostgreSQL in one transaction each.
// It is used by one goroutine at a time (the batcher's flusher or the
// consumer); concurrent writers in other processes are safe because every
// lock is taken in key order and deadlocks are retried.
type writer struct {
	pool       *pgxpool.Pool
	partitions *store.Partitions
	zones      func(game string) *time.Location
	rezone     func(game string, loc *time.Location) // nil: zones is fixed
	retries    int
}

// outcome of writing one batch.
type outcome struct {
	fresh  []*record // records that were new (not duplicates)
	erased []*record // records of erased players, not stored (see erasedError)
}

// errZonesChanged aborts a batch transaction that bucketed days by a time
// zone the game no longer has; it is rerun with the new zone.
var errZonesChanged = errors.New("time zone changed")

// erasedError aborts a batch transaction that holds events of a player
// erased after ingest received them: the batch is rerun without them.
type erasedError struct{ recs map[*record]bool }

func (e *erasedError) Error() string {
	return fmt.Sprintf("%d events of erased players", len(e.recs))
}

// permanent reports whether err is a fault of the data (it will fail the
// same way every time) rather than of the database being unavailable.
func permanent(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23") // data exception, integrity violation
	}
	return false
}

// retryable reports whether a transaction lost a race and may simply be rerun.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// write stores recs (unique by game and id) and every aggregate they change.
func (w *writer) write(ctx context.Context, recs []*record) (outcome, error) {
	// Key order for the event id inserts, so concurrent writers in other
	// processes wait for each other instead of deadlocking.
	slices.SortFunc(recs, func(a, b *record) int {
		return cmpPlayer(playerKey{a.game, a.id}, playerKey{b.game, b.id})
	})
	out, err := w.writeSorted(ctx, recs)
	if missingPartition(err) {
		// retain archived and dropped a day partition this process had
		// created, and a late event for that day arrived: create it again
		// (retain merges it into the day's archive on its next run).
		w.partitions.Forget()
		out, err = w.writeSorted(ctx, recs)
	}
	return out, err
}

// missingPartition reports whether err is an insert into a dropped partition.
func missingPartition(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23514" && strings.Contains(pe.Message, "no partition of relation")
}

func (w *writer) writeSorted(ctx context.Context, recs []*record) (outcome, error) {
	for _, r := range recs {
		if err := w.partitions.Ensure(ctx, r.game, r.day); err != nil {
			return outcome{}, fmt.Errorf("events partition: %w", err)
		}
	}
	var (
		out    outcome
		err    error
		erased []*record
	)
	for attempt := 0; ; attempt++ {
		out, err = w.writeOwnTx(ctx, recs)
		if ee := (*erasedError)(nil); errors.As(err, &ee) {
			// Rare: rerun without them (at most once per player, since
			// the erasure is already recorded).
			recs = slices.DeleteFunc(recs, func(r *record) bool {
				if ee.recs[r] {
					erased = append(erased, r)
					return true
				}
				return false
			})
			attempt--
			if len(recs) == 0 {
				return outcome{erased: erased}, nil
			}
			continue
		}
		if errors.Is(err, errZonesChanged) && attempt < w.retries {
			continue
		}
		if err == nil || !retryable(err) || attempt >= w.retries {
			out.erased = erased
			return out, err
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
}

// querier is what a batch is written through: a pgx.Tx inside a longer
// transaction (rebuild), or a pooled connection the batch begins and
// commits its own transaction on.
type querier interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error)
}

// writeOwnTx writes recs in a transaction of their own. BEGIN and the zone
// locks travel with the first statements and COMMIT with the last ones: two
// round trips instead of five, each of which also waits for the writer's
// goroutine to be scheduled again on a busy machine, and the hot rollup
// rows stay locked only while the last statements run, not also while a
// separate COMMIT travels (concurrent batches of one game queue on them).
func (w *writer) writeOwnTx(ctx context.Context, recs []*record) (outcome, error) {
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return outcome{}, err
	}
	defer conn.Release() // destroys the connection if it is still in a transaction
	out, err := w.writeTx(ctx, conn, recs, true)
	if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
		if _, rerr := conn.Exec(ctx, "ROLLBACK"); rerr != nil {
			conn.Conn().Close(ctx)
		}
	}
	return out, err
}

type playerKey struct{ game, subject string }
type sessionKey struct{ game, subject, session string }

func cmpPlayer(a, b playerKey) int {
	if c := strings.Compare(a.game, b.game); c != 0 {
		return c
	}
	return strings.Compare(a.subject, b.subject)
}

func cmpSession(a, b sessionKey) int {
	if c := cmpPlayer(playerKey{a.game, a.subject}, playerKey{b.game, b.subject}); c != 0 {
		return c
	}
	return strings.Compare(a.session, b.session)
}

// copyThreshold is the batch size from which raw events are written with
// COPY; below it the extra round trip costs more than COPY saves.
const copyThreshold = 256

var eventColumns = []string{"gameid", "day", "id", "type", "source", "subject", "time", "sessionid", "receivedtime", "data", "extensions"}

// rawJSON passes JSON text to a jsonb column (nil is NULL).
func rawJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return json.RawMessage(b)
}

func tstz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

func optText(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

func optJSON(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

const (
	// Dedup: the ids that come back are new, and only they are stored and counted.
	insertEventIDs = `INSERT INTO event_ids (gameid, id, day)
SELECT * FROM unnest($1::text[], $2::text[], $3::date[])
ON CONFLICT DO NOTHING
RETURNING gameid, id`

	insertEvents = `INSERT INTO events (gameid, day, id, type, source, subject, time, sessionid, receivedtime, data, extensions)
SELECT gameid, day, id, type, source, subject, time, sessionid, receivedtime, data::jsonb, ext::jsonb
FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
            $8::text[], $9::timestamptz[], $10::text[], $11::text[])
     AS u(gameid, id, day, type, source, subject, time, sessionid, receivedtime, data, ext)
ON CONFLICT DO NOTHING`

	insertPlayers = `INSERT INTO players (gameid, subject, first_seen, last_seen, install_day, first_purchase_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::date[], $6::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING gameid, subject`

	lockPlayers = `SELECT p.gameid, p.subject, p.first_seen, p.last_seen, p.first_purchase_at
FROM players p JOIN unnest($1::text[], $2::text[]) AS u(gameid, subject) USING (gameid, subject)
ORDER BY p.gameid COLLATE "C", p.subject COLLATE "C"
FOR UPDATE OF p`

	sessionColumns = `gameid, subject, sessionid, start_at, first_at, last_at, end_at, end_length_s,
	platform, app_version, country, begin_at, length_s, day, hour`

	insertSessions = `INSERT INTO sessions (` + sessionColumns + `)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[],
	$7::timestamptz[], $8::numeric[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::numeric[],
	$14::date[], $15::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING gameid, subject, sessionid`

	// Erasures of the batch's players (by store.PlayerHash), with when each
	// began: events ingest received before then are not stored again.
	checkErasures = `SELECT e.gameid, e.player_sha256, max(e.started_at)
FROM erasures e JOIN unnest($1::text[], $2::text[]) AS u(gameid, hash)
	ON e.gameid = u.gameid AND e.player_sha256 = u.hash
GROUP BY e.gameid, e.player_sha256`

	lockSessions = `SELECT s.gameid, s.subject, s.sessionid, s.start_at, s.first_at, s.last_at, s.end_at,
	s.end_length_s::text, s.platform, s.app_version, s.country
FROM sessions s JOIN unnest($1::text[], $2::text[], $3::text[]) AS u(gameid, subject, sessionid)
	USING (gameid, subject, sessionid)
ORDER BY s.gameid COLLATE "C", s.subject COLLATE "C", s.sessionid COLLATE "C"
FOR UPDATE OF s`

	updatePlayers = `UPDATE players p SET first_seen = u.first_seen, last_seen = u.last_seen,
	install_day = u.install_day, first_purchase_at = u.first_purchase_at, sessions = p.sessions + u.new_sessions
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::date[], $6::timestamptz[], $7::bigint[])
	AS u(gameid, subject, first_seen, last_seen, install_day, first_purchase_at, new_sessions)
WHERE p.gameid = u.gameid AND p.subject = u.subject`

	updateSessions = `UPDATE sessions s SET start_at = u.start_at, first_at = u.first_at, last_at = u.last_at,
	end_at = u.end_at, end_length_s = u.end_length_s, platform = u.platform, app_version = u.app_version,
	country = u.country, begin_at = u.begin_at, length_s = u.length_s, day = u.day, hour = u.hour
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[],
	$7::timestamptz[], $8::numeric[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::numeric[],
	$14::date[], $15::timestamptz[])
	AS u(gameid, subject, sessionid, start_at, first_at, last_at, end_at, end_length_s, platform, app_version,
	     country, begin_at, length_s, day, hour)
WHERE s.gameid = u.gameid AND s.subject = u.subject AND s.sessionid = u.sessionid`

	// Activity rows: a new row counts one active player, a row that is new
	// or turns paid counts one paying player, and a new day also counts one
	// player of the player's install cohort (players already holds this
	// batch's install day: updatePlayers runs earlier in the transaction).
	activityDays = `WITH n AS (
	INSERT INTO player_days AS p (gameid, day, subject, paid)
	SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::bool[])
	ON CONFLICT (gameid, day, subject) DO UPDATE SET paid = true WHERE excluded.paid AND NOT p.paid
	RETURNING gameid, day, subject, (xmax = 0) AS inserted, paid
), c AS (
	SELECT gameid, day, 'active_players' AS metric, count(*) FILTER (WHERE inserted) AS v FROM n GROUP BY 1, 2
	UNION ALL
	SELECT gameid, day, 'paying_players', count(*) FILTER (WHERE paid) FROM n GROUP BY 1, 2
), r AS (
	INSERT INTO rollup_daily AS r (gameid, day, metric, dim, value)
	SELECT gameid, day, metric, '', v FROM c WHERE v > 0
	ORDER BY gameid COLLATE "C", day, metric COLLATE "C"
	ON CONFLICT (gameid, day, metric, dim) DO UPDATE SET value = r.value + excluded.value
)
INSERT INTO cohort_days AS cd (gameid, install_day, day, players)
SELECT n.gameid, p.install_day, n.day, count(*)
FROM n JOIN players p ON p.gameid = n.gameid AND p.subject = n.subject
WHERE n.inserted
GROUP BY n.gameid, p.install_day, n.day
ORDER BY n.gameid COLLATE "C", p.install_day, n.day
ON CONFLICT (gameid, install_day, day) DO UPDATE SET players = cd.players + excluded.players`

	// A player whose install day moved earlier takes their existing
	// activity days from the old cohort to the new one. It runs before this
	// batch's activity is inserted, so those new days are counted once, by
	// activityDays, in the new cohort.
	moveCohorts = `WITH m AS (
	SELECT u.gameid, u.old_day, u.new_day, d.day
	FROM unnest($1::text[], $2::text[], $3::date[], $4::date[]) AS u(gameid, subject, old_day, new_day)
	JOIN player_days d ON d.gameid = u.gameid AND d.subject = u.subject
), moves AS (
	SELECT gameid, old_day AS install_day, day, -count(*) AS n FROM m GROUP BY 1, 2, 3
	UNION ALL
	SELECT gameid, new_day, day, count(*) FROM m GROUP BY 1, 2, 3
)
INSERT INTO cohort_days AS cd (gameid, install_day, day, players)
SELECT gameid, install_day, day, sum(n)::bigint FROM moves
GROUP BY gameid, install_day, day
ORDER BY gameid COLLATE "C", install_day, day
ON CONFLICT (gameid, install_day, day) DO UPDATE SET players = cd.players + excluded.players`

	activityHours = `WITH n AS (
	INSERT INTO player_hours AS p (gameid, hour, subject, paid)
	SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::bool[])
	ON CONFLICT (gameid, hour, subject) DO UPDATE SET paid = true WHERE excluded.paid AND NOT p.paid
	RETURNING gameid, hour, (xmax = 0) AS inserted, paid
), c AS (
	SELECT gameid, hour, 'active_players' AS metric, count(*) FILTER (WHERE inserted) AS v FROM n GROUP BY 1, 2
	UNION ALL
	SELECT gameid, hour, 'paying_players', count(*) FILTER (WHERE paid) FROM n GROUP BY 1, 2
)
INSERT INTO rollup_hourly AS r (gameid, hour, metric, dim, value)
SELECT gameid, hour, metric, '', v FROM c WHERE v > 0
ORDER BY gameid COLLATE "C", hour, metric COLLATE "C"
ON CONFLICT (gameid, hour, metric, dim) DO UPDATE SET value = r.value + excluded.value`

	upsertSpend = `INSERT INTO player_spend AS s (gameid, subject, currency, amount_minor, purchases)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[], $5::bigint[])
ON CONFLICT (gameid, subject, currency) DO UPDATE
SET amount_minor = s.amount_minor + excluded.amount_minor, purchases = s.purchases + excluded.purchases`

	upsertHLL = `INSERT INTO players_hll_daily AS h (gameid, day, players)
SELECT gameid, day, hll_add_agg(hll_hash_text(subject))
FROM unnest($1::text[], $2::date[], $3::text[]) AS u(gameid, day, subject)
GROUP BY gameid, day
ORDER BY gameid COLLATE "C", day
ON CONFLICT (gameid, day) DO UPDATE SET players = hll_union(h.players, excluded.players)`

	upsertDaily = `INSERT INTO rollup_daily AS r (gameid, day, metric, dim, value)
SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::numeric[])
ON CONFLICT (gameid, day, metric, dim) DO UPDATE SET value = r.value + excluded.value`

	upsertHourly = `INSERT INTO rollup_hourly AS r (gameid, hour, metric, dim, value)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::numeric[])
ON CONFLICT (gameid, hour, metric, dim) DO UPDATE SET value = r.value + excluded.value`

	upsertMinutely = `INSERT INTO rollup_minutely AS r (gameid, minute, metric, dim, value)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::numeric[])
ON CONFLICT (gameid, minute, metric, dim) DO UPDATE SET value = r.value + excluded.value`
)

// upsertRollups is the statement that adds deltas to g's table.
func upsertRollups(g grain) string {
	switch g {
	case hourly:
		return upsertHourly
	case minutely:
		return upsertMinutely
	}
	return upsertDaily
}

// writeTx is one attempt at a batch through tx; own says the batch begins
// and commits a transaction of its own (see writeOwnTx), else tx is one
// already. Round trip 1 inserts the raw events (learning which are new),
// creates missing player and session rows and locks the touched ones; Go
// then merges states and computes rollup deltas; round trip 2 writes
// states, activity and rollups (rows every batch of the game touches last).
func (w *writer) writeTx(ctx context.Context, tx querier, recs []*record, own bool) (outcome, error) {
	b := &pgx.Batch{}
	if own {
		b.Queue("BEGIN")
		// The batch statements join unnested arrays to tables by key: their
		// plan does not depend on the arrays, and planning them anew each
		// time (PostgreSQL's choice for them) cost up to 15% of a batch.
		b.Queue("SET LOCAL plan_cache_mode = force_generic_plan")
		queueZoneLock(b, recs)
	} else if err := w.lockZones(ctx, tx, recs); err != nil {
		return outcome{}, err
	}
	n := len(recs)
	// Per-player and per-session state of this batch, merged from every
	// record (duplicates merge to the same state, so including them is harmless).
	players := make(map[playerKey]*playerState)
	sessions := make(map[sessionKey]*sessionState)
	for _, r := range recs {
		pk := playerKey{r.game, r.subject}
		ps := playerOf(r)
		if p := players[pk]; p != nil {
			p.merge(ps)
		} else {
			players[pk] = &ps
		}
		if r.sessionID != "" {
			sk := sessionKey{r.game, r.subject, r.sessionID}
			ss := sessionOf(r)
			if s := sessions[sk]; s != nil {
				s.merge(ss)
			} else {
				sessions[sk] = &ss
			}
		}
	}
	pkeys := make([]playerKey, 0, len(players))
	for k := range players {
		pkeys = append(pkeys, k)
	}
	slices.SortFunc(pkeys, cmpPlayer)
	skeys := make([]sessionKey, 0, len(sessions))
	for k := range sessions {
		skeys = append(skeys, k)
	}
	slices.SortFunc(skeys, cmpSession)

	// Round trip 1 (after BEGIN and the zone locks, for a batch in its own
	// transaction).
	{
		games, ids, days := make([]string, n), make([]string, n), make([]time.Time, n)
		for i, r := range recs {
			games[i], ids[i], days[i] = r.game, r.id, r.day
		}
		b.Queue(insertEventIDs, games, ids, days)
	}
	{
		m := len(pkeys)
		games, subjects, first, last, install, fp := make([]string, m), make([]string, m), make([]time.Time, m),
			make([]time.Time, m), make([]time.Time, m), make([]pgtype.Timestamptz, m)
		for i, k := range pkeys {
			p := players[k]
			games[i], subjects[i], first[i], last[i] = k.game, k.subject, p.firstSeen, p.lastSeen
			install[i], fp[i] = dayIn(p.firstSeen, w.zones(k.game)), tstz(p.firstPurchase)
		}
		b.Queue(insertPlayers, games, subjects, first, last, install, fp)
		b.Queue(lockPlayers, games, subjects)
	}
	if len(skeys) > 0 {
		b.Queue(insertSessions, w.sessionArgs(skeys, sessions)...)
		games, subjects, sids := make([]string, len(skeys)), make([]string, len(skeys)), make([]string, len(skeys))
		for i, k := range skeys {
			games[i], subjects[i], sids[i] = k.game, k.subject, k.session
		}
		b.Queue(lockSessions, games, subjects, sids)
	}
	// Last, so that it runs once this transaction holds (or has inserted)
	// every player row of the batch: retain's erasure locks the player row
	// before deleting, so an erasure either finished before (and is seen
	// here) or waits for this batch to commit (and deletes what it wrote).
	byHash := make(map[string]playerKey, len(pkeys))
	{
		games, hashes := make([]string, len(pkeys)), make([]string, len(pkeys))
		for i, k := range pkeys {
			games[i], hashes[i] = k.game, store.PlayerHash(k.game, k.subject)
			byHash[hashes[i]] = k
		}
		b.Queue(checkErasures, games, hashes)
	}
	res := tx.SendBatch(ctx, b)
	if own {
		for range 2 { // BEGIN, SET
			if _, err := res.Exec(); err != nil {
				res.Close()
				return outcome{}, fmt.Errorf("begin: %w", err)
			}
		}
		changed, err := w.readZones(res)
		if err != nil {
			res.Close()
			return outcome{}, err
		}
		if len(changed) > 0 {
			// Rare (a game's time zone was just set): the statements
			// already sent bucketed days by the old zone.
			res.Close()
			w.applyZones(changed, recs)
			return outcome{}, errZonesChanged
		}
	}
	rows, _ := res.Query()
	var out outcome
	freshIDs := make(map[[2]string]struct{}, n)
	var g, id string
	_, err := pgx.ForEachRow(rows, []any{&g, &id}, func() error {
		freshIDs[[2]string{g, id}] = struct{}{}
		return nil
	})
	if err != nil {
		res.Close()
		return out, fmt.Errorf("insert events: %w", err)
	}
	for _, r := range recs {
		if _, ok := freshIDs[[2]string{r.game, r.id}]; ok {
			out.fresh = append(out.fresh, r)
		}
	}
	newPlayers := make(map[playerKey]bool)
	rows, _ = res.Query()
	var subject string
	if _, err := pgx.ForEachRow(rows, []any{&g, &subject}, func() error {
		newPlayers[playerKey{g, subject}] = true
		return nil
	}); err != nil {
		res.Close()
		return out, fmt.Errorf("insert players: %w", err)
	}
	oldPlayers := make(map[playerKey]playerState)
	rows, _ = res.Query()
	var first, last time.Time
	var fp pgtype.Timestamptz
	if _, err := pgx.ForEachRow(rows, []any{&g, &subject, &first, &last, &fp}, func() error {
		k := playerKey{g, subject}
		if !newPlayers[k] {
			oldPlayers[k] = playerState{firstSeen: first.UTC(), lastSeen: last.UTC(), firstPurchase: fp.Time.UTC()}
		}
		return nil
	}); err != nil {
		res.Close()
		return out, fmt.Errorf("lock players: %w", err)
	}
	newSessions := make(map[sessionKey]bool)
	oldSessions := make(map[sessionKey]sessionState)
	if len(skeys) > 0 {
		rows, _ = res.Query()
		var sid string
		if _, err := pgx.ForEachRow(rows, []any{&g, &subject, &sid}, func() error {
			newSessions[sessionKey{g, subject, sid}] = true
			return nil
		}); err != nil {
			res.Close()
			return out, fmt.Errorf("insert sessions: %w", err)
		}
		rows, _ = res.Query()
		var start, firstAt, lastAt, end pgtype.Timestamptz
		var endLen, platform, version, country pgtype.Text
		if _, err := pgx.ForEachRow(rows, []any{&g, &subject, &sid, &start, &firstAt, &lastAt, &end, &endLen, &platform, &version, &country}, func() error {
			k := sessionKey{g, subject, sid}
			if newSessions[k] {
				return nil
			}
			s := sessionState{startAt: start.Time.UTC(), firstAt: firstAt.Time.UTC(), lastAt: lastAt.Time.UTC(), endAt: end.Time.UTC(),
				platform: platform.String, version: version.String, country: country.String}
			if !start.Valid {
				s.startAt = time.Time{}
			}
			if !end.Valid {
				s.endAt = time.Time{}
			}
			if endLen.Valid {
				s.endLength = rat(json.Number(endLen.String))
			}
			oldSessions[k] = s
			return nil
		}); err != nil {
			res.Close()
			return out, fmt.Errorf("lock sessions: %w", err)
		}
	}
	rows, _ = res.Query()
	erasedAt := map[playerKey]time.Time{}
	var hash string
	var began time.Time
	if _, err := pgx.ForEachRow(rows, []any{&g, &hash, &began}, func() error {
		erasedAt[byHash[hash]] = began
		return nil
	}); err != nil {
		res.Close()
		return out, fmt.Errorf("check erasures: %w", err)
	}
	if err := res.Close(); err != nil {
		return out, err
	}
	if len(erasedAt) > 0 {
		gone := map[*record]bool{}
		for _, r := range recs {
			at, ok := erasedAt[playerKey{r.game, r.subject}]
			received := r.received
			if received.IsZero() {
				received = r.time
			}
			if ok && !received.After(at) {
				gone[r] = true
			}
		}
		if len(gone) > 0 {
			return out, &erasedError{recs: gone}
		}
	}

	// Merge and compute deltas.
	d := make(deltas)
	newSessionsPerPlayer := make(map[playerKey]int64)
	var changedSessions []sessionKey
	for _, k := range skeys {
		loc := w.zones(k.game)
		batch := sessions[k]
		if newSessions[k] {
			d.sessionContribution(k.game, *batch, loc, +1)
			newSessionsPerPlayer[playerKey{k.game, k.subject}]++
			continue
		}
		old, ok := oldSessions[k]
		if !ok {
			return out, fmt.Errorf("session %v neither inserted nor found", k)
		}
		merged := old
		merged.merge(*batch)
		if sameSession(old, merged) {
			continue
		}
		d.sessionContribution(k.game, old, loc, -1)
		d.sessionContribution(k.game, merged, loc, +1)
		*batch = merged
		changedSessions = append(changedSessions, k)
	}
	var changedPlayers []playerKey
	var moved struct {
		games, subjects []string
		from, to        []time.Time
	}
	for _, k := range pkeys {
		loc := w.zones(k.game)
		batch := players[k]
		if newPlayers[k] {
			d.playerContribution(k.game, *batch, loc, +1)
			if newSessionsPerPlayer[k] > 0 {
				changedPlayers = append(changedPlayers, k)
			}
			continue
		}
		old, ok := oldPlayers[k]
		if !ok {
			return out, fmt.Errorf("player %v neither inserted nor found", k)
		}
		merged := old
		merged.merge(*batch)
		*batch = merged
		if samePlayer(merged, old) && newSessionsPerPlayer[k] == 0 {
			continue
		}
		// Moving the contributions of the old state to the new one; when the
		// buckets did not change the two cancel out and nothing is written.
		d.playerContribution(k.game, old, loc, -1)
		d.playerContribution(k.game, merged, loc, +1)
		changedPlayers = append(changedPlayers, k)
		if from, to := dayIn(old.firstSeen, loc), dayIn(merged.firstSeen, loc); !from.Equal(to) {
			moved.games, moved.subjects = append(moved.games, k.game), append(moved.subjects, k.subject)
			moved.from, moved.to = append(moved.from, from), append(moved.to, to)
		}
	}

	// Counters, activity and spend come from new events only.
	type actDay struct {
		game string
		day  time.Time
		sub  string
	}
	days := make(map[actDay]bool)
	hours := make(map[actDay]bool)
	type spendKey struct{ game, subject, currency string }
	spend := make(map[spendKey]*[2]int64)
	for _, r := range out.fresh {
		loc := w.zones(r.game)
		d.countEvent(r, loc)
		paid := r.typ == events.TypePurchase
		kd, kh := actDay{r.game, r.local, r.subject}, actDay{r.game, r.hour, r.subject}
		days[kd] = days[kd] || paid
		hours[kh] = hours[kh] || paid
		if paid {
			if amt, err := r.p.AmountMinor.Int64(); err == nil {
				sk := spendKey{r.game, r.subject, r.p.Currency}
				s := spend[sk]
				if s == nil {
					s = &[2]int64{}
					spend[sk] = s
				}
				s[0] += amt
				s[1]++
			}
		}
	}

	// Round trip 2 (and a COPY before it for big batches, which stores
	// raw rows faster than an INSERT; the rows are known to be new).
	b = &pgx.Batch{}
	if m := len(out.fresh); m >= copyThreshold {
		rows := make([][]any, m)
		for i, r := range out.fresh {
			rows[i] = []any{r.game, r.day, r.id, r.typ, r.source, r.subject, r.time, optText(r.sessionID), tstz(r.received),
				rawJSON(r.data), rawJSON(r.ext)}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, pgx.CopyFromRows(rows)); err != nil {
			return out, fmt.Errorf("copy events: %w", err)
		}
	} else if m > 0 {
		games, ids, subjects, types, sources, sids, datas, exts := make([]string, m), make([]string, m), make([]string, m),
			make([]string, m), make([]string, m), make([]pgtype.Text, m), make([]*string, m), make([]*string, m)
		days, times, received := make([]time.Time, m), make([]time.Time, m), make([]pgtype.Timestamptz, m)
		for i, r := range out.fresh {
			games[i], ids[i], days[i], types[i], sources[i], subjects[i] = r.game, r.id, r.day, r.typ, r.source, r.subject
			times[i], sids[i], received[i], datas[i], exts[i] = r.time, optText(r.sessionID), tstz(r.received), optJSON(r.data), optJSON(r.ext)
		}
		b.Queue(insertEvents, games, ids, days, types, sources, subjects, times, sids, received, datas, exts)
	}
	if len(changedPlayers) > 0 {
		m := len(changedPlayers)
		games, subjects, first, last, install, fp, ns := make([]string, m), make([]string, m), make([]time.Time, m),
			make([]time.Time, m), make([]time.Time, m), make([]pgtype.Timestamptz, m), make([]int64, m)
		for i, k := range changedPlayers {
			p := players[k]
			games[i], subjects[i], first[i], last[i] = k.game, k.subject, p.firstSeen, p.lastSeen
			install[i], fp[i], ns[i] = dayIn(p.firstSeen, w.zones(k.game)), tstz(p.firstPurchase), newSessionsPerPlayer[k]
		}
		b.Queue(updatePlayers, games, subjects, first, last, install, fp, ns)
	}
	if len(changedSessions) > 0 {
		b.Queue(updateSessions, w.sessionArgs(changedSessions, sessions)...)
	}
	if len(spend) > 0 {
		keys := make([]spendKey, 0, len(spend))
		for k := range spend {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b spendKey) int {
			return cmpSession(sessionKey{a.game, a.subject, a.currency}, sessionKey{b.game, b.subject, b.currency})
		})
		games, subs, curs, amts, cnts := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys)),
			make([]string, len(keys)), make([]int64, len(keys))
		for i, k := range keys {
			games[i], subs[i], curs[i] = k.game, k.subject, k.currency
			amts[i], cnts[i] = fmt.Sprint(spend[k][0]), spend[k][1]
		}
		b.Queue(upsertSpend, games, subs, curs, amts, cnts)
	}
	// From here on rows every batch of the game writes (cohorts, activity
	// counts, sketches, rollups): last, so they stay locked for as short a
	// time as possible.
	if len(moved.games) > 0 {
		b.Queue(moveCohorts, moved.games, moved.subjects, moved.from, moved.to)
	}
	if len(days) > 0 {
		queueActivity(b, activityDays, days, func(k actDay) (string, time.Time, string) { return k.game, k.day, k.sub })
		queueActivity(b, activityHours, hours, func(k actDay) (string, time.Time, string) { return k.game, k.day, k.sub })
		// HyperLogLog of the day's players, for distinct counts over ranges.
		keys := make([]actDay, 0, len(days))
		for k := range days {
			keys = append(keys, k)
		}
		games, ds, subs := make([]string, len(keys)), make([]time.Time, len(keys)), make([]string, len(keys))
		for i, k := range keys {
			games[i], ds[i], subs[i] = k.game, k.day, k.sub
		}
		b.Queue(upsertHLL, games, ds, subs)
	}
	queueRollups(b, d)
	if own {
		b.Queue("COMMIT")
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return out, fmt.Errorf("write aggregates: %w", err)
	}
	return out, nil
}

func samePlayer(a, b playerState) bool {
	return a.firstSeen.Equal(b.firstSeen) && a.lastSeen.Equal(b.lastSeen) && a.firstPurchase.Equal(b.firstPurchase)
}

func sameSession(a, b sessionState) bool {
	return a.startAt.Equal(b.startAt) && a.firstAt.Equal(b.firstAt) && a.lastAt.Equal(b.lastAt) && a.endAt.Equal(b.endAt) &&
		(a.endLength == nil) == (b.endLength == nil) && (a.endLength == nil || a.endLength.Cmp(b.endLength) == 0) &&
		a.platform == b.platform && a.version == b.version && a.country == b.country
}

// sessionArgs are the arguments of insertSessions and updateSessions.
func (w *writer) sessionArgs(keys []sessionKey, states map[sessionKey]*sessionState) []any {
	m := len(keys)
	games, subjects, sids := make([]string, m), make([]string, m), make([]string, m)
	start, first, last, end := make([]pgtype.Timestamptz, m), make([]time.Time, m), make([]time.Time, m), make([]pgtype.Timestamptz, m)
	endLen := make([]pgtype.Text, m)
	platform, version, country := make([]pgtype.Text, m), make([]pgtype.Text, m), make([]pgtype.Text, m)
	begin, length, day, hour := make([]time.Time, m), make([]string, m), make([]time.Time, m), make([]time.Time, m)
	for i, k := range keys {
		s := states[k]
		games[i], subjects[i], sids[i] = k.game, k.subject, k.session
		start[i], first[i], last[i], end[i] = tstz(s.startAt), s.firstAt, s.lastAt, tstz(s.endAt)
		if s.endLength != nil {
			endLen[i] = pgtype.Text{String: decimal(s.endLength), Valid: true}
		}
		platform[i], version[i], country[i] = optText(s.platform), optText(s.version), optText(s.country)
		begin[i], length[i] = s.begin(), decimal(s.length())
		day[i], hour[i] = dayIn(begin[i], w.zones(k.game)), hourOf(begin[i])
	}
	return []any{games, subjects, sids, start, first, last, end, endLen, platform, version, country, begin, length, day, hour}
}

func queueActivity[K comparable](b *pgx.Batch, sql string, set map[K]bool, parts func(K) (string, time.Time, string)) {
	type row struct {
		game string
		t    time.Time
		sub  string
		paid bool
	}
	rows := make([]row, 0, len(set))
	for k, paid := range set {
		g, t, s := parts(k)
		rows = append(rows, row{g, t, s, paid})
	}
	slices.SortFunc(rows, func(a, b row) int {
		if c := strings.Compare(a.game, b.game); c != 0 {
			return c
		}
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		return strings.Compare(a.sub, b.sub)
	})
	games, ts, subs, paid := make([]string, len(rows)), make([]time.Time, len(rows)), make([]string, len(rows)), make([]bool, len(rows))
	for i, r := range rows {
		games[i], ts[i], subs[i], paid[i] = r.game, r.t, r.sub, r.paid
	}
	b.Queue(sql, games, ts, subs, paid)
}

// queueRollups adds the non-zero deltas, in key order, to b.
func queueRollups(b *pgx.Batch, d deltas) {
	keys := make([]rollKey, 0, len(d))
	for k, v := range d {
		if !v.isZero() {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b rollKey) int {
		if a.grain != b.grain {
			return int(a.grain) - int(b.grain)
		}
		if c := strings.Compare(a.game, b.game); c != 0 {
			return c
		}
		if c := a.bucket.Compare(b.bucket); c != 0 {
			return c
		}
		if c := strings.Compare(a.metric, b.metric); c != 0 {
			return c
		}
		return strings.Compare(a.dim, b.dim)
	})
	// One statement per grain, daily first: every batch takes its locks in
	// the same order.
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
		b.Queue(upsertRollups(g), games, buckets, metrics, dims, values)
		keys = keys[n:]
	}
}
