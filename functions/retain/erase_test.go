package retain_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gamemetrics/gamemetrics/functions/process"
	"github.com/gamemetrics/gamemetrics/functions/retain"
	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
)

// traces scans every store for text containing needle: every row of every
// table in PostgreSQL (as text), every Redis key name and value, every S3
// object (decompressed). It returns where it was found.
func traces(t *testing.T, needle string) []string {
	t.Helper()
	ctx := context.Background()
	var found []string
	rows, err := pool.Query(ctx, `SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind = 'r'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, tbl := range tables {
		var n int64
		if err := pool.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s t WHERE strpos(t::text, $1) > 0", tbl), needle).Scan(&n); err != nil {
			t.Fatalf("scan %s: %v", tbl, err)
		}
		if n > 0 {
			found = append(found, fmt.Sprintf("postgres %s: %d rows", tbl, n))
		}
	}
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		if strings.Contains(key, needle) {
			found = append(found, "redis key "+key)
			continue
		}
		var content []string
		switch typ := rdb.Type(ctx, key).Val(); typ {
		case "string":
			content = []string{rdb.Get(ctx, key).Val()}
		case "set":
			content = rdb.SMembers(ctx, key).Val()
		case "zset":
			content = rdb.ZRange(ctx, key, 0, -1).Val()
		case "hash":
			for k, v := range rdb.HGetAll(ctx, key).Val() {
				content = append(content, k, v)
			}
		case "list":
			content = rdb.LRange(ctx, key, 0, -1).Val()
		}
		for _, c := range content {
			if strings.Contains(c, needle) {
				found = append(found, "redis "+key)
				break
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	objs, err := arc.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		b, err := arc.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(o.Key, needle) || contains(gunzipIfGzip(b), needle) {
			found = append(found, "s3 "+o.Key)
		}
	}
	return found
}

// playerFootprint is everything stored about a player, for checking that an
// erasure left another player untouched.
func playerFootprint(t *testing.T, game, player string) string {
	t.Helper()
	ctx := context.Background()
	var parts []string
	for _, q := range []string{
		"SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM events t WHERE gameid = $1 AND subject = $2",
		"SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM sessions t WHERE gameid = $1 AND subject = $2",
		"SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM players t WHERE gameid = $1 AND subject = $2",
		"SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM player_spend t WHERE gameid = $1 AND subject = $2",
		"SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM player_days t WHERE gameid = $1 AND subject = $2",
		"SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM player_hours t WHERE gameid = $1 AND subject = $2",
	} {
		var s string
		if err := pool.QueryRow(ctx, q, game, player).Scan(&s); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, s)
	}
	var ids []string
	for _, k := range objectKeys(t, archive.GamePrefix(game)) {
		if strings.HasSuffix(k, "manifest.json") {
			kk, _ := archive.ParseKey(k)
			_, evs := readDay(t, game, kk.Day)
			for _, e := range evs {
				if e.Subject() == player {
					b, _ := json.Marshal(e)
					ids = append(ids, string(b))
				}
			}
		}
	}
	sort.Strings(ids)
	parts = append(parts, strings.Join(ids, "\n"))
	online, _ := rdb.ZScore(ctx, "gm:live:"+game+":online", player).Result()
	parts = append(parts, fmt.Sprint(online > 0))
	return strings.Join(parts, "\n--\n")
}

func erasureEvent(id, game, player string) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("/gamemetrics/cli")
	e.SetType(retain.TypeErasureRequested)
	e.SetTime(time.Now())
	e.SetData(event.ApplicationJSON, map[string]string{"game": game, "player": player, "requested_by": "dpo@studio.example"})
	return e
}

func TestErasureRemovesEveryTraceOfThePlayerAndNothingElse(t *testing.T) {
	ctx := context.Background()
	g := newGame(t, 3, 400)
	r := newRetain(t, 5)
	now := time.Now()
	// Player ids unique to this test, so a scan of the shared stores finds
	// only this test's data. Event ids start with the player id (gen), so
	// their dedup entries identify the player.
	alice := fmt.Sprintf("alice-%d", now.UnixNano())
	bob := fmt.Sprintf("bob-%d", now.UnixNano())
	gn := &simtest.Generator{Game: g.ID}
	feed(t, gn.Days([]string{alice, bob}, []int{8, 5, 1, 0}, now))
	// Events just now, so both are online and active today in Redis.
	feed(t, []event.Event{
		gn.Event("com.gamemetrics.heartbeat", alice, "s-live-a", now.Add(-10*time.Second), ""),
		gn.Event("com.gamemetrics.heartbeat", bob, "s-live-b", now.Add(-10*time.Second), ""),
	})
	if _, err := r.RetainGame(ctx, g); err != nil {
		t.Fatal(err)
	}
	// A crashed export leaves uncommitted parts that hold alice's events.
	feed(t, gn.Days([]string{alice, bob}, []int{4}, now))
	crash := errors.New("simulated crash")
	r.InjectFault(func(p string) error {
		if p == retain.FaultExportUploaded {
			return crash
		}
		return nil
	})
	if _, err := r.RetainGame(ctx, g); !errors.Is(err, crash) {
		t.Fatalf("crash run: %v", err)
	}
	found := traces(t, alice)
	t.Logf("before erasure: %v", found)
	for _, want := range []string{"postgres events_", "postgres event_ids", "postgres sessions", "postgres players", "postgres player_spend", "postgres player_days", "postgres player_hours", "redis gm:live:" + g.ID + ":online", "redis gm:live:" + g.ID + ":active:", "s3 raw/game=" + g.ID} {
		if !slices.ContainsFunc(found, func(f string) bool { return strings.HasPrefix(f, want) }) {
			t.Errorf("before erasure the scan should find alice in %q; found %v", want, found)
		}
	}
	assertSketchesMatchActivity(t, g.ID, 2)
	assertCohortsMatchActivity(t, g.ID, 2)
	bobBefore := playerFootprint(t, g.ID, bob)
	rollupsBefore := rollups(t, g.ID)

	// First attempt crashes after the database step; the retry resumes.
	r.InjectFault(func(p string) error {
		if p == retain.FaultEraseDatabase {
			return crash
		}
		return nil
	})
	req := erasureEvent("erase-1", g.ID, alice)
	if _, err := r.Handle(ctx, req); err == nil {
		t.Fatal("crashed erasure reported success")
	}
	r.InjectFault(func(p string) error {
		if p == retain.FaultEraseUploaded {
			return crash
		}
		return nil
	})
	if _, err := r.Handle(ctx, req); err == nil {
		t.Fatal("crashed erasure reported success")
	}
	r.InjectFault(nil)
	reply, err := r.Handle(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Type() != retain.TypeErasureCompleted {
		t.Fatalf("reply type %s", reply.Type())
	}
	var res retain.ErasureResult
	if err := json.Unmarshal(reply.Data(), &res); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(reply.Data()), alice) {
		t.Errorf("the reply names the player: %s", reply.Data())
	}
	for _, k := range []string{"postgres.events", "postgres.sessions", "postgres.players", "postgres.player_days", "postgres.event_ids", "redis.members", "s3.events"} {
		if res.Removed[k] <= 0 {
			t.Errorf("removed[%s] = %d, want > 0 (all: %v)", k, res.Removed[k], res.Removed)
		}
	}
	if res.RequestedBy != "dpo@studio.example" || res.CompletedAt.IsZero() || res.PlayerSHA256 != retain.PlayerHash(g.ID, alice) {
		t.Errorf("audit %+v", res)
	}

	if found := traces(t, alice); len(found) > 0 {
		t.Errorf("traces of the erased player remain: %v", found)
	}
	if got := playerFootprint(t, g.ID, bob); got != bobBefore {
		t.Errorf("another player's data changed:\nbefore:\n%s\nafter:\n%s", bobBefore, got)
	}
	if got := rollups(t, g.ID); got != rollupsBefore {
		t.Error("rollups changed by the erasure")
	}
	// The distinct-player sketches no longer hold alice's hash.
	assertSketchesMatchActivity(t, g.ID, 1)
	// Retention cohorts no longer count alice.
	assertCohortsMatchActivity(t, g.ID, 1)
	// The audit row records who and when, never the player in clear.
	var by string
	var removed []byte
	if err := pool.QueryRow(ctx, "SELECT requested_by, removed FROM erasures WHERE gameid = $1 AND request_id = $2 AND completed_at IS NOT NULL",
		g.ID, "erase-1").Scan(&by, &removed); err != nil {
		t.Fatal(err)
	}
	if by != "dpo@studio.example" {
		t.Errorf("audit requested_by %q", by)
	}

	// The same request again answers with the same result and does nothing.
	again, err := r.Handle(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var res2 retain.ErasureResult
	json.Unmarshal(again.Data(), &res2)
	if fmt.Sprint(res2.Removed) != fmt.Sprint(res.Removed) || !res2.CompletedAt.Equal(res.CompletedAt) {
		t.Errorf("repeated request: %+v, first %+v", res2, res)
	}
	// The archives are still complete for bob: retention then finishes the
	// crashed export of day -4 without alice, who is gone from its partition.
	if _, err := r.RetainGame(ctx, g); err != nil {
		t.Fatal(err)
	}
	day4 := utcDayOf(now).AddDate(0, 0, -4)
	_, evs := readDay(t, g.ID, day4)
	if len(evs) != 6 {
		t.Errorf("day -4 archive holds %d events, want bob's 6", len(evs))
	}
	if found := traces(t, alice); len(found) > 0 {
		t.Errorf("traces after retention: %v", found)
	}
}

// Events ingest accepted before an erasure but that process sees after it
// (a Kafka backlog, retries) must not bring the player back; events the
// player sends after the erasure are new data and are counted.
func TestEventsOfAnErasedPlayerStillOnTheirWayAreNotStoredAgain(t *testing.T) {
	ctx := context.Background()
	g := newGame(t, 3, 400)
	r := newRetain(t, 5)
	now := time.Now()
	carol := fmt.Sprintf("carol-%d", now.UnixNano())
	dave := fmt.Sprintf("dave-%d", now.UnixNano())
	gn := &simtest.Generator{Game: g.ID}
	feed(t, gn.Days([]string{carol, dave}, []int{2, 0}, now))
	// Sent before the erasure, delivered after it: one new event and one
	// duplicate of an event already stored (and erased).
	inFlight := gn.Event("com.gamemetrics.heartbeat", carol, "s-backlog", now.Add(-time.Hour), "")
	stored := gn.Days([]string{carol}, []int{1}, now)
	feed(t, stored)
	if _, err := r.Handle(ctx, erasureEvent("erase-carol", g.ID, carol)); err != nil {
		t.Fatal(err)
	}
	daveBefore := playerFootprint(t, g.ID, dave)
	feed(t, []event.Event{inFlight, stored[0]}) // acknowledged (feed fails on any error) ...
	if found := traces(t, carol); len(found) > 0 {
		t.Fatalf("events received before the erasure brought the player back: %v", found) // ... and not stored
	}
	assertCohortsMatchActivity(t, g.ID, 1)
	if got := playerFootprint(t, g.ID, dave); got != daveBefore {
		t.Errorf("another player's data changed:\nbefore:\n%s\nafter:\n%s", daveBefore, got)
	}
	// The player comes back and plays again: that is new data.
	later := time.Now()
	feed(t, []event.Event{gn.Event("com.gamemetrics.heartbeat", carol, "s-again", later, "")})
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM events WHERE gameid = $1 AND subject = $2", g.ID, carol).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d events of the returning player stored, want the 1 sent after the erasure", n)
	}
	assertCohortsMatchActivity(t, g.ID, 1)
}

// Events process acknowledged and stored but had not counted yet when an
// erasure began are never counted and leave no trace: the erasure deletes
// their raw rows (also in days outside the player's counted first and last
// day), and the aggregation that takes them afterwards leaves them out.
// Another player's events stored alongside are counted as usual.
func TestEventsOfAnErasedPlayerStoredButNotCountedYetAreNeverCounted(t *testing.T) {
	ctx := context.Background()
	g := newGame(t, 3, 400)
	r := newRetain(t, 5)
	now := time.Now()
	erin := fmt.Sprintf("erin-%d", now.UnixNano())
	frank := fmt.Sprintf("frank-%d", now.UnixNano())
	gn := &simtest.Generator{Game: g.ID}
	feed(t, gn.Days([]string{erin, frank}, []int{3, 1}, now))
	counted := eventsCounted(t, g.ID)
	// A replica whose aggregator does not get to run stores (and
	// acknowledges) both players' next events: they are pending.
	cfg := process.DefaultConfig()
	cfg.Aggregators = 0
	stage1 := process.New(cfg, pool, rdb, testLogger(), prometheus.NewRegistry())
	erinPending := gn.Days([]string{erin}, []int{5, 0}, now) // day 5 lies before her first counted day
	frankPending := gn.Days([]string{frank}, []int{0}, now)
	if simtest.Feed(t, stage1.Handle, append(slices.Clone(erinPending), frankPending...), 8) > 0 {
		t.FailNow()
	}
	if err := stage1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Handle(ctx, erasureEvent("erase-erin", g.ID, erin)); err != nil {
		t.Fatal(err)
	}
	if found := traces(t, erin); len(found) > 0 {
		t.Fatalf("the erasure left the player's stored, uncounted events: %v", found)
	}
	// Any replica now aggregates what is pending.
	aggregator := process.New(process.DefaultConfig(), pool, rdb, testLogger(), prometheus.NewRegistry())
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM pending_events WHERE gameid = $1", g.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pending rows not aggregated after a minute", n)
		}
	}
	if err := aggregator.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if found := traces(t, erin); len(found) > 0 {
		t.Fatalf("aggregating events stored before the erasure brought the player back: %v", found)
	}
	if got, want := eventsCounted(t, g.ID), counted+int64(len(frankPending)); got != want {
		t.Errorf("%d events counted, want %d: the %d of the other player only", got, want, len(frankPending))
	}
	assertCohortsMatchActivity(t, g.ID, 1)
}

// eventsCounted is the game's event count in the daily rollups.
func eventsCounted(t *testing.T, game string) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), `SELECT coalesce(sum(value), 0)::bigint FROM rollup_daily WHERE gameid = $1 AND metric = 'events'`,
		game).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestErasureRejectsBadRequests(t *testing.T) {
	g := newGame(t, 3, 400)
	r := newRetain(t, 5)
	cases := []struct {
		name string
		ev   event.Event
	}{
		{"unknown game", erasureEvent("x1", "gnope", "p")},
		{"no player", erasureEvent("x2", g.ID, "")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := r.Handle(context.Background(), c.ev); err == nil {
				t.Error("accepted")
			}
		})
	}
	// A request id reused for another player is refused.
	if _, err := r.Handle(context.Background(), erasureEvent("same", g.ID, "p1")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Handle(context.Background(), erasureEvent("same", g.ID, "p2")); err == nil {
		t.Error("a request id reused for another player was accepted")
	}
}

// assertSketchesMatchActivity checks every daily HyperLogLog of game counts
// exactly the players of player_days that day (small sets are exact), and
// that the busiest day has want players.
func assertSketchesMatchActivity(t *testing.T, game string, want int64) {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT h.day::text, hll_cardinality(h.players)::bigint,
		(SELECT count(*) FROM player_days p WHERE p.gameid = h.gameid AND p.day = h.day)
		FROM players_hll_daily h WHERE h.gameid = $1 ORDER BY h.day`, game)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var most int64
	for rows.Next() {
		var day string
		var sketch, exact int64
		if err := rows.Scan(&day, &sketch, &exact); err != nil {
			t.Fatal(err)
		}
		if sketch != exact {
			t.Errorf("%s: sketch counts %d players, player_days %d", day, sketch, exact)
		}
		most = max(most, sketch)
	}
	if most != want {
		t.Errorf("busiest day has %d players in its sketch, want %d", most, want)
	}
}

