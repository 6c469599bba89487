package retain_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gamemetrics/gamemetrics/functions/process"
	"github.com/gamemetrics/gamemetrics/functions/retain"
	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

func TestCutoffs(t *testing.T) {
	d := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
	cases := []struct {
		name          string
		now           time.Time
		hot, archive  int
		export, purge string
	}{
		{"just after midnight keeps today and the 30 days before", time.Date(2026, 11, 25, 0, 0, 1, 0, time.UTC), 30, 400, "2026-10-26", "2025-10-21"},
		{"just before midnight is still the same day", time.Date(2026, 11, 25, 23, 59, 59, 0, time.UTC), 30, 400, "2026-10-26", "2025-10-21"},
		{"a clock in another zone is read as UTC", time.Date(2026, 11, 25, 0, 30, 0, 0, time.FixedZone("CET", 3600)), 1, 1, "2026-11-23", "2026-11-23"},
		{"one hot day exports the day before yesterday", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), 1, 2, "2026-02-28", "2026-02-27"},
		{"leap years count", time.Date(2028, 3, 1, 12, 0, 0, 0, time.UTC), 1, 366, "2028-02-29", "2027-03-01"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			exp, del := retain.Cutoffs(c.now, c.hot, c.archive)
			if !exp.Equal(d(c.export)) || !del.Equal(d(c.purge)) {
				t.Errorf("Cutoffs = %s, %s; want %s, %s", archive.FormatDay(exp), archive.FormatDay(del), c.export, c.purge)
			}
			// Every event of the last exported day is at least hot days old.
			lastExported := exp.AddDate(0, 0, -1)
			if age := c.now.Sub(lastExported.Add(24 * time.Hour)); age < time.Duration(c.hot)*24*time.Hour {
				t.Errorf("the last exported day's newest event is only %v old", age)
			}
		})
	}
}

