package report

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/simulation"
)

// Every breakdown, filter, LTV, economy and CCU answer equals the ground
// truth of a non-UTC game whose events were delivered shuffled and
// duplicated (seedGame).
func TestBreakdownsFiltersLTVEconomyAndCCUMatchTheGroundTruth(t *testing.T) {
	s := seedGame(t, "Europe/Berlin", []string{"USD", "JPY"}, 40, 17)
	_, base := newReport(t, testNow)
	from, to := date("2026-09-30"), date("2026-10-22")
	truthIn := func(interval string, p period) simulation.Period {
		if interval == Hour {
			return simulation.Period{Hour: p.hour}
		}
		return simulation.Period{From: p.from, To: p.to}
	}
	type variant struct {
		metric, interval string
		extra            url.Values
	}
	var vs []variant
	for _, m := range []string{"events", "dau", "new_players", "sessions", "session_length_avg", "playtime_per_dau", "paying_players",
		"first_time_payers", "conversion", "errors", "ad_impressions"} {
		vs = append(vs, variant{m, Day, nil}, variant{m, Week, nil}, variant{m, Hour, nil})
	}
	vs = append(vs, variant{"ccu_peak", Day, nil}, variant{"ccu_peak", Hour, nil})
	for _, c := range s.currencies {
		vs = append(vs, variant{"revenue", Day, url.Values{"currency": {c}}}, variant{"arppu", Month, url.Values{"currency": {c}}},
			variant{"revenue", Hour, url.Values{"currency": {c}}}, variant{"arpdau", Hour, url.Values{"currency": {c}}})
	}
	checked := 0
	for _, v := range vs {
		r := [2]time.Time{from, to}
		if v.interval == Hour {
			r = [2]time.Time{date("2026-10-05"), date("2026-10-06")}
		}
		ps := periods(v.interval, r[0], r[1], s.loc)
		for _, by := range []string{"platform", "country", "appversion", "dim1", "dim2", "dim3"} {
			q := url.Values{"from": {r[0].Format(time.DateOnly)}, "to": {r[1].Format(time.DateOnly)}, "interval": {v.interval}, "by": {by}}
			for k, x := range v.extra {
				q[k] = x
			}
			u := fmt.Sprintf("%s/v1/games/%s/metrics/%s?%s", base, s.ID, v.metric, q.Encode())
			var got Series
			getJSON(t, u, s.keys.Read, &got)
			if got.By != by || got.Points != nil {
				t.Errorf("%s: by = %q, points %v", u, got.By, got.Points)
			}
			series := map[string][]Point{}
			for i, g := range got.Groups {
				if len(g.Points) != len(ps) {
					t.Fatalf("%s: %s has %d points, want %d", u, g.Value, len(g.Points), len(ps))
				}
				series[g.Value] = g.Points
				if i > 0 {
					prev, cur := total(got.Groups[i-1].Points), total(g.Points)
					if prev < cur || prev == cur && got.Groups[i-1].Value > g.Value {
						t.Errorf("%s: series not sorted by total: %s %v before %s %v", u, got.Groups[i-1].Value, prev, g.Value, cur)
					}
				}
			}
			f := simulation.Filter{Currency: v.extra.Get("currency")}
			nonZero := 0
			for _, value := range s.truth.Values(by) {
				for i, p := range ps {
					want := s.truth.Value(v.metric, truthIn(v.interval, p), f.With(by, value))
					var gotV float64
					if pts, ok := series[value]; ok {
						gotV = pts[i].Value
						if pts[i].T != p.t {
							t.Errorf("%s: %s point %d is %s, want %s", u, value, i, pts[i].T, p.t)
						}
					}
					if !near(gotV, want) {
						t.Errorf("%s: %s=%s point %s = %v, want %v", u, by, value, p.t, gotV, want)
					}
					if want != 0 {
						nonZero++
					}
				}
			}
			if nonZero == 0 && v.metric != "first_time_payers" && v.interval != Hour {
				t.Errorf("%s: the truth is all zeros", u)
			}
			checked++
		}
		// Filters: OR within a dimension, AND across them; one value of
		// one dimension (read from the per-value rows per day).
		for _, dims := range []map[string][]string{{"platform": {"ios", "android"}, "country": {"US"}}, {"platform": {"ios"}}, {"dim1": {"c"}}} {
			q := url.Values{"from": {r[0].Format(time.DateOnly)}, "to": {r[1].Format(time.DateOnly)}, "interval": {v.interval}}
			for name, vals := range dims {
				q.Set(name, strings.Join(vals, ","))
			}
			for k, x := range v.extra {
				q[k] = x
			}
			u := fmt.Sprintf("%s/v1/games/%s/metrics/%s?%s", base, s.ID, v.metric, q.Encode())
			var got Series
			getJSON(t, u, s.keys.Read, &got)
			f := simulation.Filter{Currency: v.extra.Get("currency"), Dims: dims}
			if len(got.Points) != len(ps) {
				t.Fatalf("%s: %d points, want %d", u, len(got.Points), len(ps))
			}
			for i, p := range ps {
				if want := s.truth.Value(v.metric, truthIn(v.interval, p), f); !near(got.Points[i].Value, want) {
					t.Errorf("%s: point %s = %v, want %v", u, p.t, got.Points[i].Value, want)
				}
			}
			checked++
		}
	}
	t.Logf("%d breakdowns and filtered series checked against the ground truth", checked)

	// Revenue carries its currency's exponent.
	var jpy Series
	getJSON(t, fmt.Sprintf("%s/v1/games/%s/metrics/revenue?from=2026-10-01&to=2026-10-02&currency=JPY", base, s.ID), s.keys.Read, &jpy)
	if jpy.CurrencyExponent == nil || *jpy.CurrencyExponent != 0 {
		t.Errorf("JPY revenue exponent = %v, want 0", jpy.CurrencyExponent)
	}

	// Retention and progression accept the filters.
	var ret Retention
	getJSON(t, fmt.Sprintf("%s/v1/games/%s/retention?from=2026-10-01&to=2026-10-20&days=0,1,7&platform=ios", base, s.ID), s.keys.Read, &ret)
	for _, c := range ret.Cohorts {
		d := date(c.Cohort)
		want := filteredRetention(s.truth.Recount, d, []int{0, 1, 7}, simulation.Filter{Dims: map[string][]string{"platform": {"ios"}}})
		if c.Size != want[0] || ptr(c.Retained["1"]) != want[1] || ptr(c.Retained["7"]) != want[7] {
			t.Errorf("retention of %s for ios = %d %v %v, want %v", c.Cohort, c.Size, c.Retained["1"], c.Retained["7"], want)
		}
	}

	// LTV per currency, days in the future null.
	for _, f := range []simulation.Filter{{}, {Dims: map[string][]string{"country": {"DE", "JP"}}}} {
		q := url.Values{"from": {"2026-09-30"}, "to": {"2026-10-20"}, "days": {"0,1,7,30"}}
		for k, v := range f.Dims {
			q.Set(k, strings.Join(v, ","))
		}
		var got LTV
		getJSON(t, fmt.Sprintf("%s/v1/games/%s/ltv?%s", base, s.ID, q.Encode()), s.keys.Read, &got)
		if len(got.Currencies) != len(s.currencies) || got.Timezone != "Europe/Berlin" {
			t.Fatalf("ltv %v: currencies %+v", f, got.Currencies)
		}
		nulls, revenue := 0, 0.0
		for _, c := range got.Currencies {
			if c.CurrencyExponent != map[string]int{"USD": 2, "JPY": 0}[c.Currency] {
				t.Errorf("%s exponent %d", c.Currency, c.CurrencyExponent)
			}
			want := s.truth.LTV(date("2026-09-30"), date("2026-10-20"), []int{0, 1, 7, 30}, c.Currency, f)
			gj, _ := json.Marshal(c.Cohorts)
			wj, _ := json.Marshal(want)
			if string(gj) != string(wj) {
				t.Errorf("ltv %s %v:\n got %s\nwant %s", c.Currency, f.Dims, gj, wj)
			}
			for _, co := range want {
				for _, v := range co.Revenue {
					if v == nil {
						nulls++
					} else {
						revenue += *v
					}
				}
			}
		}
		if nulls == 0 || revenue == 0 {
			t.Errorf("ltv truth has %d nulls and revenue %v: the data does not exercise it", nulls, revenue)
		}
	}

	// Economy per day, per item type and top items.
	for _, f := range []simulation.Filter{{}, {Dims: map[string][]string{"dim1": {"a"}}}} {
		q := url.Values{"from": {"2026-09-30"}, "to": {"2026-10-20"}}
		for k, v := range f.Dims {
			q.Set(k, strings.Join(v, ","))
		}
		var got Economy
		getJSON(t, fmt.Sprintf("%s/v1/games/%s/economy?%s", base, s.ID, q.Encode()), s.keys.Read, &got)
		perDay, types, items := s.truth.Economy(date("2026-09-30"), date("2026-10-20"), f)
		if len(got.Currencies) != len(perDay) || len(got.Currencies) == 0 {
			t.Fatalf("economy %v: %d currencies, want %d", f, len(got.Currencies), len(perDay))
		}
		for _, c := range got.Currencies {
			for _, p := range c.Points {
				w := perDay[c.Currency][p.T]
				if !nearRat(p.Source, w.Source) || !nearRat(p.Sink, w.Sink) {
					t.Errorf("economy %s %s = %v/%v, want %v/%v", c.Currency, p.T, p.Source, p.Sink, w.Source, w.Sink)
				}
			}
			for _, it := range c.ItemTypes {
				w := types[c.Currency][it.ItemType]
				if !nearRat(it.Source, w.Source) || !nearRat(it.Sink, w.Sink) {
					t.Errorf("economy %s item type %s = %+v, want %v/%v", c.Currency, it.ItemType, it, w.Source, w.Sink)
				}
			}
			if len(c.TopItems) != min(20, len(items[c.Currency])) {
				t.Errorf("economy %s: %d top items, want %d", c.Currency, len(c.TopItems), len(items[c.Currency]))
			}
			for _, it := range c.TopItems {
				w := items[c.Currency][it.ItemType+"\x1f"+it.ItemID]
				if !nearRat(it.Source, w.Source) || !nearRat(it.Sink, w.Sink) {
					t.Errorf("economy %s item %s = %+v, want %v/%v", c.Currency, it.ItemID, it, w.Source, w.Sink)
				}
			}
		}
	}

	// Concurrency: the highest online count of any minute.
	for _, interval := range []string{Day, Hour} {
		r := [2]time.Time{from, to}
		if interval == Hour {
			r = [2]time.Time{date("2026-10-05"), date("2026-10-06")}
		}
		var got Series
		getJSON(t, fmt.Sprintf("%s/v1/games/%s/metrics/ccu_peak?from=%s&to=%s&interval=%s", base, s.ID,
			r[0].Format(time.DateOnly), r[1].Format(time.DateOnly), interval), s.keys.Read, &got)
		ps := periods(interval, r[0], r[1], s.loc)
		peak := 0.0
		for i, p := range ps {
			want := float64(s.truth.CCUPeak(truthIn(interval, p)))
			if got.Points[i].Value != want {
				t.Errorf("ccu_peak %s %s = %v, want %v", interval, p.t, got.Points[i].Value, want)
			}
			peak = max(peak, want)
		}
		if peak < 2 && interval == Day {
			t.Errorf("ccu truth peaks at %v: the data does not exercise it", peak)
		}
	}

	// CSV of a breakdown: t, the dimension, value.
	rows := getCSV(t, fmt.Sprintf("%s/v1/games/%s/metrics/dau?from=2026-10-01&to=2026-10-02&by=country&format=csv", base, s.ID), s.keys.Read)
	if len(rows) < 2 || strings.Join(rows[0], ",") != "t,country,value" {
		t.Errorf("breakdown CSV header %v", rows[0])
	}
	if status, body, _ := get(t, fmt.Sprintf("%s/v1/games/%s/ltv?from=2026-10-01&to=2026-10-02&format=csv", base, s.ID), s.keys.Read); status != http.StatusOK ||
		!strings.HasPrefix(string(body), "currency,cohort,size,day,revenue_minor,per_player_minor") {
		t.Errorf("ltv CSV = %d %.80s", status, body)
	}
}

func total(ps []Point) float64 {
	v := 0.0
	for _, p := range ps {
		v += p.Value
	}
	return v
}

func ptr(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

func nearRat(v float64, r *big.Rat) bool {
	if r == nil {
		return v == 0
	}
	f, _ := r.Float64()
	return near(v, f) || (f != 0 && (v-f)/f < 1e-12 && (f-v)/f < 1e-12)
}

// filteredRetention is the retention of cohort d among players whose
// install dimensions f keeps: index 0 the size, n the players back on d+n.
func filteredRetention(r *simulation.Recount, d time.Time, days []int, f simulation.Filter) map[int]int64 {
	out := map[int]int64{}
	for _, pl := range r.Players {
		if !r.Day(pl.First).Equal(d) || !f.Keeps(pl.Dims) {
			continue
		}
		for _, n := range days {
			if pl.Days[d.AddDate(0, 0, n)] {
				out[n]++
			}
		}
	}
	if _, ok := out[0]; !ok {
		out[0] = 0
	}
	for _, n := range days {
		if d.AddDate(0, 0, n).After(r.Day(r.Now)) {
			out[n] = -1
		}
	}
	return out
}

var _ = strconv.Itoa
var _ = reflect.DeepEqual
