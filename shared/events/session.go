package events

import "time"

// SessionTimeout closes a session that has no session.end: it counts as over
// once it has had no event for this long. Clients often never send the end
// (the app is killed or backgrounded), so every session metric depends on it.
const SessionTimeout = 30 * time.Minute

// SessionClosed says whether a session counts as over at now: it had a
// session.end, or its latest event is SessionTimeout or more before now.
// It is decided when asked, never stored, so it does not depend on the order
// events arrive in.
func SessionClosed(ended bool, lastAt, now time.Time) bool {
	return ended || !lastAt.After(SessionCutoff(now))
}

// SessionCutoff is the latest last event of a session without a session.end
// that is over at now: such a session is closed when its last event is at or
// before the cutoff (SQL: end_at IS NOT NULL OR last_at <= cutoff).
func SessionCutoff(now time.Time) time.Time { return now.Add(-SessionTimeout) }
