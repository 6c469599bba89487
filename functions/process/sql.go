package process

import "github.com/gamemetrics/gamemetrics/shared/store"

// Every statement process runs, by stage. Arrays travel as parameters and
// are joined to the tables by key (unnest), so each statement is one
// set-based write or read whatever the batch size, and its plan does not
// depend on the arrays (the transactions ask for generic plans).

// ---- Stage 1: make delivered events durable (stage1.go) ----

// gameLock is the write lock key of the game in column id.
var gameLock = store.GameLockKey("id")

// lockGamesShared takes the write locks of a transaction's games (see
// store.GameLockKey), in key order.
var lockGamesShared = `SELECT pg_advisory_xact_lock_shared(` + gameLock + `) FROM unnest($1::text[]) AS u(id) ORDER BY id`

const (
	// storeIDs is the dedup, and the erasure check: it inserts the
	// batch's event ids (the ids that come back, with a NULL time, are new,
	// and only they are stored and counted) and returns the erasures of the
	// batch's players (by store.PlayerHash) with when each began: events
	// ingest received before then are not stored. Under the games' write
	// locks no erasure can begin until the transaction ends (see
	// store.LockGameWrites).
	storeIDs = `WITH held AS (
	SELECT e.gameid, e.player_sha256, max(e.started_at) AS began
	FROM erasures e JOIN unnest($4::text[], $5::text[]) AS u(gameid, hash)
		ON e.gameid = u.gameid AND e.player_sha256 = u.hash
	GROUP BY e.gameid, e.player_sha256
), ids AS (
	INSERT INTO event_ids (gameid, id, day)
	SELECT * FROM unnest($1::text[], $2::text[], $3::date[])
	ON CONFLICT DO NOTHING
	RETURNING gameid, id
)
SELECT gameid, id, NULL::timestamptz FROM ids
UNION ALL
SELECT gameid, player_sha256, began FROM held`

	// deleteEventIDs takes back ids of events that are not stored after
	// all (a player's erasure holds them).
	deleteEventIDs = `DELETE FROM event_ids i USING unnest($1::text[], $2::text[]) AS u(gameid, id)
WHERE i.gameid = u.gameid AND i.id = u.id`

	// insertPending queues each game's new events for stage 2.
	insertPending = `INSERT INTO pending_events (gameid, events, day_from, day_to, batch)
SELECT * FROM unnest($1::text[], $2::int[], $3::date[], $4::date[], $5::bytea[])
RETURNING seq, events`
)

var eventColumns = []string{"gameid", "day", "id", "type", "source", "subject", "time", "sessionid", "receivedtime", "data", "extensions"}

// ---- Stage 2: claim pending events (aggregate.go) ----

// claimPending takes the games of $3 that no other aggregator holds
// and no time zone change or erasure start is waiting for (advisory
// locks tried, never waited for: an aggregator holds a game until its
// transaction ends, a crashed one's lock ends with its connection),
// and deletes and returns the rows of $1 that belong to them. The
// deletion commits with the aggregates: a transaction that fails
// leaves the rows pending.
var claimPending = `WITH locked AS MATERIALIZED (
	SELECT id FROM unnest($3::text[]) AS u(id)
	WHERE pg_try_advisory_xact_lock(hashtextextended('gamemetrics/aggregate/' || id, 0))
	  AND pg_try_advisory_xact_lock_shared(` + gameLock + `)
)
DELETE FROM pending_events p USING unnest($1::bigint[], $2::text[]) AS w(seq, gameid), locked
WHERE p.seq = w.seq AND w.gameid = locked.id
RETURNING p.seq, p.gameid, p.created_at, p.batch`

