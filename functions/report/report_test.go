package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/metrics"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
)

var (
	seedFrom = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	seedDays = 20
	// testNow is report's clock: after the seeded days, so sessions are
	// closed, and early enough that later retention days are in the future.
	testNow = time.Date(2026, 10, 22, 12, 0, 0, 0, time.UTC)
)

func date(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

// seeded is a game with events delivered through process.
type seeded struct {
	testGame
	evs        []event.Event
	truth      *truth
	gen        *simtest.Generator
	currencies []string
}

func seedGame(t *testing.T, tz string, currencies []string, players int, seedN uint64) seeded {
	t.Helper()
	g := newGame(t, tz)
	gn := &simtest.Generator{Game: g.ID, Rand: rand.New(rand.NewPCG(seedN, 7))}
	evs := gn.Players(players, simtest.Traffic{From: seedFrom, Days: seedDays, Sessions: 2, Currencies: currencies})
	// every event delivered 1-2 times, shuffled: process deduplicates.
	seed(t, gn.Deliveries(evs, 2))
	return seeded{testGame: g, evs: evs, truth: newTruth(t, g.loc, testNow, evs), gen: gn, currencies: currencies}
}

func TestEveryMetricMatchesTheGroundTruthInTheGamesTimezone(t *testing.T) {
	for _, tc := range []struct {
		tz         string
		currencies []string
	}{
		{"America/Los_Angeles", []string{"USD", "EUR"}},
		{"Asia/Kolkata", []string{"INR"}},
	} {
		t.Run(tc.tz, func(t *testing.T) {
			s := seedGame(t, tc.tz, tc.currencies, 40, uint64(len(tc.tz)))
			_, base := newReport(t, testNow)
			from, to := date("2026-09-30"), date("2026-10-22")
			ranges := map[string][2]time.Time{
				Day: {from, to}, Week: {from, to}, Month: {from, to},
				Hour: {date("2026-10-05"), date("2026-10-06")},
			}
			checked := 0
			for _, metric := range metrics.Names() {
				if metric == "ccu_peak" {
					continue // per hour and day only: TestBreakdownsFiltersLTVEconomyAndCCU
				}
				for _, interval := range []string{Day, Week, Month, Hour} {
					variants := []map[string]string{{}}
					switch metric {
					case "revenue", "arpdau", "arppu", "transactions":
						variants = nil
						for _, c := range tc.currencies {
							variants = append(variants, map[string]string{"currency": c})
						}
						if metric == "transactions" {
							variants = append(variants, map[string]string{})
						}
					case "errors":
						variants = append(variants, map[string]string{"severity": "critical"})
					}
					for _, extra := range variants {
						r := ranges[interval]
						q := url.Values{"from": {r[0].Format(time.DateOnly)}, "to": {r[1].Format(time.DateOnly)}, "interval": {interval}}
						for k, v := range extra {
							q.Set(k, v)
						}
						u := fmt.Sprintf("%s/v1/games/%s/metrics/%s?%s", base, s.ID, metric, q.Encode())
						var got Series
						getJSON(t, u, s.keys.Read, &got)
						if got.Game != s.ID || got.Metric != metric || got.Interval != interval || got.Timezone != tc.tz || got.Approximate {
							t.Errorf("%s: header = %+v", u, got)
						}
						ps := periods(interval, r[0], r[1], s.loc)
						if len(got.Points) != len(ps) {
							t.Fatalf("%s: %d points, want %d", u, len(got.Points), len(ps))
						}
						nonZero := 0
						for i, p := range ps {
							want := s.truth.value(metric, interval, p, extra["currency"], extra["severity"])
							if got.Points[i].T != p.t || !near(got.Points[i].Value, want) {
								t.Errorf("%s: point %d = %+v, want {%s %v}", u, i, got.Points[i], p.t, want)
							}
							if want != 0 {
								nonZero++
							}
						}
						if nonZero == 0 && metric != "first_time_payers" && interval != Hour {
							t.Errorf("%s: the ground truth is all zeros: the test data does not exercise it", u)
						}
						checked++
					}
				}
			}
			t.Logf("%d series checked against the ground truth", checked)

			// Daily points are exactly the calendar days, zeros included.
			var dau Series
			getJSON(t, fmt.Sprintf("%s/v1/games/%s/metrics/dau?from=2026-09-25&to=2026-10-03", base, s.ID), s.keys.Read, &dau)
			var ts []string
			for _, p := range dau.Points {
				ts = append(ts, p.T)
			}
			want := "2026-09-25 2026-09-26 2026-09-27 2026-09-28 2026-09-29 2026-09-30 2026-10-01 2026-10-02 2026-10-03"
			if strings.Join(ts, " ") != want || dau.Points[0].Value != 0 {
				t.Errorf("daily points %v (first %v), want %s with zeros first", ts, dau.Points[0].Value, want)
			}

			// Retention.
			var ret Retention
			getJSON(t, fmt.Sprintf("%s/v1/games/%s/retention?from=2026-10-01&to=2026-10-20&days=0,1,3,7,14,30", base, s.ID), s.keys.Read, &ret)
			wantRet := s.truth.retention(date("2026-10-01"), date("2026-10-20"), []int{0, 1, 3, 7, 14, 30})
			if !reflect.DeepEqual(ret.Cohorts, wantRet) {
				gj, _ := json.Marshal(ret.Cohorts)
				wj, _ := json.Marshal(wantRet)
				t.Errorf("retention:\n got %s\nwant %s", gj, wj)
			}
			var sizes, nulls, retained int64
			for _, c := range wantRet {
				sizes += c.Size
				for _, v := range c.Retained {
					if v == nil {
						nulls++
					} else {
						retained += *v
					}
				}
			}
			if sizes == 0 || nulls == 0 || retained == 0 {
				t.Errorf("retention truth has %d players, %d nulls, %d retained: the data does not exercise it", sizes, nulls, retained)
			}
			var def Retention
			getJSON(t, fmt.Sprintf("%s/v1/games/%s/retention?from=2026-10-01&to=2026-10-02", base, s.ID), s.keys.Read, &def)
			if !reflect.DeepEqual(def.Days, []int{1, 7, 30}) {
				t.Errorf("default days = %v, want [1 7 30]", def.Days)
			}

			// Progression.
			var prog Progression
			getJSON(t, fmt.Sprintf("%s/v1/games/%s/progression?from=2026-10-03&to=2026-10-15", base, s.ID), s.keys.Read, &prog)
			if wantProg := s.truth.progression(date("2026-10-03"), date("2026-10-15")); !reflect.DeepEqual(prog.Levels, wantProg) {
				gj, _ := json.Marshal(prog.Levels)
				wj, _ := json.Marshal(wantProg)
				t.Errorf("progression:\n got %s\nwant %s", gj, wj)
			}
		})
	}
}

func TestWeekAndMonthDistinctCountsFromSketchesAreFlaggedApproximate(t *testing.T) {
	s := seedGame(t, "UTC", []string{"USD"}, 25, 3)
	setup(t)
	// A limit of 0 always uses the sketches.
	q := metrics.New(pool, func() time.Time { return testNow }, metrics.WithExactDistinctLimit(0))
	from, to := date("2026-09-28"), date("2026-10-25")
	got, err := q.Series(context.Background(), metrics.SeriesQuery{Game: s.Game, Metric: "dau", Interval: metrics.Week, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Approximate {
		t.Error("sketch-based answer not flagged approximate")
	}
	ps := periods(Week, from, to, s.loc)
	if len(got.Points) != len(ps) {
		t.Fatalf("%d points, want %d", len(got.Points), len(ps))
	}
	for i, p := range ps {
		// Under ~160 players a sketch is still in its exact (explicit) mode.
		if want := s.truth.value("dau", Week, p, "", ""); got.Points[i].Value != want {
			t.Errorf("week %s: %v, want %v", p.t, got.Points[i].Value, want)
		}
	}
}

func TestDayBoundariesFollowTheGamesTimezone(t *testing.T) {
	for _, tc := range []struct {
		tz            string
		before, after time.Time // one minute either side of a local midnight
		dayBefore     string
		firstHourT    string
	}{
		{"America/Los_Angeles", time.Date(2026, 10, 5, 6, 59, 0, 0, time.UTC), time.Date(2026, 10, 5, 7, 1, 0, 0, time.UTC), "2026-10-04", "2026-10-04T00:00:00-07:00"},
		{"Asia/Kolkata", time.Date(2026, 10, 4, 18, 29, 0, 0, time.UTC), time.Date(2026, 10, 4, 18, 31, 0, 0, time.UTC), "2026-10-04", "2026-10-04T00:30:00+05:30"},
	} {
		t.Run(tc.tz, func(t *testing.T) {
			g := newGame(t, tc.tz)
			gn := &simtest.Generator{Game: g.ID}
			seed(t, []event.Event{
				gn.Event(events.TypeSessionStart, "p1", "s1", tc.before, `{"platform":"ios","app_version":"1"}`),
				gn.Event(events.TypeSessionEnd, "p1", "s1", tc.after, `{}`),
			})
			_, base := newReport(t, testNow)
			var dau, ev, sess, np Series
			q := "?from=2026-10-04&to=2026-10-05"
			getJSON(t, base+"/v1/games/"+g.ID+"/metrics/dau"+q, g.keys.Read, &dau)
			getJSON(t, base+"/v1/games/"+g.ID+"/metrics/events"+q, g.keys.Read, &ev)
			getJSON(t, base+"/v1/games/"+g.ID+"/metrics/sessions"+q, g.keys.Read, &sess)
			getJSON(t, base+"/v1/games/"+g.ID+"/metrics/new_players"+q, g.keys.Read, &np)
			want := []Point{{tc.dayBefore, 1}, {"2026-10-05", 1}}
			for name, s := range map[string]Series{"dau": dau, "events": ev} {
				if !reflect.DeepEqual(s.Points, want) {
					t.Errorf("%s = %v, want %v (the two events are on two local days)", name, s.Points, want)
				}
			}
			want = []Point{{tc.dayBefore, 1}, {"2026-10-05", 0}}
			for name, s := range map[string]Series{"sessions": sess, "new_players": np} {
				if !reflect.DeepEqual(s.Points, want) {
					t.Errorf("%s = %v, want %v", name, s.Points, want)
				}
			}
			var ret Retention
			getJSON(t, base+"/v1/games/"+g.ID+"/retention?from=2026-10-04&to=2026-10-04&days=0,1,2", g.keys.Read, &ret)
			one, zero := int64(1), int64(0)
			if wantRet := []Cohort{{Cohort: "2026-10-04", Size: 1, Retained: map[string]*int64{"0": &one, "1": &one, "2": &zero}}}; !reflect.DeepEqual(ret.Cohorts, wantRet) {
				gj, _ := json.Marshal(ret.Cohorts)
				t.Errorf("retention = %s, want the day-1 return the local calendar gives", gj)
			}
			var hours Series
			getJSON(t, base+"/v1/games/"+g.ID+"/metrics/events?from=2026-10-04&to=2026-10-04&interval=hour", g.keys.Read, &hours)
			if len(hours.Points) != 24 || hours.Points[0].T != tc.firstHourT {
				t.Fatalf("hour points: %d, first %+v; want 24 from %s", len(hours.Points), hours.Points[0], tc.firstHourT)
			}
			for _, p := range hours.Points {
				if _, err := time.Parse(time.RFC3339, p.T); err != nil {
					t.Errorf("hour t %q is not RFC 3339", p.T)
				}
			}
		})
	}
}

func TestReadKeysOnlyReadTheirOwnGame(t *testing.T) {
	a, b := newGame(t, "UTC"), newGame(t, "UTC")
	_, base := newReport(t, testNow)
	paths := func(game string) []string {
		return []string{
			"/v1/games/" + game + "/metrics/dau?from=2026-10-01&to=2026-10-02",
			"/v1/games/" + game + "/retention?from=2026-10-01&to=2026-10-02",
			"/v1/games/" + game + "/progression?from=2026-10-01&to=2026-10-02",
			"/v1/games/" + game + "/live",
		}
	}
	tests := []struct {
		name   string
		game   string
		header string
		want   int
	}{
		{"its own read key reads", a.ID, "Bearer " + a.keys.Read, http.StatusOK},
		{"no Authorization header is 401", a.ID, "", http.StatusUnauthorized},
		{"an empty bearer is 401", a.ID, "Bearer ", http.StatusUnauthorized},
		{"a non-bearer scheme is 401", a.ID, "Basic " + a.keys.Read, http.StatusUnauthorized},
		{"an unknown read key is 401", a.ID, "Bearer gmr_notakeyatall", http.StatusUnauthorized},
		{"the game's write key cannot read", a.ID, "Bearer " + a.keys.Write, http.StatusUnauthorized},
		{"another game's id is 404", b.ID, "Bearer " + a.keys.Read, http.StatusNotFound},
		{"a game that does not exist is 404 too", "g0000000000000000", "Bearer " + a.keys.Read, http.StatusNotFound},
		{"an unknown key on another game is still 401", b.ID, "Bearer gmr_nope", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range paths(tc.game) {
				req, _ := http.NewRequest(http.MethodGet, base+p, nil)
				if tc.header != "" {
					req.Header.Set("Authorization", tc.header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var body map[string]any
				json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("GET %s = %d %v, want %d", p, resp.StatusCode, body, tc.want)
				}
				if tc.want == http.StatusNotFound && strings.Contains(fmt.Sprint(body), tc.game) {
					t.Errorf("GET %s: 404 body %v names the game", p, body)
				}
				if tc.want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("GET %s: 401 without WWW-Authenticate", p)
				}
			}
		})
	}
	var info GameInfo
	getJSON(t, base+"/v1/game", b.keys.Read, &info)
	if info.Game != b.ID || info.Timezone != "UTC" {
		t.Errorf("GET /v1/game = %+v, want game %s", info, b.ID)
	}
	if status, _, _ := get(t, base+"/v1/game", b.keys.Write); status != http.StatusUnauthorized {
		t.Errorf("GET /v1/game with a write key = %d, want 401", status)
	}
}

func TestBadParametersAreRefusedNamingTheParameter(t *testing.T) {
	s := seedGame(t, "UTC", []string{"USD", "EUR"}, 6, 11)
	_, base := newReport(t, testNow)
	m := "/v1/games/" + s.ID + "/metrics/"
	tests := []struct {
		name, path, param string
	}{
		{"from is required", m + "dau?to=2026-10-02", "from"},
		{"to is required", m + "dau?from=2026-10-02", "to"},
		{"from must be a date", m + "dau?from=yesterday&to=2026-10-02", "from"},
		{"to must be a date", m + "dau?from=2026-10-01&to=2026-10-32", "to"},
		{"to must not be before from", m + "dau?from=2026-10-05&to=2026-10-01", "to"},
		{"the range has a limit", m + "dau?from=2020-01-01&to=2026-10-01", "to"},
		{"interval must be known", m + "dau?from=2026-10-01&to=2026-10-02&interval=year", "interval"},
		{"hour allows at most 7 days", m + "dau?from=2026-10-01&to=2026-10-08&interval=hour", "to"},
		{"metric must be known", m + "whales?from=2026-10-01&to=2026-10-02", "metric"},
		{"currency must be ISO 4217", m + "revenue?from=2026-10-01&to=2026-10-02&currency=usd", "currency"},
		{"currency is required when the game has several", m + "revenue?from=2026-10-01&to=2026-10-02", "currency"},
		{"arpdau needs the currency too", m + "arpdau?from=2026-10-01&to=2026-10-02", "currency"},
		{"currency does not apply to dau", m + "dau?from=2026-10-01&to=2026-10-02&currency=USD", "currency"},
		{"severity must be known", m + "errors?from=2026-10-01&to=2026-10-02&severity=fatal", "severity"},
		{"severity applies to errors only", m + "events?from=2026-10-01&to=2026-10-02&severity=error", "severity"},
		{"format must be json or csv", m + "dau?from=2026-10-01&to=2026-10-02&format=xml", "format"},
		{"retention days must be numbers", "/v1/games/" + s.ID + "/retention?from=2026-10-01&to=2026-10-02&days=1,week", "days"},
		{"retention days must not be negative", "/v1/games/" + s.ID + "/retention?from=2026-10-01&to=2026-10-02&days=-1", "days"},
		{"retention needs from", "/v1/games/" + s.ID + "/retention?to=2026-10-02", "from"},
		{"progression needs to", "/v1/games/" + s.ID + "/progression?from=2026-10-02", "to"},
		{"by must be a dimension", m + "dau?from=2026-10-01&to=2026-10-02&by=os", "by"},
		{"a platform filter must be in the catalogue", m + "dau?from=2026-10-01&to=2026-10-02&platform=ios,amiga", "platform"},
		{"a country filter must be ISO 3166-1 alpha-2", m + "events?from=2026-10-01&to=2026-10-02&country=usa", "country"},
		{"retention filters are checked too", "/v1/games/" + s.ID + "/retention?from=2026-10-01&to=2026-10-02&country=XYZ", "country"},
		{"ltv days beyond 3650", "/v1/games/" + s.ID + "/ltv?from=2026-10-01&to=2026-10-02&days=1,3651", "days"},
		{"ltv days below 0", "/v1/games/" + s.ID + "/ltv?from=2026-10-01&to=2026-10-02&days=-7", "days"},
		{"ltv needs from", "/v1/games/" + s.ID + "/ltv?to=2026-10-02", "from"},
		{"economy interval must be day, week or month", "/v1/games/" + s.ID + "/economy?from=2026-10-01&to=2026-10-02&interval=hour", "interval"},
		{"economy filters are checked", "/v1/games/" + s.ID + "/economy?from=2026-10-01&to=2026-10-02&platform=x", "platform"},
		{"ccu_peak is per hour or day", m + "ccu_peak?from=2026-10-01&to=2026-10-02&interval=week", "interval"},
		{"ccu_peak by dimension covers at most 31 days", m + "ccu_peak?from=2026-10-01&to=2026-11-01&by=country", "to"},
		{"minute series have no breakdown", m + "events?from=2026-10-01&to=2026-10-01&interval=minute&by=country", "by"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := get(t, base+tc.path, s.keys.Read)
			var e struct{ Error, Parameter string }
			json.Unmarshal(body, &e)
			if status != http.StatusBadRequest || e.Parameter != tc.param || !strings.Contains(e.Error, tc.param) {
				t.Errorf("GET %s = %d %s, want 400 naming %q", tc.path, status, body, tc.param)
			}
		})
	}
	// With the currency chosen, revenue answers.
	if status, body, _ := get(t, base+m+"revenue?from=2026-10-01&to=2026-10-02&currency=EUR", s.keys.Read); status != http.StatusOK {
		t.Errorf("revenue with currency = %d %s", status, body)
	}
}

func TestEveryEndpointAnswersCSV(t *testing.T) {
	s := seedGame(t, "Asia/Kolkata", []string{"INR"}, 12, 5)
	_, base := newReport(t, testNow)
	g := "/v1/games/" + s.ID
	var js Series
	getJSON(t, base+g+"/metrics/revenue?from=2026-10-01&to=2026-10-20&interval=week", s.keys.Read, &js)
	for _, how := range [][]string{{"?format=csv&"}, {"?", "Accept", "text/csv"}, {"?", "Accept", "application/json;q=0.5, text/csv"}} {
		rows := getCSV(t, base+g+"/metrics/revenue"+how[0]+"from=2026-10-01&to=2026-10-20&interval=week", s.keys.Read, how[1:]...)
		if len(rows) != len(js.Points)+1 || strings.Join(rows[0], ",") != "t,value" {
			t.Fatalf("CSV (%v) = %v, want a header and %d rows", how, rows, len(js.Points))
		}
		for i, p := range js.Points {
			v, _ := strconv.ParseFloat(rows[i+1][1], 64)
			if rows[i+1][0] != p.T || v != p.Value {
				t.Errorf("CSV row %d = %v, want %s,%v", i, rows[i+1], p.T, p.Value)
			}
		}
	}
	// ?format=json wins over Accept.
	if status, body, h := get(t, base+g+"/metrics/dau?from=2026-10-01&to=2026-10-02&format=json", s.keys.Read, "Accept", "text/csv"); status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Errorf("format=json with Accept: text/csv = %d %s %s", status, h.Get("Content-Type"), body)
	}

	rows := getCSV(t, base+g+"/retention?from=2026-10-01&to=2026-10-20&days=1,30&format=csv", s.keys.Read)
	want := s.truth.retention(date("2026-10-01"), date("2026-10-20"), []int{1, 30})
	if strings.Join(rows[0], ",") != "cohort,size,day_1,day_30" || len(rows) != len(want)+1 {
		t.Fatalf("retention CSV = %v", rows)
	}
	for i, c := range want {
		cell := func(v *int64) string {
			if v == nil {
				return ""
			}
			return strconv.FormatInt(*v, 10)
		}
		w := []string{c.Cohort, strconv.FormatInt(c.Size, 10), cell(c.Retained["1"]), cell(c.Retained["30"])}
		if !reflect.DeepEqual(rows[i+1], w) {
			t.Errorf("retention CSV row %d = %v, want %v (null is an empty cell)", i, rows[i+1], w)
		}
	}

	rows = getCSV(t, base+g+"/progression?from=2026-10-01&to=2026-10-20", s.keys.Read, "Accept", "text/csv")
	levels := s.truth.progression(date("2026-10-01"), date("2026-10-20"))
	if strings.Join(rows[0], ",") != "level,starts,completes,fails,fail_rate,avg_attempts_on_complete" || len(rows) != len(levels)+1 || len(levels) == 0 {
		t.Fatalf("progression CSV = %v for %d levels", rows, len(levels))
	}
	for i, l := range levels {
		avg := ""
		if l.AvgAttempts != nil {
			avg = formatNumber(*l.AvgAttempts)
		}
		w := []string{l.Level, fmt.Sprint(l.Starts), fmt.Sprint(l.Completes), fmt.Sprint(l.Fails), formatNumber(l.FailRate), avg}
		if !reflect.DeepEqual(rows[i+1], w) {
			t.Errorf("progression CSV row %d = %v, want %v", i, rows[i+1], w)
		}
	}

	rows = getCSV(t, base+g+"/live?format=csv", s.keys.Read)
	if strings.Join(rows[0], ",") != "series,t,value" || len(rows) != 3+60 {
		t.Errorf("live CSV has %d rows, header %v", len(rows), rows[0])
	}
}

