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
	// Breakdowns (TruthBreakdowns per day, TruthHourlyBreakdowns per hour,
	// ccu_peak by platform per day), LTV per currency (TruthLTVDays),
	// economy per virtual currency and day, and ccu_peak per day.
	Breakdowns []Breakdown            `json:"breakdowns,omitempty"`
	LTV        map[string][]LTVCohort `json:"ltv,omitempty"`
	Economy    map[string][]FlowTruth `json:"economy,omitempty"`
	CCU        []Point                `json:"ccu_peak,omitempty"`
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
	t.addExtras(r, first, last)
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

// ByValue is one value's daily series of a breakdown.
type ByValue struct {
	Value  string  `json:"value"`
	Points []Point `json:"points"`
}

// Breakdown is a daily metric broken down by one dimension (by=).
type Breakdown struct {
	Metric string `json:"metric"`
	By     string `json:"by"`
	// Interval is the series' interval: day (also when empty) or hour.
	Interval string    `json:"interval,omitempty"`
	Series   []ByValue `json:"series"`
}

// FlowTruth is one day's sources and sinks of a virtual currency.
type FlowTruth struct {
	T      string  `json:"t"`
	Source float64 `json:"source"`
	Sink   float64 `json:"sink"`
}

// TruthBreakdowns are the breakdowns the truth carries (metric, by).
func TruthBreakdowns() [][2]string {
	return [][2]string{{"dau", "country"}, {"events", "platform"}, {"new_players", "dim1"}, {"sessions", "appversion"},
		{"paying_players", "dim2"}}
}

// TruthHourlyBreakdowns are the breakdowns the truth carries per hour
// (ranges of at most 7 days) and ccu_peak's per day (at most 31 days).
func TruthHourlyBreakdowns() [][2]string {
	return [][2]string{{"dau", "platform"}, {"events", "country"}, {"ccu_peak", "platform"}}
}

// hoursOf are the UTC hours starting inside the game's days [first, last],
// as an hourly series has them.
func hoursOf(first, last time.Time, loc *time.Location) []time.Time {
	start := time.Date(first.Year(), first.Month(), first.Day(), 0, 0, 0, 0, loc)
	end := time.Date(last.Year(), last.Month(), last.Day()+1, 0, 0, 0, 0, loc)
	h := start.UTC().Truncate(time.Hour)
	if h.Before(start) {
		h = h.Add(time.Hour)
	}
	var out []time.Time
	for ; h.Before(end); h = h.Add(time.Hour) {
		out = append(out, h)
	}
	return out
}

// TruthLTVDays are the days of the truth's LTV.
func TruthLTVDays() []int { return []int{0, 1, 3} }

// addExtras fills the truth's breakdowns, LTV, economy and CCU.
func (t *Truth) addExtras(r *Recount, first, last time.Time) {
	for _, mb := range TruthBreakdowns() {
		b := Breakdown{Metric: mb[0], By: mb[1]}
		for _, v := range r.Values(mb[1]) {
			s := ByValue{Value: v}
			for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
				s.Points = append(s.Points, Point{T: d.Format(time.DateOnly), Value: r.Value(mb[0], Period{From: d, To: d}, Filter{}.With(mb[1], v))})
			}
			b.Series = append(b.Series, s)
		}
		t.Breakdowns = append(t.Breakdowns, b)
	}
	days := int(last.Sub(first)/(24*time.Hour)) + 1
	for _, mb := range TruthHourlyBreakdowns() {
		if days > 7 {
			break
		}
		b := Breakdown{Metric: mb[0], By: mb[1], Interval: "hour"}
		for _, v := range r.Values(mb[1]) {
			s := ByValue{Value: v}
			for _, h := range hoursOf(first, last, r.Location) {
				s.Points = append(s.Points, Point{T: h.In(r.Location).Format(time.RFC3339), Value: r.Value(mb[0], Period{Hour: h}, Filter{}.With(mb[1], v))})
			}
			b.Series = append(b.Series, s)
		}
		t.Breakdowns = append(t.Breakdowns, b)
	}
	if days <= 31 {
		b := Breakdown{Metric: "ccu_peak", By: "platform"}
		for _, v := range r.Values("platform") {
			s := ByValue{Value: v}
			for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
				s.Points = append(s.Points, Point{T: d.Format(time.DateOnly), Value: r.Value("ccu_peak", Period{From: d, To: d}, Filter{}.With("platform", v))})
			}
			b.Series = append(b.Series, s)
		}
		t.Breakdowns = append(t.Breakdowns, b)
	}
	t.LTV = map[string][]LTVCohort{}
	for _, pl := range r.Players {
		for cur := range pl.Revenue {
			t.LTV[cur] = nil
		}
	}
	for cur := range t.LTV {
		t.LTV[cur] = r.LTV(first, last, TruthLTVDays(), cur, Filter{})
	}
	perDay, _, _ := r.Economy(first, last, Filter{})
	t.Economy = map[string][]FlowTruth{}
	for cur, days := range perDay {
		for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
			f := FlowTruth{T: d.Format(time.DateOnly)}
			if fl, ok := days[f.T]; ok {
				f.Source, _ = fl.Source.Float64()
				f.Sink, _ = fl.Sink.Float64()
			}
			t.Economy[cur] = append(t.Economy[cur], f)
		}
	}
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		t.CCU = append(t.CCU, Point{T: d.Format(time.DateOnly), Value: float64(r.CCUPeak(Period{From: d, To: d}))})
	}
}
