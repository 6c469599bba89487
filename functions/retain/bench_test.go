package retain_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// benchEvents is the size of the exported day: RETAIN_BENCH_EVENTS, default
// one million.
func benchEvents(b *testing.B) int {
	if v := os.Getenv("RETAIN_BENCH_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("RETAIN_BENCH_EVENTS=%q", v)
		}
		return n
	}
	return 1_000_000
}

// seedDay fills game's partition of day with n realistic raw rows by COPY
// straight into the partition (the benchmark measures export, not process).
func seedDay(b *testing.B, game string, day time.Time, n int) {
	b.Helper()
	ctx := context.Background()
	if err := store.CreateEventPartition(ctx, pool, game, day); err != nil {
		b.Fatal(err)
	}
	datas := []string{
		`{"platform":"android","app_version":"2.14.0","country":"BR"}`,
		`{"item_id":"gems_500","item_type":"currency_pack","currency":"USD","amount_minor":499,"transaction_id":"GPA.3345-1234-5678"}`,
		`{"status":"complete","level":"world3/stage2/level7","attempt":2,"score":18250}`,
		`{"event":"ui:shop:open","value":1}`,
		`{"action":"reward","ad_type":"rewarded","network":"admob","placement":"level_end","revenue_micros":12000}`,
		`{"flow":"sink","currency":"coins","amount":250,"item_type":"booster","item_id":"rocket"}`,
	}
	typesT := []string{"com.gamemetrics.session.start", "com.gamemetrics.purchase", "com.gamemetrics.progression",
		"com.gamemetrics.design", "com.gamemetrics.ad", "com.gamemetrics.resource"}
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		k := i % len(datas)
		player := fmt.Sprintf("player-%06d", i%50_000)
		t := day.Add(time.Duration(i) * (24 * time.Hour / time.Duration(n)))
		row := []any{game, day, fmt.Sprintf("%s-%09d", player, i), typesT[k], "/android/2.14.0", player, t,
			pgtype.Text{String: fmt.Sprintf("s-%d", i/20), Valid: true}, pgtype.Timestamptz{Time: t.Add(800 * time.Millisecond), Valid: true},
			datas[k], nil}
		i++
		return row, nil
	})
	cols := []string{"gameid", "day", "id", "type", "source", "subject", "time", "sessionid", "receivedtime", "data", "extensions"}
	got, err := pool.CopyFrom(ctx, pgx.Identifier{store.EventPartition(game, day)}, cols, src)
	if err != nil {
		b.Fatal(err)
	}
	if got != int64(n) {
		b.Fatalf("seeded %d rows, want %d", got, n)
	}
}

// BenchmarkArchiveExport measures retention's export of one day to S3:
// read the partition, encode structured CloudEvents, gzip, upload, read
// back and verify, write the manifest, drop the partition. Reports events/s.
func BenchmarkArchiveExport(b *testing.B) {
	ctx := context.Background()
	n := benchEvents(b)
	g := newGame(b, 1, 400)
	r := newRetain(b, 250_000)
	day := utcDayOf(time.Now()).AddDate(0, 0, -10)
	var total time.Duration
	var bytes int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := arc.Delete(ctx, objectKeys(b, archive.DayPrefix(g.ID, day))...); err != nil {
			b.Fatal(err)
		}
		seedDay(b, g.ID, day, n)
		b.StartTimer()
		start := time.Now()
		res, err := r.RetainGame(ctx, g)
		total += time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if res.EventsArchived != int64(n) || res.PartitionsDropped != 1 {
			b.Fatalf("run %+v, want %d events archived and one partition dropped", res, n)
		}
		raw, err := arc.Get(ctx, archive.ManifestKey(g.ID, day))
		if err != nil {
			b.Fatal(err)
		}
		m, err := archive.DecodeManifest(raw)
		if err != nil || m.Events != int64(n) {
			b.Fatalf("manifest %+v, %v", m, err)
		}
		bytes = 0
		for _, p := range m.Parts {
			bytes += p.Bytes
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "events/s")
	b.ReportMetric(float64(bytes)/float64(n), "gzip-bytes/event")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkArchiveRestore measures `gamemetrics archive restore` of one
// archived day: read and verify the parts, decode, insert events and dedup
// ids. Reports events/s.
func BenchmarkArchiveRestore(b *testing.B) {
	ctx := context.Background()
	n := benchEvents(b)
	g := newGame(b, 1, 400)
	r := newRetain(b, 250_000)
	day := utcDayOf(time.Now()).AddDate(0, 0, -10)
	seedDay(b, g.ID, day, n)
	if _, err := r.RetainGame(ctx, g); err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if _, err := pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{store.EventPartition(g.ID, day)}.Sanitize()); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, "DELETE FROM event_ids WHERE gameid = $1", g.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		res, err := r.Restore(ctx, g.ID, day, day)
		total += time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if res.Inserted != int64(n) {
			b.Fatalf("restored %d events, want %d", res.Inserted, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}
