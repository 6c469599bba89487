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
// it was cached (telling the cache through w.rezone). A batch in its own
// transaction sends the same statements with its first round trip instead
// (see writeTx).
func (w *writer) lockZones(ctx context.Context, tx querier, recs []*record) error {
	b := &pgx.Batch{}
	queueZoneLock(b, recs)
	res := tx.SendBatch(ctx, b)
	changed, err := w.readZones(res)
	if err != nil {
		res.Close()
		return err
	}
	if err := res.Close(); err != nil {
		return err
	}
	w.applyZones(changed, recs)
	return nil
}

// queueZoneLock queues the two statements readZones reads.
func queueZoneLock(b *pgx.Batch, recs []*record) {
	var games []string
	for _, r := range recs {
		games = append(games, r.game)
	}
	slices.Sort(games)
	games = slices.Compact(games)
	b.Queue(`SELECT pg_advisory_xact_lock_shared(`+zoneLockKey+`) FROM unnest($1::text[]) AS u(id) ORDER BY id`, games)
	// A separate statement, so its snapshot is taken after the locks are held.
	b.Queue(`SELECT id, timezone FROM games WHERE id = ANY($1)`, games)
}

// readZones returns the games whose zone is not the cached one.
func (w *writer) readZones(res pgx.BatchResults) (map[string]*time.Location, error) {
	if _, err := res.Exec(); err != nil {
		return nil, fmt.Errorf("lock zones: %w", err)
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
		return nil, fmt.Errorf("read zones: %w", err)
	}
	return changed, nil
}

// applyZones caches changed zones and re-buckets the records of those games.
func (w *writer) applyZones(changed map[string]*time.Location, recs []*record) {
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
}

// set replaces the cached zone of a game.
func (z *zones) set(game string, loc *time.Location) {
	z.mu.Lock()
	z.m[game] = loc
	z.mu.Unlock()
}
