package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gamemetrics/gamemetrics/functions/process"
	"github.com/gamemetrics/gamemetrics/functions/retain"
	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

func TestRetainCommandsAgainstTheLocalStack(t *testing.T) {
	ctx := migrated(t)
	getenv := stack.Getenv
	var out, errb bytes.Buffer
	clients := devstacktest.Connect(t, stack)
	pool := clients.Pool
	rdb := clients.Redis
	g, _, err := store.NewGames(pool).Create(ctx, "retain cli", "UTC")
	if err != nil {
		t.Fatal(err)
	}

	// games set-retention
	out.Reset()
	if err := run(ctx, []string{"games", "set-retention", "--game", g.ID, "--hot-days", "2"}, getenv, &out, &errb); err != nil {
		t.Fatalf("set-retention: %v", err)
	}
	if !strings.Contains(out.String(), "hot for 2 days, archived for 400 days") {
		t.Errorf("set-retention output %q", out.String())
	}
	for _, args := range [][]string{{"--game", g.ID}, {"--hot-days", "3"}, {"--game", g.ID, "--hot-days", "0"}, {"--game", g.ID, "--archive-days", "1"}} {
		if err := run(ctx, append([]string{"games", "set-retention"}, args...), getenv, &out, &errb); err == nil {
			t.Errorf("set-retention %v accepted", args)
		}
	}

	// Two players' events five days ago, through process; then retention.
	p := process.New(process.DefaultConfig(), pool, rdb, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -5)
	for i, player := range []string{"p-one", "p-two", "p-three"} {
		e := event.New()
		e.SetID(fmt.Sprintf("cli-%d", i))
		e.SetSource("/cli-test")
		e.SetType(events.TypeDesign)
		e.SetSubject(player)
		e.SetTime(day.Add(time.Duration(i+1) * time.Hour))
		e.SetExtension(events.ExtGameID, g.ID)
		e.SetData(event.ApplicationJSON, map[string]any{"event": "cli:test"})
		if _, err := p.Handle(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	p.Stop(ctx)
	s3cfg, err := archive.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	arc, err := archive.Open(ctx, s3cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := retain.New(retain.DefaultConfig(), pool, rdb, arc, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), time.Now)
	game, _ := store.NewGames(pool).Get(ctx, g.ID)
	if res, err := r.RetainGame(ctx, game); err != nil || res.EventsArchived != 3 {
		t.Fatalf("retention: %+v, %v", res, err)
	}

	// players erase, through the function's HTTP face and --local.
	srv := httptest.NewServer(r)
	defer srv.Close()
	out.Reset()
	if err := run(ctx, []string{"players", "erase", "--game", g.ID, "--player", "p-one", "--by", "dpo", "--url", srv.URL}, getenv, &out, &errb); err != nil {
		t.Fatalf("players erase: %v", err)
	}
	if !strings.Contains(out.String(), `"s3.events": 1`) || !strings.Contains(out.String(), `"requested_by": "dpo"`) {
		t.Errorf("players erase output:\n%s", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"players", "erase", "--game", g.ID, "--player", "p-two", "--local", "--request-id", "cli-local"}, getenv, &out, &errb); err != nil {
		t.Fatalf("players erase --local: %v", err)
	}
	if !strings.Contains(out.String(), `"request_id": "cli-local"`) || !strings.Contains(out.String(), `"s3.events": 1`) {
		t.Errorf("players erase --local output:\n%s", out.String())
	}
	if err := run(ctx, []string{"players", "erase", "--game", "gnope", "--player", "x", "--url", srv.URL}, getenv, &out, &errb); err == nil || !strings.Contains(err.Error(), "422") {
		t.Errorf("erasure for an unknown game: %v", err)
	}

	// archive restore: the one event left comes back, once.
	for i, want := range []string{"restored 1 of 1", "restored 0 of 1"} {
		out.Reset()
		if err := run(ctx, []string{"archive", "restore", "--game", g.ID, "--from", day.Format(time.DateOnly)}, getenv, &out, &errb); err != nil {
			t.Fatalf("restore %d: %v", i, err)
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("restore %d output %q, want %q", i, out.String(), want)
		}
	}
	var subject string
	if err := pool.QueryRow(ctx, "SELECT subject FROM events WHERE gameid = $1", g.ID).Scan(&subject); err != nil || subject != "p-three" {
		t.Errorf("restored event of %q (%v), want p-three's", subject, err)
	}
	if err := run(ctx, []string{"archive", "restore", "--game", g.ID, "--from", "yesterday"}, getenv, &out, &errb); err == nil {
		t.Error("a bad date was accepted")
	}
}
