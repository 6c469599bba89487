package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A database outage must not turn known keys away (ingest would refuse
// events Kafka could take), but a key nobody checked still gets the error,
// and the stale answer has a bound.
func TestKeyCacheStandsByTheLastAnswerWhileLookupsFail(t *testing.T) {
	down := errors.New("connection refused")
	var lookups int
	var fail bool
	lookup := func(_ context.Context, key string) (Game, error) {
		lookups++
		switch {
		case fail:
			return Game{}, down
		case key == "gmw_good":
			return Game{ID: "g1"}, nil
		}
		return Game{}, ErrNotFound
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := NewKeyCache(lookup, 30*time.Second)
	c.now = func() time.Time { return now }
	ctx := context.Background()
	game := func(key string) (string, error) {
		t.Helper()
		g, err := c.Game(ctx, key)
		return g.ID, err
	}

	if id, err := game("gmw_good"); id != "g1" || err != nil {
		t.Fatalf("good key: %q, %v", id, err)
	}
	if _, err := game("gmw_bad"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bad key: %v", err)
	}
	fail = true
	now = now.Add(time.Minute) // both entries expired, the database is down
	cases := []struct {
		name, key, wantID string
		wantErr           error
	}{
		{"a key that was good stays good", "gmw_good", "g1", nil},
		{"a key that was bad stays bad", "gmw_bad", "", ErrNotFound},
		{"a key never checked gets the database's error", "gmw_new", "", down},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := game(tc.key)
			if id != tc.wantID || !errors.Is(err, tc.wantErr) {
				t.Errorf("got %q, %v; want %q, %v", id, err, tc.wantID, tc.wantErr)
			}
		})
	}
	before := lookups
	for range 100 {
		game("gmw_good")
	}
	if lookups != before {
		t.Errorf("%d lookups within RetryAfter of a failed one, want none", lookups-before)
	}
	now = now.Add(c.StaleFor)
	if _, err := game("gmw_good"); !errors.Is(err, down) {
		t.Errorf("an answer older than StaleFor still stood: %v", err)
	}
	fail = false
	now = now.Add(time.Minute)
	if id, err := game("gmw_good"); id != "g1" || err != nil {
		t.Errorf("after the outage: %q, %v", id, err)
	}
}
