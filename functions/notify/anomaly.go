package notify

import (
	"math"
	"slices"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/metrics"
)

// Kinds of anomaly baseline, from the best to the last resort.
const (
	baselineWeekly = "same slot of the week" // same window over up to 4 weeks
	baselineDaily  = "same slot of the day"  // same window over up to 7 days
	baselineRecent = "recent windows"        // the last 30 windows
)

// Sizes of the baselines and the least history each needs.
const (
	weeklySlots     = 4
	dailySlots      = 7
	recentSlots     = 30
	minSeasonal     = 2 // 2+ weeks (or days) of history for a seasonal baseline
	minRecentWindow = 8 // a baseline of fewer recent windows is no baseline
	madScale        = 1.4826
)

// baselineSlots picks the windows whose values make the anomaly baseline
// of window p: the same slot of the week over up to 4 weeks when 2+ weeks
// of history exist, else the same slot of the day over up to 7 days when
// 2+ days exist, else the last 30 windows. A slot starting before since
// (the first data the game has, or the oldest minute rollups kept) is not
// history. It returns no slots when there is not enough history yet.
func baselineSlots(w window, p metrics.Period, loc *time.Location, since time.Time) (string, []metrics.Period) {
	pick := func(n int, at func(k int) metrics.Period) []metrics.Period {
		var out []metrics.Period
		for k := 1; k <= n; k++ {
			q := at(k)
			if q.Begin(loc).Before(since) {
				break
			}
			out = append(out, q)
		}
		return out
	}
	if s := pick(weeklySlots, func(k int) metrics.Period { return w.daysBack(p, 7*k, loc) }); len(s) >= minSeasonal {
		return baselineWeekly, s
	}
	if w.interval != metrics.Day {
		if s := pick(dailySlots, func(k int) metrics.Period { return w.daysBack(p, k, loc) }); len(s) >= minSeasonal {
			return baselineDaily, s
		}
	}
	n := recentSlots
	if w.interval == metrics.Day {
		n = dailySlots // a day's recent windows are the last week
	}
	if s := pick(n, func(k int) metrics.Period { return w.back(p, k, loc) }); len(s) >= min(minRecentWindow, n) {
		return baselineRecent, s
	}
	return "", nil
}

// baseline is a robust centre and spread of past values.
type baseline struct {
	Kind   string
	Median float64
	Spread float64 // 1.4826 × median absolute deviation: σ for normal data
	N      int
}

// robustBaseline is the median of xs and 1.4826 × their median absolute
// deviation, which one outlier (last week's incident) cannot move far.
func robustBaseline(kind string, xs []float64) baseline {
	med := median(xs)
	dev := make([]float64, len(xs))
	for i, x := range xs {
		dev[i] = math.Abs(x - med)
	}
	return baseline{Kind: kind, Median: med, Spread: madScale * median(dev), N: len(xs)}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// anomalyScore is how many deviations x lies from the baseline:
// (x − median) / max(spread, √median, ε). For counts, √median is the
// Poisson noise of the value, and ε = 1 (a count whose baseline is below
// one event); for averages and ratios the square root means nothing, and
// ε is 1% of the baseline, so a flat series does not fire on rounding.
func anomalyScore(x float64, b baseline, counts bool) float64 {
	floor := math.Max(0.01*math.Abs(b.Median), 1e-9)
	if counts {
		floor = math.Max(math.Sqrt(math.Max(b.Median, 0)), 1)
	}
	return (x - b.Median) / math.Max(b.Spread, floor)
}

// anomalous says whether a score breaches: |score| ≥ sensitivity in the
// direction asked (up, down or both).
func anomalous(score, sensitivity float64, direction string) bool {
	switch direction {
	case "up":
		return score >= sensitivity
	case "down":
		return -score >= sensitivity
	}
	return math.Abs(score) >= sensitivity
}

// changePercent is how much x moved from ref, in percent; from 0 any rise
// is +Inf and no change is 0.
func changePercent(x, ref float64) float64 {
	if ref == 0 {
		switch {
		case x > 0:
			return math.Inf(1)
		case x < 0:
			return math.Inf(-1)
		}
		return 0
	}
	return (x - ref) / math.Abs(ref) * 100
}
