package report

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/metrics"
)

// What notify's alert rules rely on: the value of one period through
// shared/metrics equals the report API's point for the same period, for
// every metric, filter and interval.
func TestValueOfAPeriodEqualsTheAPIsPointForIt(t *testing.T) {
	s := seedGame(t, "America/Los_Angeles", []string{"USD", "EUR"}, 30, 17)
	_, base := newReport(t, testNow)
	q := metrics.New(pool, func() time.Time { return testNow })
	// 2026-10-05 19:20 UTC is 12:20 on Monday 2026-10-05 in Los Angeles.
	at := time.Date(2026, 10, 5, 19, 20, 0, 0, time.UTC)
	ctx := context.Background()
	checked, nonZero := 0, 0
	for _, metric := range metrics.Names() {
		variants := []map[string]string{{}}
		switch metric {
		case "revenue", "arpdau", "arppu":
			variants = []map[string]string{{"currency": "USD"}, {"currency": "EUR"}}
		case "transactions":
			variants = append(variants, map[string]string{"currency": "EUR"})
		case "errors":
			variants = append(variants, map[string]string{"severity": "critical"})
		}
		for _, interval := range []metrics.Interval{metrics.Hour, metrics.Day, metrics.Week, metrics.Month} {
			if metric == "ccu_peak" && (interval == metrics.Week || interval == metrics.Month) {
				continue // kept per hour and day only
			}
			for _, extra := range variants {
				p := metrics.PeriodOf(interval, at, s.loc)
				got, err := q.Value(ctx, metrics.ValueQuery{Game: s.Game, Metric: metric, Period: p,
					Currency: extra["currency"], Severity: extra["severity"]})
				if err != nil {
					t.Fatalf("%s %s %v: %v", metric, interval, extra, err)
				}
				v := url.Values{"from": {p.From.Format(time.DateOnly)}, "to": {p.To.Format(time.DateOnly)}, "interval": {string(interval)}}
				for k, x := range extra {
					v.Set(k, x)
				}
				u := fmt.Sprintf("%s/v1/games/%s/metrics/%s?%s", base, s.ID, metric, v.Encode())
				var api Series
				getJSON(t, u, s.keys.Read, &api)
				var point *Point
				for i := range api.Points {
					if api.Points[i].T == p.Label {
						point = &api.Points[i]
					}
				}
				switch {
				case len(got.Points) != 1 || got.Points[0].Period != p:
					t.Errorf("%s: Value answered %+v for period %+v", u, got.Points, p)
				case point == nil:
					t.Errorf("%s: no point %s in %+v", u, p.Label, api.Points)
				case got.Points[0].Value != point.Value || got.Approximate != api.Approximate || got.Currency != api.Currency:
					t.Errorf("%s: Value = %v (approximate %v, %q), the API's point = %v (approximate %v, %q)", u,
						got.Points[0].Value, got.Approximate, got.Currency, point.Value, api.Approximate, api.Currency)
				}
				checked++
				if point != nil && point.Value != 0 {
					nonZero++
				}
			}
		}
	}
	t.Logf("%d values compared, %d not zero", checked, nonZero)
	if nonZero < checked/2 {
		t.Errorf("only %d of the compared values are not zero: the data does not exercise them", nonZero)
	}
}

// Like the API, a revenue value of a game with revenue in several currencies
// needs one named; with one currency it is the default.
func TestValueOfRevenueNeedsTheCurrencyWhenThereAreSeveral(t *testing.T) {
	setup(t)
	ctx := context.Background()
	q := metrics.New(pool, func() time.Time { return testNow })
	at := time.Date(2026, 10, 5, 19, 20, 0, 0, time.UTC)
	for _, tc := range []struct {
		currencies []string
		want       string // the currency used, or "" for a refusal
	}{{[]string{"USD", "EUR"}, ""}, {[]string{"INR"}, "INR"}} {
		s := seedGame(t, "UTC", tc.currencies, 8, 23)
		got, err := q.Value(ctx, metrics.ValueQuery{Game: s.Game, Metric: "arpdau", Period: metrics.PeriodOf(metrics.Month, at, s.loc)})
		var pe *metrics.ParamError
		switch {
		case tc.want == "" && (!errors.As(err, &pe) || pe.Param != "currency"):
			t.Errorf("%v: err = %v, want a ParamError naming currency", tc.currencies, err)
		case tc.want != "" && (err != nil || got.Currency != tc.want):
			t.Errorf("%v: %+v %v, want it in %s", tc.currencies, got, err, tc.want)
		}
	}
}
