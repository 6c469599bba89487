package notify

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/metrics"
)

// poisson draws a Poisson variate (Knuth below 30, else Hörmann's PTRS).
func poisson(r *rand.Rand, lam float64) float64 {
	if lam < 30 {
		l, k, p := math.Exp(-lam), 0.0, 1.0
		for {
			p *= r.Float64()
			if p <= l {
				return k
			}
			k++
		}
	}
	slam, loglam := math.Sqrt(lam), math.Log(lam)
	b := 0.931 + 2.53*slam
	a := -0.059 + 0.02483*b
	invAlpha := 1.1239 + 1.1328/(b-3.4)
	vr := 0.9277 - 3.6224/(b-2)
	for {
		u, v := r.Float64()-0.5, r.Float64()
		us := 0.5 - math.Abs(u)
		k := math.Floor((2*a/us+b)*u + lam + 0.43)
		if us >= 0.07 && v <= vr {
			return k
		}
		if k < 0 || (us < 0.013 && v > us) {
			continue
		}
		lg, _ := math.Lgamma(k + 1)
		if math.Log(v)+math.Log(invAlpha)-math.Log(a/(us*us)+b) <= -lam+k*loglam-lg {
			return k
		}
	}
}

// seasonalRate is a game's events per window at t: an evening peak and a
// busier weekend, peak events per hour at the top.
func seasonalRate(t time.Time, peakPerHour float64, w window) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	daily := 0.25 + 0.75*math.Pow(0.5+0.5*math.Cos(2*math.Pi*(h-20)/24), 2)
	weekly := 1.0
	if d := t.Weekday(); d == time.Saturday || d == time.Sunday {
		weekly = 1.3
	}
	return peakPerHour * daily * weekly * w.nominal().Hours()
}

// quality runs the detector as the evaluator does (default sensitivity,
// for 1) on synthetic weekly-seasonal Poisson series: 5 weeks of history
// then a test week. It returns false alarms per series-week on clean data
// and the share of −30% drops lasting 3 windows that fire.
func quality(w window, peak float64, series int, seed uint64) (falseAlarms, caught float64) {
	r := rand.New(rand.NewPCG(seed, 99))
	start := time.Date(2026, 9, 7, 0, 0, 0, 0, time.UTC) // a Monday
	testFrom := start.AddDate(0, 0, 35)
	n := int(7 * 24 * time.Hour / w.nominal())
	alarms, hits := 0, 0
	for s := 0; s < series; s++ {
		vals := map[metrics.Period]float64{}
		value := func(p metrics.Period, factor float64) float64 {
			if v, ok := vals[p]; ok && factor == 1 {
				return v
			}
			v := poisson(r, seasonalRate(p.Begin(time.UTC), peak, w)*factor)
			if factor == 1 {
				vals[p] = v
			}
			return v
		}
		judge := func(p metrics.Period, x float64) outcome {
			kind, slots := baselineSlots(w, p, time.UTC, start)
			xs := make([]float64, len(slots))
			for i, q := range slots {
				xs[i] = value(q, 1)
			}
			if anomalous(anomalyScore(x, robustBaseline(kind, xs), true), DefaultSensitivity, "both") {
				return windowBreach
			}
			return windowClear
		}
		// clean: one test week, count the firings
		st := ruleState{State: stateOK}
		p := w.periodOf(testFrom, time.UTC)
		for i := 0; i < n; i++ {
			var tr transition
			st, tr = step(policy{For: 1}, st, judge(p, value(p, 1)), p.End(time.UTC))
			if tr == toFiring {
				alarms++
			}
			p = w.next(p, time.UTC)
		}
		// a drop of 30% for 3 windows at a random time of the test week
		at := w.periodOf(testFrom.Add(time.Duration(r.IntN(n-3))*w.nominal()), time.UTC)
		fired := false
		for i := 0; i < 3; i++ {
			fired = fired || judge(at, value(at, 0.7)) == windowBreach
			at = w.next(at, time.UTC)
		}
		if fired {
			hits++
		}
	}
	return float64(alarms) / float64(series), float64(hits) / float64(series)
}

// The anomaly detector's quality, measured and printed (recorded in the
// README): on hourly windows of a game with 1,000+ events in its peak
// hour, at most 1 false alarm per series-week and at least 90% of −30%
// drops lasting 3 windows caught. Shorter windows and quieter games are
// printed too: fewer events per window means more Poisson noise.
func TestAnomalyDetectorQualityOnWeeklySeasonalPoissonSeries(t *testing.T) {
	series := 200
	if testing.Short() {
		series = 40
	}
	h, _ := parseWindow("1h")
	for _, tc := range []struct {
		window string
		peak   float64 // events in the peak hour
		assert bool
	}{
		{"1h", 1000, true}, {"1h", 5000, true}, {"1h", 20000, true},
		{"1h", 300, false}, {"15m", 5000, false}, {"15m", 20000, false}, {"5m", 20000, false},
	} {
		w, _ := parseWindow(tc.window)
		n := series
		if w != h {
			n = max(series/10, 10) // many more windows per week each
		}
		fa, caught := quality(w, tc.peak, n, uint64(tc.peak))
		line := fmt.Sprintf("window %-3s peak %6.0f/h (trough %5.0f/h): %.2f false alarms per series-week, %.0f%% of -30%%×3 drops caught (%d series)",
			tc.window, tc.peak, tc.peak*0.25, fa, caught*100, n)
		t.Log(line)
		if tc.assert && (fa > 1 || caught < 0.9) {
			t.Errorf("below target: %s", line)
		}
	}
}
