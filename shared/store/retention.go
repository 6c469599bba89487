package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// MinuteRollupDays is how long rollup_minutely keeps a minute: four weeks of
// alert-window history for anomaly baselines, plus a week of slack. retain
// deletes older minutes; hours and days are kept as long as the game exists.
const MinuteRollupDays = 35

// SetRetention changes how long game's raw events stay hot in PostgreSQL
// (hotDays) and archived in S3 (archiveDays); nil leaves a value as it is.
// Archives are kept at least as long as the hot days, so a day is never
// deleted without having been archived.
func (g *Games) SetRetention(ctx context.Context, id string, hotDays, archiveDays *int) (Game, error) {
	if hotDays != nil && *hotDays < 1 {
		return Game{}, fmt.Errorf("hot days must be at least 1, not %d", *hotDays)
	}
	if archiveDays != nil && *archiveDays < 1 {
		return Game{}, fmt.Errorf("archive days must be at least 1, not %d", *archiveDays)
	}
	cur, err := g.Get(ctx, id)
	if err != nil {
		return Game{}, err
	}
	hot, arch := cur.HotDays, cur.ArchiveDays
	if hotDays != nil {
		hot = *hotDays
	}
	if archiveDays != nil {
		arch = *archiveDays
	}
	if arch < hot {
		return Game{}, fmt.Errorf("archive days (%d) must be at least hot days (%d): days leave PostgreSQL only into the archive", arch, hot)
	}
	rows, err := g.pool.Query(ctx, "UPDATE games SET hot_days = $2, archive_days = $3 WHERE id = $1 RETURNING "+gameColumns, id, hot, arch)
	if err != nil {
		return Game{}, fmt.Errorf("set retention: %w", err)
	}
	game, err := pgx.CollectExactlyOneRow(rows, scanGame)
	if errors.Is(err, pgx.ErrNoRows) {
		return Game{}, ErrNotFound
	}
	return game, err
}
