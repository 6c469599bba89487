package notify

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/gamemetrics/gamemetrics/shared/metrics"
)

func f(x float64) *float64 { return &x }

func TestTheStateMachineFiresAfterForWindowsAndResolvesAfterKeepFiringFor(t *testing.T) {
	t0 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	type want struct {
		state string
		tr    transition
	}
	B, C, N := windowBreach, windowClear, windowNoData
	tests := []struct {
		name     string
		pol      policy
		outcomes []outcome
		want     []want
	}{
		{"one breach fires at once and one clear window resolves", policy{For: 1},
			[]outcome{C, B, B, C, C},
			[]want{{stateOK, ""}, {stateFiring, toFiring}, {stateFiring, ""}, {stateResolved, toResolved}, {stateResolved, ""}}},
		{"for 3 needs three breaching windows in a row", policy{For: 3},
			[]outcome{B, B, C, B, B, B},
			[]want{{statePending, ""}, {statePending, ""}, {stateOK, ""}, {statePending, ""}, {statePending, ""}, {stateFiring, toFiring}}},
		{"keep_firing_for 2 outlasts two clear windows and resolves on the third", policy{For: 1, KeepFiringFor: 2},
			[]outcome{B, C, C, B, C, C, C},
			[]want{{stateFiring, toFiring}, {stateFiring, ""}, {stateFiring, ""}, {stateFiring, ""}, {stateFiring, ""}, {stateFiring, ""}, {stateResolved, toResolved}}},
		{"windows without data count neither way", policy{For: 2},
			[]outcome{B, N, B, N, C, N, C},
			[]want{{statePending, ""}, {statePending, ""}, {stateFiring, toFiring}, {stateFiring, ""}, {stateResolved, toResolved}, {stateResolved, ""}, {stateResolved, ""}}},
		{"re-notify repeats while firing, once per interval", policy{For: 1, Renotify: 2 * time.Hour},
			[]outcome{B, B, B, B, B, C},
			[]want{{stateFiring, toFiring}, {stateFiring, ""}, {stateFiring, renotify}, {stateFiring, ""}, {stateFiring, renotify}, {stateResolved, toResolved}}},
		{"a resolved rule fires again on the next breach", policy{For: 1},
			[]outcome{B, C, B},
			[]want{{stateFiring, toFiring}, {stateResolved, toResolved}, {stateFiring, toFiring}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ruleState{State: stateOK}
			for i, o := range tc.outcomes {
				var tr transition
				s, tr = step(tc.pol, s, o, t0.Add(time.Duration(i+1)*time.Hour))
				if s.State != tc.want[i].state || tr != tc.want[i].tr {
					t.Fatalf("window %d (%v): state %s, transition %q; want %s, %q", i, o, s.State, tr, tc.want[i].state, tc.want[i].tr)
				}
			}
		})
	}
}

