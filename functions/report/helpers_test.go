package report

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gamemetrics/gamemetrics/functions/process"
	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

var (
	stack   *devstack.Stack
	pool    *pgxpool.Pool
	rdb     *redis.Client
	objects *archive.Client
)

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

// setup connects to the shared stack and migrates it, once per binary.
func setup(t testing.TB) {
	t.Helper()
	c := devstacktest.Connect(t, stack)
	pool, rdb, objects = c.Pool, c.Redis, c.Archive
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// testGame is a game with its keys.
type testGame struct {
	store.Game
	keys store.Keys
	loc  *time.Location
}

func newGame(t testing.TB, tz string) testGame {
	t.Helper()
	setup(t)
	g, keys, err := store.NewGames(pool).Create(context.Background(), "test "+t.Name(), tz)
	if err != nil {
		t.Fatal(err)
	}
	return testGame{Game: g, keys: keys, loc: g.Location()}
}

// newReport serves report with a fixed clock at now.
func newReport(t testing.TB, now time.Time) (*Report, string) {
	t.Helper()
	setup(t)
	r := New(DefaultConfig(), pool, rdb, objects, testLogger(), prometheus.NewRegistry(), func() time.Time { return now })
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv.URL
}

// seed delivers evs through process (its Handle, concurrently, as a
// KafkaSource with unordered delivery would) and waits for the commits.
func seed(t testing.TB, evs []event.Event) {
	t.Helper()
	setup(t)
	p := process.New(process.DefaultConfig(), pool, rdb, testLogger(), prometheus.NewRegistry())
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stop process: %v", err)
		}
	}()
	simtest.Feed(t, p.Handle, evs, 16)
}

// truth is the recount of a game's events, answering in report's types.
type truth struct{ *simulation.Recount }

func newTruth(t testing.TB, loc *time.Location, now time.Time, evs []event.Event) *truth {
	return &truth{simtest.Recount(t, evs, loc, now)}
}

// value computes metric over one period from the raw events.
func (tr *truth) value(metric, interval string, p period, currency, severity string) float64 {
	in := simulation.Period{From: p.from, To: p.to}
	if interval == Hour {
		in = simulation.Period{Hour: p.hour}
	}
	return tr.Value(metric, in, simulation.Filter{Currency: currency, Severity: severity})
}

// retention returns the expected cohorts for install days [from, to].
func (tr *truth) retention(from, to time.Time, days []int) []Cohort {
	var out []Cohort
	convert(tr.Retention(from, to, days), &out)
	return out
}

// progression returns the expected levels for days [from, to].
func (tr *truth) progression(from, to time.Time) []Level {
	var out []Level
	convert(tr.Progression(from, to), &out)
	return out
}

// convert copies an answer of the recount into report's type of the same
// JSON, as a client of the API would read it.
func convert(from, to any) {
	b, err := json.Marshal(from)
	if err == nil {
		err = json.Unmarshal(b, to)
	}
	if err != nil {
		panic(err)
	}
}

// ---- HTTP helpers ----

func get(t testing.TB, url, key string, header ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func getJSON(t testing.TB, url, key string, v any) {
	t.Helper()
	status, body, _ := get(t, url, key)
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", url, status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

func getCSV(t testing.TB, url, key string, header ...string) [][]string {
	t.Helper()
	status, body, h := get(t, url, key, header...)
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d %s", url, status, body)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Fatalf("GET %s: Content-Type %q, want text/csv", url, ct)
	}
	rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatalf("GET %s: bad CSV: %v\n%s", url, err, body)
	}
	return rows
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
