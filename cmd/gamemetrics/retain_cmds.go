package main

// Operator commands of the retain function:
//
//	gamemetrics games set-retention --game G [--hot-days N] [--archive-days N]
//	gamemetrics players erase --game G --player P [--by WHO] [--request-id ID] [--url URL | --local]
//	gamemetrics archive restore --game G --from YYYY-MM-DD --to YYYY-MM-DD
//
// `players erase` sends a com.gamemetrics.player.erasure.requested
// CloudEvent to the retain function ($RETAIN_URL, default
// http://127.0.0.1:8085/, where `gamemetrics dev` serves it) and prints the
// completed erasure it answers with; --local runs the erasure in this
// process instead (needs DATABASE_URL, REDIS_URL and S3_*). A failed or
// interrupted erasure is resumed by repeating the command with the
// --request-id it printed.
//
// `archive restore` runs in this process: it reads the S3 archive and
// writes PostgreSQL directly (DATABASE_URL, S3_*).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gamemetrics/gamemetrics/functions/retain"
	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/cache"
	"github.com/gamemetrics/gamemetrics/shared/settings"
	"github.com/gamemetrics/gamemetrics/shared/store"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// defaultRetainURL is where `gamemetrics dev` serves retain.
const defaultRetainURL = "http://127.0.0.1:8085/"

// runSetRetention changes a game's hot and archive days.
func runSetRetention(ctx context.Context, games *store.Games, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("games set-retention", stderr)
	game := fs.String("game", "", "game id (required)")
	hot := fs.Int("hot-days", 0, "days raw events stay in PostgreSQL before they are archived to S3 (default unchanged)")
	arch := fs.Int("archive-days", 0, "days archived raw events are kept in S3 (≥ hot days; default unchanged)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *game == "" {
		return errors.New("games set-retention: --game is required")
	}
	var hotp, archp *int
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "hot-days":
			hotp = hot
		case "archive-days":
			archp = arch
		}
	})
	if hotp == nil && archp == nil {
		return errors.New("games set-retention: give --hot-days, --archive-days or both")
	}
	g, err := games.SetRetention(ctx, *game, hotp, archp)
	if err != nil {
		return fmt.Errorf("games set-retention: %w", err)
	}
	fmt.Fprintf(stdout, "game %s: raw events hot for %d days, archived for %d days\n", g.ID, g.HotDays, g.ArchiveDays)
	return nil
}

// runPlayers dispatches `gamemetrics players ...`.
func runPlayers(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "erase" {
		return errors.New("players: want the subcommand erase")
	}
	fs := newFlags("players erase", stderr)
	game := fs.String("game", "", "game id (required)")
	player := fs.String("player", "", "player id, the events' subject (required)")
	by := fs.String("by", settings.From(getenv).String("USER", "gamemetrics-cli"), "who requests the erasure, recorded in the audit")
	id := fs.String("request-id", "", "request id; repeat a previous one to resume that erasure (default: a new one)")
	url := fs.String("url", settings.From(getenv).String("RETAIN_URL", defaultRetainURL), "retain function URL ($RETAIN_URL)")
	local := fs.Bool("local", false, "run the erasure in this process instead of sending it to --url")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *game == "" || *player == "" {
		return errors.New("players erase: --game and --player are required")
	}
	if *id == "" {
		*id = "erase-" + uuid.NewString()
	}
	fmt.Fprintf(stderr, "erasure request %s (repeat with --request-id %s to resume it)\n", *id, *id)
	var data []byte
	if *local {
		r, closeAll, err := localRetain(ctx, getenv, stderr, true)
		if err != nil {
			return err
		}
		defer closeAll()
		res, err := r.Erase(ctx, retain.ErasureRequest{ID: *id, Game: *game, Player: *player, RequestedBy: *by, RequestedAt: time.Now()})
		if err != nil {
			return fmt.Errorf("players erase: %w", err)
		}
		data, _ = json.Marshal(res)
	} else {
		e := event.New()
		e.SetID(*id)
		e.SetSource("/gamemetrics/cli")
		e.SetType(retain.TypeErasureRequested)
		e.SetTime(time.Now())
		if err := e.SetData(event.ApplicationJSON, map[string]string{"game": *game, "player": *player, "requested_by": *by}); err != nil {
			return err
		}
		reply, err := sendEvent(ctx, *url, e)
		if err != nil {
			return fmt.Errorf("players erase: %w", err)
		}
		if reply.Type() != retain.TypeErasureCompleted {
			return fmt.Errorf("players erase: unexpected reply %s", reply.Type())
		}
		data = reply.Data()
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, data, "", "  ") != nil {
		pretty.Write(data)
	}
	fmt.Fprintln(stdout, pretty.String())
	return nil
}

