package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gamemetrics/gamemetrics/shared/store"
)

// RebuildStats says what a rebuild replayed.
type RebuildStats struct {
	Events  int64
	Batches int
	Elapsed time.Duration
}

// ErrArchivedEvents refuses a rebuild that would lose aggregates: some of
// the game's counted events are no longer in the events table (retain
// archived and dropped their day), so they cannot be replayed.
var ErrArchivedEvents = errors.New("some of the game's events are no longer in PostgreSQL")

// rebuildBatch is how many raw events are replayed per writer call.
const rebuildBatch = 5000

// SetTimezone changes a game's time zone and rebuilds everything process
// derives from its raw events (players and their install days, spend,
// sessions, player_days and player_hours, rollup_daily, rollup_hourly,
// rollup_minutely and the HyperLogLog sketches) by replaying the game's events from the events table
// through the same writer code path as live deliveries, in one transaction:
// readers see either the old or the new numbers, never a mix.
//
// Events of the game that process counted but whose raw rows are gone
// (archived by retain) cannot be replayed: SetTimezone then fails with
// ErrArchivedEvents and changes nothing.
//
// Batches of the game that process writes meanwhile wait for the rebuild
// (they take the game's zone lock shared, see zonelock.go) and then bucket
// by the new zone: running replicas need no restart.
func SetTimezone(ctx context.Context, pool *pgxpool.Pool, game, tz string) (RebuildStats, error) {
	start := time.Now()
	var st RebuildStats
	if err := store.ValidTimezone(tz); err != nil {
		return st, err
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return st, err
	}
	w := &writer{pool: pool, zones: func(string) *time.Location { return loc }}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Batches of the game wait for the rebuild, then see the new zone.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(`+zoneLockKey+`) FROM (SELECT $1::text AS id) AS g`, game); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE games SET timezone = $2 WHERE id = $1`, game, tz)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		var missing int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM event_ids i WHERE i.gameid = $1
			AND NOT EXISTS (SELECT 1 FROM events e WHERE e.gameid = $1 AND e.day = i.day AND e.id = i.id)`, game).Scan(&missing); err != nil {
			return err
		}
		if missing > 0 {
			return fmt.Errorf("%w: %d events were archived; restore their days first", ErrArchivedEvents, missing)
		}
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE rebuild_events ON COMMIT DROP AS
			SELECT id, type, source, subject, time, sessionid, receivedtime, data::text AS data, extensions::text AS extensions
			FROM events WHERE gameid = $1`, game); err != nil {
			return fmt.Errorf("copy raw events: %w", err)
		}
		for _, table := range []string{"events", "event_ids", "players", "player_spend", "player_days", "player_hours",
			"sessions", "rollup_daily", "rollup_hourly", "rollup_minutely", "players_hll_daily", "cohort_days"} {
			if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE gameid = $1", game); err != nil {
				return fmt.Errorf("clear %s: %w", table, err)
			}
		}
		if _, err := tx.Exec(ctx, `DECLARE rebuild_cursor NO SCROLL CURSOR FOR
			SELECT id, type, source, subject, time, sessionid, receivedtime, data, extensions
			FROM rebuild_events ORDER BY time, id`); err != nil {
			return err
		}
		for {
			rows, err := tx.Query(ctx, fmt.Sprintf("FETCH %d FROM rebuild_cursor", rebuildBatch))
			if err != nil {
				return err
			}
			recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*record, error) {
				r := &record{game: game}
				var sid, data, ext pgtype.Text
				var received pgtype.Timestamptz
				if err := row.Scan(&r.id, &r.typ, &r.source, &r.subject, &r.time, &sid, &received, &data, &ext); err != nil {
					return nil, err
				}
				r.time = r.time.UTC()
				r.sessionID = sid.String
				if received.Valid {
					r.received = received.Time.UTC()
				}
				if data.Valid {
					r.data = []byte(data.String)
					if err := json.Unmarshal(r.data, &r.p); err != nil {
						return nil, fmt.Errorf("event %s data: %w", r.id, err)
					}
				}
				if ext.Valid {
					r.ext = []byte(ext.String)
				}
				r.day, r.local, r.hour = dayIn(r.time, time.UTC), dayIn(r.time, loc), hourOf(r.time)
				return r, nil
			})
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				break
			}
			slices.SortFunc(recs, func(a, b *record) int {
				return cmpPlayer(playerKey{a.game, a.id}, playerKey{b.game, b.id})
			})
			if _, err := w.writeTx(ctx, tx, recs, false); err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			st.Events += int64(len(recs))
			st.Batches++
		}
		_, err = tx.Exec(ctx, "CLOSE rebuild_cursor")
		return err
	})
	st.Elapsed = time.Since(start)
	return st, err
}
