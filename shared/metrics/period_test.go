package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/metrics"
)

func date(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

func TestPeriodsSplitTheRangeByCalendar(t *testing.T) {
	la, _ := time.LoadLocation("America/Los_Angeles")
	kol, _ := time.LoadLocation("Asia/Kolkata")
	ts := func(ps []metrics.Period) string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Label+"/"+p.To.Format("01-02"))
		}
		return strings.Join(out, " ")
	}
	tests := []struct {
		name     string
		interval metrics.Interval
		from, to string
		loc      *time.Location
		want     string
	}{
		{"weeks start on Monday and are clipped to the range", metrics.Week, "2026-10-01", "2026-10-20", time.UTC,
			"2026-10-01/10-04 2026-10-05/10-11 2026-10-12/10-18 2026-10-19/10-20"},
		{"months are clipped to the range", metrics.Month, "2026-09-15", "2026-11-03", time.UTC,
			"2026-09-15/09-30 2026-10-01/10-31 2026-11-01/11-03"},
		{"one day", metrics.Day, "2026-10-01", "2026-10-01", time.UTC, "2026-10-01/10-01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ts(metrics.Periods(tc.interval, date(tc.from), date(tc.to), tc.loc)); got != tc.want {
				t.Errorf("got %s\nwant %s", got, tc.want)
			}
		})
	}
	// The day US daylight saving time ends has 25 hours in Los Angeles.
	if n := len(metrics.Periods(metrics.Hour, date("2026-11-01"), date("2026-11-01"), la)); n != 25 {
		t.Errorf("hours of 2026-11-01 in Los Angeles = %d, want 25", n)
	}
	ps := metrics.Periods(metrics.Hour, date("2026-10-04"), date("2026-10-10"), kol)
	if len(ps) != 7*24 || ps[0].Label != "2026-10-04T00:30:00+05:30" || ps[len(ps)-1].Label != "2026-10-10T23:30:00+05:30" {
		t.Errorf("Kolkata hours: %d from %s to %s", len(ps), ps[0].Label, ps[len(ps)-1].Label)
	}
}

// PeriodOf is the whole period around an instant, and the same period a
// series covering it has as a point.
func TestPeriodOfIsTheWholePeriodHoldingTheInstant(t *testing.T) {
	kol, _ := time.LoadLocation("Asia/Kolkata")
	la, _ := time.LoadLocation("America/Los_Angeles")
	// 2026-10-04 20:10 UTC is 2026-10-05 01:40 in Kolkata (a Monday) and
	// 2026-10-04 13:10 in Los Angeles (a Sunday).
	at := time.Date(2026, 10, 4, 20, 10, 0, 0, time.UTC)
	tests := []struct {
		interval        metrics.Interval
		loc             *time.Location
		label, from, to string
		hour            time.Time
	}{
		{metrics.Hour, kol, "2026-10-05T01:30:00+05:30", "2026-10-05", "2026-10-05", time.Date(2026, 10, 4, 20, 0, 0, 0, time.UTC)},
		{metrics.Hour, la, "2026-10-04T13:00:00-07:00", "2026-10-04", "2026-10-04", time.Date(2026, 10, 4, 20, 0, 0, 0, time.UTC)},
		{metrics.Day, kol, "2026-10-05", "2026-10-05", "2026-10-05", time.Time{}},
		{metrics.Day, la, "2026-10-04", "2026-10-04", "2026-10-04", time.Time{}},
		{metrics.Week, kol, "2026-10-05", "2026-10-05", "2026-10-11", time.Time{}},
		{metrics.Week, la, "2026-09-28", "2026-09-28", "2026-10-04", time.Time{}},
		{metrics.Month, kol, "2026-10-01", "2026-10-01", "2026-10-31", time.Time{}},
	}
	for _, tc := range tests {
		t.Run(string(tc.interval)+" in "+tc.loc.String(), func(t *testing.T) {
			p := metrics.PeriodOf(tc.interval, at, tc.loc)
			want := metrics.Period{Interval: tc.interval, Label: tc.label, From: date(tc.from), To: date(tc.to), Hour: tc.hour}
			if p != want {
				t.Fatalf("PeriodOf = %+v, want %+v", p, want)
			}
			var found bool
			for _, q := range metrics.Periods(tc.interval, p.From, p.To, tc.loc) {
				found = found || q == p
			}
			if !found {
				t.Errorf("%+v is not a point of the series of its own days", p)
			}
		})
	}
}
