package events_test

import (
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

func TestSessionClosesAfterThirtyQuietMinutesOrAnEnd(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		ended bool
		now   time.Time
		want  bool
	}{
		{"open after 29 minutes", false, t0.Add(29 * time.Minute), false},
		{"open a microsecond before 30 minutes", false, t0.Add(30*time.Minute - time.Microsecond), false},
		{"closed after exactly 30 minutes", false, t0.Add(30 * time.Minute), true},
		{"closed later", false, t0.Add(3 * time.Hour), true},
		{"closed at once by a session.end", true, t0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := events.SessionClosed(tc.ended, t0, tc.now); got != tc.want {
				t.Errorf("SessionClosed(%v, t0, t0+%s) = %v, want %v", tc.ended, tc.now.Sub(t0), got, tc.want)
			}
			// The SQL form (last_at <= cutoff) decides the same.
			if sql := tc.ended || !t0.After(events.SessionCutoff(tc.now)); sql != tc.want {
				t.Errorf("cutoff form = %v, want %v", sql, tc.want)
			}
		})
	}
}
