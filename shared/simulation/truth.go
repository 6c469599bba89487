package simulation

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/events"
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

const dateLayout = "2006-01-02"

// ComputeTruth derives the expected answers from the distinct accepted
// events (by id; later copies of an id are ignored, as GameMetrics does).
// now decides which retention days are still in the future.
func ComputeTruth(evs []Event, loc *time.Location, now time.Time, retentionDays []int) Truth {
	seen := map[string]bool{}
	type session struct {
		begin  time.Time
		length float64
		ended  bool
	}
	type playerState struct {
		first, firstPurchase time.Time
		days                 map[string]bool
	}
	players := map[string]*playerState{}
	sessions := map[string]*session{}
	daily := map[string]map[string]float64{} // metric -> day -> value
	add := func(metric, day string, v float64) {
		if daily[metric] == nil {
			daily[metric] = map[string]float64{}
		}
		daily[metric][day] += v
	}
	dayOf := func(t time.Time) string { return t.In(loc).Format(dateLayout) }
	var minDay, maxDay string
	count := 0
	for _, e := range evs {
		if seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		count++
		day := dayOf(e.Time)
		if minDay == "" || day < minDay {
			minDay = day
		}
		if day > maxDay {
			maxDay = day
		}
		add("events", day, 1)
		p := players[e.Subject]
		if p == nil {
			p = &playerState{first: e.Time, days: map[string]bool{}}
			players[e.Subject] = p
		}
		if e.Time.Before(p.first) {
			p.first = e.Time
		}
		p.days[day] = true
		if e.SessionID != "" {
			key := e.Subject + "/" + e.SessionID
			s := sessions[key]
			if s == nil {
				s = &session{begin: e.Time}
				sessions[key] = s
			}
			if e.Time.Before(s.begin) {
				s.begin = e.Time
			}
			if e.Type == events.TypeSessionEnd {
				if l, ok := number(e.Data["length_s"]); ok && (!s.ended || l > s.length) {
					s.length = l
				}
				s.ended = true
			}
		}
		switch e.Type {
		case events.TypePurchase:
			amount, _ := number(e.Data["amount_minor"])
			add("revenue", day, amount)
			add("transactions", day, 1)
			if p.firstPurchase.IsZero() || e.Time.Before(p.firstPurchase) {
				p.firstPurchase = e.Time
			}
		case events.TypeAd:
			if e.Data["action"] == "show" {
				add("ad_impressions", day, 1)
			}
			if m, ok := number(e.Data["revenue_micros"]); ok {
				add("ad_revenue_micros", day, m)
			}
		case events.TypeError:
			add("errors", day, 1)
		}
	}
	payers := map[string]map[string]bool{}
	for _, e := range evs {
		if e.Type == events.TypePurchase {
			day := dayOf(e.Time)
			if payers[day] == nil {
				payers[day] = map[string]bool{}
			}
			payers[day][e.Subject] = true
		}
	}
	for day, ps := range payers {
		add("paying_players", day, float64(len(ps)))
	}
	cohorts := map[string][]*playerState{}
	for _, p := range players {
		for d := range p.days {
			add("dau", d, 1)
		}
		install := dayOf(p.first)
		add("new_players", install, 1)
		cohorts[install] = append(cohorts[install], p)
		if !p.firstPurchase.IsZero() {
			add("first_time_payers", dayOf(p.firstPurchase), 1)
		}
	}
	lengthSum, lengthN := map[string]float64{}, map[string]float64{}
	for _, s := range sessions {
		day := dayOf(s.begin)
		add("sessions", day, 1)
		if s.ended {
			lengthSum[day] += s.length
			lengthN[day]++
		}
	}
	for day, n := range lengthN {
		add("session_length_avg", day, math.Round(lengthSum[day]/n*100)/100)
	}

	t := Truth{Timezone: loc.String(), From: minDay, To: maxDay, Metrics: map[string][]Point{}, Events: count, RetentionDays: retentionDays}
	if minDay == "" {
		return t
	}
	days := dayRange(minDay, maxDay)
	for _, m := range TruthMetrics() {
		for _, d := range days {
			t.Metrics[m] = append(t.Metrics[m], Point{T: d, Value: daily[m][d]})
		}
	}
	today := now.In(loc).Format(dateLayout)
	for _, d := range days {
		c := Cohort{Cohort: d, Size: len(cohorts[d]), Retained: map[string]*int{}}
		for _, n := range retentionDays {
			target := addDays(d, n)
			key := fmt.Sprint(n)
			if target > today {
				c.Retained[key] = nil
				continue
			}
			k := 0
			for _, p := range cohorts[d] {
				if p.days[target] {
					k++
				}
			}
			c.Retained[key] = &k
		}
		t.Retention = append(t.Retention, c)
	}
	return t
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

func addDays(day string, n int) string {
	t, _ := time.Parse(dateLayout, day)
	return t.AddDate(0, 0, n).Format(dateLayout)
}

func dayRange(from, to string) []string {
	var out []string
	for d := from; d <= to; d = addDays(d, 1) {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}