const (
	// pendingCandidates lists the oldest pending rows (without their
	// events) to choose an aggregation's slice from.
	pendingCandidates = `SELECT seq, gameid, events, created_at FROM pending_events ORDER BY seq LIMIT $1`

	// readZones reads the time zones of games whose write locks are held
	// (a separate statement, so its snapshot is taken after the locks).
	readZones = `SELECT id, timezone FROM games WHERE id = ANY($1)`

	// recentErasures finds erasures that began after the oldest claimed
	// row was stored: the erased players' events in rows stored before
	// their erasure began are left out (and deleted); earlier erasures
	// were applied by stage 1.
	recentErasures = `SELECT gameid, player_sha256, max(started_at) FROM erasures
WHERE gameid = ANY($1) AND started_at > $2 GROUP BY gameid, player_sha256`

	// reconcilePending says which of a process's own pending rows are
	// still pending (others may have been aggregated by another replica).
	reconcilePending = `SELECT seq FROM pending_events WHERE seq = ANY($1)`

	// failPending sets a row aside that can never be aggregated.
	failPending = `WITH f AS (DELETE FROM pending_events WHERE seq = $1 RETURNING seq, gameid, created_at, batch)
INSERT INTO pending_events_failed (seq, gameid, created_at, reason, batch)
SELECT seq, gameid, created_at, $2, batch FROM f`

	// splitPending replaces a row by one row per event, to find the one
	// event that cannot be aggregated.
	splitPending = `WITH f AS (DELETE FROM pending_events WHERE seq = $1 RETURNING gameid, created_at)
INSERT INTO pending_events (gameid, created_at, events, day_from, day_to, batch)
SELECT f.gameid, f.created_at, 1, u.day, u.day, u.batch FROM f, unnest($2::date[], $3::bytea[]) AS u(day, batch)`
)

// ---- Stage 2: load the state of a batch's rows ----

const (
	// insertPlayers creates the batch's missing players with the batch's
	// state, so that lockPlayers locks every one of them (retain's erasure
	// and other writers wait for this transaction); the rows that come
	// back are new.
	insertPlayers = `INSERT INTO players (gameid, subject, first_seen, last_seen, install_day, first_purchase_at, tuple, purchase_tuple)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::date[], $6::timestamptz[], $7::bigint[], $8::bigint[])
ON CONFLICT DO NOTHING
RETURNING gameid, subject`

	lockPlayers = `SELECT p.gameid, p.subject, p.first_seen, p.last_seen, p.first_purchase_at, p.tuple, p.purchase_tuple
FROM players p JOIN unnest($1::text[], $2::text[]) AS u(gameid, subject) USING (gameid, subject)
ORDER BY p.gameid COLLATE "C", p.subject COLLATE "C"
FOR UPDATE OF p`

	sessionColumns = `gameid, subject, sessionid, start_at, first_at, last_at, end_at, end_length_s,
	platform, app_version, country, begin_at, length_s, day, hour, tuple`

	insertSessions = `INSERT INTO sessions (` + sessionColumns + `)
SELECT g, p, s, start_at, first_at, last_at, end_at, end_length_s::numeric, platform, app_version, country, begin_at,
	length_s::numeric, day, hour, tuple
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[],
	$7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::text[],
	$14::date[], $15::timestamptz[], $16::bigint[])
	AS u(g, p, s, start_at, first_at, last_at, end_at, end_length_s, platform, app_version, country, begin_at, length_s, day, hour, tuple)
ON CONFLICT DO NOTHING
RETURNING gameid, subject, sessionid`

	lockSessions = `SELECT s.gameid, s.subject, s.sessionid, s.start_at, s.first_at, s.last_at, s.end_at,
	s.end_length_s::text, s.platform, s.app_version, s.country, s.tuple
FROM sessions s JOIN unnest($1::text[], $2::text[], $3::text[]) AS u(gameid, subject, sessionid)
	USING (gameid, subject, sessionid)
ORDER BY s.gameid COLLATE "C", s.subject COLLATE "C", s.sessionid COLLATE "C"
FOR UPDATE OF s`

	// Activity rows are only written under their player's row lock, so
	// what these read stays true until the transaction ends.
	loadDays = `SELECT d.gameid, d.day, d.subject, d.paid
FROM player_days d JOIN unnest($1::text[], $2::date[], $3::text[]) AS u(gameid, day, subject) USING (gameid, day, subject)`

	loadHours = `SELECT h.gameid, h.hour, h.subject, h.paid, h.minutes
FROM player_hours h JOIN unnest($1::text[], $2::timestamptz[], $3::text[]) AS u(gameid, hour, subject) USING (gameid, hour, subject)`

	// loadHistory reads every activity day of players whose install day
	// moves (through the per-player index of migration 0006).
	loadHistory = `SELECT d.gameid, d.subject, d.day
FROM player_days d JOIN unnest($1::text[], $2::text[]) AS u(gameid, subject) USING (gameid, subject)`

	// loadRevenueHistory reads the revenue days of the same players.
	loadRevenueHistory = `SELECT r.gameid, r.subject, r.currency, r.day, r.amount_minor::bigint
FROM player_revenue_days r JOIN unnest($1::text[], $2::text[]) AS u(gameid, subject) USING (gameid, subject)`

	// loadDayTuples reads the tuples of the batch's player days.
	loadDayTuples = `SELECT d.gameid, d.day, d.subject, d.tuple, d.paid
FROM player_day_tuples d JOIN unnest($1::text[], $2::date[], $3::text[]) AS u(gameid, day, subject) USING (gameid, day, subject)`

	// loadTuples reads the values of the tuples the batch's existing
	// rows name (after lockPlayers and lockSessions in the same batch).
	loadTuples = `SELECT t.tuple, t.platform, t.country, t.appversion, t.dim1, t.dim2, t.dim3 FROM dim_tuples t
WHERE t.gameid = ANY($1::text[]) AND t.tuple <> 0 AND t.tuple IN (
	SELECT p.tuple FROM players p JOIN unnest($2::text[], $3::text[]) AS u(gameid, subject) USING (gameid, subject)
	UNION SELECT p.purchase_tuple FROM players p JOIN unnest($2::text[], $3::text[]) AS u(gameid, subject) USING (gameid, subject)
	UNION SELECT s.tuple FROM sessions s JOIN unnest($4::text[], $5::text[], $6::text[]) AS u(gameid, subject, sessionid)
		USING (gameid, subject, sessionid)
	UNION SELECT d.tuple FROM player_day_tuples d JOIN unnest($7::text[], $8::date[], $9::text[]) AS u(gameid, day, subject)
		USING (gameid, day, subject))`

	// registerDims registers a game's new custom dimension values while
	// it has fewer than $4 (under the game's dims lock, lockDims): the
	// values that come back are the game's, the others count as other.
	registerDims = `WITH want AS (SELECT DISTINCT g, d, v FROM unnest($1::text[], $2::text[], $3::text[]) AS u(g, d, v)),
have AS (SELECT w.g, w.d, w.v FROM want w JOIN dim_values x ON x.gameid = w.g AND x.dim = w.d AND x.value = w.v),
counts AS (SELECT x.gameid, x.dim, count(*) AS n FROM dim_values x
	WHERE (x.gameid, x.dim) IN (SELECT DISTINCT g, d FROM want) GROUP BY 1, 2),
fresh AS (SELECT w.g, w.d, w.v, row_number() OVER (PARTITION BY w.g, w.d ORDER BY w.v COLLATE "C") AS rn
	FROM want w WHERE NOT EXISTS (SELECT 1 FROM have h WHERE h.g = w.g AND h.d = w.d AND h.v = w.v)),
ins AS (INSERT INTO dim_values (gameid, dim, value)
	SELECT f.g, f.d, f.v FROM fresh f LEFT JOIN counts c ON c.gameid = f.g AND c.dim = f.d
	WHERE coalesce(c.n, 0) + f.rn <= $4
	ON CONFLICT DO NOTHING RETURNING gameid, dim, value)
SELECT g, d, v FROM have UNION ALL SELECT gameid, dim, value FROM ins`
)

