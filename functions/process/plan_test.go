package process

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Statements that look one player up across all their activity rows must
// use the per-player index (migration 0006), or a late event (moving the
// player's install cohort) or an erasure costs a scan of every activity row
// of the game: the primary keys lead with the period, so an index scan on
// them with a subject condition still reads all the game's rows.
func TestLookupsOfOnePlayerActivityUseAnIndex(t *testing.T) {
	setup(t)
	ctx := context.Background()
	tests := []struct {
		name, sql string
		args      []any
		index     string
	}{
		{"move cohorts (a player's activity history)", "EXPLAIN " + loadHistory,
			[]any{[]string{"g"}, []string{"p"}}, "player_days_player"},
		{"erase activity days", "EXPLAIN DELETE FROM player_days WHERE gameid = $1 AND subject = $2", []any{"g", "p"}, "player_days_player"},
		{"erase activity hours", "EXPLAIN DELETE FROM player_hours WHERE gameid = $1 AND subject = $2", []any{"g", "p"}, "player_hours_player"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var plan []string
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
					return err
				}
				rows, _ := tx.Query(ctx, tt.sql, tt.args...)
				var err error
				plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if p := strings.Join(plan, "\n"); !strings.Contains(p, " using "+tt.index+" ") {
				t.Errorf("does not look the player up with %s:\n%s", tt.index, p)
			}
		})
	}
}
