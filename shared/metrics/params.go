package metrics

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Limits of a query, part of the report API's contract: they bound the work
// of one request.
const (
	// MaxHourDays is the longest range (in days) an hour series accepts.
	MaxHourDays = 7
	// MaxMinuteDays is the longest range (in days) a minute series accepts.
	MaxMinuteDays = 2
	// MaxDays is the longest range any other query accepts.
	MaxDays = 1100
	// MaxRetentionDays bounds each day number of a retention query.
	MaxRetentionDays = 3650
	// MaxRetentionColumns bounds how many day numbers a retention query asks for.
	MaxRetentionColumns = 60
)

// ParamError is a refused parameter; Param names it as the report API does
// (metric, interval, from, to, currency, severity, days, period, game).
type ParamError struct {
	Param  string
	Reason string
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Reason }

func paramError(param, format string, args ...any) *ParamError {
	return &ParamError{Param: param, Reason: fmt.Sprintf(format, args...)}
}

var names = []string{"events", "dau", "new_players", "sessions", "session_length_avg", "playtime_per_dau",
	"revenue", "transactions", "paying_players", "first_time_payers", "arpdau", "arppu", "conversion",
	"ad_impressions", "ad_revenue_micros", "errors", "ccu_peak"}

// Names lists every metric, in documentation order.
func Names() []string { return slices.Clone(names) }

// RevenueMetrics are the metrics computed in one currency: the query's, or
// the game's only one when it names none.
func RevenueMetrics() []string { return []string{"revenue", "arpdau", "arppu"} }

// Severities are the error severities the errors metric can be filtered by.
func Severities() []string { return []string{"debug", "info", "warning", "error", "critical"} }

// noMinuteGrain are the metrics that count distinct players (per hour and
// day only: player_hours, player_days) or divide by them.
var noMinuteGrain = []string{"dau", "paying_players", "conversion", "arpdau", "arppu", "playtime_per_dau", "ccu_peak"}

// MinuteMetrics lists the metrics that have a minute grain (Minute periods):
// every metric but the distinct player counts and the ratios over them.
func MinuteMetrics() []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(noMinuteGrain, n) {
			out = append(out, n)
		}
	}
	return out
}

// CheckGrain refuses an interval a metric has no data for: distinct player
// counts (dau, paying_players) and the ratios over them are kept per hour
// and day, not per minute. The error names interval.
func CheckGrain(metric string, interval Interval) error {
	if metric == "ccu_peak" && interval != Hour && interval != Day {
		return paramError("interval", "ccu_peak is kept per hour and day: use interval=hour or day, not %s", interval)
	}
	if interval == Minute && slices.Contains(noMinuteGrain, metric) {
		return paramError("interval", "%s has no minute grain (distinct players are counted per hour and day); use hour or day, or one of %s per minute",
			metric, strings.Join(MinuteMetrics(), ", "))
	}
	return nil
}

// CheckMinutes refuses a minute window width other than 1, 5 or 15.
func CheckMinutes(n int) error {
	if !slices.Contains(MinuteWidths(), n) {
		return paramError("minutes", "want 1, 5 or 15 minutes per point, got %d", n)
	}
	return nil
}

// CheckMetric refuses a name that is not a metric.
func CheckMetric(name string) error {
	if !slices.Contains(names, name) {
		return paramError("metric", "unknown metric %q; want one of %s", name, strings.Join(names, ", "))
	}
	return nil
}

// Check refuses an unknown interval.
func (i Interval) Check() error {
	switch i {
	case Hour, Day, Week, Month, Minute:
		return nil
	}
	return paramError("interval", "want day, week, month, hour or minute, got %q", string(i))
}

// maxDays is the longest range a series of i accepts.
func (i Interval) maxDays() int {
	switch i {
	case Hour:
		return MaxHourDays
	case Minute:
		return MaxMinuteDays
	}
	return MaxDays
}

// CheckRange refuses a range of days [from, to] that is empty, reversed or
// longer than a series of interval (or, for retention and progression, Day)
// accepts. Only the dates count (see SeriesQuery).
func CheckRange(interval Interval, from, to time.Time) error {
	if from.IsZero() {
		return paramError("from", "required")
	}
	if to.IsZero() {
		return paramError("to", "required")
	}
	from, to = civilDay(from), civilDay(to)
	if to.Before(from) {
		return paramError("to", "must not be before from")
	}
	if days := int(to.Sub(from)/(24*time.Hour)) + 1; days > interval.maxDays() {
		return paramError("to", "the range is %d days; at most %d are allowed here", days, interval.maxDays())
	}
	return nil
}

// CheckDays refuses retention day numbers out of bounds.
func CheckDays(days []int) error {
	for _, n := range days {
		if n < 0 || n > MaxRetentionDays {
			return paramError("days", "want day numbers 0-%d, got %d", MaxRetentionDays, n)
		}
	}
	if len(days) > MaxRetentionColumns {
		return paramError("days", "at most %d days", MaxRetentionColumns)
	}
	return nil
}

var currencyRe = regexp.MustCompile(`^[A-Z]{3}$`)

