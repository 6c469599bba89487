package report

import (
	"math"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/metrics"
)

// The names the report tests (and their ground truth) use for what moved to
// shared/metrics, so the tests read as they did.

// Intervals, as query strings.
const (
	Hour  = string(metrics.Hour)
	Day   = string(metrics.Day)
	Week  = string(metrics.Week)
	Month = string(metrics.Month)
)

type (
	Cohort = metrics.Cohort
	Level  = metrics.Level
)

// period is one point of a series: its label t, its days [from, to] of the
// game's calendar and, for an hour, its UTC start.
type period struct {
	t        string
	from, to time.Time
	hour     time.Time
}

func periods(interval string, from, to time.Time, loc *time.Location) []period {
	var ps []period
	for _, p := range metrics.Periods(metrics.Interval(interval), from, to, loc) {
		ps = append(ps, period{t: p.Label, from: p.From, to: p.To, hour: p.Hour})
	}
	return ps
}

func localDay(t time.Time, loc *time.Location) time.Time { return metrics.LocalDay(t, loc) }

// round is how the API rounds its ratios.
func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}