func TestLiveReadsOnlineAndEventsPerMinuteFromRedis(t *testing.T) {
	g := newGame(t, "Asia/Kolkata")
	now := time.Now().UTC()
	gn := &simtest.Generator{Game: g.ID}
	evs := []event.Event{
		gn.Event(events.TypeHeartbeat, "p1", "s1", now.Add(-30*time.Second), ""),
		gn.Event(events.TypeHeartbeat, "p1", "s1", now.Add(-20*time.Second), ""),
		gn.Event(events.TypeHeartbeat, "p2", "s2", now.Add(-2*time.Minute), ""),
		gn.Event(events.TypeHeartbeat, "p3", "s3", now.Add(-10*time.Minute), ""), // counted per minute, not online
	}
	seed(t, evs)
	_, base := newReport(t, time.Now()) // the live view is relative to the real clock
	var l Live
	getJSON(t, base+"/v1/games/"+g.ID+"/live", g.keys.Read, &l)
	if l.Online != 2 {
		t.Errorf("online = %d, want 2 (p1, p2)", l.Online)
	}
	if l.ActiveToday < 2 {
		t.Errorf("active today = %d, want at least the 2 players seen in the last 5 minutes", l.ActiveToday)
	}
	total := 0.0
	for _, p := range l.EventsPerMinute {
		total += p.Value
	}
	if len(l.EventsPerMinute) != 60 || total != 4 {
		t.Errorf("events per minute: %d minutes, %v events; want 60 minutes and 4 events", len(l.EventsPerMinute), total)
	}
}

