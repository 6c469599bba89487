package simulation

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// Live keeps a set of players online and produces what they send each
// tick, timestamped now: the real-time part of a demo, which fills the
// dashboard's "online now" and events-per-minute views.
type Live struct {
	cfg     Config
	r       *rand.Rand
	online  []string
	started map[string]bool
	seq     int
}

// NewLive puts share of cfg.Players online (at least one).
func NewLive(cfg Config, share float64) *Live {
	r := rand.New(rand.NewPCG(cfg.Seed^0x5bd1e995, 3))
	n := max(1, int(float64(cfg.Players)*share))
	l := &Live{cfg: cfg, r: r, started: map[string]bool{}}
	for _, p := range r.Perm(max(cfg.Players, n))[:n] {
		l.online = append(l.online, fmt.Sprintf("player-%05d", p))
	}
	return l
}

// Tick returns the events every online player sends at now: a session
// start the first time, then a heartbeat and now and then something else.
func (l *Live) Tick(now time.Time) []Event {
	var out []Event
	for _, subject := range l.online {
		session := l.cfg.RunID + "live-" + subject
		emit := func(typ string, data map[string]any) {
			l.seq++
			out = append(out, Event{SpecVersion: "1.0", ID: fmt.Sprintf("%slive-%d", l.cfg.RunID, l.seq), Source: "/sim/live",
				Type: typ, Subject: subject, Time: now.UTC().Truncate(time.Millisecond), SessionID: session,
				ContentType: "application/json", Data: data})
		}
		if !l.started[subject] {
			l.started[subject] = true
			emit(events.TypeSessionStart, map[string]any{"platform": platformsByShare[l.r.IntN(len(platformsByShare))], "app_version": "1.4.2"})
			continue
		}
		emit(events.TypeHeartbeat, nil)
		switch x := l.r.Float64(); {
		case x < 0.2:
			emit(events.TypeProgression, map[string]any{"status": "start", "level": fmt.Sprintf("world1/level%d", 1+l.r.IntN(20))})
		case x < 0.3:
			emit(events.TypeAd, map[string]any{"action": "show", "ad_type": "rewarded", "network": "admob", "revenue_micros": 1000 + l.r.IntN(9000)})
		case x < 0.31:
			it := items[l.r.IntN(len(items))]
			emit(events.TypePurchase, map[string]any{"item_id": it.id, "currency": "USD", "amount_minor": it.amount})
		}
	}
	return out
}
