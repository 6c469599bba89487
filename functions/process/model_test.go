package process

import (
	"encoding/json"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// These tests need no server.

func TestDayInBucketsByTheGamesCalendarDay(t *testing.T) {
	mustLoad := func(name string) *time.Location {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}
	tests := []struct {
		name string
		at   string
		zone string
		want string
	}{
		{"UTC midnight belongs to the new day", "2026-03-01T00:00:00Z", "UTC", "2026-03-01"},
		{"late evening in Los Angeles is the previous UTC day", "2026-03-01T07:59:59Z", "America/Los_Angeles", "2026-02-28"},
		{"Los Angeles day starts at 08:00 UTC in winter", "2026-03-01T08:00:00Z", "America/Los_Angeles", "2026-03-01"},
		{"after the DST switch it starts at 07:00 UTC", "2026-03-09T07:00:00Z", "America/Los_Angeles", "2026-03-09"},
		{"half-hour offset (Kolkata, +05:30)", "2026-03-01T18:29:59Z", "Asia/Kolkata", "2026-03-01"},
		{"half-hour offset rolls over at 18:30 UTC", "2026-03-01T18:30:00Z", "Asia/Kolkata", "2026-03-02"},
		{"+13:45 (Chatham, summer) is a day ahead", "2026-01-10T10:15:00Z", "Pacific/Chatham", "2026-01-11"},
		{"leap day", "2028-02-29T12:00:00Z", "Europe/Berlin", "2028-02-29"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at, _ := time.Parse(time.RFC3339, tc.at)
			got := dayIn(at, mustLoad(tc.zone))
			if got.Format(time.DateOnly) != tc.want || got.Location() != time.UTC || got.Hour() != 0 {
				t.Errorf("dayIn(%s, %s) = %s, want %s at midnight UTC", tc.at, tc.zone, got, tc.want)
			}
		})
	}
}

