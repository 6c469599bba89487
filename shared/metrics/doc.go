// Package metrics holds the KPI queries of GameMetrics: series of the
// standard game metrics (events, dau, revenue, sessions...) per hour, day,
// week or month in the game's time zone, retention cohorts, progression
// funnels and the list of a game's currencies. The report function serves
// them over HTTP, and the notify function evaluates its alert rules
// with the very same calls, so that a rule's value is the report API's for
// the same period (Value of PeriodOf equals the API's point of that period).
//
// Everything is read from what process maintains in PostgreSQL (see
// shared/store/migrations/0002_process.sql): rollup_daily (game time zone)
// and rollup_hourly (UTC) for counters, player_days for exact distinct
// players, cohort_days for retention, sessions for ended-session lengths,
// players_hll_daily for distinct players over large week and month ranges,
// and the raw events for progression attempts. Rollup rows whose value is
// zero may exist and are simply summed.
//
// # Granularity
//
// The finest buckets in PostgreSQL are the UTC minute (rollup_minutely, the
// additive metrics only, kept store.MinuteRollupDays), the UTC hour
// (rollup_hourly, player_hours, sessions.hour) and the calendar day in the
// game's time zone (rollup_daily, player_days). So the periods a query can
// ask for are:
//
//   - Minute: a window of 1, 5 or 15 UTC minutes, aligned to multiples of
//     its width after UTC midnight (alert windows "1m", "5m", "15m"), for
//     every metric but the distinct player counts and the ratios over them
//     (dau, paying_players, conversion, arpdau, arppu, playtime_per_dau:
//     CheckGrain refuses them naming interval). Its label is its start in
//     the game's offset.
//   - Hour: one UTC hour, aligned to the hour (a "1h" window). Its label is
//     its start in the game's offset, so in a zone like Asia/Kolkata (+05:30)
//     hours start at half past.
//   - Day: one calendar day in the game's time zone (a "1d" window).
//   - Week, Month: ISO weeks (Monday first) and calendar months in Periods;
//     for Value any run of whole days, distinct players counted over it.
//
// Windows that do not start on their grain (an hour from 10:20) cannot be
// answered. Values answers many windows of one kind at once, adjacent or
// not (an alert rule's windows and the ones it compares them with), each
// exactly as Value and the report API answer it.
//
// Parameters are checked before any query: a bad one is a *ParamError that
// names it (game, metric, interval, from, to, currency, severity, days,
// period).
package metrics
