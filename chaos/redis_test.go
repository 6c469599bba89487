package chaos

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/functions"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// live is the report API's live view (GET /v1/games/{game}/live).
type live struct {
	Online          int64              `json:"online"`
	ActiveToday     int64              `json:"active_today"`
	EventsPerMinute []simulation.Point `json:"events_per_minute"`
}

func (p *platform) live(ctx context.Context) (live, int, error) {
	var l live
	status, err := p.get(ctx, fmt.Sprintf("v1/games/%s/live", p.game.ID), &l)
	return l, status, err
}

// readiness is the status a function's readiness probe answers.
func (p *platform) readiness(name string) int {
	resp, err := http.Get(p.url(name) + "health/readiness")
	if err != nil {
		p.t.Fatalf("readiness of %s: %v", name, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Hypothesis: Redis (ElastiCache) unreachable for a whole stream changes no
// number that PostgreSQL keeps. ingest's rate limiter fails open (every
// event accepted; gamemetrics_ingest_ratelimit_errors_total counts the
// requests admitted unchecked); process commits to PostgreSQL, counts the
// failed live-view updates and fails no delivery; report answers every
// aggregate exactly and 503 for the live view. When Redis is back the live
// view shows only what was processed after the outage.
func TestRedisOutageLeavesTheAggregatesExactAndOnlyTheLiveViewDark(t *testing.T) {
	p := newPlatform(t, "Asia/Tokyo")
	ctx := context.Background()
	loc := p.game.Location()
	p.redis.disable()

	evs := simulation.Generate(simulation.Config{Players: 80, Days: 2, End: time.Now().UTC(), Location: loc, Seed: 23, RunID: "chaos-redis-"})
	cfg := p.sendConfig(23)
	cfg.Duplicates = 0.03
	stream, _, _ := simulation.Plan(evs, cfg)
	st, err := simulation.Send(ctx, stream, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Accepted != int64(len(stream)) {
		t.Fatalf("with Redis down ingest accepted %d of %d events: the rate limiter should fail open", st.Accepted, len(stream))
	}
	ingest := p.servers.Get(serving.Ingest).Metrics
	unchecked := int(metric(ingest, "gamemetrics_ingest_ratelimit_errors_total"))
	if unchecked == 0 {
		t.Errorf("ingest admitted %d requests with Redis down but gamemetrics_ingest_ratelimit_errors_total is 0", st.Requests)
	}
	p.waitForTruth(simulation.ComputeTruth(evs, loc, time.Now(), []int{1}), 60*time.Second)
	p.assertNothingLost(len(stream))
	p.assertStoredOnce(evs)
	if got := p.processed("new"); got != len(evs) {
		t.Errorf("process counted %d new events, want exactly %d", got, len(evs))
	}
	if n := p.processed("failed"); n != 0 {
		t.Errorf("process answered 5xx for %d deliveries because Redis was down; the live view must never fail a delivery", n)
	}
	liveErrors := int(metric(p.servers.Get(serving.Process).Metrics, "gamemetrics_process_live_errors_total"))
	if liveErrors == 0 {
		t.Error("process updated no live view with Redis down, yet gamemetrics_process_live_errors_total is 0")
	}
	if _, status, _ := p.live(ctx); status != http.StatusServiceUnavailable {
		t.Errorf("live view with Redis down answered %d, want 503", status)
	}
	// Readiness as Knative probes it: no function needs Redis to serve.
	readyIngest, readyProcess, readyReport := p.readiness(serving.Ingest), p.readiness(serving.Process), p.readiness(serving.Report)
	if readyIngest != http.StatusOK || readyProcess != http.StatusOK || readyReport != http.StatusOK {
		t.Errorf("readiness with Redis down: ingest %d, process %d, report %d, want 200 (Redis is optional)", readyIngest, readyProcess, readyReport)
	}
	// A replica starting now (a scale-up, or a scale from zero) must start
	// without Redis too.
	deps := functions.NewDeps(func(name string) string {
		switch name {
		case "REDIS_URL":
			return p.redis.url
		case "DATABASE_URL":
			return p.postgres.url
		}
		return ""
	}, p.log)
	fn, startErr := functions.Build(ctx, serving.Process, deps, telemetry.NewRegistry())
	if startErr != nil {
		t.Errorf("a process replica starting while Redis is down: %v", startErr)
	} else {
		fn.Stop(ctx)
	}
	deps.Close()
	t.Logf("Redis down: %d events (%d unique) accepted in %d requests, %d of them admitted without a rate-limit check; process: %d new, %d failed, %d live-view updates failed; "+
		"eventing retries %d; live view %s; readiness ingest %d, process %d, report %d",
		st.Accepted, len(evs), st.Requests, unchecked, p.processed("new"), p.processed("failed"), liveErrors,
		int(metric(p.eventing, "gamemetrics_eventing_retries_total", "name", "gamemetrics-events")), "503",
		readyIngest, readyProcess, readyReport)

	// Redis comes back. Restart process first, so no batch processed
	// during the outage is still on its way to Redis.
	p.restart(serving.Process)
	p.redis.enable()
	// go-redis keeps failing fast with its last dial error for up to a
	// second after a run of failed dials; the live view misses what is
	// processed meanwhile. report's live view reads through the Redis
	// client every function here shares, so 200 means it dials again.
	p.waitFor("the functions' Redis client to reconnect", 30*time.Second, func() bool {
		_, status, _ := p.live(ctx)
		return status == http.StatusOK
	})
	now := time.Now().UTC()
	tick := simulation.NewLive(simulation.Config{Players: 80, Seed: 23, RunID: "chaos-redis-"}, 0.05).Tick(now)
	var players []string
	for _, e := range tick {
		if !slices.Contains(players, e.Subject) {
			players = append(players, e.Subject)
		}
	}
	after := p.sendConfig(24)
	lstream, _, _ := simulation.Plan(tick, after)
	if lst, err := simulation.Send(ctx, lstream, after); err != nil || lst.Accepted != int64(len(tick)) {
		t.Fatalf("after the outage ingest accepted %d of %d live events: %v", lst.Accepted, len(tick), err)
	}
	all := append(slices.Clone(evs), tick...)
	p.waitForTruth(simulation.ComputeTruth(all, loc, time.Now(), []int{1}), 60*time.Second)
	var view live
	p.waitFor("the live view to show the events sent after the outage", 30*time.Second, func() bool {
		v, status, _ := p.live(ctx)
		view = v
		return status == http.StatusOK && sumPoints(v.EventsPerMinute) >= float64(len(tick))
	})
	if view.Online != int64(len(players)) || view.ActiveToday != int64(len(players)) || sumPoints(view.EventsPerMinute) != float64(len(tick)) {
		t.Errorf("live view after the outage: online %d, active today %d, %v events in the last hour; want %d, %d, %d: only what was processed after Redis came back",
			view.Online, view.ActiveToday, sumPoints(view.EventsPerMinute), len(players), len(players), len(tick))
	}
	t.Logf("after the outage: live view online %d, active today %d, %v events in the last hour (only the %d events sent after Redis came back)",
		view.Online, view.ActiveToday, sumPoints(view.EventsPerMinute), len(tick))
}

func sumPoints(ps []simulation.Point) float64 {
	total := 0.0
	for _, pt := range ps {
		total += pt.Value
	}
	return total
}
