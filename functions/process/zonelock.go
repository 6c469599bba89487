package process

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Time zone changes and live writes. SetTimezone rebuilds a game's
// aggregates in one transaction holding the game's zone lock exclusively;
// every batch transaction first takes the zone locks of its games shared
// and then reads their zones. So a batch either commits before a rebuild
// starts (and is replayed by it) or starts after the rebuild committed and
// sees the new zone; it never buckets days by a zone that is no longer the
// game's, whatever zone process had cached.

// zoneLockKey is the advisory lock key of a game's time zone.
const zoneLockKey = `hashtextextended('gamemetrics/zone/' || id, 0)`

// lockZones takes the shared zone locks of the games of recs, reads their
// zones, and re-buckets the records of any game whose zone changed since
// it was cached (telling the cache through w.rezone). It is the first round
// trip of a batch: begin says it also begins the transaction.
func (w *writer) lockZones(ctx context.Context, tx querier, recs []*record, begin bool) error {
	var games []string
	for _, r := range recs {
		games = append(games, r.game)
	}
	slices.Sort(games)
	games = slices.Compact(games)
	b := &pgx.Batch{}
	if begin {
		b.Queue("BEGIN")
	}
	b.Queue(`SELECT pg_advisory_xact_lock_shared(`+zoneLockKey+`) FROM unnest($1::text[]) AS u(id) ORDER BY id`, games)
	// A separate statement, so its snapshot is taken after the locks are held.
	b.Queue(`SELECT id, timezone FROM games WHERE id = ANY($1)`, games)
	res := tx.SendBatch(ctx, b)
	if begin {
		if _, err := res.Exec(); err != nil {
			res.Close()
			return fmt.Errorf("begin: %w", err)
		}
	}
	if _, err := res.Exec(); err != nil {
		res.Close()
		return fmt.Errorf("lock zones: %w", err)
	}
	rows, _ := res.Query()
	changed := map[string]*time.Location{}
	var id, tz string
	_, err := pgx.ForEachRow(rows, []any{&id, &tz}, func() error {
		if w.zones(id).String() == tz {
			return nil
		}
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return nil // unknown to this binary: keep what newRecord used
		}
		changed[id] = loc
		return nil
	})
	if err != nil {
		res.Close()
		return fmt.Errorf("read zones: %w", err)
	}
	if err := res.Close(); err != nil {
		return err
	}
	for game, loc := range changed {
		if w.rezone != nil {
			w.rezone(game, loc)
		}
	}
	if len(changed) > 0 {
		for _, r := range recs {
			if loc, ok := changed[r.game]; ok {
				r.local = dayIn(r.time, loc)
			}
		}
	}
	return nil
}

// set replaces the cached zone of a game.
func (z *zones) set(game string, loc *time.Location) {
	z.mu.Lock()
	z.m[game] = loc
	z.mu.Unlock()
}