// lockDims serialises the registration of a game's custom values.
const lockDims = `SELECT pg_advisory_xact_lock(hashtextextended('gamemetrics/dims/' || id, 0)) FROM unnest($1::text[]) AS u(id) ORDER BY id`

// ---- Stage 2: write the changes ----

const (
	// deleteEvents removes raw events a player's erasure holds.
	deleteEvents = `DELETE FROM events e USING unnest($1::text[], $2::date[], $3::text[]) AS u(gameid, day, id)
WHERE e.gameid = u.gameid AND e.day = u.day AND e.id = u.id`

	updatePlayers = `UPDATE players p SET first_seen = u.first_seen, last_seen = u.last_seen,
	install_day = u.install_day, first_purchase_at = u.first_purchase_at, sessions = p.sessions + u.new_sessions,
	tuple = u.tuple, purchase_tuple = u.purchase_tuple
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::date[], $6::timestamptz[], $7::bigint[],
	$8::bigint[], $9::bigint[])
	AS u(gameid, subject, first_seen, last_seen, install_day, first_purchase_at, new_sessions, tuple, purchase_tuple)
WHERE p.gameid = u.gameid AND p.subject = u.subject`

	updateSessions = `UPDATE sessions s SET start_at = u.start_at, first_at = u.first_at, last_at = u.last_at,
	end_at = u.end_at, end_length_s = u.end_length_s::numeric, platform = u.platform, app_version = u.app_version,
	country = u.country, begin_at = u.begin_at, length_s = u.length_s::numeric, day = u.day, hour = u.hour, tuple = u.tuple
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[],
	$7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::text[],
	$14::date[], $15::timestamptz[], $16::bigint[])
	AS u(gameid, subject, sessionid, start_at, first_at, last_at, end_at, end_length_s, platform, app_version,
	     country, begin_at, length_s, day, hour, tuple)
WHERE s.gameid = u.gameid AND s.subject = u.subject AND s.sessionid = u.sessionid`

	upsertDays = `INSERT INTO player_days AS p (gameid, day, subject, paid)
SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::bool[])
ON CONFLICT (gameid, day, subject) DO UPDATE SET paid = p.paid OR excluded.paid`

	upsertHours = `INSERT INTO player_hours AS p (gameid, hour, subject, paid, minutes)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::bool[], $5::bigint[])
ON CONFLICT (gameid, hour, subject) DO UPDATE SET paid = p.paid OR excluded.paid, minutes = p.minutes | excluded.minutes`

	upsertDayTuples = `INSERT INTO player_day_tuples AS p (gameid, day, subject, tuple, paid)
SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::bigint[], $5::bool[])
ON CONFLICT (gameid, day, subject, tuple) DO UPDATE SET paid = p.paid OR excluded.paid`

	// upsertHourTuples ORs a batch's minutes and purchases into its
	// player-hour-tuple rows, writing only rows that gain something.
	upsertHourTuples = `INSERT INTO player_hour_tuples AS p (gameid, hour, subject, tuple, paid, minutes)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::bigint[], $5::bool[], $6::bigint[])
ON CONFLICT (gameid, hour, subject, tuple) DO UPDATE SET paid = p.paid OR excluded.paid, minutes = p.minutes | excluded.minutes
WHERE (excluded.paid AND NOT p.paid) OR p.minutes | excluded.minutes <> p.minutes`

	insertTuples = `INSERT INTO dim_tuples (gameid, tuple, platform, country, appversion, dim1, dim2, dim3)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
ON CONFLICT DO NOTHING`

	upsertRevenueDays = `INSERT INTO player_revenue_days AS r (gameid, subject, currency, day, amount_minor)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::bigint[])
ON CONFLICT (gameid, subject, currency, day) DO UPDATE SET amount_minor = r.amount_minor + excluded.amount_minor`

	upsertCohortRevenue = `INSERT INTO cohort_revenue AS r (gameid, install_day, currency, day, amount_minor)
SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::date[], $5::bigint[])
ON CONFLICT (gameid, install_day, currency, day) DO UPDATE SET amount_minor = r.amount_minor + excluded.amount_minor`

	upsertDimHLL = `INSERT INTO players_hll_dim_daily AS h (gameid, day, dname, dvalue, players)
SELECT gameid, day, dname, dvalue, hll_add_agg(hll_hash_text(subject))
FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::text[]) AS u(gameid, day, dname, dvalue, subject)
GROUP BY gameid, day, dname, dvalue
ORDER BY gameid COLLATE "C", day, dname COLLATE "C", dvalue COLLATE "C"
ON CONFLICT (gameid, day, dname, dvalue) DO UPDATE SET players = hll_union(h.players, excluded.players)`

	// upsertOnline adds the online counts of minutes $2 (their UTC hours
	// $3, their days $4 in the game's zone) and keeps the highest of each
	// hour and day: online counts only grow, so a peak is the maximum of
	// its minutes' counts, which the upsert returns.
	upsertOnline = `WITH o AS (
	INSERT INTO rollup_minutely AS r (gameid, minute, metric, dim, value)
	SELECT g, m, 'online', '', v FROM unnest($1::text[], $2::timestamptz[], $5::bigint[]) AS u(g, m, v)
	ORDER BY g COLLATE "C", m
	ON CONFLICT (gameid, minute, metric, dim) DO UPDATE SET value = r.value + excluded.value
	RETURNING r.gameid, r.minute, r.value
), m AS (
	SELECT u.g, u.h, u.d, o.value::bigint AS v
	FROM o JOIN unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::date[]) AS u(g, m, h, d) ON u.g = o.gameid AND u.m = o.minute
), hours AS (
	INSERT INTO ccu_hourly AS c (gameid, hour, peak)
	SELECT g, h, max(v) FROM m GROUP BY g, h ORDER BY g COLLATE "C", h
	ON CONFLICT (gameid, hour) DO UPDATE SET peak = greatest(c.peak, excluded.peak)
)
INSERT INTO ccu_daily AS c (gameid, day, peak)
SELECT g, d, max(v) FROM m GROUP BY g, d ORDER BY g COLLATE "C", d
ON CONFLICT (gameid, day) DO UPDATE SET peak = greatest(c.peak, excluded.peak)`

	upsertSpend = `INSERT INTO player_spend AS s (gameid, subject, currency, amount_minor, purchases)
SELECT g, p, c, a::numeric, n FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) AS u(g, p, c, a, n)
ON CONFLICT (gameid, subject, currency) DO UPDATE
SET amount_minor = s.amount_minor + excluded.amount_minor, purchases = s.purchases + excluded.purchases`

	upsertCohorts = `INSERT INTO cohort_days AS cd (gameid, install_day, day, players)
SELECT * FROM unnest($1::text[], $2::date[], $3::date[], $4::bigint[])
ON CONFLICT (gameid, install_day, day) DO UPDATE SET players = cd.players + excluded.players`

	// upsertHLL adds the players of new activity days to the days'
	// sketches (adding a player twice would change nothing either).
	upsertHLL = `INSERT INTO players_hll_daily AS h (gameid, day, players)
SELECT gameid, day, hll_add_agg(hll_hash_text(subject))
FROM unnest($1::text[], $2::date[], $3::text[]) AS u(gameid, day, subject)
GROUP BY gameid, day
ORDER BY gameid COLLATE "C", day
ON CONFLICT (gameid, day) DO UPDATE SET players = hll_union(h.players, excluded.players)`

	upsertDaily = `INSERT INTO rollup_daily AS r (gameid, day, metric, dim, value)
SELECT g, b, m, d, v::numeric FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::text[]) AS u(g, b, m, d, v)
ON CONFLICT (gameid, day, metric, dim) DO UPDATE SET value = r.value + excluded.value`

	upsertHourly = `INSERT INTO rollup_hourly AS r (gameid, hour, metric, dim, value)
SELECT g, b, m, d, v::numeric FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[]) AS u(g, b, m, d, v)
ON CONFLICT (gameid, hour, metric, dim) DO UPDATE SET value = r.value + excluded.value`

	upsertMinutely = `INSERT INTO rollup_minutely AS r (gameid, minute, metric, dim, value)
SELECT g, b, m, d, v::numeric FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[]) AS u(g, b, m, d, v)
ON CONFLICT (gameid, minute, metric, dim) DO UPDATE SET value = r.value + excluded.value`
)

