package notify

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/metrics"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// Windows an alert rule can evaluate: runs of UTC minutes, the UTC hour, or
// the day in the game's time zone.
var windowNames = []string{"1m", "5m", "15m", "1h", "1d"}

// window is the length of an alert rule's windows.
type window struct {
	name     string
	interval metrics.Interval
	minutes  int
}

func parseWindow(s string) (window, bool) {
	switch s {
	case "1m", "5m", "15m":
		n := map[string]int{"1m": 1, "5m": 5, "15m": 15}[s]
		return window{name: s, interval: metrics.Minute, minutes: n}, true
	case "1h":
		return window{name: s, interval: metrics.Hour}, true
	case "1d":
		return window{name: s, interval: metrics.Day}, true
	}
	return window{}, false
}

// nominal is the window's length (a day in a zone with daylight saving
// time may be 23 or 25 hours).
func (w window) nominal() time.Duration {
	switch w.interval {
	case metrics.Minute:
		return time.Duration(w.minutes) * time.Minute
	case metrics.Hour:
		return time.Hour
	}
	return 24 * time.Hour
}

// periodOf is the window that holds t.
func (w window) periodOf(t time.Time, loc *time.Location) metrics.Period {
	if w.interval == metrics.Minute {
		return metrics.MinutePeriodOf(w.minutes, t, loc)
	}
	return metrics.PeriodOf(w.interval, t, loc)
}

// next is the window after p.
func (w window) next(p metrics.Period, loc *time.Location) metrics.Period {
	return w.periodOf(p.End(loc), loc)
}

// back is the window n windows before p.
func (w window) back(p metrics.Period, n int, loc *time.Location) metrics.Period {
	if w.interval == metrics.Day {
		d := p.From.AddDate(0, 0, -n)
		return metrics.PeriodOf(metrics.Day, time.Date(d.Year(), d.Month(), d.Day(), 12, 0, 0, 0, loc), loc)
	}
	return w.periodOf(p.Begin(loc).Add(-time.Duration(n)*w.nominal()), loc)
}

// daysBack is the same window days calendar days earlier: the same hour
// (or minutes) of that day in UTC, or that day in the game's zone.
func (w window) daysBack(p metrics.Period, days int, loc *time.Location) metrics.Period {
	if w.interval == metrics.Day {
		return w.back(p, days, loc)
	}
	return w.periodOf(p.Begin(loc).Add(-time.Duration(days)*24*time.Hour), loc)
}

// Condition types.
const (
	condAbove   = "above"
	condBelow   = "below"
	condChange  = "change"
	condAnomaly = "anomaly"
)

// What a change condition compares a window with.
const (
	againstPrevious     = "previous_window"
	againstHourLastWeek = "same_hour_last_week"
	againstDayLastWeek  = "same_day_last_week"
)

// Condition is the one test of an alert rule.
//
//	{"type": "above", "value": 100}       the value is above 100
//	{"type": "below", "value": 10}        the value is below 10
//	{"type": "change", "against": "previous_window", "below": -30}
//	                                      it fell by more than 30% from the previous window
//	                                      (against: previous_window, same_hour_last_week
//	                                      for windows up to 1h, same_day_last_week for 1d;
//	                                      "above": 50 for a rise of more than 50%)
//	{"type": "anomaly", "sensitivity": 4, "direction": "both"}
//	                                      the value is this many robust deviations from
//	                                      its seasonal baseline (direction up, down or both)
type Condition struct {
	Type        string   `json:"type"`
	Value       *float64 `json:"value,omitempty"`
	Against     string   `json:"against,omitempty"`
	Above       *float64 `json:"above,omitempty"`
	Below       *float64 `json:"below,omitempty"`
	Sensitivity float64  `json:"sensitivity,omitempty"`
	Direction   string   `json:"direction,omitempty"`
}

// DefaultSensitivity is an anomaly condition's threshold on |score|.
const DefaultSensitivity = 4.0

// AlertSpec is a KPI alert rule as an admin creates it.
type AlertSpec struct {
	Name string `json:"name"`
	// Metric is any report metric, with its filters.
	Metric   string `json:"metric"`
	Currency string `json:"currency,omitempty"`
	Severity string `json:"severity,omitempty"`
	// Window is 1m, 5m, 15m, 1h or 1d (days in the game's time zone).
	Window    string    `json:"window"`
	Condition Condition `json:"condition"`
	// For is how many consecutive breaching windows fire the rule (default 1).
	For int `json:"for,omitempty"`
	// KeepFiringFor is how many windows without a breach a firing rule
	// stays firing before it resolves (default 0: the first clear window
	// resolves it).
	KeepFiringFor int `json:"keep_firing_for,omitempty"`
	// MinVolume is the fewest events the game must have in a window for
	// the window to count either way; quieter windows change nothing.
	MinVolume float64 `json:"min_volume,omitempty"`
	// Renotify, if set, repeats the firing notification this often while
	// the rule keeps firing (Go duration, at least one window).
	Renotify     string   `json:"renotify,omitempty"`
	Destinations []string `json:"destinations"`
}

// problems maps a field (as the JSON names it) to what is wrong with it.
type problems map[string]string

func (p problems) add(field, format string, args ...any) {
	if _, ok := p[field]; !ok {
		p[field] = fmt.Sprintf(format, args...)
	}
}

