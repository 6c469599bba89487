package report

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts Debian's headless Chromium for one test. A missing browser
// fails the test with the command that installs it: the dashboard must be
// checked, never skipped.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("headless Chromium is needed for the dashboard test and was not found: install it with `apt-get install -y chromium` (or `make deps` as root)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1400),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// artifactDir is where screenshots go: $TEST_ARTIFACTS when set (CI keeps
// it), else the test's artifact directory (kept with go test -artifacts).
func artifactDir(t *testing.T) string {
	if d := os.Getenv("TEST_ARTIFACTS"); d != "" {
		d = filepath.Join(d, "report")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.ArtifactDir()
}

// js runs a JavaScript expression that returns true.
func js(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](expr)(ctx, t)
		return chromedp.Void{}, err
	}
}

// waitState waits for the dashboard's data-state to become want.
func waitState(want string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](`document.body.dataset.state === "`+want+`"`, chromedp.WithPollingTimeout(30*time.Second))
}

func TestDashboardShowsTheSeededNumbers(t *testing.T) {
	s := seedGame(t, "America/Los_Angeles", []string{"USD"}, 30, 42)
	empty := newGame(t, "UTC")
	_, base := newReport(t, testNow)
	ctx := browser(t)

	// A wrong key: a clear error, and the key form stays.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), "gmr_wrong"),
		chromedp.Click(chromedp.CSS("#key-form button")),
		waitState("error"),
	); err != nil {
		t.Fatalf("wrong key: %v", err)
	}
	errText, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("error")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errText, "not accepted") {
		t.Errorf("error shown for a wrong key = %q", errText)
	}

	// The game's read key: charts and the retention table.
	if err := chromedp.Do(ctx,
		js(`(document.getElementById("key").value = "", true)`),
		chromedp.SendKeys(chromedp.ID("key"), s.keys.Read),
		chromedp.Click(chromedp.CSS("#key-form button")),
		waitState("ready"),
		chromedp.WaitVisible(chromedp.ID("retention-table")),
		chromedp.Poll[chromedp.Void](`document.getElementById("live").dataset.online !== undefined`, chromedp.WithPollingTimeout(10*time.Second)),
	); err != nil {
		t.Fatalf("load the dashboard: %v", err)
	}
	page, err := chromedp.Run(ctx, chromedp.Evaluate[dashboardPage](`(() => {
		const charts = {}, empty = {};
		for (const m of ["dau", "new_players", "revenue", "sessions"]) {
			charts[m] = {};
			for (const r of document.querySelectorAll("#chart-" + m + " rect[data-t]")) charts[m][r.dataset.t] = Number(r.dataset.value);
			empty[m] = !!document.querySelector("#chart-" + m + " .empty");
		}
		const retention = [];
		for (const tr of document.querySelectorAll("#retention-table tbody tr")) {
			const days = {};
			for (const td of tr.querySelectorAll("td[data-day]")) days[td.dataset.day] = td.dataset.value === undefined ? null : Number(td.dataset.value);
			retention.push({Cohort: tr.dataset.cohort, Size: Number(tr.querySelector("td[data-size]").dataset.size), Days: days});
		}
		return {Charts: charts, Empty: empty, Retention: retention,
			Range: [document.getElementById("from").value, document.getElementById("to").value],
			Online: document.getElementById("live-online").textContent,
			Stored: localStorage.getItem("gamemetrics.readKey"),
			Info: document.getElementById("game-info").textContent};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	shot(t, ctx, "dashboard.png")

	// The default range is the 30 days up to the game's today.
	from, to := date(page.Range[0]), date(page.Range[1])
	if page.Range != [2]string{"2026-09-23", "2026-10-22"} {
		t.Errorf("default range %v, want the 30 days to 2026-10-22 (today in Los Angeles)", page.Range)
	}
	if page.Stored != s.keys.Read || !strings.Contains(page.Info, s.ID) || !strings.Contains(page.Info, "America/Los_Angeles") {
		t.Errorf("key kept %q, game info %q", page.Stored, page.Info)
	}
	for _, m := range []string{"dau", "new_players", "revenue", "sessions"} {
		ps := periods(Day, from, to, s.loc)
		if len(page.Charts[m]) != len(ps) || page.Empty[m] {
			t.Errorf("chart %s has %d bars (empty state %v), want %d", m, len(page.Charts[m]), page.Empty[m], len(ps))
			continue
		}
		for _, p := range ps {
			if want := s.truth.value(m, Day, p, "USD", ""); page.Charts[m][p.t] != want {
				t.Errorf("chart %s on %s shows %v, want %v", m, p.t, page.Charts[m][p.t], want)
			}
		}
	}
	var wantRows []Cohort
	for _, c := range s.truth.retention(from, to, RetentionDaysOfDashboard) {
		if c.Size > 0 {
			wantRows = append(wantRows, c)
		}
	}
	if len(page.Retention) != len(wantRows) || len(wantRows) == 0 {
		t.Fatalf("retention table has %d cohorts, want %d", len(page.Retention), len(wantRows))
	}
	for i, c := range wantRows {
		got := page.Retention[i]
		if got.Cohort != c.Cohort || got.Size != c.Size {
			t.Errorf("retention row %d = %s/%d, want %s/%d", i, got.Cohort, got.Size, c.Cohort, c.Size)
		}
		for _, n := range RetentionDaysOfDashboard {
			k := strconv.Itoa(n)
			w, g := c.Retained[k], got.Days[k]
			if (w == nil) != (g == nil) || w != nil && *w != *g {
				t.Errorf("retention %s day %d shows %v, want %v", c.Cohort, n, deref(g), deref(w))
			}
		}
	}
	if page.Online != "0" {
		t.Errorf("players online shows %q, want 0 (the seeded events are weeks old)", page.Online)
	}

	// Raw events of one UTC day, downloaded with the key: the page counts
	// the lines it saved.
	day := s.evs[0].Time().UTC().Format(time.DateOnly)
	wantLines := 0
	for _, e := range s.evs {
		if e.Time().UTC().Format(time.DateOnly) == day {
			wantLines++
		}
	}
	if err := chromedp.Do(ctx,
		js(`(document.getElementById("export-date").value = "`+day+`", true)`),
		chromedp.Click(chromedp.CSS("#export button")),
		chromedp.Poll[chromedp.Void](`/events$/.test(document.getElementById("export-status").textContent)`, chromedp.WithPollingTimeout(20*time.Second)),
	); err != nil {
		t.Fatalf("download raw events: %v", err)
	}
	exportText, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("export-status")))
	if err != nil {
		t.Fatal(err)
	}
	if want := thousands(wantLines) + " events"; exportText != want {
		t.Errorf("raw events of %s: the page says %q, want %q", day, exportText, want)
	}

	// Reloading keeps the key: the dashboard opens without asking again.
	if err := chromedp.Do(ctx, chromedp.Reload(), waitState("ready")); err != nil {
		t.Fatal(err)
	}
	keyPanelHidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("key-panel").hidden`))
	if err != nil {
		t.Fatal(err)
	}
	if !keyPanelHidden {
		t.Error("after a reload the dashboard asks for the key again")
	}

	// Another game with no data: every chart shows the empty state.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("forget")),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), empty.keys.Read),
		chromedp.Click(chromedp.CSS("#key-form button")),
		waitState("ready"),
	); err != nil {
		t.Fatal(err)
	}
	emptyCharts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(".chart .empty").length`))
	if err != nil {
		t.Fatal(err)
	}
	shot(t, ctx, "dashboard-empty.png")
	if emptyCharts != 4 {
		t.Errorf("%d charts show the empty state for a game without data, want 4", emptyCharts)
	}
}

// dashboardPage is what the browser test reads off the page.
type dashboardPage struct {
	Charts    map[string]map[string]float64
	Empty     map[string]bool
	Retention []struct {
		Cohort string
		Size   int64
		Days   map[string]*int64
	}
	Range  [2]string
	Online string
	Stored string
	Info   string
}

// RetentionDaysOfDashboard are the columns the dashboard shows.
var RetentionDaysOfDashboard = []int{1, 7, 30}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// thousands formats n as the dashboard does (en-US: 1,234).
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
