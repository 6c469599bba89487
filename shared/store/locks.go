package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// GameLockKey is the SQL expression of a game's write lock, a transaction
// advisory lock, for the game id held by the SQL expression id.
//
// process's two stages (storing delivered events, aggregating them) take
// it shared for every game they write; a writer that must see a game's
// events and aggregates hold still takes it exclusively with
// LockGameWrites: a time zone change (it rebuilds every aggregate) and
// the start of a player's erasure (once it is recorded, no event of the
// player received before it is stored or counted). The key text predates
// the erasure use: it is the time zone lock of migration 0002's days.
func GameLockKey(id string) string {
	return `hashtextextended('gamemetrics/zone/' || ` + id + `, 0)`
}

// LockGameWrites takes game's write lock exclusively until tx ends: it
// waits for process's transactions of the game in flight to commit, and
// process's next ones wait for tx.
func LockGameWrites(ctx context.Context, tx pgx.Tx, game string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(`+GameLockKey("$1::text")+`)`, game)
	return err
}