func TestPingWritesDigestsOfEveryGameToS3AndRepliesWithTheirNames(t *testing.T) {
	s := seedGame(t, "America/Los_Angeles", []string{"USD"}, 15, 21)
	// 2026-10-08 15:00 UTC is the morning of 2026-10-08 in Los Angeles: the
	// daily digest is of 2026-10-07, the weekly of 2026-09-28..2026-10-04.
	now := time.Date(2026, 10, 8, 15, 0, 0, 0, time.UTC)
	r, base := newReport(t, now)
	ctx := context.Background()
	for _, tc := range []struct {
		kind, period, from, to string
	}{
		{Daily, "2026-10-07", "2026-10-07", "2026-10-07"},
		{Weekly, "2026-W40", "2026-09-28", "2026-10-04"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			ping := event.New()
			ping.SetID("ping-" + tc.kind)
			ping.SetType(TypePing)
			ping.SetSource("/apis/v1/namespaces/gamemetrics/pingsources/report-" + tc.kind)
			ping.SetTime(now)
			ping.SetData(event.ApplicationJSON, map[string]string{"report": tc.kind})
			reply, err := r.Handle(ctx, ping)
			if err != nil {
				t.Fatal(err)
			}
			if reply.Type() != TypeGenerated || reply.Source() != Source {
				t.Errorf("reply %s from %s", reply.Type(), reply.Source())
			}
			var gen Generated
			if err := json.Unmarshal(reply.Data(), &gen); err != nil {
				t.Fatal(err)
			}
			var mine *GeneratedObject
			for i, o := range gen.Objects {
				if o.Game == s.ID {
					mine = &gen.Objects[i]
				}
			}
			jsonKey, csvKey := DigestKeys(s.ID, tc.period)
			if mine == nil || mine.Period != tc.period || mine.JSON != jsonKey || mine.CSV != csvKey || gen.Bucket != objects.Bucket() {
				t.Fatalf("reply names %+v (bucket %s), want %s and %s", mine, gen.Bucket, jsonKey, csvKey)
			}
			if !strings.HasPrefix(jsonKey, "reports/"+s.ID+"/"+tc.period+"/") {
				t.Errorf("key %s is not under reports/<gameid>/<period>/", jsonKey)
			}
			body, err := objects.Get(ctx, jsonKey)
			if err != nil {
				t.Fatal(err)
			}
			var d Digest
			if err := json.Unmarshal(body, &d); err != nil {
				t.Fatal(err)
			}
			p := period{from: date(tc.from), to: date(tc.to)}
			interval := Week
			if tc.kind == Daily {
				interval = Day
			}
			tr := newTruth(t, s.loc, now, s.evs)
			if d.From != tc.from || d.To != tc.to || d.Game != s.ID || d.Report != tc.kind {
				t.Errorf("digest header %+v", d)
			}
			for _, m := range digestMetrics {
				if want := tr.value(m, interval, p, "", ""); !near(d.Metrics[m], want) {
					t.Errorf("digest %s = %v, want %v", m, d.Metrics[m], want)
				}
			}
			if want := tr.value("revenue", interval, p, "USD", ""); d.Revenue["USD"]["revenue"] != want {
				t.Errorf("digest revenue USD = %v, want %v", d.Revenue["USD"]["revenue"], want)
			}
			if d.Metrics["events"] == 0 {
				t.Error("the digest period has no events: the test does not exercise it")
			}
			csvBody, err := objects.Get(ctx, csvKey)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(csvBody), fmt.Sprintf(",events,,%v\n", d.Metrics["events"])) {
				t.Errorf("CSV digest lacks the events total:\n%s", csvBody)
			}
		})
	}

	// Over HTTP, as a PingSource delivers it: 200 with the reply event.
	req, _ := http.NewRequest(http.MethodPost, base+"/", strings.NewReader(`{"report":"daily"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", "ping-http")
	req.Header.Set("Ce-Source", "/apis/v1/namespaces/gamemetrics/pingsources/report-daily")
	req.Header.Set("Ce-Type", TypePing)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Ce-Type") != TypeGenerated {
		t.Errorf("POST / ping = %d, ce-type %q", resp.StatusCode, resp.Header.Get("Ce-Type"))
	}

	for _, tc := range []struct{ name, typ, data string }{
		{"another event type", "com.gamemetrics.heartbeat", `{"report":"daily"}`},
		{"an unknown report", TypePing, `{"report":"hourly"}`},
		{"data that is not JSON", TypePing, `daily`},
	} {
		e := event.New()
		e.SetID("bad")
		e.SetType(tc.typ)
		e.SetSource("/x")
		e.SetData("application/json", []byte(tc.data))
		if _, err := r.Handle(ctx, e); serving.StatusOf(err) != http.StatusBadRequest {
			t.Errorf("%s: err = %v, want a 400 rejection", tc.name, err)
		}
	}
}

func TestOpenAPIDocumentIsServedAndListsEveryMetric(t *testing.T) {
	_, base := newReport(t, testNow)
	status, body, h := get(t, base+"/v1/openapi.json", "")
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /v1/openapi.json = %d %s", status, h.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi = %q", doc.OpenAPI)
	}
	for _, p := range []string{"/v1/games/{game}/metrics/{metric}", "/v1/games/{game}/retention", "/v1/games/{game}/progression", "/v1/games/{game}/live", "/v1/games/{game}/events", "/v1/game"} {
		if _, ok := doc.Paths[p]["get"]; !ok {
			t.Errorf("path %s missing", p)
		}
	}
	for _, m := range metrics.Names() {
		if !strings.Contains(string(body), `"`+m+`"`) {
			t.Errorf("metric %s not in the document", m)
		}
	}
	status, page, h := get(t, base+"/", "")
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(string(page), "/assets/app.js") {
		t.Errorf("GET / = %d %s", status, h.Get("Content-Type"))
	}
	for _, a := range []string{"/assets/app.js", "/assets/app.css"} {
		if status, _, _ := get(t, base+a, ""); status != 200 {
			t.Errorf("GET %s = %d", a, status)
		}
	}
	if status, _, _ := get(t, base+"/assets/nope.js", ""); status != 404 {
		t.Errorf("GET a missing asset = %d, want 404", status)
	}
}

func TestRetentionFollowsNewEventsAndMovedInstallDays(t *testing.T) {
	s := seedGame(t, "Asia/Kolkata", []string{"INR"}, 20, 8)
	_, base := newReport(t, testNow)
	u := fmt.Sprintf("%s/v1/games/%s/retention?from=2026-10-01&to=2026-10-20&days=0,1,2,7", base, s.ID)
	check := func(evs []event.Event, when string) {
		t.Helper()
		var ret Retention
		getJSON(t, u, s.keys.Read, &ret)
		want := newTruth(t, s.loc, testNow, evs).retention(date("2026-10-01"), date("2026-10-20"), []int{0, 1, 2, 7})
		if !reflect.DeepEqual(ret.Cohorts, want) {
			gj, _ := json.Marshal(ret.Cohorts)
			wj, _ := json.Marshal(want)
			t.Errorf("%s:\n got %s\nwant %s", when, gj, wj)
		}
	}
	check(s.evs, "first answer")
	gn := s.gen // its ids stay distinct from the seeded ones
	// A returning player: one more day of activity for an existing cohort.
	var subject string
	var installed time.Time
	for p, pl := range newTruth(t, s.loc, testNow, s.evs).Players {
		if subject == "" || p < subject {
			subject, installed = p, pl.First
		}
	}
	more := []event.Event{gn.Event(events.TypeHeartbeat, subject, "late-1", installed.Add(24*time.Hour+time.Minute), "")}
	seed(t, more)
	evs := append(append([]event.Event(nil), s.evs...), more...)
	check(evs, "after a returning player's event")
	// A late event from before the player's first one moves their install day.
	moved := []event.Event{gn.Event(events.TypeHeartbeat, subject, "late-2", installed.Add(-3*24*time.Hour), "")}
	seed(t, moved)
	evs = append(evs, moved...)
	check(evs, "after a late event moved an install day")
	// And a brand-new player.
	fresh := []event.Event{gn.Event(events.TypeHeartbeat, "newcomer", "n-1", date("2026-10-10").Add(12*time.Hour), "")}
	seed(t, fresh)
	check(append(evs, fresh...), "after a new player")
}

func TestDigestPeriodIsTheLastCompleteDayOrISOWeekInTheGamesTimezone(t *testing.T) {
	la, _ := time.LoadLocation("America/Los_Angeles")
	kol, _ := time.LoadLocation("Asia/Kolkata")
	tests := []struct {
		name, kind      string
		now             time.Time
		loc             *time.Location
		label, from, to string
	}{
		{"daily just after local midnight", Daily, time.Date(2026, 10, 8, 7, 5, 0, 0, time.UTC), la, "2026-10-07", "2026-10-07", "2026-10-07"},
		{"daily just before local midnight", Daily, time.Date(2026, 10, 8, 6, 55, 0, 0, time.UTC), la, "2026-10-06", "2026-10-06", "2026-10-06"},
		{"weekly on a Monday morning", Weekly, time.Date(2026, 10, 5, 0, 0, 0, 0, kol), kol, "2026-W40", "2026-09-28", "2026-10-04"},
		{"weekly on a Sunday evening", Weekly, time.Date(2026, 10, 4, 23, 0, 0, 0, kol), kol, "2026-W39", "2026-09-21", "2026-09-27"},
		{"weekly across a year boundary", Weekly, time.Date(2027, 1, 6, 12, 0, 0, 0, time.UTC), time.UTC, "2026-W53", "2026-12-28", "2027-01-03"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			label, from, to := DigestPeriod(tc.kind, tc.now, tc.loc)
			if label != tc.label || from.Format(time.DateOnly) != tc.from || to.Format(time.DateOnly) != tc.to {
				t.Errorf("got %s %s..%s, want %s %s..%s", label, from.Format(time.DateOnly), to.Format(time.DateOnly), tc.label, tc.from, tc.to)
			}
		})
	}
}

// A studio's own web tools call the API from another origin.
func TestTheAPIMayBeReadFromAnyOrigin(t *testing.T) {
	s := seedGame(t, "UTC", []string{"USD"}, 5, 3)
	_, base := newReport(t, testNow)
	u := fmt.Sprintf("%s/v1/games/%s/metrics/dau?from=2026-10-01&to=2026-10-03", base, s.ID)
	req, _ := http.NewRequest(http.MethodOptions, u, nil)
	req.Header.Set("Origin", "https://tools.studio.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "authorization")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") || h.Get("Access-Control-Allow-Methods") != "GET" {
		t.Errorf("preflight = %d %v", resp.StatusCode, h)
	}
	for _, key := range []string{s.keys.Read, "nope"} {
		_, _, h := get(t, u, key)
		if h.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("GET with key %q: no Access-Control-Allow-Origin in %v", key, h)
		}
	}
}

// Studios can take their own raw data out: a UTC day of events, one per
// id, as the NDJSON CloudEvents ingest accepted.
func TestRawEventsExportOneUTCDayAsNDJSON(t *testing.T) {
	s := seedGame(t, "Asia/Kolkata", []string{"INR"}, 6, 41)
	_, base := newReport(t, testNow)
	byDay := map[string]map[string]event.Event{}
	for _, e := range s.evs {
		d := e.Time().UTC().Format(time.DateOnly)
		if byDay[d] == nil {
			byDay[d] = map[string]event.Event{}
		}
		byDay[d][e.ID()] = e
	}
	for d, want := range byDay {
		status, body, h := get(t, fmt.Sprintf("%s/v1/games/%s/events?date=%s", base, s.ID, d), s.keys.Read)
		if status != http.StatusOK || h.Get("Content-Type") != "application/x-ndjson" || !strings.Contains(h.Get("Content-Disposition"), d) {
			t.Fatalf("%s: %d %v", d, status, h)
		}
		got := map[string]bool{}
		if err := archive.DecodeNDJSON(bytes.NewReader(body), func(e event.Event) error {
			w, ok := want[e.ID()]
			if !ok || got[e.ID()] {
				return fmt.Errorf("event %s: not sent that day, or twice", e.ID())
			}
			got[e.ID()] = true
			if e.Type() != w.Type() || e.Subject() != w.Subject() || !e.Time().Equal(w.Time()) || e.Extensions()["gameid"] != s.ID {
				return fmt.Errorf("event %s differs: %v, sent %v", e.ID(), e, w)
			}
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d events exported, %d sent", d, len(got), len(want))
		}
	}
	for _, tc := range []struct {
		name, path, key string
		status          int
	}{
		{"a day without events", "/v1/games/" + s.ID + "/events?date=2020-01-01", s.keys.Read, http.StatusOK},
		{"no date", "/v1/games/" + s.ID + "/events", s.keys.Read, http.StatusBadRequest},
		{"a bad date", "/v1/games/" + s.ID + "/events?date=yesterday", s.keys.Read, http.StatusBadRequest},
		{"another game", "/v1/games/gother/events?date=2026-10-01", s.keys.Read, http.StatusNotFound},
		{"a write key", "/v1/games/" + s.ID + "/events?date=2026-10-01", s.keys.Write, http.StatusUnauthorized},
	} {
		status, body, _ := get(t, base+tc.path, tc.key)
		if status != tc.status || (tc.status == http.StatusOK && len(body) != 0) {
			t.Errorf("%s: %d %q, want %d", tc.name, status, body, tc.status)
		}
	}
}
