package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gamemetrics/gamemetrics/functions/process"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// runGamesSetTimezone changes a game's time zone and rebuilds its day-level
// aggregates from the raw events (process.SetTimezone).
func runGamesSetTimezone(ctx context.Context, pool *pgxpool.Pool, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("games set-timezone", stderr)
	game := fs.String("game", "", "game id (required)")
	tz := fs.String("timezone", "", "IANA time zone that decides the game's day boundaries, e.g. America/Los_Angeles (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *game == "" || *tz == "" {
		return errors.New("games set-timezone: --game and --timezone are required")
	}
	if err := store.ValidTimezone(*tz); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rebuilding the aggregates of %s in %s from its raw events...\n", *game, *tz)
	st, err := process.SetTimezone(ctx, pool, *game, *tz)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("games set-timezone: no game %q", *game)
	}
	if err != nil {
		return fmt.Errorf("games set-timezone: %w (nothing was changed)", err)
	}
	fmt.Fprintf(stdout, "timezone of %s is now %s: replayed %d events in %s\n", *game, *tz, st.Events, st.Elapsed.Round(1e6))
	fmt.Fprintln(stdout, "Running process replicas bucket new events by the new time zone from now on.")
	return nil
}
