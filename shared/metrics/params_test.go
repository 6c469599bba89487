package metrics_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/metrics"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// Every refused parameter is a *ParamError naming it, whose message starts
// with the name, before any query runs.
func TestBadParametersAreRefusedNamingTheField(t *testing.T) {
	g := store.Game{ID: "g1", Timezone: "Europe/Berlin"}
	day := date("2026-10-01")
	series := func(f func(*metrics.SeriesQuery)) error {
		q := metrics.SeriesQuery{Game: g, Metric: "dau", Interval: metrics.Day, From: day, To: day}
		f(&q)
		return q.Validate()
	}
	value := func(f func(*metrics.ValueQuery)) error {
		q := metrics.ValueQuery{Game: g, Metric: "events", Period: metrics.PeriodOf(metrics.Hour, day, time.UTC)}
		f(&q)
		return q.Validate()
	}
	tests := []struct {
		name, param string
		err         error
	}{
		{"a game", "game", series(func(q *metrics.SeriesQuery) { q.Game = store.Game{} })},
		{"a known metric", "metric", series(func(q *metrics.SeriesQuery) { q.Metric = "whales" })},
		{"a known interval", "interval", series(func(q *metrics.SeriesQuery) { q.Interval = "year" })},
		{"an interval at all", "interval", series(func(q *metrics.SeriesQuery) { q.Interval = "" })},
		{"from", "from", series(func(q *metrics.SeriesQuery) { q.From = time.Time{} })},
		{"to", "to", series(func(q *metrics.SeriesQuery) { q.To = time.Time{} })},
		{"to not before from", "to", series(func(q *metrics.SeriesQuery) { q.From = day.AddDate(0, 0, 1) })},
		{"at most 7 days of hours", "to", series(func(q *metrics.SeriesQuery) { q.Interval, q.To = metrics.Hour, day.AddDate(0, 0, 7) })},
		{"at most 1100 days", "to", series(func(q *metrics.SeriesQuery) { q.To = day.AddDate(0, 0, metrics.MaxDays) })},
		{"an ISO 4217 currency", "currency", series(func(q *metrics.SeriesQuery) { q.Metric, q.Currency = "revenue", "usd" })},
		{"a currency only where it applies", "currency", series(func(q *metrics.SeriesQuery) { q.Currency = "USD" })},
		{"a severity only for errors", "severity", series(func(q *metrics.SeriesQuery) { q.Severity = "error" })},
		{"a known severity", "severity", series(func(q *metrics.SeriesQuery) { q.Metric, q.Severity = "errors", "fatal" })},
		{"a period's interval", "period", value(func(q *metrics.ValueQuery) { q.Period.Interval = "minute" })},
		{"an hour on the hour", "period", value(func(q *metrics.ValueQuery) { q.Period.Hour = q.Period.Hour.Add(5 * time.Minute) })},
		{"a day of one day", "period", value(func(q *metrics.ValueQuery) {
			q.Period = metrics.Period{Interval: metrics.Day, From: day, To: day.AddDate(0, 0, 1)}
		})},
		{"a week's days", "period", value(func(q *metrics.ValueQuery) { q.Period = metrics.Period{Interval: metrics.Week} })},
		{"a value's metric", "metric", value(func(q *metrics.ValueQuery) { q.Metric = "" })},
		{"a value's currency", "currency", value(func(q *metrics.ValueQuery) { q.Currency = "EUR" })},
		{"retention days in range", "days", metrics.RetentionQuery{Game: g, From: day, To: day, Days: []int{1, -1}}.Validate()},
		{"retention columns", "days", metrics.RetentionQuery{Game: g, From: day, To: day, Days: make([]int, metrics.MaxRetentionColumns+1)}.Validate()},
		{"retention from", "from", metrics.RetentionQuery{Game: g, To: day}.Validate()},
		{"progression to", "to", metrics.ProgressionQuery{Game: g, From: day}.Validate()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var pe *metrics.ParamError
			if !errors.As(tc.err, &pe) || pe.Param != tc.param || !strings.HasPrefix(tc.err.Error(), tc.param+": ") {
				t.Errorf("err = %v, want a ParamError naming %q", tc.err, tc.param)
			}
		})
	}
	ok := []error{
		series(func(*metrics.SeriesQuery) {}),
		series(func(q *metrics.SeriesQuery) { q.Metric, q.Currency = "transactions", "USD" }),
		series(func(q *metrics.SeriesQuery) { q.Metric, q.Severity = "errors", "critical" }),
		series(func(q *metrics.SeriesQuery) { q.Interval, q.To = metrics.Hour, day.AddDate(0, 0, 6) }),
		// Only the date of From and To counts, in whatever location.
		series(func(q *metrics.SeriesQuery) {
			q.From = time.Date(2026, 10, 1, 0, 0, 0, 0, time.FixedZone("+14", 14*3600))
			q.To = time.Date(2026, 10, 1, 23, 0, 0, 0, time.FixedZone("-12", -12*3600))
		}),
		value(func(*metrics.ValueQuery) {}),
		value(func(q *metrics.ValueQuery) { q.Period = metrics.PeriodOf(metrics.Month, day, time.UTC) }),
		value(func(q *metrics.ValueQuery) {
			q.Period = metrics.Period{Interval: metrics.Week, From: day, To: day.AddDate(0, 0, 29)} // any run of days
		}),
		metrics.RetentionQuery{Game: g, From: day, To: day, Days: []int{0, 1, metrics.MaxRetentionDays}}.Validate(),
	}
	for i, err := range ok {
		if err != nil {
			t.Errorf("valid query %d refused: %v", i, err)
		}
	}
}

func TestEveryMetricIsKnownAndRevenueMetricsAreAmongThem(t *testing.T) {
	for _, m := range append(metrics.Names(), metrics.RevenueMetrics()...) {
		if err := metrics.CheckMetric(m); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	if n := metrics.Names(); len(n) != 17 || n[0] != "events" {
		t.Errorf("Names() = %v", n)
	}
}