const (
	upsertTupleDaily = `INSERT INTO rollup_tuple_daily AS r (gameid, day, metric, dim, tuple, value)
SELECT g, b, m, d, t, v::numeric FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::bigint[], $6::text[]) AS u(g, b, m, d, t, v)
ON CONFLICT (gameid, day, metric, dim, tuple) DO UPDATE SET value = r.value + excluded.value`

	upsertTupleHourly = `INSERT INTO rollup_tuple_hourly AS r (gameid, hour, metric, dim, tuple, value)
SELECT g, b, m, d, t, v::numeric FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::bigint[], $6::text[]) AS u(g, b, m, d, t, v)
ON CONFLICT (gameid, hour, metric, dim, tuple) DO UPDATE SET value = r.value + excluded.value`

	upsertDimDaily = `INSERT INTO rollup_dim_daily AS r (gameid, day, metric, dim, dname, dvalue, value)
SELECT g, b, m, d, n, x, v::numeric FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS u(g, b, m, d, n, x, v)
ON CONFLICT (gameid, metric, dname, day, dim, dvalue) DO UPDATE SET value = r.value + excluded.value`
)

// upsertRollups is the statement that adds deltas to g's table.
func upsertRollups(g grain) string {
	switch g {
	case hourly:
		return upsertHourly
	case minutely:
		return upsertMinutely
	case tupleDaily:
		return upsertTupleDaily
	case dimDaily:
		return upsertDimDaily
	case tupleHourly:
		return upsertTupleHourly
	}
	return upsertDaily
}

// ---- SetTimezone (rebuild.go) ----

// lockGame is store.LockGameWrites inside a rebuild's transaction.
var lockGame = `SELECT pg_advisory_xact_lock(` + gameLock + `) FROM (SELECT $1::text AS id) AS g`

// gameErasures are every erasure of a game, for a replay.
const gameErasures = `SELECT player_sha256, max(started_at) FROM erasures WHERE gameid = $1 GROUP BY player_sha256`
