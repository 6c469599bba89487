package metrics

import (
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

func TestFilterOfReadsCommaSeparatedValuesAndRefusesBadOnesNamingTheDimension(t *testing.T) {
	tests := []struct {
		name, query string
		want        Filter
		param       string
	}{
		{"no filter", "from=2026-01-01", nil, ""},
		{"one platform", "platform=ios", Filter{"platform": {"ios"}}, ""},
		{"values are ORed and sorted", "country=US,DE&platform=android", Filter{"country": {"DE", "US"}, "platform": {"android"}}, ""},
		{"unknown is a value", "country=unknown", Filter{"country": {"unknown"}}, ""},
		{"other is a custom value", "dim1=other,gold", Filter{"dim1": {"gold", "other"}}, ""},
		{"repeated parameters add up", "dim2=a&dim2=b,a", Filter{"dim2": {"a", "b"}}, ""},
		{"a platform not in the catalogue", "platform=amiga", nil, "platform"},
		{"a country in lower case", "country=us", nil, "country"},
		{"a country of three letters", "country=USA", nil, "country"},
		{"an empty custom value", "dim3=", nil, "dim3"},
		{"an app version too long", "appversion=" + string(make([]byte, 65)), nil, "appversion"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			got, err := FilterOf(q)
			if tc.param != "" {
				var pe *ParamError
				if !errors.As(err, &pe) || pe.Param != tc.param {
					t.Fatalf("FilterOf(%q) = %v, want a refusal naming %s", tc.query, err, tc.param)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("FilterOf(%q) = %v, want %v", tc.query, got, tc.want)
			}
			for k, v := range tc.want {
				if !slices.Equal(got[k], v) {
					t.Fatalf("FilterOf(%q)[%s] = %v, want %v", tc.query, k, got[k], v)
				}
			}
		})
	}
}

func TestSeriesQueryRefusesBreakdownsItCannotAnswerNamingTheParameter(t *testing.T) {
	g := store.Game{ID: "g", Timezone: "UTC"}
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		q     SeriesQuery
		param string
	}{
		{"an unknown by", SeriesQuery{Game: g, Metric: "dau", Interval: Day, From: day, To: day, By: "os"}, "by"},
		{"ccu_peak by country over 32 days", SeriesQuery{Game: g, Metric: "ccu_peak", Interval: Day, From: day, To: day.AddDate(0, 0, MaxCCUDimDays), By: "country"}, "to"},
		{"ccu_peak per week", SeriesQuery{Game: g, Metric: "ccu_peak", Interval: Week, From: day, To: day}, "interval"},
		{"a minute series filtered", SeriesQuery{Game: g, Metric: "events", Interval: Minute, From: day, To: day, Filter: Filter{"platform": {"ios"}}}, "platform"},
		{"a minute series by platform", SeriesQuery{Game: g, Metric: "events", Interval: Minute, From: day, To: day, By: "platform"}, "by"},
		{"a bad filter value", SeriesQuery{Game: g, Metric: "events", Interval: Day, From: day, To: day, Filter: Filter{"platform": {"x"}}}, "platform"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var pe *ParamError
			if err := tc.q.Validate(); !errors.As(err, &pe) || pe.Param != tc.param {
				t.Fatalf("Validate() = %v, want a refusal naming %s", err, tc.param)
			}
		})
	}
	ok := SeriesQuery{Game: g, Metric: "events", Interval: Week, From: day, To: day, By: "dim1", Filter: Filter{"country": {"US"}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("events per week by dim1 filtered: %v", err)
	}
	for _, q := range []SeriesQuery{{Game: g, Metric: "events", Interval: Hour, From: day, To: day, By: "dim1"},
		{Game: g, Metric: "dau", Interval: Hour, From: day, To: day, Filter: Filter{"country": {"US"}}},
		{Game: g, Metric: "ccu_peak", Interval: Hour, From: day, To: day, By: "platform"},
		{Game: g, Metric: "ccu_peak", Interval: Day, From: day, To: day.AddDate(0, 0, MaxCCUDimDays-1), Filter: Filter{"country": {"US"}}}} {
		if err := q.Validate(); err != nil {
			t.Fatalf("%s per %s with dimensions: %v", q.Metric, q.Interval, err)
		}
	}
}

func TestLTVQueryRefusesDaysOutsideTheRange(t *testing.T) {
	g := store.Game{ID: "g", Timezone: "UTC"}
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, days := range [][]int{{-1}, {3651}} {
		var pe *ParamError
		if err := (LTVQuery{Game: g, From: day, To: day, Days: days}).Validate(); !errors.As(err, &pe) || pe.Param != "days" {
			t.Errorf("days %v: %v, want a refusal naming days", days, err)
		}
	}
}

// FilterOf parses outside input: whatever it accepts is a valid filter
// that checkDims accepts too, and it never panics.
func FuzzFilterOf(f *testing.F) {
	for _, s := range []string{"platform=ios", "country=US,DE", "dim1=a,,b", "appversion=1.2%00", "dim2=other&dim3=unknown", "country=u%C3%A9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		got, err := FilterOf(q)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) || events.DimIndex(pe.Param) < 0 {
				t.Fatalf("refusal %v does not name a dimension", err)
			}
			return
		}
		if err := checkDims(Day, got, ""); err != nil {
			t.Fatalf("FilterOf accepted %v that checkDims refuses: %v", got, err)
		}
		for name, vals := range got {
			if len(vals) == 0 || !slices.IsSorted(vals) {
				t.Fatalf("%s: values %v", name, vals)
			}
		}
	})
}
