package metrics

import "time"

// Interval is the length of each point of a series.
type Interval string

// Intervals of a series.
const (
	// Hour is the UTC hour (the hourly rollups' buckets).
	Hour Interval = "hour"
	// Day is the calendar day in the game's time zone.
	Day Interval = "day"
	// Week is the ISO week, Monday to Sunday, in the game's time zone.
	Week Interval = "week"
	// Month is the calendar month in the game's time zone.
	Month Interval = "month"
	// Minute is a run of UTC minutes (the minute rollups' buckets): 1, 5 or
	// 15 of them, aligned so that a window of n minutes starts at a
	// multiple of n minutes after UTC midnight (alert windows 1m, 5m, 15m).
	Minute Interval = "minute"
)

// MinuteWidths are the lengths, in minutes, a Minute period can have.
func MinuteWidths() []int { return []int{1, 5, 15} }

// Period is one point of a series.
type Period struct {
	Interval Interval
	// Label names the period in answers: its first day as YYYY-MM-DD, or
	// for an hour its start in RFC 3339 in the game's offset.
	Label string
	// From and To are the days of the game's calendar the period covers,
	// inclusive, as midnight UTC (how PostgreSQL dates travel); for an hour
	// both are the local day it starts on.
	From, To time.Time
	// Hour is an hour's start (UTC); zero for the other intervals.
	Hour time.Time
	// Start is a minute period's start (UTC) and Minutes its length; both
	// zero for the other intervals.
	Start   time.Time
	Minutes int
}

// End is the instant the period closes: the end of its hour or minutes,
// or the midnight in loc after its last day.
func (p Period) End(loc *time.Location) time.Time {
	switch p.Interval {
	case Hour:
		return p.Hour.Add(time.Hour)
	case Minute:
		return p.Start.Add(time.Duration(p.Minutes) * time.Minute)
	}
	return time.Date(p.To.Year(), p.To.Month(), p.To.Day()+1, 0, 0, 0, 0, loc)
}

// Begin is the instant the period starts.
func (p Period) Begin(loc *time.Location) time.Time {
	switch p.Interval {
	case Hour:
		return p.Hour
	case Minute:
		return p.Start
	}
	return time.Date(p.From.Year(), p.From.Month(), p.From.Day(), 0, 0, 0, 0, loc)
}

// Periods splits the days [from, to] (inclusive, the game's calendar, as
// midnight UTC) into the points of interval. Weeks start on Monday (ISO
// 8601) and months on the 1st; a partial week or month at either end counts
// only its days inside the range, and its label is its first day inside the
// range. Hours are the UTC hours that start inside the range in loc, and
// minutes the UTC minutes (MinutePeriods for wider minute windows).
func Periods(interval Interval, from, to time.Time, loc *time.Location) []Period {
	var ps []Period
	if interval == Minute {
		return MinutePeriods(1, from, to, loc)
	}
	if interval == Hour {
		start := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, loc)
		end := time.Date(to.Year(), to.Month(), to.Day()+1, 0, 0, 0, 0, loc)
		h := start.UTC().Truncate(time.Hour)
		if h.Before(start) {
			h = h.Add(time.Hour)
		}
		for ; h.Before(end); h = h.Add(time.Hour) {
			ps = append(ps, hourPeriod(h, loc))
		}
		return ps
	}
	for d := from; !d.After(to); {
		var next time.Time
		switch interval {
		case Week:
			next = d.AddDate(0, 0, 7-(int(d.Weekday())+6)%7)
		case Month:
			next = time.Date(d.Year(), d.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		default:
			next = d.AddDate(0, 0, 1)
		}
		end := next.AddDate(0, 0, -1)
		if end.After(to) {
			end = to
		}
		ps = append(ps, Period{Interval: interval, Label: d.Format(time.DateOnly), From: d, To: end})
		d = next
	}
	return ps
}

// PeriodOf returns the whole period of interval that holds the instant t:
// the UTC hour or minute, or the day, ISO week or month of t in loc. Its value (Value)
// is the point of the same period in a series whose range covers it whole.
func PeriodOf(interval Interval, t time.Time, loc *time.Location) Period {
	day := LocalDay(t, loc)
	switch interval {
	case Hour:
		return hourPeriod(t.UTC().Truncate(time.Hour), loc)
	case Minute:
		return MinutePeriodOf(1, t, loc)
	case Week:
		monday := day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
		return Period{Interval: Week, Label: monday.Format(time.DateOnly), From: monday, To: monday.AddDate(0, 0, 6)}
	case Month:
		first := time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC)
		return Period{Interval: Month, Label: first.Format(time.DateOnly), From: first, To: first.AddDate(0, 1, -1)}
	}
	return Period{Interval: interval, Label: day.Format(time.DateOnly), From: day, To: day}
}

// MinutePeriods splits the days [from, to] (inclusive, the game's calendar,
// as midnight UTC) into windows of n UTC minutes (n one of MinuteWidths),
// those that start inside the range in loc. Every time zone's midnight
// falls on a quarter hour, so the windows tile each day.
func MinutePeriods(n int, from, to time.Time, loc *time.Location) []Period {
	if n <= 0 {
		n = 1
	}
	width := time.Duration(n) * time.Minute
	start := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, loc)
	end := time.Date(to.Year(), to.Month(), to.Day()+1, 0, 0, 0, 0, loc)
	m := start.UTC().Truncate(width)
	if m.Before(start) {
		m = m.Add(width)
	}
	var ps []Period
	for ; m.Before(end); m = m.Add(width) {
		ps = append(ps, minutePeriod(m, n, loc))
	}
	return ps
}

// MinutePeriodOf returns the window of n UTC minutes (n one of
// MinuteWidths) that holds the instant t.
func MinutePeriodOf(n int, t time.Time, loc *time.Location) Period {
	if n <= 0 {
		n = 1
	}
	return minutePeriod(t.UTC().Truncate(time.Duration(n)*time.Minute), n, loc)
}

func minutePeriod(start time.Time, n int, loc *time.Location) Period {
	d := LocalDay(start, loc)
	return Period{Interval: Minute, Label: start.In(loc).Format(time.RFC3339), Start: start, Minutes: n, From: d, To: d}
}

func hourPeriod(h time.Time, loc *time.Location) Period {
	d := LocalDay(h, loc)
	return Period{Interval: Hour, Label: h.In(loc).Format(time.RFC3339), Hour: h, From: d, To: d}
}

// LocalDay is t's calendar day in loc as midnight UTC, the form every day
// of this package takes.
func LocalDay(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// civilDay is the date t names (its own location's year, month and day) as
// midnight UTC, so a caller's time.Date(y, m, d, 0, 0, 0, 0, loc) means the
// day it reads as.
func civilDay(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}
