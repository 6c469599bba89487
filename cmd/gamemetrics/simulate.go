package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/settings"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
)

// runSimulate generates a population's traffic, sends it to ingest and,
// with --truth, writes the exact answers the report API must give.
func runSimulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("simulate", stderr)
	url := fs.String("url", settings.From(getenv).String("INGEST_URL", "http://127.0.0.1:8081/"), "ingest URL ($INGEST_URL)")
	key := fs.String("key", getenv("GAMEMETRICS_WRITE_KEY"), "write key ($GAMEMETRICS_WRITE_KEY; default: the `gamemetrics dev` demo game's)")
	players := fs.Int("players", 1000, "players to simulate")
	days := fs.Int("days", 7, "days of history ending now (at most 29)")
	tz := fs.String("timezone", "UTC", "the game's time zone, for the truth's day boundaries")
	rate := fs.Float64("rate", 0, "events per second (0 = as fast as ingest answers)")
	batch := fs.Int("batch", 100, "events per request (at most 500)")
	conc := fs.Int("concurrency", 4, "requests in flight")
	dups := fs.Float64("duplicates", 0, "share of events sent twice (e.g. 0.05)")
	late := fs.Float64("late", 0, "share of events held back and sent last")
	bad := fs.Float64("malformed", 0, "share of extra invalid events mixed in")
	shuffle := fs.Bool("shuffle", false, "shuffle events within each batch")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed (same seed = same traffic)")
	truth := fs.String("truth", "", "write the expected report answers to this JSON file")
	realtime := fs.Duration("realtime", 0, "after the history, keep 5% of the players online for this long, sending every second (fills the dashboard's live view)")
	items := fs.Int("items", 200, "items in the game's catalogue: purchases and resource sinks follow players' tastes over them (0: four fixed purchases)")
	itemsCSV := fs.String("items-csv", "", "write the simulated catalogue to this CSV file (for `gamemetrics items import`)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		b, err := os.ReadFile(filepath.Join(settings.From(getenv).String("GAMEMETRICS_DEV_DIR", ".gamemetrics"), "demo-game.json"))
		var demo demoGame
		if err != nil || json.Unmarshal(b, &demo) != nil || demo.WriteKey == "" {
			return errors.New("simulate: give --key (or run `make dev` first, whose demo game is used by default)")
		}
		*key = demo.WriteKey
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("--timezone: %w", err)
	}
	now := time.Now().UTC()
	evs := simulation.Generate(simulation.Config{Players: *players, Days: *days, End: now, Location: loc, Seed: *seed,
		RunID: "sim" + strconv.FormatUint(*seed%1_000_000, 36) + "-", Items: *items})
	if *itemsCSV != "" && *items > 0 {
		var buf bytes.Buffer
		if err := simulation.NewCatalogue(*items, *seed).WriteCSV(&buf); err != nil {
			return err
		}
		if err := os.WriteFile(*itemsCSV, buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "catalogue of %d items written to %s\n", *items, *itemsCSV)
	}
	cfg := simulation.SendConfig{URL: *url, WriteKey: *key, Batch: *batch, Rate: *rate, Concurrency: *conc,
		Duplicates: *dups, Late: *late, Malformed: *bad, Shuffle: *shuffle, Seed: *seed}
	stream, malformed, duplicates := simulation.Plan(evs, cfg)
	fmt.Fprintf(stdout, "sending %d events (%d players, %d days; %d duplicates, %d malformed) to %s\n", len(stream), *players, *days, duplicates, malformed, *url)
	start := time.Now()
	st, err := simulation.Send(ctx, stream, cfg)
	st.Duplicates, st.Malformed = int64(duplicates), int64(malformed)
	took := time.Since(start)
	fmt.Fprintf(stdout, "sent %d events in %d requests in %s (%.0f events/s): %d accepted, %d rejected, %d retries\n",
		st.Sent, st.Requests, took.Round(time.Millisecond), float64(st.Sent)/took.Seconds(), st.Accepted, st.Rejected, st.Retries)
	if err == nil && *realtime > 0 {
		live := simulation.NewLive(simulation.Config{Players: *players, Seed: *seed, RunID: "sim" + strconv.FormatUint(*seed%1_000_000, 36) + "-"}, 0.05)
		fmt.Fprintf(stdout, "keeping players online for %s (Ctrl-C stops)…\n", *realtime)
		end := time.Now().Add(*realtime)
		for tick := time.NewTicker(time.Second); time.Now().Before(end) && ctx.Err() == nil; <-tick.C {
			batch := live.Tick(time.Now())
			evs = append(evs, batch...)
			raws := make([]json.RawMessage, len(batch))
			for i, e := range batch {
				raws[i] = e.JSON()
			}
			lst, lerr := simulation.Send(ctx, raws, cfg)
			st.Sent, st.Accepted, st.Rejected, st.Requests = st.Sent+lst.Sent, st.Accepted+lst.Accepted, st.Rejected+lst.Rejected, st.Requests+lst.Requests
			if lerr != nil {
				if ctx.Err() == nil {
					err = lerr
				}
				break
			}
		}
		fmt.Fprintf(stdout, "live: %d events sent in all\n", st.Sent)
	}
	if *truth != "" {
		out := struct {
			Truth simulation.Truth `json:"truth"`
			Stats simulation.Stats `json:"stats"`
		}{simulation.ComputeTruth(evs, loc, time.Now(), []int{1, 7, 30}), st}
		b, _ := json.MarshalIndent(out, "", "  ")
		if werr := os.WriteFile(*truth, b, 0o644); werr != nil {
			return werr
		}
		fmt.Fprintf(stdout, "expected report answers written to %s\n", *truth)
	}
	return err
}