func TestSessionLengthRule(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	r := func(s string) *big.Rat { x, _ := new(big.Rat).SetString(s); return x }
	tests := []struct {
		name  string
		s     sessionState
		begin time.Time
		want  string
	}{
		{"start and end", sessionState{startAt: at(0), firstAt: at(0), lastAt: at(90 * time.Second), endAt: at(90 * time.Second)}, at(0), "90"},
		{"reported length wins", sessionState{startAt: at(0), firstAt: at(0), lastAt: at(time.Hour), endAt: at(time.Hour), endLength: r("12.5")}, at(0), "25/2"},
		{"no end: last activity minus start", sessionState{startAt: at(0), firstAt: at(0), lastAt: at(10 * time.Minute)}, at(0), "600"},
		{"end before start clamps to zero", sessionState{startAt: at(time.Minute), firstAt: at(0), lastAt: at(time.Minute), endAt: at(0)}, at(time.Minute), "0"},
		{"no start: begins at first event", sessionState{firstAt: at(time.Minute), lastAt: at(3 * time.Minute)}, at(time.Minute), "120"},
		{"microseconds are kept", sessionState{startAt: at(0), firstAt: at(0), lastAt: at(1500 * time.Microsecond)}, at(0), "3/2000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.s.begin().Equal(tc.begin) {
				t.Errorf("begin = %s, want %s", tc.s.begin(), tc.begin)
			}
			if got := tc.s.length().RatString(); got != tc.want {
				t.Errorf("length = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSessionClosesAfterThirtyQuietMinutesOrAnEnd(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	open := sessionState{startAt: t0, firstAt: t0, lastAt: t0}
	if open.closed(t0.Add(29 * time.Minute)) {
		t.Error("closed after 29 minutes")
	}
	if !open.closed(t0.Add(30 * time.Minute)) {
		t.Error("open after 30 minutes")
	}
	ended := open
	ended.endAt = t0
	if !ended.closed(t0) {
		t.Error("open with a session.end")
	}
}

// Merging the same events in any order, with any repetition, gives one state.
func TestSessionAndPlayerMergeIsOrderIndependentAndIdempotent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	types := []string{"com.gamemetrics.session.start", "com.gamemetrics.session.end", "com.gamemetrics.heartbeat", "com.gamemetrics.purchase"}
	for round := 0; round < 200; round++ {
		var recs []*record
		for i := 0; i < 1+rng.IntN(8); i++ {
			r := &record{typ: types[rng.IntN(len(types))], time: t0.Add(time.Duration(rng.IntN(7200)) * time.Second)}
			r.p.Platform = []string{"ios", "web"}[rng.IntN(2)]
			if rng.IntN(2) == 0 {
				r.p.LengthS = json.Number([]string{"1.5", "30", "0"}[rng.IntN(3)])
			}
			recs = append(recs, r)
		}
		fold := func(order []*record) (sessionState, playerState) {
			s, p := sessionOf(order[0]), playerOf(order[0])
			for _, r := range order[1:] {
				s.merge(sessionOf(r))
				p.merge(playerOf(r))
			}
			return s, p
		}
		s1, p1 := fold(recs)
		shuffled := append([]*record(nil), recs...)
		for _, r := range recs {
			if rng.IntN(2) == 0 {
				shuffled = append(shuffled, r)
			}
		}
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		s2, p2 := fold(shuffled)
		if !sameSession(s1, s2) || !samePlayer(p1, p2) || s1.length().Cmp(s2.length()) != 0 {
			t.Fatalf("round %d: merge depends on order: %+v vs %+v", round, s1, s2)
		}
	}
}

func TestDecimalFormatsSumsExactly(t *testing.T) {
	tests := []struct{ in, want string }{
		{"3", "3"}, {"0.1", "0.1"}, {"12.5", "12.5"}, {"1/3", ""}, {"-2.25", "-2.25"}, {"1e-7", "0.0000001"}, {"1.5e3", "1500"},
	}
	for _, tc := range tests {
		r, _ := new(big.Rat).SetString(tc.in)
		got := decimal(r)
		if tc.want == "" {
			continue // not a decimal fraction: never produced by sums of JSON numbers
		}
		if got != tc.want {
			t.Errorf("decimal(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	var a num
	for _, s := range []string{"0.1", "0.2", "0.3", "-0.6"} {
		a.addRat(rat(json.Number(s)))
	}
	if !a.isZero() {
		t.Errorf("0.1+0.2+0.3-0.6 = %s, want exactly 0", a)
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    func(Config) bool
		wantErr string
	}{
		{"defaults", nil, func(c Config) bool { return c == DefaultConfig() }, ""},
		{"every knob", map[string]string{"PROCESS_MAX_BATCH": "64", "PROCESS_FLUSHERS": "2", "PROCESS_LINGER": "500us"},
			func(c Config) bool { return c.MaxBatch == 64 && c.Flushers == 2 && c.Linger == 500*time.Microsecond }, ""},
		{"zero linger", map[string]string{"PROCESS_LINGER": "0s"}, func(c Config) bool { return c.Linger == 0 }, ""},
		{"every aggregation knob", map[string]string{"PROCESS_AGGREGATE_MAX": "5000", "PROCESS_AGGREGATE_LINGER": "50ms",
			"PROCESS_AGGREGATORS": "0", "PROCESS_PENDING_MAX": "1000"},
			func(c Config) bool {
				return c.AggregateMax == 5000 && c.AggregateLinger == 50*time.Millisecond && c.Aggregators == 0 && c.PendingMax == 1000
			}, ""},
		{"no aggregation slice", map[string]string{"PROCESS_AGGREGATE_MAX": "0"}, nil, "PROCESS_AGGREGATE_MAX"},
		{"negative aggregators", map[string]string{"PROCESS_AGGREGATORS": "-1"}, nil, "PROCESS_AGGREGATORS"},
		{"batch not a number", map[string]string{"PROCESS_MAX_BATCH": "lots"}, nil, "PROCESS_MAX_BATCH"},
		{"no flushers", map[string]string{"PROCESS_FLUSHERS": "0"}, nil, "PROCESS_FLUSHERS"},
		{"negative linger", map[string]string{"PROCESS_LINGER": "-1ms"}, nil, "PROCESS_LINGER"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ConfigFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.want(c) {
				t.Fatalf("got %+v, %v", c, err)
			}
		})
	}
}
