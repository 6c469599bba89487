package retain

import "time"

// utcDay is the UTC calendar day of t (an events partition).
func utcDay(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// Cutoffs says which days have expired on the UTC day today: raw event
// partitions of days before exportBefore are archived and dropped (every
// event in them is at least hotDays×24 h old), archives of days before
// deleteBefore are deleted.
func Cutoffs(now time.Time, hotDays, archiveDays int) (exportBefore, deleteBefore time.Time) {
	today := utcDay(now)
	return today.AddDate(0, 0, -hotDays), today.AddDate(0, 0, -archiveDays)
}
