package simulation

import (
	"time"
)

// Point is one value of a daily series, as the report API answers it.
type Point struct {
	T     string  `json:"t"`
	Value float64 `json:"value"`
}

// Cohort is one row of a retention answer.
type Cohort struct {
	Cohort   string          `json:"cohort"`
	Size     int             `json:"size"`
	Retained map[string]*int `json:"retained"`
}

// Truth is what the report API must answer for the accepted events.
type Truth struct {
	Timezone string `json:"timezone"`
	From     string `json:"from"`
	To       string `json:"to"`
	// Metrics holds daily series (interval=day) by metric name.
	Metrics map[string][]Point `json:"metrics"`
	// Retention is for days RetentionDays.
	Retention     []Cohort `json:"retention"`
	RetentionDays []int    `json:"retention_days"`
	Events        int      `json:"events"`
}

// TruthMetrics are the daily metrics the truth carries.
func TruthMetrics() []string {
	return []string{"events", "dau", "new_players", "sessions", "session_length_avg", "revenue", "transactions",
		"paying_players", "first_time_payers", "ad_impressions", "ad_revenue_micros", "errors"}
}

// ComputeTruth derives the expected daily answers from the distinct
// accepted events (by id; later copies of an id are ignored, as GameMetrics
// does), through a Recount. now decides which sessions are over and which
// retention days are still in the future.
func ComputeTruth(evs []Event, loc *time.Location, now time.Time, retentionDays []int) Truth {
	r := NewRecount(Facts(evs), loc, now)
	t := Truth{Timezone: loc.String(), Metrics: map[string][]Point{}, Events: len(r.Events), RetentionDays: retentionDays}
	if len(r.Events) == 0 {
		return t
	}
	first, last := r.Day(r.Events[0].Time), r.Day(r.Events[0].Time)
	for _, e := range r.Events {
		d := r.Day(e.Time)
		if d.Before(first) {
			first = d
		}
		if d.After(last) {
			last = d
		}
	}
	t.From, t.To = first.Format(time.DateOnly), last.Format(time.DateOnly)
	for _, m := range TruthMetrics() {
		for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
			t.Metrics[m] = append(t.Metrics[m], Point{T: d.Format(time.DateOnly), Value: r.Value(m, Period{From: d, To: d}, Filter{})})
		}
	}
	t.Retention = r.Retention(first, last, retentionDays)
	return t
}

// Facts are generated events as the recount reads them.
func Facts(evs []Event) []Fact {
	out := make([]Fact, len(evs))
	for i, e := range evs {
		out[i] = Fact{ID: e.ID, Type: e.Type, Subject: e.Subject, Session: e.SessionID, Time: e.Time, Data: e.Data,
			Dims: [6]string{e.Platform, e.Country, e.AppVersion, e.Dim1, e.Dim2, e.Dim3}}
	}
	return out
}