func TestAnomalyScoreIsRobustToOneOutlierAndFloorsCountsByTheirPoissonNoise(t *testing.T) {
	tests := []struct {
		name    string
		x       float64
		history []float64
		counts  bool
		want    float64
	}{
		{"a count at its median scores 0", 100, []float64{90, 100, 110, 100}, true, 0},
		// median 100, MAD 5 → spread 7.41 < √100 = 10: Poisson floor.
		{"spread below the Poisson noise uses √median", 60, []float64{95, 100, 105, 100}, true, -4},
		// last week's incident (10) does not move the median.
		{"one outlier in the history barely moves the baseline", 1000, []float64{1000, 1010, 10, 990}, true, 0.159},
		{"a baseline of zero events floors at one event", 5, []float64{0, 0, 0, 0}, true, 5},
		{"ratios use the spread, floored at 1% of the baseline", 0.02, []float64{0.040, 0.040, 0.040, 0.040}, false, -50},
		{"a wide spread is used as it is", 200, []float64{100, 200, 300, 400}, true, -0.337},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := anomalyScore(tc.x, robustBaseline("test", tc.history), tc.counts)
			if math.Abs(got-tc.want) > 0.01 {
				t.Errorf("score = %.3f, want %.3f", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		score, sens float64
		dir         string
		want        bool
	}{{4, 4, "both", true}, {-4.5, 4, "both", true}, {3.9, 4, "both", false}, {-5, 4, "up", false}, {5, 4, "up", true}, {5, 4, "down", false}, {-5, 4, "down", true}} {
		if got := anomalous(tc.score, tc.sens, tc.dir); got != tc.want {
			t.Errorf("anomalous(%g, %g, %s) = %v", tc.score, tc.sens, tc.dir, got)
		}
	}
}

func TestTheBaselineIsTheSameSlotOfTheWeekThenOfTheDayThenRecentWindows(t *testing.T) {
	at := time.Date(2026, 11, 20, 14, 0, 0, 0, time.UTC)
	h, _ := parseWindow("1h")
	m5, _ := parseWindow("5m")
	d1, _ := parseWindow("1d")
	tests := []struct {
		name       string
		w          window
		since      time.Time
		kind       string
		n          int
		firstStart time.Time
	}{
		{"5 weeks of history: 4 weekly slots", h, at.AddDate(0, 0, -35), baselineWeekly, 4, at.AddDate(0, 0, -7)},
		{"15 days: 2 weekly slots", h, at.AddDate(0, 0, -15), baselineWeekly, 2, at.AddDate(0, 0, -7)},
		{"9 days: the same hour of 7 days", h, at.AddDate(0, 0, -9), baselineDaily, 7, at.AddDate(0, 0, -1)},
		{"2 days: the same hour of 2 days", h, at.AddDate(0, 0, -2), baselineDaily, 2, at.AddDate(0, 0, -1)},
		{"a day: the last 30 hours... of which 24 exist", h, at.Add(-24 * time.Hour), baselineRecent, 24, at.Add(-time.Hour)},
		{"5 minute windows after 3 hours: the last 30 of them", m5, at.Add(-3 * time.Hour), baselineRecent, 30, at.Add(-5 * time.Minute)},
		{"an hour of history is not enough", h, at.Add(-time.Hour), "", 0, time.Time{}},
		{"days: the same weekday of 4 weeks", d1, at.AddDate(0, 0, -40), baselineWeekly, 4, time.Date(2026, 11, 13, 0, 0, 0, 0, time.UTC)},
		{"days with 10 days of history: the last 7 days", d1, at.AddDate(0, 0, -10), baselineRecent, 7, time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind, slots := baselineSlots(tc.w, tc.w.periodOf(at, time.UTC), time.UTC, tc.since)
			if kind != tc.kind || len(slots) != tc.n {
				t.Fatalf("kind %q with %d slots, want %q with %d", kind, len(slots), tc.kind, tc.n)
			}
			if tc.n > 0 && !slots[0].Begin(time.UTC).Equal(tc.firstStart) {
				t.Errorf("first slot starts %s, want %s", slots[0].Begin(time.UTC), tc.firstStart)
			}
		})
	}
}

func TestDueWindowsCatchUpAtMostTheBound(t *testing.T) {
	m1, _ := parseWindow("1m")
	d1, _ := parseWindow("1d")
	la, _ := time.LoadLocation("America/Los_Angeles")
	now := time.Date(2026, 11, 20, 14, 0, 40, 0, time.UTC)
	tests := []struct {
		name     string
		w        window
		from     time.Time
		loc      *time.Location
		n, skip  int
		nextFrom time.Time
	}{
		{"nothing closed yet", m1, now.Truncate(time.Minute), time.UTC, 0, 0, now.Truncate(time.Minute)},
		{"the minute that closed 40 s ago, with a 30 s delay", m1, now.Truncate(time.Minute).Add(-time.Minute), time.UTC, 1, 0, now.Truncate(time.Minute)},
		{"an hour down: 60 windows", m1, now.Truncate(time.Minute).Add(-time.Hour), time.UTC, 60, 0, now.Truncate(time.Minute)},
		{"three days down: one day evaluated, the rest skipped", m1, now.Truncate(time.Minute).Add(-72 * time.Hour), time.UTC, 1440, 2880, now.Truncate(time.Minute)},
		{"days in the game's zone, the one that ended over a day ago skipped", d1, time.Date(2026, 11, 18, 0, 0, 0, 0, la), la, 1, 1, time.Date(2026, 11, 20, 0, 0, 0, 0, la)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps, skipped, next := dueWindows(tc.w, tc.from, now.Add(-30*time.Second), now.Add(-24*time.Hour), tc.loc)
			if len(ps) != tc.n || skipped != tc.skip || !next.Begin(tc.loc).Equal(tc.nextFrom) {
				t.Errorf("%d windows, %d skipped, next from %s; want %d, %d, %s", len(ps), skipped, next.Begin(tc.loc), tc.n, tc.skip, tc.nextFrom)
			}
			for i := 1; i < len(ps); i++ {
				if !ps[i].Begin(tc.loc).Equal(ps[i-1].End(tc.loc)) {
					t.Fatalf("windows %d and %d are not adjacent", i-1, i)
				}
			}
		})
	}
}