// first is the problem to name in a one-line error: the first field in
// sorted order.
func (p problems) first() (string, string) {
	fields := make([]string, 0, len(p))
	for f := range p {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	return fields[0], p[fields[0]]
}

// Maximums that bound what one rule can ask of the evaluator.
const (
	maxFor          = 1440
	maxDestinations = 10
	maxNameLen      = 200
)

// normalize fills the defaults and checks the rule without any I/O; which
// destinations exist is checked against the database by the caller.
func (s *AlertSpec) normalize() problems {
	p := problems{}
	checkName(p, &s.Name)
	w, ok := parseWindow(s.Window)
	if !ok {
		p.add("window", "want one of %s, got %q", strings.Join(windowNames, ", "), s.Window)
	}
	if err := metrics.CheckMetric(s.Metric); err != nil {
		p.add("metric", "%s", strings.TrimPrefix(err.Error(), "metric: "))
	} else if ok {
		if err := metrics.CheckGrain(s.Metric, w.interval); err != nil {
			p.add("window", "%s has no windows shorter than 1h (distinct players are counted per hour and day)", s.Metric)
		}
		// The filters are checked exactly as the report API checks them.
		q := metrics.ValueQuery{Game: store.Game{ID: "-"}, Metric: s.Metric, Currency: s.Currency, Severity: s.Severity,
			Period: metrics.PeriodOf(metrics.Day, time.Unix(0, 0), time.UTC)}
		if err := q.Validate(); err != nil {
			if pe, ok := err.(*metrics.ParamError); ok {
				p.add(pe.Param, "%s", pe.Reason)
			}
		}
	}
	c := &s.Condition
	switch c.Type {
	case condAbove, condBelow:
		if c.Value == nil || !finite(*c.Value) {
			p.add("condition.value", "required: the number the value must be %s", c.Type)
		}
	case condChange:
		switch c.Against {
		case againstPrevious:
		case againstHourLastWeek:
			if ok && w.interval == metrics.Day {
				p.add("condition.against", "a 1d window compares with %s, not %s", againstDayLastWeek, againstHourLastWeek)
			}
		case againstDayLastWeek:
			if ok && w.interval != metrics.Day {
				p.add("condition.against", "a %s window compares with %s, not %s", s.Window, againstHourLastWeek, againstDayLastWeek)
			}
		default:
			p.add("condition.against", "want %s, %s or %s, got %q", againstPrevious, againstHourLastWeek, againstDayLastWeek, c.Against)
		}
		switch {
		case (c.Above == nil) == (c.Below == nil):
			p.add("condition.above", "give exactly one of above or below: a change in percent, e.g. \"below\": -30 for a drop of more than 30%%")
		case c.Above != nil && !finite(*c.Above):
			p.add("condition.above", "want a percentage")
		case c.Below != nil && !finite(*c.Below):
			p.add("condition.below", "want a percentage")
		}
	case condAnomaly:
		if c.Sensitivity == 0 {
			c.Sensitivity = DefaultSensitivity
		}
		if !finite(c.Sensitivity) || c.Sensitivity < 1 || c.Sensitivity > 20 {
			p.add("condition.sensitivity", "want a number of deviations from 1 to 20 (default %g), got %g", DefaultSensitivity, c.Sensitivity)
		}
		if c.Direction == "" {
			c.Direction = "both"
		}
		if !slices.Contains([]string{"both", "up", "down"}, c.Direction) {
			p.add("condition.direction", "want both, up or down, got %q", c.Direction)
		}
	default:
		p.add("condition.type", "want above, below, change or anomaly, got %q", c.Type)
	}
	if s.For == 0 {
		s.For = 1
	}
	if s.For < 1 || s.For > maxFor {
		p.add("for", "want 1 to %d consecutive windows, got %d", maxFor, s.For)
	}
	if s.KeepFiringFor < 0 || s.KeepFiringFor > maxFor {
		p.add("keep_firing_for", "want 0 to %d windows, got %d", maxFor, s.KeepFiringFor)
	}
	if s.MinVolume < 0 || !finite(s.MinVolume) {
		p.add("min_volume", "want 0 or more events, got %g", s.MinVolume)
	}
	if s.Renotify != "" {
		d, err := time.ParseDuration(s.Renotify)
		switch {
		case err != nil:
			p.add("renotify", "want a duration such as 1h, got %q", s.Renotify)
		case ok && d < w.nominal():
			p.add("renotify", "at least one window (%s)", s.Window)
		}
	}
	checkDestinationIDs(p, s.Destinations)
	return p
}

// checkName trims a rule's name and refuses an empty or long one.
func checkName(p problems, name *string) {
	*name = strings.TrimSpace(*name)
	if *name == "" {
		p.add("name", "required")
	} else if len(*name) > maxNameLen {
		p.add("name", "at most %d characters", maxNameLen)
	}
}

func checkDestinationIDs(p problems, ids []string) {
	switch {
	case len(ids) == 0:
		p.add("destinations", "required: at least one destination id (create one with POST /v1/games/{game}/destinations)")
	case len(ids) > maxDestinations:
		p.add("destinations", "at most %d", maxDestinations)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			p.add("destinations", "%s is listed twice", id)
		}
		seen[id] = true
	}
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// renotifyEvery is the parsed re-notify interval (0: never).
func (s AlertSpec) renotifyEvery() time.Duration {
	d, _ := time.ParseDuration(s.Renotify)
	return d
}

// window is the parsed window of a normalized spec.
func (s AlertSpec) window() window {
	w, _ := parseWindow(s.Window)
	return w
}

// countsMetric says whether a metric counts things (events, players,
// minor units): its Poisson noise is about the square root of its value,
// which bounds an anomaly's spread from below.
func countsMetric(m string) bool {
	switch m {
	case "session_length_avg", "playtime_per_dau", "arpdau", "arppu", "conversion":
		return false
	}
	return true
}
