package cache

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The live view is a cache of recent activity per game, written by process
// after each database commit and read by report. PostgreSQL stays the truth:
// every key here expires on its own and can be rebuilt from the events table.
//
// Keys (all per game):
//
//	gm:live:<game>:online             ZSET  player -> unix ms of their latest event
//	gm:live:<game>:epm:<unix minute>  INT   events whose time falls in that minute
//	gm:live:<game>:active:<yyyy-mm-dd> SET  players with an event that day (game time zone)
const (
	// OnlineWindow is how recent a player's last event must be to count as online.
	OnlineWindow = 5 * time.Minute
	// MinutesKept is how many minutes of events-per-minute counts are kept.
	MinutesKept = 60

	minuteTTL = 2 * time.Hour
	activeTTL = 50 * time.Hour
	onlineTTL = 2 * OnlineWindow
)

// LiveEvent is what the live view needs of one processed event.
type LiveEvent struct {
	Game   string
	Player string
	Time   time.Time
	// Day is the event's calendar day in the game's time zone.
	Day time.Time
}

// Live reads and writes the live view.
type Live struct {
	rdb *redis.Client
}

// NewLive returns the live view stored in rdb.
func NewLive(rdb *redis.Client) *Live { return &Live{rdb: rdb} }

func onlineKey(game string) string { return "gm:live:" + game + ":online" }
func minuteKey(game string, minute int64) string {
	return "gm:live:" + game + ":epm:" + strconv.FormatInt(minute, 10)
}
func activeKey(game string, day time.Time) string {
	return "gm:live:" + game + ":active:" + day.Format(time.DateOnly)
}

// Record adds newly processed events, as of now, in one pipeline. Events
// older than the views they would feed are skipped; event times ahead of now
// count as now.
func (l *Live) Record(ctx context.Context, now time.Time, evs []LiveEvent) error {
	if len(evs) == 0 {
		return nil
	}
	type gameAgg struct {
		online  map[string]int64
		minutes map[int64]int64
		active  map[time.Time][]any
		seen    map[string]map[time.Time]bool
	}
	games := make(map[string]*gameAgg)
	nowMin := now.Unix() / 60
	for _, e := range evs {
		g := games[e.Game]
		if g == nil {
			g = &gameAgg{online: map[string]int64{}, minutes: map[int64]int64{}, active: map[time.Time][]any{}, seen: map[string]map[time.Time]bool{}}
			games[e.Game] = g
		}
		t := e.Time
		if t.After(now) {
			t = now
		}
		if now.Sub(t) < OnlineWindow {
			if ms := t.UnixMilli(); ms > g.online[e.Player] {
				g.online[e.Player] = ms
			}
		}
		if m := t.Unix() / 60; nowMin-m < MinutesKept {
			g.minutes[m]++
		}
		if now.Sub(t) < 48*time.Hour {
			days := g.seen[e.Player]
			if days == nil {
				days = map[time.Time]bool{}
				g.seen[e.Player] = days
			}
			if !days[e.Day] {
				days[e.Day] = true
				g.active[e.Day] = append(g.active[e.Day], e.Player)
			}
		}
	}
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for game, g := range games {
			if len(g.online) > 0 {
				members := make([]redis.Z, 0, len(g.online))
				for player, ms := range g.online {
					members = append(members, redis.Z{Member: player, Score: float64(ms)})
				}
				key := onlineKey(game)
				p.ZAddGT(ctx, key, members...)
				p.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(now.Add(-OnlineWindow).UnixMilli(), 10))
				p.Expire(ctx, key, onlineTTL)
			}
			for m, n := range g.minutes {
				key := minuteKey(game, m)
				p.IncrBy(ctx, key, n)
				p.Expire(ctx, key, minuteTTL)
			}
			for day, players := range g.active {
				key := activeKey(game, day)
				p.SAdd(ctx, key, players...)
				p.Expire(ctx, key, activeTTL)
			}
		}
		return nil
	})
	return err
}

// OnlineNow counts players of game with an event in the OnlineWindow before now.
func (l *Live) OnlineNow(ctx context.Context, game string, now time.Time) (int64, error) {
	min := strconv.FormatInt(now.Add(-OnlineWindow).UnixMilli(), 10)
	return l.rdb.ZCount(ctx, onlineKey(game), min, "+inf").Result()
}

// MinuteCount is the number of events of one minute.
type MinuteCount struct {
	Minute time.Time
	Events int64
}

// EventsPerMinute returns the events of each of the MinutesKept minutes up to
// and including now's minute, oldest first (zero for minutes without events).
func (l *Live) EventsPerMinute(ctx context.Context, game string, now time.Time) ([]MinuteCount, error) {
	last := now.Unix() / 60
	keys := make([]string, MinutesKept)
	for i := range keys {
		keys[i] = minuteKey(game, last-int64(MinutesKept-1-i))
	}
	vals, err := l.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]MinuteCount, MinutesKept)
	for i, v := range vals {
		out[i].Minute = time.Unix((last-int64(MinutesKept-1-i))*60, 0).UTC()
		if s, ok := v.(string); ok {
			out[i].Events, _ = strconv.ParseInt(s, 10, 64)
		}
	}
	return out, nil
}

// ActiveOn counts players of game with an event on day (the calendar day in
// the game's time zone; pass today's for "today's active players").
func (l *Live) ActiveOn(ctx context.Context, game string, day time.Time) (int64, error) {
	return l.rdb.SCard(ctx, activeKey(game, day)).Result()
}

// Today is now's calendar day in loc, as Record and ActiveOn expect it.
func Today(now time.Time, loc *time.Location) time.Time {
	y, m, d := now.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
