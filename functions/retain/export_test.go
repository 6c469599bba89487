package retain_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
)

// exported runs WriteDay and returns the ids of the lines, which must be
// CloudEvents of game.
func exported(t *testing.T, a *archive.Client, game string, day time.Time) ([]string, error) {
	t.Helper()
	var buf bytes.Buffer
	n, err := archive.WriteDay(context.Background(), pool, a, game, day, &buf)
	if err != nil {
		return nil, err
	}
	var ids []string
	if err := archive.DecodeNDJSON(&buf, func(e event.Event) error {
		if e.Extensions()["gameid"] != game {
			return fmt.Errorf("event %s of game %v", e.ID(), e.Extensions()["gameid"])
		}
		ids = append(ids, e.ID())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if int64(len(ids)) != n {
		t.Errorf("WriteDay said %d events, wrote %d lines", n, len(ids))
	}
	slices.Sort(ids)
	return ids, nil
}

func idsOn(evs []event.Event, day time.Time) []string {
	var ids []string
	for _, e := range evs {
		if utcDayOf(e.Time()).Equal(day) {
			ids = append(ids, e.ID())
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// A day's raw events come out the same, one per id, whether the day is
// hot in PostgreSQL, archived in S3, or both (late events after the
// archive).
func TestWriteDayExportsHotArchivedAndMixedDays(t *testing.T) {
	ctx := context.Background()
	g := newGame(t, 3, 400)
	r := newRetain(t, 4)
	now := time.Now()
	gn := &simtest.Generator{Game: g.ID}
	players := []string{fmt.Sprintf("ann-%d", now.UnixNano()), fmt.Sprintf("ben-%d", now.UnixNano())}
	evs := gn.Days(players, []int{5, 1}, now)
	feed(t, append(evs, evs[0], evs[3])) // duplicates are stored once
	old, hot := utcDayOf(now).AddDate(0, 0, -5), utcDayOf(now).AddDate(0, 0, -1)

	for _, tc := range []struct {
		when string
		day  time.Time
	}{{"hot", old}, {"hot", hot}} {
		got, err := exported(t, arc, g.ID, tc.day)
		if err != nil || !slices.Equal(got, idsOn(evs, tc.day)) {
			t.Errorf("%s day %s: %v %v, want %v", tc.when, tc.day.Format(time.DateOnly), got, err, idsOn(evs, tc.day))
		}
	}
	if _, err := r.RetainGame(ctx, g); err != nil {
		t.Fatal(err)
	}
	if partitionExists(t, g.ID, old) {
		t.Fatal("day -5 was not archived and dropped")
	}
	if got, err := exported(t, arc, g.ID, old); err != nil || !slices.Equal(got, idsOn(evs, old)) {
		t.Errorf("archived day: %v %v, want %v", got, err, idsOn(evs, old))
	}
	if _, err := exported(t, nil, g.ID, old); !errors.Is(err, archive.ErrNoArchive) {
		t.Errorf("archived day without S3: %v, want ErrNoArchive", err)
	}
	// A late event for the archived day (and a late copy of an archived
	// one): the partition comes back with them until the next run merges it.
	late := gn.Event("com.gamemetrics.heartbeat", players[0], "s-late", old.Add(20*time.Hour), "")
	feed(t, []event.Event{late, evs[1]})
	want := idsOn(append(slices.Clone(evs), late), old)
	if got, err := exported(t, arc, g.ID, old); err != nil || !slices.Equal(got, want) {
		t.Errorf("archived day with a late event: %v %v, want %v", got, err, want)
	}
	if got, err := exported(t, arc, g.ID, old.AddDate(0, 0, -1)); err != nil || len(got) != 0 {
		t.Errorf("a day without events: %v %v, want nothing", got, err)
	}
}
