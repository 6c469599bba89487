package simulation

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

func TestRecountOnAHandCountedGame(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Kolkata") // +05:30: UTC hours and local days cut differently
	at := func(s string) time.Time { tt, _ := time.Parse(time.RFC3339, s); return tt }
	fact := func(id, subject, typ, session, when, data string) Fact {
		d, err := DecodeData([]byte(data))
		if err != nil {
			t.Fatal(err)
		}
		return Fact{ID: id, Subject: subject, Type: typ, Session: session, Time: at(when), Data: d}
	}
	now := at("2026-10-10T12:00:00Z")
	facts := []Fact{
		fact("1", "a", events.TypeSessionStart, "s1", "2026-10-05T18:00:00Z", `{"platform":"ios"}`), // 23:30 local on 10-05
		fact("2", "a", events.TypeHeartbeat, "s1", "2026-10-05T18:40:00Z", ""),                      // 00:10 local on 10-06
		fact("3", "a", events.TypePurchase, "", "2026-10-05T18:45:00Z", `{"currency":"USD","amount_minor":499}`),
		fact("4", "a", events.TypePurchase, "s1", "2026-10-05T18:50:00.000001Z", `{"currency":"EUR","amount_minor":100}`),
		fact("3", "a", events.TypePurchase, "", "2026-10-05T18:45:00Z", `{"currency":"USD","amount_minor":499}`), // a resend
		fact("5", "b", events.TypeHeartbeat, "s2", "2026-10-06T03:00:00Z", ""),                                   // no start
		fact("6", "b", events.TypeHeartbeat, "s2", "2026-10-06T03:10:00Z", ""),
		fact("7", "b", events.TypeSessionEnd, "s3", "2026-10-06T04:00:00Z", `{"length_s":12.5}`), // its clock is behind the start
		fact("8", "b", events.TypeSessionStart, "s3", "2026-10-06T04:01:00Z", `{"platform":"web"}`),
		fact("9", "b", events.TypeError, "s3", "2026-10-06T04:05:00Z", `{"severity":"critical"}`),
		fact("10", "b", events.TypeError, "s3", "2026-10-06T04:06:00Z", `{"severity":"warning"}`),
		fact("11", "b", events.TypeProgression, "s3", "2026-10-06T04:07:00Z", `{"status":"complete","level":"w1","attempt":2}`),
		fact("12", "b", events.TypeProgression, "s3", "2026-10-06T04:08:00Z", `{"status":"complete","level":"w1","attempt":3}`),
		fact("13", "b", events.TypeProgression, "s3", "2026-10-06T04:09:00Z", `{"status":"fail","level":"w1"}`),
		fact("14", "b", events.TypeProgression, "s3", "2026-10-06T04:10:00Z", `{"status":"start","level":"w2"}`),
		fact("15", "c", events.TypeHeartbeat, "s4", "2026-10-10T11:50:00Z", ""), // still playing at now
	}
	r := NewRecount(facts, loc, now)
	if len(r.Events) != 15 || len(r.Sessions) != 4 || len(r.Players) != 3 {
		t.Fatalf("%d events, %d sessions, %d players; want 15, 4, 3", len(r.Events), len(r.Sessions), len(r.Players))
	}
	if !r.Events[3].Time.Equal(at("2026-10-05T18:50:00Z").Add(time.Microsecond)) {
		t.Errorf("time %s not kept to the microsecond", r.Events[3].Time)
	}
	s3 := r.Sessions[SessionKey{"b", "s3"}]
	if !s3.Begin().Equal(at("2026-10-06T04:01:00Z")) || s3.Length().RatString() != "25/2" || !s3.Ended || s3.Platform != "web" {
		t.Errorf("s3 = %+v, begin %s, length %s", s3, s3.Begin(), s3.Length())
	}
	if s2 := r.Sessions[SessionKey{"b", "s2"}]; !s2.Begin().Equal(at("2026-10-06T03:00:00Z")) || s2.Length().RatString() != "600" || !s2.Over(now) {
		t.Errorf("s2 begins %s, lasts %s, over %v; want 03:00Z, 600, true (idle)", s2.Begin(), s2.Length(), s2.Over(now))
	}
	if s4 := r.Sessions[SessionKey{"c", "s4"}]; s4.Over(now) {
		t.Error("s4 idle for 10 minutes counts as over")
	}
	if a := r.Players["a"]; !a.FirstPurchase.Equal(at("2026-10-05T18:45:00Z")) || a.Sessions != 1 || len(a.Days) != 2 {
		t.Errorf("player a = %+v", a)
	}

	day := func(s string) Period { d, _ := time.Parse(time.DateOnly, s); return Period{From: d, To: d} }
	hour := Period{Hour: at("2026-10-05T18:00:00Z")}
	usd := Filter{Currency: "USD"}
	for _, tc := range []struct {
		metric string
		p      Period
		f      Filter
		want   float64
	}{
		{"events", day("2026-10-05"), Filter{}, 1},
		{"events", day("2026-10-06"), Filter{}, 13},
		{"events", hour, Filter{}, 4},
		{"dau", day("2026-10-06"), Filter{}, 2},
		{"dau", hour, Filter{}, 1},
		{"new_players", day("2026-10-06"), Filter{}, 1},
		{"new_players", Period{From: day("2026-10-01").From, To: day("2026-10-31").From}, Filter{}, 3},
		{"sessions", day("2026-10-05"), Filter{}, 1},
		{"sessions", day("2026-10-06"), Filter{}, 2},
		{"sessions", hour, Filter{}, 1},
		{"session_length_avg", day("2026-10-05"), Filter{}, 3000},
		{"session_length_avg", day("2026-10-06"), Filter{}, 306.25},
		{"session_length_avg", day("2026-10-10"), Filter{}, 0},
		{"playtime_per_dau", day("2026-10-06"), Filter{}, 306.25},
		{"revenue", day("2026-10-06"), usd, 499},
		{"revenue", day("2026-10-06"), Filter{Currency: "EUR"}, 100},
		{"revenue", day("2026-10-06"), Filter{}, 599},
		{"revenue", hour, Filter{}, 599},
		{"transactions", day("2026-10-06"), Filter{}, 2},
		{"transactions", day("2026-10-06"), usd, 1},
		{"paying_players", day("2026-10-06"), Filter{}, 1},
		{"first_time_payers", day("2026-10-06"), Filter{}, 1},
		{"first_time_payers", day("2026-10-05"), Filter{}, 0},
		{"arpdau", day("2026-10-06"), usd, 249.5},
		{"arppu", day("2026-10-06"), usd, 499},
		{"conversion", day("2026-10-06"), Filter{}, 0.5},
		{"errors", day("2026-10-06"), Filter{}, 2},
		{"errors", day("2026-10-06"), Filter{Severity: "critical"}, 1},
		{"ad_impressions", day("2026-10-06"), Filter{}, 0},
	} {
		if got := r.Value(tc.metric, tc.p, tc.f); got != tc.want {
			t.Errorf("%s over %+v %+v = %v, want %v", tc.metric, tc.p, tc.f, got, tc.want)
		}
	}

	avg := 2.5
	wantLevels := []Level{{Level: "w1", Completes: 2, Fails: 1, FailRate: 0.3333, AvgAttempts: &avg}, {Level: "w2", Starts: 1}}
	if got := r.Progression(day("2026-10-06").From, day("2026-10-06").To); !reflect.DeepEqual(got, wantLevels) {
		gj, _ := json.Marshal(got)
		t.Errorf("progression = %s", gj)
	}
	one, zero := 1, 0
	wantCohorts := []Cohort{
		{Cohort: "2026-10-05", Size: 1, Retained: map[string]*int{"0": &one, "1": &one, "5": &zero}},
		{Cohort: "2026-10-06", Size: 1, Retained: map[string]*int{"0": &one, "1": &zero, "5": nil}}, // 10-11 is after today
	}
	if got := r.Retention(day("2026-10-05").From, day("2026-10-06").From, []int{0, 1, 5}); !reflect.DeepEqual(got, wantCohorts) {
		gj, _ := json.Marshal(got)
		t.Errorf("retention = %s", gj)
	}
}
