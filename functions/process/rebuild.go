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
// sessions, player_days and player_hours, cohort_days, rollup_daily,
// rollup_hourly, rollup_minutely and the HyperLogLog sketches) by
// replaying the game's events from the events table through the same
// aggregation code as live events (load, merge, write), in one
// transaction: readers see either the old or the new numbers, never a mix.
// The raw events and their ids stay as they are; the game's pending events
// are replayed with the others (their pending rows are dropped).
//
// Events of the game that process counted but whose raw rows are gone
// (archived by retain) cannot be replayed: SetTimezone then fails with
// ErrArchivedEvents and changes nothing.
//
// Running replicas need no restart: both of process's stages take the
// game's write lock shared (store.GameLockKey) and the rebuild holds it
// exclusively, so a delivery of the game waits for the rebuild, an
// aggregator leaves the game alone meanwhile, and either stage's
// transaction commits before the rebuild starts (and is replayed by it)
// or starts after the rebuild committed and reads the new zone.
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
	zone := func(string) *time.Location { return loc }
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockGame, game); err != nil {
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
		for _, table := range []string{"pending_events", "players", "player_spend", "player_days", "player_hours",
			"sessions", "rollup_daily", "rollup_hourly", "rollup_minutely", "players_hll_daily", "cohort_days",
			"rollup_tuple_daily", "rollup_dim_daily", "player_day_tuples", "players_hll_dim_daily",
			"rollup_tuple_hourly", "player_hour_tuples",
			"ccu_hourly", "ccu_daily", "player_revenue_days", "cohort_revenue"} {
			if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE gameid = $1", game); err != nil {
				return fmt.Errorf("clear %s: %w", table, err)
			}
		}
		// Erasures hold the events of their player received before they
		// began, as they do for live events.
		rows, _ := tx.Query(ctx, gameErasures, game)
		erased := map[string]time.Time{}
		var hash string
		var began time.Time
		if _, err := pgx.ForEachRow(rows, []any{&hash, &began}, func() error {
			erased[hash] = began
			return nil
		}); err != nil {
			return fmt.Errorf("erasures: %w", err)
		}
		dims := newRegistrar(tx, true)
		if _, err := tx.Exec(ctx, `DECLARE rebuild_cursor NO SCROLL CURSOR FOR
			SELECT id, type, subject, time, sessionid, receivedtime, data::text, extensions::text
			FROM events WHERE gameid = $1 ORDER BY time, id`, game); err != nil {
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
				if err := row.Scan(&r.id, &r.typ, &r.subject, &r.time, &sid, &received, &data, &ext); err != nil {
					return nil, err
				}
				r.time = r.time.UTC()
				r.sessionID = sid.String
				if received.Valid {
					r.received = received.Time.UTC()
				}
				if data.Valid {
					if err := json.Unmarshal([]byte(data.String), &r.p); err != nil {
						return nil, fmt.Errorf("event %s data: %w", r.id, err)
					}
				}
				if ext.Valid {
					if err := extDims([]byte(ext.String), &r.raw); err != nil {
						return nil, fmt.Errorf("event %s extensions: %w", r.id, err)
					}
				}
				r.fillDims()
				r.day, r.local, r.hour = dayIn(r.time, time.UTC), dayIn(r.time, loc), hourOf(r.time)
				return r, nil
			})
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				break
			}
			var held []*record
			if len(erased) > 0 {
				recs = slices.DeleteFunc(recs, func(r *record) bool {
					at, ok := erased[store.PlayerHash(game, r.subject)]
					if ok && !heldTime(r).After(at) {
						held = append(held, r)
						return true
					}
					return false
				})
			}
			if err := dims.resolve(ctx, recs); err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			b := newBatch(recs)
			state, err := load(ctx, tx, b, zone)
			if err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			if err := write(ctx, tx, merge(b, state, zone), held, zone, false); err != nil {
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