// The signature is the Standard Webhooks one: it reproduces the
// specification's published test vector, and the reference library
// (github.com/standard-webhooks/standard-webhooks/libraries/go), an
// implementation independent of ours, verifies what we sign.
func TestWebhookSignaturesFollowStandardWebhooks(t *testing.T) {
	got, err := sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if err != nil || got != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Fatalf("sign = %q, %v; want the specification's test vector", got, err)
	}
	secret := newSigningSecret()
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q", secret)
	}
	body := []byte(`{"specversion":"1.0","id":"ntf_x"}`)
	now := time.Now().Unix()
	s, err := sign(secret, "ntf_x", now, body)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Webhook-Id": {"ntf_x"}, "Webhook-Timestamp": {jsonInt(now)}, "Webhook-Signature": {s}}
	if err := wh.Verify(body, h); err != nil {
		t.Errorf("the reference library refuses our signature: %v", err)
	}
	if err := wh.Verify(append(body, ' '), h); err == nil {
		t.Error("the reference library accepts a changed body")
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestBackoffTriesEightTimesOverAboutADay(t *testing.T) {
	var total time.Duration
	for attempt := 1; attempt < 8; attempt++ {
		lo, hi := backoff(time.Minute, attempt, 0, 0), backoff(time.Minute, attempt, 0, 1)
		if hi < lo || lo <= 0 {
			t.Fatalf("attempt %d: %s..%s", attempt, lo, hi)
		}
		total += backoff(time.Minute, attempt, 0, 0.5)
	}
	if total < 18*time.Hour || total > 26*time.Hour {
		t.Errorf("8 attempts span %s, want about a day", total)
	}
	if d := backoff(time.Minute, 1, 90*time.Second, 0.5); d != 90*time.Second {
		t.Errorf("Retry-After 90s: waited %s", d)
	}
	if d := backoff(time.Minute, 1, 100*time.Hour, 0.5); d != maxRetryAfter {
		t.Errorf("Retry-After 100h: waited %s", d)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{{"120", 2 * time.Minute}, {now.Add(time.Hour).Format(http.TimeFormat), time.Hour}, {"soon", 0}, {"", 0}} {
		if got := parseRetryAfter(tc.v, now); got != tc.want {
			t.Errorf("Retry-After %q = %s, want %s", tc.v, got, tc.want)
		}
	}
}

func TestReceiversAnswersDecideRetries(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		status          int
		retryAfter      string
		permanent, gone bool
		wait            time.Duration
	}{
		{200, "", false, false, 0}, {204, "", false, false, 0},
		{500, "", false, false, 0}, {502, "", false, false, 0}, {408, "", false, false, 0},
		{429, "7", false, false, 7 * time.Second}, {503, "30", false, false, 30 * time.Second},
		{400, "", true, false, 0}, {401, "", true, false, 0}, {404, "", true, false, 0}, {301, "", true, false, 0},
		{410, "", true, true, 0},
	} {
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{}, Body: http.NoBody}
		if tc.retryAfter != "" {
			resp.Header.Set("Retry-After", tc.retryAfter)
		}
		r := classify(resp, now)
		if (r.err == nil) != (tc.status < 300) || r.permanent != tc.permanent || r.gone != tc.gone || r.retryAfter != tc.wait {
			t.Errorf("%d: %+v", tc.status, r)
		}
	}
}

