package report

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/metrics"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
)

// Minute points (windows of 1, 5 and 15 UTC minutes) equal the recount of
// the raw events for every metric that has a minute grain.
func TestMinuteSeriesMatchTheGroundTruth(t *testing.T) {
	s := seedGame(t, "America/Los_Angeles", []string{"USD"}, 40, 31)
	_, base := newReport(t, testNow)
	day := date("2026-10-05")
	checked, nonZero := 0, 0
	for _, metric := range metrics.MinuteMetrics() {
		variants := []map[string]string{{}}
		if metric == "errors" {
			variants = append(variants, map[string]string{"severity": "critical"})
		}
		for _, width := range metrics.MinuteWidths() {
			for _, extra := range variants {
				q := url.Values{"from": {day.Format(time.DateOnly)}, "to": {day.Format(time.DateOnly)}, "interval": {"minute"}, "minutes": {fmt.Sprint(width)}}
				for k, v := range extra {
					q.Set(k, v)
				}
				u := fmt.Sprintf("%s/v1/games/%s/metrics/%s?%s", base, s.ID, metric, q.Encode())
				var got Series
				getJSON(t, u, s.keys.Read, &got)
				ps := metrics.MinutePeriods(width, day, day, s.loc)
				if got.Interval != "minute" || len(got.Points) != len(ps) || len(ps) != 24*60/width {
					t.Fatalf("%s: interval %q, %d points, want %d", u, got.Interval, len(got.Points), 24*60/width)
				}
				for i, p := range ps {
					want := s.truth.Value(metric, simulation.Period{Start: p.Start, Minutes: width},
						simulation.Filter{Currency: extra["currency"], Severity: extra["severity"]})
					if got.Points[i].T != p.Label || !near(got.Points[i].Value, want) {
						t.Errorf("%s: point %d = %+v, want {%s %v}", u, i, got.Points[i], p.Label, want)
					}
					checked++
					if want != 0 {
						nonZero++
					}
				}
			}
		}
	}
	t.Logf("%d minute points compared, %d not zero", checked, nonZero)
	if nonZero < 100 {
		t.Errorf("only %d minute points are not zero: the data does not exercise them", nonZero)
	}
}

// Metrics counted over distinct players have no minute grain: the API
// refuses them naming interval, and minute parameters are checked.
func TestMinuteSeriesRefuseWhatTheyCannotAnswer(t *testing.T) {
	s := seedGame(t, "UTC", []string{"USD"}, 3, 2)
	_, base := newReport(t, testNow)
	for _, tc := range []struct {
		metric, query, param string
	}{
		{"dau", "interval=minute&from=2026-10-05&to=2026-10-05", "interval"},
		{"paying_players", "interval=minute&from=2026-10-05&to=2026-10-05", "interval"},
		{"conversion", "interval=minute&from=2026-10-05&to=2026-10-05", "interval"},
		{"arpdau", "interval=minute&from=2026-10-05&to=2026-10-05", "interval"},
		{"arppu", "interval=minute&from=2026-10-05&to=2026-10-05", "interval"},
		{"playtime_per_dau", "interval=minute&from=2026-10-05&to=2026-10-05", "interval"},
		{"events", "interval=minute&minutes=7&from=2026-10-05&to=2026-10-05", "minutes"},
		{"events", "interval=minute&minutes=five&from=2026-10-05&to=2026-10-05", "minutes"},
		{"events", "interval=hour&minutes=5&from=2026-10-05&to=2026-10-05", "minutes"},
		{"events", "interval=minute&from=2026-10-05&to=2026-10-07", "to"},
	} {
		u := fmt.Sprintf("%s/v1/games/%s/metrics/%s?%s", base, s.ID, tc.metric, tc.query)
		status, body, _ := get(t, u, s.keys.Read)
		if status != http.StatusBadRequest || !strings.Contains(string(body), `"parameter":"`+tc.param+`"`) {
			t.Errorf("%s = %d %s, want 400 naming %s", u, status, body, tc.param)
		}
	}
}

// What notify evaluates a rule with: Values over an alert rule's windows
// and the windows it compares them with (the previous one, a week ago,
// scattered baseline slots) equals Value of each window and the API's
// point for it, for every window length and every metric that has it.
func TestValuesOfScatteredWindowsEqualTheAPIsPoints(t *testing.T) {
	s := seedGame(t, "Asia/Kolkata", []string{"INR"}, 30, 19)
	_, base := newReport(t, testNow)
	q := metrics.New(pool, func() time.Time { return testNow })
	ctx := context.Background()
	at := time.Date(2026, 10, 12, 14, 37, 0, 0, time.UTC)
	windows := []struct {
		interval metrics.Interval
		minutes  int
		step     time.Duration
	}{{metrics.Minute, 1, time.Minute}, {metrics.Minute, 5, 5 * time.Minute}, {metrics.Minute, 15, 15 * time.Minute},
		{metrics.Hour, 0, time.Hour}, {metrics.Day, 0, 24 * time.Hour}}
	compared, nonZero := 0, 0
	for _, metric := range metrics.Names() {
		for _, w := range windows {
			if metrics.CheckGrain(metric, w.interval) != nil {
				continue
			}
			var ps []metrics.Period
			for _, back := range []time.Duration{0, w.step, 7 * 24 * time.Hour, 14 * 24 * time.Hour, 24 * time.Hour, 3 * w.step, 0} {
				switch w.interval {
				case metrics.Minute:
					ps = append(ps, metrics.MinutePeriodOf(w.minutes, at.Add(-back), s.loc))
				default:
					ps = append(ps, metrics.PeriodOf(w.interval, at.Add(-back), s.loc))
				}
			}
			got, err := q.Values(ctx, metrics.ValuesQuery{Game: s.Game, Metric: metric, Periods: ps})
			if err != nil {
				t.Fatalf("%s %s/%d: %v", metric, w.interval, w.minutes, err)
			}
			for i, p := range ps {
				one, err := q.Value(ctx, metrics.ValueQuery{Game: s.Game, Metric: metric, Period: p})
				if err != nil {
					t.Fatal(err)
				}
				v := url.Values{"from": {p.From.Format(time.DateOnly)}, "to": {p.To.Format(time.DateOnly)}, "interval": {string(p.Interval)}}
				if p.Minutes > 0 {
					v.Set("minutes", fmt.Sprint(p.Minutes))
				}
				var api Series
				getJSON(t, fmt.Sprintf("%s/v1/games/%s/metrics/%s?%s", base, s.ID, metric, v.Encode()), s.keys.Read, &api)
				var point *Point
				for j := range api.Points {
					if api.Points[j].T == p.Label {
						point = &api.Points[j]
					}
				}
				switch {
				case point == nil:
					t.Fatalf("%s %s: no API point %s", metric, p.Interval, p.Label)
				case got.Points[i].Period != p || got.Points[i].Value != one.Points[0].Value || one.Points[0].Value != point.Value:
					t.Errorf("%s %s %s: Values %v (%+v), Value %v, API %v", metric, p.Interval, p.Label,
						got.Points[i].Value, got.Points[i].Period, one.Points[0].Value, point.Value)
				}
				compared++
				if point.Value != 0 {
					nonZero++
				}
			}
		}
	}
	t.Logf("%d windows compared, %d not zero", compared, nonZero)
	if nonZero < compared/5 {
		t.Errorf("only %d of %d windows are not zero", nonZero, compared)
	}
}
