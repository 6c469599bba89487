package retain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gamemetrics/gamemetrics/functions/process"
	"github.com/gamemetrics/gamemetrics/functions/retain"
	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

var (
	stack *devstack.Stack
	pool  *pgxpool.Pool
	rdb   *redis.Client
	arc   *archive.Client
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

// setup connects to the shared stack and migrates it, once per binary.
func setup(t testing.TB) {
	t.Helper()
	c := devstacktest.Connect(t, stack)
	pool, rdb, arc = c.Pool, c.Redis, c.Archive
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// newRetain builds retain on the shared stack with small parts, so multi-part
// days are exercised.
func newRetain(t testing.TB, partEvents int) *retain.Retain {
	t.Helper()
	setup(t)
	cfg := retain.DefaultConfig()
	cfg.PartEvents = partEvents
	return retain.New(cfg, pool, rdb, arc, testLogger(), prometheus.NewRegistry(), time.Now)
}

// newGame creates a game with the given retention.
func newGame(t testing.TB, hotDays, archiveDays int) store.Game {
	t.Helper()
	setup(t)
	ctx := context.Background()
	games := store.NewGames(pool)
	g, _, err := games.Create(ctx, "test "+t.Name(), "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if g, err = games.SetRetention(ctx, g.ID, &hotDays, &archiveDays); err != nil {
		t.Fatal(err)
	}
	return g
}

func utcDayOf(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// feed sends events through process (the way they are stored in
// production) and waits until every one is committed; any refusal ends
// the test.
func feed(t testing.TB, evs []event.Event) {
	t.Helper()
	setup(t)
	p := process.New(process.DefaultConfig(), pool, rdb, testLogger(), prometheus.NewRegistry())
	defer p.Stop(context.Background())
	if simtest.Feed(t, p.Handle, evs, 64) > 0 {
		t.FailNow()
	}
}

// partitionCounts returns the rows of each existing events partition of game.
func partitionCounts(t testing.TB, game string, days []time.Time) map[time.Time]int64 {
	t.Helper()
	out := map[time.Time]int64{}
	for _, d := range days {
		name := store.EventPartition(game, d)
		var exists bool
		if err := pool.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if !exists {
			continue
		}
		var n int64
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+pgx.Identifier{name}.Sanitize()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[d] = n
	}
	return out
}

func partitionExists(t testing.TB, game string, day time.Time) bool {
	t.Helper()
	var exists bool
	if err := pool.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", store.EventPartition(game, day)).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}

// readDay reads a committed archive day through the public format only:
// manifest, parts, checksums, and the decoded events.
func readDay(t testing.TB, game string, day time.Time) (*archive.Manifest, []event.Event) {
	t.Helper()
	ctx := context.Background()
	b, err := arc.Get(ctx, archive.ManifestKey(game, day))
	if err != nil {
		t.Fatalf("manifest of %s: %v", archive.FormatDay(day), err)
	}
	m, err := archive.DecodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	var all []event.Event
	for _, p := range m.Parts {
		pb, err := arc.Get(ctx, p.Key)
		if err != nil {
			t.Fatal(err)
		}
		if archive.Checksum(pb) != p.SHA256 {
			t.Errorf("%s: checksum differs from the manifest", p.Key)
		}
		evs, err := archive.DecodePart(pb)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(evs)) != p.Events {
			t.Errorf("%s: %d events, manifest says %d", p.Key, len(evs), p.Events)
		}
		all = append(all, evs...)
	}
	return &m, all
}

// objectKeys lists every object key under prefix.
func objectKeys(t testing.TB, prefix string) []string {
	t.Helper()
	objs, err := arc.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	sort.Strings(keys)
	return keys
}

// assertSameEvent compares an archived event with the one sent, as process
// stores it (time to the microsecond, data as JSON).
func assertSameEvent(t testing.TB, want, got event.Event) {
	t.Helper()
	if got.ID() != want.ID() || got.Type() != want.Type() || got.Source() != want.Source() ||
		got.Subject() != want.Subject() || !got.Time().Equal(want.Time().Truncate(time.Microsecond)) {
		t.Errorf("event %s: attributes differ:\n got %v\nwant %v", want.ID(), got, want)
		return
	}
	if len(got.Extensions()) != len(want.Extensions()) {
		t.Errorf("event %s: extensions %v, want %v", want.ID(), got.Extensions(), want.Extensions())
	}
	for k, v := range want.Extensions() {
		ws, _ := types.Format(v)
		gs, err := types.Format(got.Extensions()[k])
		if k == events.ExtReceivedTime {
			wt, _ := types.ToTime(v)
			gt, err2 := types.ToTime(got.Extensions()[k])
			if err2 != nil || !gt.Equal(wt.Truncate(time.Microsecond)) {
				t.Errorf("event %s: receivedtime %v, want %v", want.ID(), got.Extensions()[k], v)
			}
			continue
		}
		if err != nil || ws != gs {
			t.Errorf("event %s: extension %s = %q, want %q", want.ID(), k, gs, ws)
		}
	}
	if !jsonEqual(got.Data(), want.Data()) {
		t.Errorf("event %s: data %s, want %s", want.ID(), got.Data(), want.Data())
	}
}

func jsonEqual(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// byDay groups sent events by UTC day.
func byDay(evs []event.Event) map[time.Time][]event.Event {
	out := map[time.Time][]event.Event{}
	for _, e := range evs {
		d := utcDayOf(e.Time())
		out[d] = append(out[d], e)
	}
	return out
}

// rollups snapshots every rollup row of game.
func rollups(t testing.TB, game string) string {
	t.Helper()
	var s string
	err := pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(x, E'\n' ORDER BY x), '') FROM (
		SELECT format('d %s %s %s %s', day, metric, dim, value) AS x FROM rollup_daily WHERE gameid = $1
		UNION ALL
		SELECT format('h %s %s %s %s', hour, metric, dim, value) FROM rollup_hourly WHERE gameid = $1) r`, game).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// eventRows snapshots every raw row of game as text, ordered by id.
func eventRows(t testing.TB, game string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', day, id, type, source, subject, time, sessionid, receivedtime, data, extensions)
		FROM events WHERE gameid = $1 ORDER BY id`, game)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// gunzipIfGzip returns the content of an object, decompressed if it is gzip.
func gunzipIfGzip(b []byte) []byte {
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b
	}
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return b
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return b
	}
	return out
}

func contains(haystack []byte, needle string) bool { return strings.Contains(string(haystack), needle) }
