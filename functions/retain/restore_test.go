package retain_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
)

func TestRestoreRoundTripsAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	g := newGame(t, 3, 400)
	r := newRetain(t, 4)
	now := time.Now()
	gn := &simtest.Generator{Game: g.ID}
	feed(t, gn.Days([]string{"a", "b", "c"}, []int{9, 6, 5, 1}, now))
	rowsBefore := eventRows(t, g.ID)
	rollupsBefore := rollups(t, g.ID)
	var idsBefore int64
	pool.QueryRow(ctx, "SELECT count(*) FROM event_ids WHERE gameid = $1", g.ID).Scan(&idsBefore)

	if _, err := r.RetainGame(ctx, g); err != nil {
		t.Fatal(err)
	}
	if n := len(eventRows(t, g.ID)); n != 3*6 {
		t.Fatalf("%d rows left after retention, want day -1's 18", n)
	}
	today := utcDayOf(now)
	// Dedup ids of a restored day may have been deleted; restore puts them back.
	if _, err := pool.Exec(ctx, "DELETE FROM event_ids WHERE gameid = $1 AND day = $2", g.ID, today.AddDate(0, 0, -9)); err != nil {
		t.Fatal(err)
	}
	res, err := r.Restore(ctx, g.ID, today.AddDate(0, 0, -10), today.AddDate(0, 0, -5))
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 54 || res.Inserted != 54 || len(res.Days) != 3 || len(res.MissingDays) != 3 {
		t.Errorf("restore %+v: want 54 events on 3 days, 3 days without archive", res)
	}
	if got := eventRows(t, g.ID); !slices.Equal(got, rowsBefore) {
		t.Errorf("restored rows differ from the original rows:\n got %d rows\nwant %d rows\nfirst got:  %v\nfirst want: %v", len(got), len(rowsBefore), first(got), first(rowsBefore))
	}
	if got := rollups(t, g.ID); got != rollupsBefore {
		t.Error("restore changed the rollups")
	}
	var ids int64
	pool.QueryRow(ctx, "SELECT count(*) FROM event_ids WHERE gameid = $1", g.ID).Scan(&ids)
	if ids != idsBefore {
		t.Errorf("event_ids has %d rows, had %d", ids, idsBefore)
	}

	// Again: nothing new.
	res, err = r.Restore(ctx, g.ID, today.AddDate(0, 0, -10), today.AddDate(0, 0, -5))
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 0 || res.Events != 54 {
		t.Errorf("second restore %+v: want 54 events read, 0 inserted", res)
	}
	if got := eventRows(t, g.ID); !slices.Equal(got, rowsBefore) {
		t.Error("second restore changed the rows")
	}
	// The next retention run finds the archives complete and drops the days again.
	keys := objectKeys(t, "raw/game="+g.ID+"/")
	rr, err := r.RetainGame(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if rr.PartitionsDropped != 3 || rr.DaysArchived != 0 {
		t.Errorf("retention after restore: %+v, want 3 dropped, none rewritten", rr)
	}
	if again := objectKeys(t, "raw/game="+g.ID+"/"); !slices.Equal(again, keys) {
		t.Errorf("archive objects changed: %v -> %v", keys, again)
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