func TestPlayerConditionsCompareFieldsOfTheEventData(t *testing.T) {
	data, _ := decodeData([]byte(`{"amount_minor": 499, "currency": "USD", "level": "w1/l10", "status": "complete", "meta": {"vip": true}, "score": 12.5}`))
	c := func(field, op, value string) FieldCondition {
		return FieldCondition{Field: field, Op: op, Value: json.RawMessage(value)}
	}
	tests := []struct {
		name  string
		conds []FieldCondition
		want  bool
	}{
		{"no condition matches every event of the type", nil, true},
		{"eq on a string", []FieldCondition{c("currency", "eq", `"USD"`)}, true},
		{"eq on a number compares values", []FieldCondition{c("amount_minor", "eq", `499.0`)}, true},
		{"ne", []FieldCondition{c("currency", "ne", `"EUR"`)}, true},
		{"gte", []FieldCondition{c("amount_minor", "gte", `499`)}, true},
		{"gt", []FieldCondition{c("amount_minor", "gt", `499`)}, false},
		{"lt on decimals", []FieldCondition{c("score", "lt", `12.51`)}, true},
		{"lte", []FieldCondition{c("score", "lte", `12`)}, false},
		{"in a list", []FieldCondition{c("level", "in", `["w1/l9","w1/l10"]`)}, true},
		{"not in a list", []FieldCondition{c("level", "in", `["w2/l1"]`)}, false},
		{"all conditions must hold", []FieldCondition{c("status", "eq", `"complete"`), c("level", "eq", `"w1/l10"`)}, true},
		{"one failing condition fails", []FieldCondition{c("status", "eq", `"complete"`), c("level", "eq", `"w1/l11"`)}, false},
		{"a nested field", []FieldCondition{c("meta.vip", "eq", `true`)}, true},
		{"a missing field fails eq", []FieldCondition{c("country", "eq", `"US"`)}, false},
		{"a missing field passes ne", []FieldCondition{c("country", "ne", `"US"`)}, true},
		{"a string is not a number", []FieldCondition{c("currency", "gt", `1`)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := matches(tc.conds, data); got != tc.want {
				t.Errorf("matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestInvalidRulesAreRefusedNamingTheField(t *testing.T) {
	ok := func() AlertSpec {
		return AlertSpec{Name: "drop", Metric: "events", Window: "5m", Condition: Condition{Type: "below", Value: f(10)}, Destinations: []string{"dst_a"}}
	}
	tests := []struct {
		name  string
		mut   func(*AlertSpec)
		field string
	}{
		{"an unknown metric", func(s *AlertSpec) { s.Metric = "whales" }, "metric"},
		{"a bad window", func(s *AlertSpec) { s.Window = "2h" }, "window"},
		{"a minute window of a distinct count", func(s *AlertSpec) { s.Metric = "dau" }, "window"},
		{"no destination", func(s *AlertSpec) { s.Destinations = nil }, "destinations"},
		{"a currency where it does not apply", func(s *AlertSpec) { s.Currency = "USD" }, "currency"},
		{"a bad severity", func(s *AlertSpec) { s.Metric, s.Severity = "errors", "fatal" }, "severity"},
		{"a threshold without a value", func(s *AlertSpec) { s.Condition.Value = nil }, "condition.value"},
		{"an unknown condition", func(s *AlertSpec) { s.Condition.Type = "weird" }, "condition.type"},
		{"a change against nothing", func(s *AlertSpec) { s.Condition = Condition{Type: "change", Below: f(-30)} }, "condition.against"},
		{"a change with both limits", func(s *AlertSpec) {
			s.Condition = Condition{Type: "change", Against: againstPrevious, Below: f(-30), Above: f(30)}
		}, "condition.above"},
		{"the same day last week of a 5m window", func(s *AlertSpec) {
			s.Condition = Condition{Type: "change", Against: againstDayLastWeek, Below: f(-30)}
		}, "condition.against"},
		{"a silly sensitivity", func(s *AlertSpec) { s.Condition = Condition{Type: "anomaly", Sensitivity: 0.5} }, "condition.sensitivity"},
		{"a negative for", func(s *AlertSpec) { s.For = -1 }, "for"},
		{"a renotify shorter than a window", func(s *AlertSpec) { s.Renotify = "1m" }, "renotify"},
		{"no name", func(s *AlertSpec) { s.Name = " " }, "name"},
	}
	s := ok()
	if p := s.normalize(); len(p) > 0 || s.For != 1 {
		t.Fatalf("a good rule: %v (for %d)", p, s.For)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ok()
			tc.mut(&s)
			p := s.normalize()
			if _, found := p[tc.field]; !found {
				t.Errorf("problems %v do not name %s", p, tc.field)
			}
		})
	}
	pr := PlayerRuleSpec{Name: "first purchase", Event: "purchase", OncePerPlayer: true, Destinations: []string{"dst_a"}}
	if p := pr.normalize(); len(p) > 0 || pr.Event != "com.gamemetrics.purchase" {
		t.Fatalf("a good player rule: %v (%s)", p, pr.Event)
	}
	for _, tc := range []struct {
		spec  PlayerRuleSpec
		field string
	}{
		{PlayerRuleSpec{Name: "x", Event: "levelup", Destinations: []string{"d"}}, "event"},
		{PlayerRuleSpec{Name: "x", Event: "purchase", Destinations: []string{"d"}, Conditions: []FieldCondition{{Field: "amount_minor", Op: "gte", Value: json.RawMessage(`"a lot"`)}}}, "conditions[0].value"},
		{PlayerRuleSpec{Name: "x", Event: "purchase", Destinations: []string{"d"}, Conditions: []FieldCondition{{Field: "amount_minor", Op: "like", Value: json.RawMessage(`1`)}}}, "conditions[0].op"},
		{PlayerRuleSpec{Name: "x", Event: "purchase"}, "destinations"},
	} {
		if p := tc.spec.normalize(); p[tc.field] == "" {
			t.Errorf("%+v: problems %v do not name %s", tc.spec, p, tc.field)
		}
	}
}

func TestWindowsAreTheReportAPIsPeriods(t *testing.T) {
	kol, _ := time.LoadLocation("Asia/Kolkata")
	at := time.Date(2026, 11, 20, 14, 37, 0, 0, time.UTC)
	for _, tc := range []struct {
		window string
		want   metrics.Period
	}{
		{"1m", metrics.MinutePeriodOf(1, at, kol)},
		{"15m", metrics.MinutePeriodOf(15, at, kol)},
		{"1h", metrics.PeriodOf(metrics.Hour, at, kol)},
		{"1d", metrics.PeriodOf(metrics.Day, at, kol)},
	} {
		w, _ := parseWindow(tc.window)
		p := w.periodOf(at, kol)
		if p != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.window, p, tc.want)
		}
		if n := w.next(p, kol); !n.Begin(kol).Equal(p.End(kol)) {
			t.Errorf("%s: next starts %s, not at %s", tc.window, n.Begin(kol), p.End(kol))
		}
		if b := w.back(w.next(p, kol), 1, kol); b != p {
			t.Errorf("%s: back of next is %+v", tc.window, b)
		}
	}
}
