package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
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
	problems := watchPage(t, ctx)
	defer func() {
		for _, p := range problems() {
			t.Errorf("the page: %s", p)
		}
	}()

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
	unit, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#chart-revenue .unit")))
	if err != nil {
		t.Fatal(err)
	}
	if unit != "(USD)" {
		t.Errorf("revenue unit %q, want (USD): amounts in major units", unit)
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
	emptyCharts, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".chart")].filter((c) =>
		c.dataset.state === "ready" && c.querySelector(".plot .empty")).map((c) => c.dataset.panel)`))
	if err != nil {
		t.Fatal(err)
	}
	shot(t, ctx, "dashboard-empty.png")
	if len(emptyCharts) != 5 {
		t.Errorf("charts %v show the empty state for a game without data, want all 5 (dau, new players, revenue, sessions, ccu)", emptyCharts)
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

// dashPanels are the dashboard's panels, each one API request.
var dashPanels = []string{"dau", "new_players", "revenue", "sessions", "ccu", "retention", "ltv", "economy", "progression"}

// LTVDaysOfDashboard are the days since install the LTV panel asks for.
var LTVDaysOfDashboard = "0,1,3,7,14,30,60,90"

// filteredPage is what the filter test reads off the page.
type filteredPage struct {
	States    map[string]string
	Charts    map[string]map[string]float64
	Revenue   struct{ Total, Unit, Currency, Exponent string }
	Retention []struct {
		Cohort string
		Size   int64
		Days   map[string]*int64
	}
	LTV struct {
		Currency string
		Rows     []struct {
			Cohort    string
			Size      int64
			Revenue   map[string]*float64
			PerPlayer map[string]*float64
		}
	}
	Economy struct {
		Currency  string
		Points    map[string]map[string]float64
		ItemTypes map[string][2]float64
		TopItems  []string
		TopValues map[string][2]float64
	}
	Progression []struct {
		Level                    string
		Starts, Completes, Fails int64
		FailRate                 float64
	}
	Hash string
}

const readFilteredPage = `(() => {
	const q = (s) => [...document.querySelectorAll(s)];
	const num = (v) => v === undefined ? null : Number(v);
	const page = {States: {}, Charts: {}, Retention: [], Progression: [], Hash: location.hash};
	for (const p of q("[data-panel]")) page.States[p.dataset.panel] = p.dataset.state || "";
	for (const m of ["dau", "new_players", "revenue", "sessions", "ccu"]) {
		page.Charts[m] = {};
		for (const r of q('[data-panel="' + m + '"] rect[data-t]')) page.Charts[m][r.dataset.t] = Number(r.dataset.value);
	}
	const rev = document.querySelector('[data-panel="revenue"]');
	page.Revenue = {Total: rev.querySelector(".total").textContent, Unit: rev.querySelector(".unit").textContent,
		Currency: rev.dataset.currency || "", Exponent: rev.dataset.exponent || ""};
	for (const tr of q("#retention-table tbody tr")) {
		const days = {};
		for (const td of tr.querySelectorAll("td[data-day]")) days[td.dataset.day] = num(td.dataset.value);
		page.Retention.push({Cohort: tr.dataset.cohort, Size: Number(tr.querySelector("td[data-size]").dataset.size), Days: days});
	}
	page.LTV = {Currency: document.querySelector('[data-panel="ltv"]').dataset.currency || "", Rows: []};
	for (const tr of q("#ltv-table tbody tr")) {
		const rev = {}, pp = {};
		for (const td of tr.querySelectorAll("td[data-day]")) { rev[td.dataset.day] = num(td.dataset.revenue); pp[td.dataset.day] = num(td.dataset.perPlayer); }
		page.LTV.Rows.push({Cohort: tr.dataset.cohort, Size: Number(tr.querySelector("td[data-size]").dataset.size), Revenue: rev, PerPlayer: pp});
	}
	page.Economy = {Currency: document.querySelector('[data-panel="economy"]').dataset.currency || "", Points: {}, ItemTypes: {}, TopItems: [], TopValues: {}};
	for (const r of q("#economy-chart rect[data-t]")) (page.Economy.Points[r.dataset.t] ||= {})[r.dataset.flow] = Number(r.dataset.value);
	for (const tr of q("#economy-item-types tbody tr")) page.Economy.ItemTypes[tr.dataset.key] = [Number(tr.dataset.source), Number(tr.dataset.sink)];
	for (const tr of q("#economy-top-items tbody tr")) { page.Economy.TopItems.push(tr.dataset.key); page.Economy.TopValues[tr.dataset.key] = [Number(tr.dataset.source), Number(tr.dataset.sink)]; }
	for (const tr of q("#progression-table tbody tr")) page.Progression.push({Level: tr.dataset.level, Starts: Number(tr.dataset.starts),
		Completes: Number(tr.dataset.completes), Fails: Number(tr.dataset.fails), FailRate: Number(tr.dataset.failRate)});
	return page;
})()`

// Contract answers the filter test reads from the API (the fields the
// dashboard shows).
type (
	apiSeries struct {
		Currency         string  `json:"currency"`
		CurrencyExponent *int    `json:"currency_exponent"`
		Points           []Point `json:"points"`
		Series           []struct {
			Value  string  `json:"value"`
			Points []Point `json:"points"`
		} `json:"series"`
	}
	apiLTV struct {
		Days       []int `json:"days"`
		Currencies []struct {
			Currency         string `json:"currency"`
			CurrencyExponent *int   `json:"currency_exponent"`
			Cohorts          []struct {
				Cohort    string              `json:"cohort"`
				Size      int64               `json:"size"`
				Revenue   map[string]*float64 `json:"revenue_minor"`
				PerPlayer map[string]*float64 `json:"per_player_minor"`
			} `json:"cohorts"`
		} `json:"currencies"`
	}
	apiFlow struct {
		ItemType string  `json:"item_type"`
		ItemID   string  `json:"item_id"`
		Source   float64 `json:"source"`
		Sink     float64 `json:"sink"`
	}
	apiEconomy struct {
		Currencies []struct {
			Currency string `json:"currency"`
			Points   []struct {
				T      string  `json:"t"`
				Source float64 `json:"source"`
				Sink   float64 `json:"sink"`
			} `json:"points"`
			ItemTypes []apiFlow `json:"item_types"`
			TopItems  []apiFlow `json:"top_items"`
		} `json:"currencies"`
	}
)

// major formats an amount in minor units as the dashboard shows its digits:
// exactly exp decimals, thousands separated (en-US), without the symbol.
func major(minor float64, exp int) string {
	s := strconv.FormatFloat(minor/math.Pow10(exp), 'f', exp, 64)
	whole, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(whole, "-")
	n, _ := strconv.Atoi(strings.TrimPrefix(whole, "-"))
	out := thousands(n)
	if neg {
		out = "-" + out
	}
	if frac != "" {
		out += "." + frac
	}
	return out
}

func TestMajorUnits(t *testing.T) {
	for _, tc := range []struct {
		minor float64
		exp   int
		want  string
	}{{171467, 2, "1,714.67"}, {171467, 0, "171,467"}, {171467, 3, "171.467"}, {5, 3, "0.005"}, {1234567890, 2, "12,345,678.90"}} {
		if got := major(tc.minor, tc.exp); got != tc.want {
			t.Errorf("major(%v, %d) = %q, want %q", tc.minor, tc.exp, got, tc.want)
		}
	}
}

// TestDashboardFiltersEveryPanel drives the filter bar with values the page
// offers (from the API's by= series) and checks every panel against the
// API's answer for the same parameters, built here independently of the
// page; then each currency's revenue in major units (JPY 0 and BHD 3
// decimals), the hourly CCU, and every panel's CSV download.
func TestDashboardFiltersEveryPanel(t *testing.T) {
	s := seedGame(t, "Asia/Tokyo", []string{"JPY", "BHD"}, 40, 17)
	_, base := newReport(t, testNow)
	ctx := browser(t)
	problems := watchPage(t, ctx)
	downloads := t.TempDir()
	progress, stop := iter.Pull2(chromedp.Events(ctx, cdpbrowser.DownloadProgress))
	defer stop()

	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
				Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: new(true)})
			return err
		}),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), s.keys.Read),
		chromedp.Click(chromedp.CSS("#key-form button")),
		waitState("ready"),
		chromedp.Poll[chromedp.Void](`document.getElementById("filters").dataset.supported !== undefined`, chromedp.WithPollingTimeout(20*time.Second)),
	); err != nil {
		t.Fatalf("load the dashboard: %v", err)
	}
	from, to := "2026-09-23", "2026-10-22" // the default range: 30 days to today in Tokyo
	api := func(path string, params url.Values) string {
		return base + "/v1/games/" + s.ID + "/" + path + "?" + params.Encode()
	}

	// The filter bar offers, per dimension, the values of the API's by=
	// series over the range, in the API's order.
	offered, err := chromedp.Run(ctx, chromedp.Evaluate[map[string][]string](`Object.fromEntries(["platform", "country", "appversion", "dim1", "dim2", "dim3"].map((f) =>
		[f, [...document.querySelectorAll("#dl-" + f + " option")].map((o) => o.value)]))`))
	if err != nil {
		t.Fatal(err)
	}
	for _, dim := range []string{"platform", "country", "appversion", "dim1", "dim2", "dim3"} {
		var ans apiSeries
		getJSON(t, api("metrics/events", url.Values{"from": {from}, "to": {to}, "interval": {"month"}, "by": {dim}}), s.keys.Read, &ans)
		if ans.Series == nil {
			t.Fatalf("metrics/events?by=%s answers no series: this server has no breakdowns, so the filter bar has nothing to offer", dim)
		}
		var want []string
		for _, se := range ans.Series {
			want = append(want, se.Value)
		}
		if strings.Join(offered[dim], ",") != strings.Join(want, ",") {
			t.Errorf("filter %s offers %v, the API's by=%s series are %v", dim, offered[dim], dim, want)
		}
	}
	platforms, countries := offered["platform"], offered["country"]
	if len(platforms) == 0 || len(countries) == 0 {
		t.Fatalf("the filter bar offers platforms %v and countries %v: the seeded events carry none", platforms, countries)
	}

	// Two platforms (any of them) and one country, typed as a user would.
	filter := url.Values{"platform": {strings.Join(platforms[:min(2, len(platforms))], ",")}, "country": {countries[0]}}
	if err := chromedp.Do(ctx,
		js(`(document.body.dataset.state = "", true)`),
		chromedp.SendKeys(chromedp.ID("f-platform"), filter.Get("platform")),
		chromedp.SendKeys(chromedp.ID("f-country"), filter.Get("country")+kb.Enter),
		chromedp.Poll[chromedp.Void](`(() => { const h = new URLSearchParams(location.hash.slice(1));
			return document.body.dataset.state === "ready" && h.get("platform") === `+strconv.Quote(filter.Get("platform"))+
			` && h.get("country") === `+strconv.Quote(filter.Get("country"))+` })()`, chromedp.WithPollingTimeout(30*time.Second)),
	); err != nil {
		t.Fatalf("apply the filters %v: %v", filter, err)
	}

	// want is each panel's request as the contract spells it.
	interval := "day"
	want := func(panel, currency, ccuInterval string) string {
		p := url.Values{"from": {from}, "to": {to}}
		for k, v := range filter {
			p[k] = v
		}
		switch panel {
		case "revenue":
			p.Set("currency", currency)
			fallthrough
		case "dau", "new_players", "sessions":
			p.Set("interval", interval)
			return api("metrics/"+panel, p)
		case "ccu":
			p.Set("interval", ccuInterval)
			if ccuInterval == "hour" {
				p.Set("from", "2026-10-16")
			}
			// A server that keeps peak concurrency for the whole game only
			// refuses the filters naming one: the panel then shows the
			// whole game's, and says so.
			if code, body, _ := get(t, api("metrics/ccu_peak", p), s.keys.Read); code == http.StatusBadRequest && filterRefused(body) {
				for k := range filter {
					p.Del(k)
				}
			}
			return api("metrics/ccu_peak", p)
		case "retention":
			p.Set("days", "1,7,30")
			return api("retention", p)
		case "ltv":
			p.Set("days", LTVDaysOfDashboard)
			p.Set("currency", currency)
			return api("ltv", p)
		case "economy":
			p.Set("interval", interval)
			return api("economy", p)
		}
		return api("progression", p)
	}

	// The filters are not a no-op on this data: the filtered sessions differ
	// from the unfiltered ones.
	var all, filtered apiSeries
	getJSON(t, api("metrics/sessions", url.Values{"from": {from}, "to": {to}}), s.keys.Read, &all)
	getJSON(t, want("sessions", "", ""), s.keys.Read, &filtered)
	if reflect.DeepEqual(all.Points, filtered.Points) && (len(platforms) > 2 || len(countries) > 1) {
		t.Errorf("sessions with %v equal the unfiltered sessions: the seeded dimensions do not split the data", filter)
	}

	for _, currency := range s.currencies {
		if err := chromedp.Do(ctx,
			js(`(document.body.dataset.state = "", true)`),
			js(`((s) => (s.value = `+strconv.Quote(currency)+`, s.dispatchEvent(new Event("change")), true))(document.getElementById("currency"))`),
			waitState("ready"),
		); err != nil {
			t.Fatalf("choose %s: %v", currency, err)
		}
		page, err := chromedp.Run(ctx, chromedp.Evaluate[filteredPage](readFilteredPage))
		if err != nil {
			t.Fatal(err)
		}
		shot(t, ctx, "dashboard-filtered-"+currency+".png")
		if ms, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.dataset.loadMs`)); err == nil {
			t.Logf("%s: every panel loaded with the filters in %s ms (measured in the page; not asserted)", currency, ms)
		}
		for _, panel := range dashPanels {
			if page.States[panel] != "ready" {
				t.Errorf("%s: panel %s is %q, want ready", currency, panel, page.States[panel])
			}
		}
		checkCharts(t, s.keys.Read, page, func(panel string) string { return want(panel, currency, "day") })

		// Revenue: major units with the API's exponent.
		var rev apiSeries
		getJSON(t, want("revenue", currency, ""), s.keys.Read, &rev)
		if rev.CurrencyExponent == nil {
			t.Errorf("revenue in %s: the API states no currency_exponent", currency)
		} else {
			total := 0.0
			for _, p := range rev.Points {
				total += p.Value
			}
			if w := major(total, *rev.CurrencyExponent); !strings.Contains(page.Revenue.Total, w) || page.Revenue.Exponent != strconv.Itoa(*rev.CurrencyExponent) {
				t.Errorf("revenue in %s shows %q (exponent %s), want %s in major units (exponent %d)", currency, page.Revenue.Total, page.Revenue.Exponent, w, *rev.CurrencyExponent)
			}
		}
		if page.Revenue.Unit != "("+currency+")" || page.Revenue.Currency != currency {
			t.Errorf("revenue unit %q for %s", page.Revenue.Unit, currency)
		}

		checkLTV(t, s.keys.Read, page, currency, want("ltv", currency, ""))
	}
	page, err := chromedp.Run(ctx, chromedp.Evaluate[filteredPage](readFilteredPage))
	if err != nil {
		t.Fatal(err)
	}
	checkRetention(t, s.keys.Read, page, want("retention", "", ""))
	checkEconomy(t, s.keys.Read, page, want("economy", "", ""))
	checkProgression(t, s.keys.Read, page, want("progression", "", ""))

	// Weeks: the charts and the economy follow the interval.
	interval = "week"
	if err := chromedp.Do(ctx,
		js(`(document.body.dataset.state = "", true)`),
		js(`((s) => (s.value = "week", s.dispatchEvent(new Event("change")), true))(document.getElementById("interval"))`),
		waitState("ready"),
	); err != nil {
		t.Fatalf("weekly: %v", err)
	}
	page, err = chromedp.Run(ctx, chromedp.Evaluate[filteredPage](readFilteredPage))
	if err != nil {
		t.Fatal(err)
	}
	last := s.currencies[len(s.currencies)-1]
	checkCharts(t, s.keys.Read, page, func(panel string) string { return want(panel, last, "day") })
	checkEconomy(t, s.keys.Read, page, want("economy", "", ""))

	// Peak concurrent players per hour: the last 7 days of the range.
	if err := chromedp.Do(ctx,
		js(`(document.querySelector('[data-panel="ccu"]').dataset.state = "", true)`),
		js(`((s) => (s.value = "hour", s.dispatchEvent(new Event("change")), true))(document.getElementById("ccu-interval"))`),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-panel="ccu"]').dataset.state === "ready"`, chromedp.WithPollingTimeout(20*time.Second)),
	); err != nil {
		t.Fatalf("hourly CCU: %v", err)
	}
	page, err = chromedp.Run(ctx, chromedp.Evaluate[filteredPage](readFilteredPage))
	if err != nil {
		t.Fatal(err)
	}
	var ccu apiSeries
	getJSON(t, want("ccu", "", "hour"), s.keys.Read, &ccu)
	checkPoints(t, "hourly ccu", page.Charts["ccu"], ccu.Points)

	// Every panel's CSV is the API's CSV for the panel's parameters.
	for _, panel := range dashPanels {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`[data-panel="`+panel+`"] .csv`))); err != nil {
			t.Fatalf("CSV of %s: %v", panel, err)
		}
		got := nextDownload(t, progress, downloads)
		_, wantCSV, _ := get(t, want(panel, last, "hour")+"&format=csv", s.keys.Read)
		if !bytes.Equal(got, wantCSV) {
			t.Errorf("CSV of %s:\n%s\nwant the API's\n%s", panel, got, wantCSV)
		}
	}

	// The range and filters are in the address: a reload (or a bookmark)
	// shows the same view.
	if err := chromedp.Do(ctx, chromedp.Reload(), waitState("ready")); err != nil {
		t.Fatal(err)
	}
	kept, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`["f-platform", "f-country", "interval", "from", "to"].map((id) => document.getElementById(id).value)`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filter.Get("platform"), filter.Get("country"), "week", from, to}; !slices.Equal(kept, want) {
		t.Errorf("after a reload the view is %v, want %v", kept, want)
	}

	// A country the API refuses is said at its field, with the API's reason.
	if err := chromedp.Do(ctx,
		js(`(document.body.dataset.state = "", document.getElementById("f-country").value = "", true)`),
		chromedp.SendKeys(chromedp.ID("f-country"), "Narnia"+kb.Enter),
		waitState("ready"),
	); err != nil {
		t.Fatal(err)
	}
	refused, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById("error").textContent,
		String(document.getElementById("f-country").getAttribute("aria-invalid"))]`))
	if err != nil {
		t.Fatal(err)
	}
	shot(t, ctx, "dashboard-bad-filter.png")
	if !strings.Contains(refused[0], "country") || refused[1] != "true" {
		t.Errorf("country Narnia: the page says %q (field invalid: %s), want the API's reason naming country at the field", refused[0], refused[1])
	}
	for _, p := range problems() {
		t.Errorf("the page: %s", p)
	}
}

// filterRefused tells whether an API error names a filter parameter.
func filterRefused(body []byte) bool {
	var e struct {
		Param string `json:"param"`
	}
	json.Unmarshal(body, &e)
	return slices.Contains([]string{"platform", "country", "appversion", "dim1", "dim2", "dim3"}, e.Param)
}

// watchPage collects what the page must never do: a JavaScript exception, or
// a console entry from the security source (a Content-Security-Policy
// refusal) or JavaScript source. Refused API requests (a 400 the page shows)
// are network entries and allowed.
func watchPage(t *testing.T, ctx context.Context) func() []string {
	t.Helper()
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enable the browser log: %v", err)
	}
	var (
		mu       sync.Mutex
		problems []string
	)
	add := func(s string) { mu.Lock(); problems = append(problems, s); mu.Unlock() }
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev, err := range chromedp.Events(wctx, cdplog.EntryAdded) {
			if err != nil {
				return
			}
			if e := ev.Entry; e.Source == cdplog.EntrySourceSecurity || e.Source == cdplog.EntrySourceJavascript {
				add(fmt.Sprintf("%s %s: %s (%s:%d)", e.Source, e.Level, e.Text, e.URL, e.LineNumber))
			}
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range chromedp.Events(wctx, cdpruntime.ExceptionThrown) {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			add(fmt.Sprintf("exception: %s (%s:%d)", desc, d.URL, d.LineNumber))
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(problems)
	}
}

// nextDownload waits for the browser's next finished download and returns
// its bytes.
func nextDownload(t *testing.T, next func() (cdpbrowser.EventDownloadProgress, error, bool), dir string) []byte {
	t.Helper()
	for {
		ev, err, ok := next()
		if !ok || err != nil {
			t.Fatalf("no download: %v", err)
		}
		switch ev.State {
		case cdpbrowser.DownloadProgressStateCanceled:
			t.Fatalf("download %s canceled", ev.GUID)
		case cdpbrowser.DownloadProgressStateCompleted:
			b, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

func checkPoints(t *testing.T, what string, got map[string]float64, want []Point) {
	t.Helper()
	nonzero := false
	for _, p := range want {
		nonzero = nonzero || p.Value != 0
	}
	if !nonzero {
		if len(got) != 0 {
			t.Errorf("%s: %d bars for an all-zero answer, want the empty state", what, len(got))
		}
		return
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d bars, the API answers %d points", what, len(got), len(want))
	}
	for _, p := range want {
		if g, ok := got[p.T]; !ok || g != p.Value {
			t.Errorf("%s on %s shows %v, the API answers %v", what, p.T, g, p.Value)
		}
	}
}

func checkCharts(t *testing.T, key string, page filteredPage, want func(string) string) {
	t.Helper()
	for _, m := range []string{"dau", "new_players", "revenue", "sessions", "ccu"} {
		var ans apiSeries
		getJSON(t, want(m), key, &ans)
		checkPoints(t, m, page.Charts[m], ans.Points)
	}
}

func checkRetention(t *testing.T, key string, page filteredPage, url string) {
	t.Helper()
	var ans Retention
	getJSON(t, url, key, &ans)
	var rows []Cohort
	for _, c := range ans.Cohorts {
		if c.Size > 0 {
			rows = append(rows, c)
		}
	}
	if len(page.Retention) != len(rows) {
		t.Fatalf("retention table has %d cohorts, the API %d", len(page.Retention), len(rows))
	}
	for i, c := range rows {
		got := page.Retention[i]
		if got.Cohort != c.Cohort || got.Size != c.Size {
			t.Errorf("retention row %d = %s/%d, the API %s/%d", i, got.Cohort, got.Size, c.Cohort, c.Size)
		}
		for _, n := range RetentionDaysOfDashboard {
			k := strconv.Itoa(n)
			w, g := c.Retained[k], got.Days[k]
			if (w == nil) != (g == nil) || w != nil && *w != *g {
				t.Errorf("retention %s day %d shows %v, the API %v", c.Cohort, n, deref(g), deref(w))
			}
		}
	}
}

func checkLTV(t *testing.T, key string, page filteredPage, currency, url string) {
	t.Helper()
	var ans apiLTV
	getJSON(t, url, key, &ans)
	if len(ans.Currencies) != 1 || ans.Currencies[0].Currency != currency {
		t.Fatalf("ltv?currency=%s answers %d currencies", currency, len(ans.Currencies))
	}
	if page.LTV.Currency != currency {
		t.Errorf("LTV panel shows %q, want %s", page.LTV.Currency, currency)
	}
	type row = struct {
		Cohort    string
		Size      int64
		Revenue   map[string]*float64
		PerPlayer map[string]*float64
	}
	var rows []row
	for _, c := range ans.Currencies[0].Cohorts {
		if c.Size > 0 {
			rows = append(rows, row{c.Cohort, c.Size, c.Revenue, c.PerPlayer})
		}
	}
	if len(rows) == 0 {
		t.Errorf("LTV in %s: no cohort to check", currency)
	}
	if !reflect.DeepEqual(page.LTV.Rows, rows) {
		t.Errorf("LTV table in %s:\n%s\nthe API:\n%s", currency, mustJSON(page.LTV.Rows), mustJSON(rows))
	}
}

func checkEconomy(t *testing.T, key string, page filteredPage, url string) {
	t.Helper()
	var ans apiEconomy
	getJSON(t, url, key, &ans)
	if len(ans.Currencies) == 0 {
		t.Fatalf("economy answers no currency: the seeded resource events are missing")
	}
	cur := ans.Currencies[0]
	if page.Economy.Currency != cur.Currency {
		t.Fatalf("economy panel shows %q, the API's first currency is %s", page.Economy.Currency, cur.Currency)
	}
	flowed := false
	for _, p := range cur.Points {
		flowed = flowed || p.Source != 0 || p.Sink != 0
	}
	if !flowed {
		t.Errorf("economy: no %s flowed with the filters, nothing to check", cur.Currency)
		return
	}
	for _, p := range cur.Points {
		g := page.Economy.Points[p.T]
		if g["source"] != p.Source || g["sink"] != p.Sink {
			t.Errorf("economy %s on %s shows %v, the API source %v sink %v", cur.Currency, p.T, g, p.Source, p.Sink)
		}
	}
	if len(page.Economy.Points) != len(cur.Points) {
		t.Errorf("economy chart has %d periods, the API %d", len(page.Economy.Points), len(cur.Points))
	}
	types := map[string][2]float64{}
	for _, f := range cur.ItemTypes {
		types[f.ItemType] = [2]float64{f.Source, f.Sink}
	}
	if !reflect.DeepEqual(page.Economy.ItemTypes, types) && len(types)+len(page.Economy.ItemTypes) > 0 {
		t.Errorf("economy item types %v, the API %v", page.Economy.ItemTypes, types)
	}
	var top []string
	for _, f := range cur.TopItems {
		top = append(top, f.ItemID+"/"+f.ItemType)
		if g := page.Economy.TopValues[f.ItemID+"/"+f.ItemType]; g != [2]float64{f.Source, f.Sink} {
			t.Errorf("economy item %s shows %v, the API %v/%v", f.ItemID, g, f.Source, f.Sink)
		}
	}
	if strings.Join(page.Economy.TopItems, " ") != strings.Join(top, " ") {
		t.Errorf("economy top items %v, the API %v", page.Economy.TopItems, top)
	}
}

func checkProgression(t *testing.T, key string, page filteredPage, url string) {
	t.Helper()
	var ans Progression
	getJSON(t, url, key, &ans)
	if len(ans.Levels) == 0 {
		t.Error("progression: no level to check")
	}
	if len(page.Progression) != len(ans.Levels) {
		t.Fatalf("progression table has %d levels, the API %d", len(page.Progression), len(ans.Levels))
	}
	for i, l := range ans.Levels {
		g := page.Progression[i]
		if g.Level != l.Level || g.Starts != l.Starts || g.Completes != l.Completes || g.Fails != l.Fails || g.FailRate != l.FailRate {
			t.Errorf("progression row %d = %+v, the API %+v", i, g, l)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", " ")
	return string(b)
}