// sendEvent POSTs e in structured mode and returns the reply event.
func sendEvent(ctx context.Context, url string, e event.Event) (*event.Event, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("send to %s (is the function running? set --url, or use --local): %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("%s answered %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	msg := cehttp.NewMessageFromHttpResponse(resp)
	defer msg.Finish(nil)
	reply, err := binding.ToEvent(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("reply from %s: %w", url, err)
	}
	return reply, nil
}

// runArchive dispatches `gamemetrics archive ...`.
func runArchive(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "restore" {
		return errors.New("archive: want the subcommand restore")
	}
	fs := newFlags("archive restore", stderr)
	game := fs.String("game", "", "game id (required)")
	from := fs.String("from", "", "first UTC day to restore, YYYY-MM-DD (required)")
	to := fs.String("to", "", "last UTC day to restore, YYYY-MM-DD (default: --from)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *game == "" || *from == "" {
		return errors.New("archive restore: --game and --from are required")
	}
	if *to == "" {
		*to = *from
	}
	d1, err := archive.ParseDay(*from)
	if err != nil {
		return fmt.Errorf("archive restore --from: %w", err)
	}
	d2, err := archive.ParseDay(*to)
	if err != nil {
		return fmt.Errorf("archive restore --to: %w", err)
	}
	r, closeAll, err := localRetain(ctx, getenv, stderr, false)
	if err != nil {
		return err
	}
	defer closeAll()
	res, err := r.Restore(ctx, *game, d1, d2)
	if err != nil {
		return fmt.Errorf("archive restore: %w", err)
	}
	fmt.Fprintf(stdout, "restored %d of %d archived events of game %s (%d days; the others were in PostgreSQL already)\n",
		res.Inserted, res.Events, res.Game, len(res.Days))
	if len(res.MissingDays) > 0 {
		fmt.Fprintf(stdout, "no archive for: %s\n", strings.Join(res.MissingDays, ", "))
	}
	fmt.Fprintln(stdout, "Aggregates are unchanged. Days older than the game's hot days are archived and dropped again by the next retention run.")
	return nil
}

// localRetain builds retain in this process from the environment.
func localRetain(ctx context.Context, getenv func(string) string, stderr io.Writer, needRedis bool) (*retain.Retain, func(), error) {
	log := telemetry.NewLogger(stderr, settings.From(getenv).String("LOG_LEVEL", "warn"), "")
	cfg, err := retain.ConfigFromEnv(getenv)
	if err != nil {
		return nil, nil, err
	}
	pool, err := store.Open(ctx, getenv("DATABASE_URL"))
	if err != nil {
		return nil, nil, err
	}
	var rdb *redis.Client
	if needRedis || getenv("REDIS_URL") != "" {
		if rdb, err = cache.Open(ctx, getenv("REDIS_URL")); err != nil {
			pool.Close()
			return nil, nil, err
		}
	}
	arc, err := archive.ConfigFromEnv(getenv)
	var objects *archive.Client
	if err == nil {
		objects, err = archive.Open(ctx, arc)
	}
	if err != nil {
		pool.Close()
		if rdb != nil {
			rdb.Close()
		}
		return nil, nil, err
	}
	r := retain.New(cfg, pool, rdb, objects, log.With(slog.String("function", "retain")), prometheus.NewRegistry(), time.Now)
	return r, func() {
		pool.Close()
		if rdb != nil {
			rdb.Close()
		}
	}, nil
}