func TestRetentionArchivesAndDropsExactlyTheExpiredDays(t *testing.T) {
	ctx := context.Background()
	g := newGame(t, 3, 400)
	r := newRetain(t, 7) // 7 events per part: several parts per day
	now := time.Now()
	gn := &simtest.Generator{Game: g.ID}
	sent := gn.Days([]string{"p1", "p2", "p3"}, []int{10, 6, 4, 3, 1, 0}, now)
	feed(t, sent)
	today := utcDayOf(now)
	var allDays []time.Time
	for off := -10; off <= 3; off++ {
		allDays = append(allDays, today.AddDate(0, 0, off))
	}
	before := partitionCounts(t, g.ID, allDays)
	rollupsBefore := rollups(t, g.ID)
	sentByDay := byDay(sent)

	res, err := r.RetainGame(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	expired := map[time.Time]bool{today.AddDate(0, 0, -10): true, today.AddDate(0, 0, -6): true, today.AddDate(0, 0, -4): true}
	if res.DaysArchived != 3 || res.PartitionsDropped != 3 {
		t.Errorf("result %+v: want 3 days archived and dropped", res)
	}
	var wantEvents int64
	for d := range expired {
		wantEvents += before[d]
	}
	if res.EventsArchived != wantEvents {
		t.Errorf("events archived %d, the expired partitions held %d", res.EventsArchived, wantEvents)
	}
	for _, d := range allDays {
		exists := partitionExists(t, g.ID, d)
		switch {
		case expired[d] && exists:
			t.Errorf("%s expired but its partition is still there", archive.FormatDay(d))
		case !expired[d] && before[d] > 0 && !exists:
			t.Errorf("%s is hot but its partition was dropped", archive.FormatDay(d))
		case !d.Before(today) && !exists:
			t.Errorf("%s: partition not created ahead", archive.FormatDay(d))
		}
	}
	for d := range expired {
		m, got := readDay(t, g.ID, d)
		if m.Events != before[d] || int64(len(got)) != before[d] {
			t.Errorf("%s: archive holds %d events (manifest %d), the partition held %d", archive.FormatDay(d), len(got), m.Events, before[d])
		}
		raw, err := arc.Get(ctx, m.Parts[0].Key)
		if err != nil {
			t.Fatal(err)
		}
		if text := gunzipIfGzip(raw); !contains(text, `"data":{`) || contains(text, "data_base64") || !contains(text, `"specversion":"1.0"`) {
			t.Errorf("%s is not plain structured JSON CloudEvents with inline data:\n%.300s", m.Parts[0].Key, text)
		}
		if len(m.Parts) < 2 {
			t.Errorf("%s: %d parts, want several with 7 events each", archive.FormatDay(d), len(m.Parts))
		}
		want := map[string]event.Event{}
		for _, e := range sentByDay[d] {
			want[e.ID()] = e
		}
		if len(want) != len(got) {
			t.Errorf("%s: %d events archived, %d sent", archive.FormatDay(d), len(got), len(want))
		}
		for _, e := range got {
			w, ok := want[e.ID()]
			if !ok {
				t.Errorf("%s: archived event %s was never sent (or is a duplicate)", archive.FormatDay(d), e.ID())
				continue
			}
			delete(want, e.ID())
			assertSameEvent(t, w, e)
		}
	}
	for d := range sentByDay {
		if !expired[d] {
			if keys := objectKeys(t, archive.DayPrefix(g.ID, d)); len(keys) != 0 {
				t.Errorf("hot day %s was archived: %v", archive.FormatDay(d), keys)
			}
		}
	}
	if got := rollups(t, g.ID); got != rollupsBefore {
		t.Errorf("rollups changed:\nbefore:\n%s\nafter:\n%s", rollupsBefore, got)
	}

	// A second run finds nothing to do and leaves the archive as it is.
	keys := objectKeys(t, archive.GamePrefix(g.ID))
	res, err = r.RetainGame(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if res.DaysArchived != 0 || res.PartitionsDropped != 0 || res.EventsArchived != 0 || res.PartitionsCreated != 0 {
		t.Errorf("second run did something: %+v", res)
	}
	if again := objectKeys(t, archive.GamePrefix(g.ID)); len(again) != len(keys) {
		t.Errorf("second run changed the archive: %v -> %v", keys, again)
	}
}

func TestRetentionDeletesArchivesOlderThanArchiveDays(t *testing.T) {
	ctx := context.Background()
	g := newGame(t, 2, 5)
	r := newRetain(t, 1000)
	now := time.Now()
	gn := &simtest.Generator{Game: g.ID}
	feed(t, gn.Days([]string{"p1"}, []int{7, 4}, now))
	today := utcDayOf(now)
	res, err := r.RetainGame(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	// Day -7 is archived, then deleted in the same run (older than 5 days);
	// day -4 is archived and kept.
	if res.DaysArchived != 2 || res.ArchiveDaysDelete != 1 {
		t.Errorf("result %+v: want 2 days archived and 1 deleted", res)
	}
	if keys := objectKeys(t, archive.DayPrefix(g.ID, today.AddDate(0, 0, -7))); len(keys) != 0 {
		t.Errorf("expired archive still stored: %v", keys)
	}
	if m, _ := readDay(t, g.ID, today.AddDate(0, 0, -4)); m.Events != 6 {
		t.Errorf("kept archive holds %d events, want 6", m.Events)
	}
}

func TestACrashBetweenUploadAndDropLosesAndDuplicatesNothing(t *testing.T) {
	for _, point := range []string{retain.FaultExportUploaded, retain.FaultExportCommitted} {
		t.Run(point, func(t *testing.T) {
			ctx := context.Background()
			g := newGame(t, 3, 400)
			r := newRetain(t, 5)
			now := time.Now()
			gn := &simtest.Generator{Game: g.ID}
			sent := gn.Days([]string{"a", "b"}, []int{5, 4}, now)
			feed(t, sent)
			today := utcDayOf(now)
			days := []time.Time{today.AddDate(0, 0, -5), today.AddDate(0, 0, -4)}
			before := partitionCounts(t, g.ID, days)

			crash := errors.New("simulated crash")
			r.InjectFault(func(p string) error {
				if p == point {
					return crash
				}
				return nil
			})
			if _, err := r.RetainGame(ctx, g); !errors.Is(err, crash) {
				t.Fatalf("run with a crash at %s: %v", point, err)
			}
			// Nothing was dropped: the first day's partition is intact.
			if after := partitionCounts(t, g.ID, days); after[days[0]] != before[days[0]] || after[days[1]] != before[days[1]] {
				t.Fatalf("partitions changed by the crashed run: %v -> %v", before, after)
			}
			if point == retain.FaultExportUploaded {
				if _, err := arc.Get(ctx, archive.ManifestKey(g.ID, days[0])); !errors.Is(err, archive.ErrNotFound) {
					t.Errorf("manifest written before the crash point: %v", err)
				}
				if len(objectKeys(t, archive.DayPrefix(g.ID, days[0]))) == 0 {
					t.Error("no parts were uploaded before the crash")
				}
			}

			r.InjectFault(nil)
			res, err := r.RetainGame(ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			if res.PartitionsDropped != 2 {
				t.Errorf("re-run dropped %d partitions, want 2", res.PartitionsDropped)
			}
			want := map[string]event.Event{}
			for _, e := range sent {
				want[e.ID()] = e
			}
			for _, d := range days {
				if partitionExists(t, g.ID, d) {
					t.Errorf("%s not dropped by the re-run", archive.FormatDay(d))
				}
				m, got := readDay(t, g.ID, d)
				if m.Events != before[d] {
					t.Errorf("%s: archive holds %d events, partition held %d", archive.FormatDay(d), m.Events, before[d])
				}
				for _, e := range got {
					w, ok := want[e.ID()]
					if !ok {
						t.Errorf("event %s archived twice or never sent", e.ID())
						continue
					}
					delete(want, e.ID())
					assertSameEvent(t, w, e)
				}
				// Only the parts the manifest lists remain.
				listed := m.Keys()
				for _, k := range objectKeys(t, archive.DayPrefix(g.ID, d)) {
					if !listed[k] && k != archive.ManifestKey(g.ID, d) {
						t.Errorf("leftover object %s", k)
					}
				}
			}
			if len(want) != 0 {
				t.Errorf("%d events lost", len(want))
			}
		})
	}
}

func TestLateEventsForAnArchivedDayAreMergedIntoItsArchive(t *testing.T) {
	ctx := context.Background()
	g := newGame(t, 3, 400)
	r := newRetain(t, 4)
	now := time.Now()
	gn := &simtest.Generator{Game: g.ID}
	first := gn.Days([]string{"a"}, []int{6}, now)
	feed(t, first)
	if _, err := r.RetainGame(ctx, g); err != nil {
		t.Fatal(err)
	}
	day := utcDayOf(now).AddDate(0, 0, -6)
	// A late event for the archived day recreates its partition; a
	// duplicate of an archived event is recognised by event_ids.
	late := gn.Event("com.gamemetrics.design", "b", "", day.Add(20*time.Hour), `{"event":"late:arrival"}`)
	feed(t, []event.Event{late, first[0]})
	if n := partitionCounts(t, g.ID, []time.Time{day})[day]; n != 1 {
		t.Fatalf("recreated partition holds %d rows, want the 1 late event", n)
	}
	if _, err := r.RetainGame(ctx, g); err != nil {
		t.Fatal(err)
	}
	m, got := readDay(t, g.ID, day)
	if m.Events != int64(len(first)+1) || len(got) != len(first)+1 {
		t.Fatalf("merged archive holds %d events, want %d", len(got), len(first)+1)
	}
	ids := map[string]int{}
	for _, e := range got {
		ids[e.ID()]++
	}
	for _, e := range append(first, late) {
		if ids[e.ID()] != 1 {
			t.Errorf("event %s archived %d times", e.ID(), ids[e.ID()])
		}
	}
	if partitionExists(t, g.ID, day) {
		t.Error("partition not dropped after the merge")
	}
}

func TestPingEventRunsRetentionAndReplies(t *testing.T) {
	g := newGame(t, 3, 400)
	r := newRetain(t, 1000)
	gn := &simtest.Generator{Game: g.ID}
	feed(t, gn.Days([]string{"a"}, []int{5}, time.Now()))
	ping := event.New()
	ping.SetID("ping-1")
	ping.SetSource("/apis/v1/namespaces/gamemetrics/pingsources/retain-daily")
	ping.SetType(retain.TypePing)
	ping.SetData(event.ApplicationJSON, []byte(`{"task":"retention"}`))
	reply, err := r.Handle(context.Background(), ping)
	if err != nil {
		t.Fatal(err)
	}
	if reply == nil || reply.Type() != retain.TypeRetentionComplete {
		t.Fatalf("reply %v", reply)
	}
	var res retain.RetentionResult
	if err := json.Unmarshal(reply.Data(), &res); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, gr := range res.Games {
		if gr.Game == g.ID {
			found = true
			if gr.DaysArchived != 1 || gr.EventsArchived != 6 {
				t.Errorf("game result %+v: want 1 day, 6 events", gr)
			}
		}
	}
	if !found {
		t.Errorf("reply does not mention game %s: %s", g.ID, reply.Data())
	}

	bad := ping.Clone()
	bad.SetData(event.ApplicationJSON, []byte(`{"task":"vacuum"}`))
	if _, err := r.Handle(context.Background(), bad); err == nil {
		t.Error("an unknown task was accepted")
	}
}

func TestSetRetentionValidates(t *testing.T) {
	g := newGame(t, 30, 400)
	games := store.NewGames(pool)
	zero, hot, arch := 0, 50, 40
	if _, err := games.SetRetention(context.Background(), g.ID, &zero, nil); err == nil {
		t.Error("hot days 0 accepted")
	}
	if _, err := games.SetRetention(context.Background(), g.ID, &hot, &arch); err == nil {
		t.Error("archive days shorter than hot days accepted")
	}
	got, err := games.SetRetention(context.Background(), g.ID, nil, &hot)
	if err != nil || got.HotDays != 30 || got.ArchiveDays != 50 {
		t.Errorf("SetRetention(archive 50) = %+v, %v", got, err)
	}
}

func TestARunningProcessStoresLateEventsForADroppedDay(t *testing.T) {
	ctx := context.Background()
	g := newGame(t, 3, 400)
	r := newRetain(t, 100)
	p := process.New(process.DefaultConfig(), pool, rdb, testLogger(), prometheus.NewRegistry())
	defer p.Stop(ctx)
	now := time.Now()
	gn := &simtest.Generator{Game: g.ID}
	day := utcDayOf(now).AddDate(0, 0, -5)
	for _, e := range gn.Days([]string{"a"}, []int{5}, now) {
		if _, err := p.Handle(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.RetainGame(ctx, g); err != nil {
		t.Fatal(err)
	}
	if partitionExists(t, g.ID, day) {
		t.Fatal("partition not dropped")
	}
	// The same process instance (which created the partition) gets a late event.
	late := gn.Event("com.gamemetrics.design", "a", "", day.Add(23*time.Hour), `{"event":"late:one"}`)
	if _, err := p.Handle(ctx, late); err != nil {
		t.Fatalf("late event for a dropped day: %v", err)
	}
	if _, err := r.RetainGame(ctx, g); err != nil {
		t.Fatal(err)
	}
	if m, _ := readDay(t, g.ID, day); m.Events != 7 {
		t.Errorf("archive holds %d events, want 6 + the late one", m.Events)
	}
}

func TestRowsArrivingDuringAnExportAreArchivedBeforeTheDrop(t *testing.T) {
	ctx := context.Background()
	g := newGame(t, 3, 400)
	r := newRetain(t, 100)
	now := time.Now()
	gn := &simtest.Generator{Game: g.ID}
	day := utcDayOf(now).AddDate(0, 0, -5)
	feed(t, gn.Days([]string{"a"}, []int{5}, now))
	late := gn.Event("com.gamemetrics.design", "b", "", day.Add(22*time.Hour), `{"event":"during:export"}`)
	arrived := false
	// Between the manifest and the drop, process stores one more event of the day.
	r.InjectFault(func(p string) error {
		if p == retain.FaultExportCommitted && !arrived {
			arrived = true
			feed(t, []event.Event{late})
		}
		return nil
	})
	res, err := r.RetainGame(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if res.EventsArchived != 7 || partitionExists(t, g.ID, day) {
		t.Errorf("result %+v: want the 7 events archived and the partition dropped", res)
	}
	if m, evs := readDay(t, g.ID, day); m.Events != 7 || len(evs) != 7 {
		t.Errorf("archive holds %d events, want 7 (6 + the one that arrived during the export)", m.Events)
	}
}

func TestConcurrentRetentionRunsOfOneGameArchiveOnce(t *testing.T) {
	ctx := context.Background()
	g := newGame(t, 3, 400)
	now := time.Now()
	gn := &simtest.Generator{Game: g.ID}
	feed(t, gn.Days([]string{"a", "b"}, []int{6, 5}, now))
	r1, r2 := newRetain(t, 5), newRetain(t, 5)
	errs := make(chan error, 2)
	for _, r := range []*retain.Retain{r1, r2} {
		go func() {
			_, err := r.RetainGame(ctx, g)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, off := range []int{6, 5} {
		d := utcDayOf(now).AddDate(0, 0, -off)
		m, evs := readDay(t, g.ID, d)
		ids := map[string]bool{}
		for _, e := range evs {
			ids[e.ID()] = true
		}
		if m.Events != 12 || len(ids) != 12 {
			t.Errorf("%s: %d events, %d distinct, want 12", archive.FormatDay(d), m.Events, len(ids))
		}
		listed := m.Keys()
		for _, k := range objectKeys(t, archive.DayPrefix(g.ID, d)) {
			if !listed[k] && k != archive.ManifestKey(g.ID, d) {
				t.Errorf("leftover object %s", k)
			}
		}
	}
}
