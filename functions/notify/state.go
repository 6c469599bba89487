package notify

import "time"

// States of an alert rule: ok → pending (breaching, fewer than For windows
// so far) → firing → resolved (which behaves as ok until the next breach).
const (
	stateOK       = "ok"
	statePending  = "pending"
	stateFiring   = "firing"
	stateResolved = "resolved"
)

// outcome is what one window says about a rule's condition.
type outcome int

const (
	// windowNoData: the window counts neither way (fewer events than min_volume,
	// or no baseline to compare with yet).
	windowNoData outcome = iota
	windowClear
	windowBreach
)

// transition is a change that sends a notification.
type transition string

const (
	noTransition transition = ""
	toFiring     transition = "firing"
	toResolved   transition = "resolved"
	renotify     transition = "renotify"
)

// ruleState is where a rule stands after its last evaluated window.
type ruleState struct {
	State    string
	Breaches int // consecutive breaching windows
	Clears   int // consecutive clear windows while firing
	// FiredAt is the end of the window that fired; NotifiedAt the end of
	// the last window a firing or re-notify notification was sent for.
	FiredAt, NotifiedAt time.Time
}

// policy is how a rule turns outcomes into states.
type policy struct {
	For           int           // breaching windows in a row that fire (≥ 1)
	KeepFiringFor int           // clear windows a firing rule outlasts before resolving
	Renotify      time.Duration // repeat while firing (0: never)
}

// step advances s by the outcome of the window ending at end. It is the
// whole state machine: a pure function, so the evaluator can replay any
// run of windows and tests can check every path.
func step(p policy, s ruleState, o outcome, end time.Time) (ruleState, transition) {
	forN := max(p.For, 1)
	if o == windowNoData {
		return s, noTransition
	}
	switch s.State {
	case stateFiring:
		if o == windowBreach {
			s.Clears = 0
			s.Breaches++
			if p.Renotify > 0 && !end.Before(s.NotifiedAt.Add(p.Renotify)) {
				s.NotifiedAt = end
				return s, renotify
			}
			return s, noTransition
		}
		s.Clears++
		s.Breaches = 0
		if s.Clears > p.KeepFiringFor {
			return ruleState{State: stateResolved}, toResolved
		}
		return s, noTransition
	default: // ok, pending, resolved
		if o == windowClear {
			if s.State == statePending {
				s.State = stateOK
			}
			s.Breaches = 0
			return s, noTransition
		}
		s.Breaches++
		if s.Breaches >= forN {
			return ruleState{State: stateFiring, Breaches: s.Breaches, FiredAt: end, NotifiedAt: end}, toFiring
		}
		s.State = statePending
		return s, noTransition
	}
}
