package report

import (
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/metrics"
)

// FuzzRequestParameters feeds arbitrary query parameters to the parsers of
// outside input: they never panic, refuse with a 400 naming a parameter,
// and whatever they accept is within the documented limits.
func FuzzRequestParameters(f *testing.F) {
	for _, s := range [][3]string{
		{"2026-10-01", "2026-10-20", "1,7,30"},
		{"2026-10-20", "2026-10-01", "0"},
		{"2020-01-01", "2026-01-01", "-1,3651"},
		{"", "2026-13-01", "1,,2"},
		{"2026-02-29", "2026-03-01", " 7 , 1 "},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, from, to, days string) {
		q := url.Values{"from": {from}, "to": {to}, "days": {days}}
		req := httptest.NewRequest("GET", "/x?"+q.Encode(), nil)
		check := func(err error) {
			if ae, ok := refusal(err); err != nil && (!ok || ae.status != 400 || ae.param == "") {
				t.Fatalf("error %v is not a 400 naming a parameter", err)
			}
		}
		for interval, max := range map[metrics.Interval]int{metrics.Hour: metrics.MaxHourDays, metrics.Day: metrics.MaxDays} {
			f, tt, err := dateRange(req, interval)
			check(err)
			if err == nil {
				if tt.Before(f) || int(tt.Sub(f)/(24*time.Hour))+1 > max {
					t.Fatalf("accepted %s..%s beyond %d days", f, tt, max)
				}
				if ps := periods(Week, f, tt, time.UTC); len(ps) == 0 || ps[0].from != f || ps[len(ps)-1].to != tt {
					t.Fatalf("weeks of %s..%s do not cover the range", f, tt)
				}
			}
		}
		ds, err := parseDays(days, metrics.DefaultLTVDays())
		check(err)
		if err == nil && (len(ds) == 0 || len(ds) > metrics.MaxRetentionColumns || !slices.IsSorted(ds) || ds[0] < 0 || ds[len(ds)-1] > metrics.MaxRetentionDays) {
			t.Fatalf("accepted days %v", ds)
		}
	})
}