// assertCohortsMatchActivity checks the retention counts of game
// (cohort_days) equal player_days joined with the players' install days,
// and that the largest cell counts want players.
func assertCohortsMatchActivity(t *testing.T, game string, want int64) {
	t.Helper()
	var diff string
	var most int64
	err := pool.QueryRow(context.Background(), `WITH truth AS (
			SELECT p.install_day, d.day, count(*) AS players FROM player_days d
			JOIN players p USING (gameid, subject) WHERE d.gameid = $1 GROUP BY 1, 2
		), kept AS (
			SELECT install_day, day, players FROM cohort_days WHERE gameid = $1 AND players <> 0
		)
		SELECT coalesce(string_agg(coalesce(t.install_day, k.install_day)::text || ' ' || coalesce(t.day, k.day)::text || ': ' ||
			coalesce(k.players, 0) || ' kept, ' || coalesce(t.players, 0) || ' active', '; '), ''),
			(SELECT coalesce(max(players), 0) FROM kept)
		FROM truth t FULL JOIN kept k USING (install_day, day)
		WHERE t.players IS DISTINCT FROM k.players`, game).Scan(&diff, &most)
	if err != nil {
		t.Fatal(err)
	}
	if diff != "" {
		t.Errorf("cohort_days differ from player_days: %s", diff)
	}
	if most != want {
		t.Errorf("largest cohort cell has %d players, want %d", most, want)
	}
}

// Erasing a player scans only the day partitions between their first and
// last event, not every hot day of the game.
func TestErasureScansOnlyThePlayersDays(t *testing.T) {
	ctx := context.Background()
	g := newGame(t, 30, 400)
	now := time.Now()
	gn := &simtest.Generator{Game: g.ID}
	feed(t, gn.Days([]string{"early", "late"}, []int{9, 6, 3, 0}, now))
	day := func(offset int) time.Time { return now.UTC().AddDate(0, 0, -offset).Truncate(24 * time.Hour) }
	rows, err := pool.Query(ctx, "EXPLAIN "+retain.DeletePlayerEvents, g.ID, "early", day(6), day(3))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	scanned := 0
	for _, line := range plan {
		if strings.Contains(line, "Scan") && strings.Contains(line, " on events_") {
			scanned++
		}
	}
	if scanned != 2 {
		t.Errorf("scans %d partitions, want the 2 of the player's days:\n%s", scanned, strings.Join(plan, "\n"))
	}
}