// checkFilters refuses a currency or severity the metric does not take.
func checkFilters(metric, currency, severity string) error {
	if currency != "" && !currencyRe.MatchString(currency) {
		return paramError("currency", "want an ISO 4217 code such as USD, got %q", currency)
	}
	if severity != "" {
		if metric != "errors" {
			return paramError("severity", "applies to the errors metric only")
		}
		if !slices.Contains(Severities(), severity) {
			return paramError("severity", "want one of %s, got %q", strings.Join(Severities(), ", "), severity)
		}
	}
	if currency != "" && !slices.Contains(RevenueMetrics(), metric) && metric != "transactions" {
		return paramError("currency", "applies to revenue, arpdau, arppu and transactions only")
	}
	return nil
}

func checkGame(id string) error {
	if id == "" {
		return paramError("game", "required")
	}
	return nil
}

// Validate checks the query's parameters in the order the report API names
// them: game, metric, interval (and that the metric has its grain),
// minutes, from, to, currency, severity.
func (q SeriesQuery) Validate() error {
	if err := checkGame(q.Game.ID); err != nil {
		return err
	}
	if err := CheckMetric(q.Metric); err != nil {
		return err
	}
	if err := q.Interval.Check(); err != nil {
		return err
	}
	if err := CheckGrain(q.Metric, q.Interval); err != nil {
		return err
	}
	if q.Minutes != 0 {
		if q.Interval != Minute {
			return paramError("minutes", "applies to interval=minute only")
		}
		if err := CheckMinutes(q.Minutes); err != nil {
			return err
		}
	}
	if err := CheckRange(q.Interval, q.From, q.To); err != nil {
		return err
	}
	if err := checkFilters(q.Metric, q.Currency, q.Severity); err != nil {
		return err
	}
	if err := checkDims(q.Interval, q.Filter, q.By); err != nil {
		return err
	}
	if days := int(civilDay(q.To).Sub(civilDay(q.From))/(24*time.Hour)) + 1; q.Metric == "ccu_peak" && (q.By != "" || len(q.Filter) > 0) && days > MaxCCUDimDays {
		return paramError("to", "ccu_peak with a breakdown or dimension filters covers at most %d days, the range is %d", MaxCCUDimDays, days)
	}
	return nil
}

// Validate checks the query's parameters: game, metric, period (a known
// interval the metric has; an hour on the hour; minutes 1, 5 or 15 long,
// aligned; a day of one day; a week or month of whole days, at most
// MaxDays), currency, severity.
func (q ValueQuery) Validate() error {
	if err := checkGame(q.Game.ID); err != nil {
		return err
	}
	if err := CheckMetric(q.Metric); err != nil {
		return err
	}
	if err := checkPeriod(q.Period); err != nil {
		return err
	}
	if err := CheckGrain(q.Metric, q.Period.Interval); err != nil {
		return err
	}
	return checkFilters(q.Metric, q.Currency, q.Severity)
}

func checkPeriod(p Period) error {
	switch {
	case p.Interval.Check() != nil:
		return paramError("period", "want an interval of day, week, month, hour or minute, got %q", string(p.Interval))
	case p.Interval == Hour && (p.Hour.IsZero() || !p.Hour.Equal(p.Hour.Truncate(time.Hour))):
		return paramError("period", "an hour period starts on the hour, not at %s", p.Hour)
	case p.Interval == Minute && !slices.Contains(MinuteWidths(), p.Minutes):
		return paramError("period", "a minute period is 1, 5 or 15 minutes long, not %d", p.Minutes)
	case p.Interval == Minute && (p.Start.IsZero() || !p.Start.Equal(p.Start.Truncate(time.Duration(p.Minutes)*time.Minute))):
		return paramError("period", "a period of %d minutes starts at a multiple of %d minutes (UTC), not at %s", p.Minutes, p.Minutes, p.Start)
	case p.Interval == Minute:
		return nil
	case p.Interval != Hour && (p.From.IsZero() || p.To.IsZero() || p.To.Before(p.From)):
		return paramError("period", "want its days From..To, got %s..%s", p.From.Format(time.DateOnly), p.To.Format(time.DateOnly))
	case p.Interval == Day && !civilDay(p.From).Equal(civilDay(p.To)):
		return paramError("period", "a day period is one day, not %s..%s", p.From.Format(time.DateOnly), p.To.Format(time.DateOnly))
	case p.Interval != Hour && int(civilDay(p.To).Sub(civilDay(p.From))/(24*time.Hour))+1 > MaxDays:
		return paramError("period", "at most %d days", MaxDays)
	}
	return nil
}

// Validate checks game, from, to and days.
func (q RetentionQuery) Validate() error {
	if err := checkGame(q.Game.ID); err != nil {
		return err
	}
	if err := CheckRange(Day, q.From, q.To); err != nil {
		return err
	}
	if err := CheckDays(q.Days); err != nil {
		return err
	}
	return checkDims(Day, q.Filter, "")
}

// Validate checks game, from and to.
func (q ProgressionQuery) Validate() error {
	if err := checkGame(q.Game.ID); err != nil {
		return err
	}
	if err := CheckRange(Day, q.From, q.To); err != nil {
		return err
	}
	return checkDims(Day, q.Filter, "")
}
