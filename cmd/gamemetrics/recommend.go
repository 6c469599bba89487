package main

// Operator commands of the recommend function:
//
//	gamemetrics recommend train --game G [--url URL | --local]
//	gamemetrics recommend eval --game G
//	gamemetrics items import --game G [--key K] [--url URL] FILE.csv
//
// `recommend train` sends the training ping ({"task":"train","game":G}) to
// the recommend function ($RECOMMEND_URL, default http://127.0.0.1:8083/,
// where `gamemetrics dev` serves it) and prints what the training did;
// --local trains in this process (DATABASE_URL, S3_*). `recommend eval`
// runs in this process and only reads PostgreSQL (DATABASE_URL). `items
// import` PUTs the CSV to the function's items API with the admin key
// ($GAMEMETRICS_ADMIN_KEY; default: the `gamemetrics dev` demo game's).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/gamemetrics/gamemetrics/functions"
	"github.com/gamemetrics/gamemetrics/functions/recommend"
	"github.com/gamemetrics/gamemetrics/shared/settings"
	"github.com/gamemetrics/gamemetrics/shared/store"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// defaultRecommendURL is where `gamemetrics dev` serves recommend.
const defaultRecommendURL = "http://127.0.0.1:8083/"

// runRecommend dispatches `gamemetrics recommend ...`.
func runRecommend(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "train" && args[0] != "eval") {
		return errors.New("recommend: want the subcommand train or eval")
	}
	fs := newFlags("recommend "+args[0], stderr)
	game := fs.String("game", demoGameID(getenv), "game id (default: the `gamemetrics dev` demo game)")
	url := fs.String("url", settings.From(getenv).String("RECOMMEND_URL", defaultRecommendURL), "recommend function URL ($RECOMMEND_URL)")
	local := fs.Bool("local", false, "train in this process instead of asking the function at --url")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *game == "" {
		return fmt.Errorf("recommend %s: --game is required", args[0])
	}
	if args[0] == "eval" {
		return runEval(ctx, *game, getenv, stdout)
	}
	var out recommend.TrainOutcome
	if *local {
		deps := functions.NewDeps(getenv, telemetry.NewLogger(stderr, settings.From(getenv).String("LOG_LEVEL", "warn"), ""))
		defer deps.Close()
		r, err := functions.BuildRecommend(ctx, deps, telemetry.NewRegistry())
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			r.Stop(sctx)
		}()
		if out, err = r.TrainGame(ctx, *game); err != nil {
			return fmt.Errorf("recommend train: %w", err)
		}
	} else {
		e := event.New()
		e.SetID("train-" + uuid.NewString())
		e.SetSource("/gamemetrics/cli")
		e.SetType(recommend.TypePing)
		e.SetTime(time.Now())
		if err := e.SetData(event.ApplicationJSON, map[string]string{"task": "train", "game": *game}); err != nil {
			return err
		}
		reply, err := sendEvent(ctx, *url, e)
		if err != nil {
			return fmt.Errorf("recommend train: %w", err)
		}
		var data struct {
			Games []recommend.TrainOutcome `json:"games"`
		}
		if err := json.Unmarshal(reply.Data(), &data); err != nil || len(data.Games) != 1 {
			return fmt.Errorf("recommend train: unexpected reply %s", reply.Data())
		}
		out = data.Games[0]
	}
	printTraining(stdout, out)
	return nil
}

func printTraining(w io.Writer, o recommend.TrainOutcome) {
	if o.Version == "" {
		fmt.Fprintf(w, "game %s: nothing trained: %s\n", o.Game, o.Reason)
		return
	}
	fmt.Fprintf(w, "game %s: %d players, %d items, %d interactions; trained in %.1fs\n", o.Game, o.Players, o.Items, o.Interactions, o.Seconds)
	if o.CandidatePlayers < o.Players {
		fmt.Fprintf(w, "candidates trained and validated on an even sample of %d players, the chosen one refitted on all\n", o.CandidatePlayers)
	}
	fmt.Fprintln(w)
	printCandidates(w, o.Candidates, o.Chosen)
	verdict := "kept the current model " + o.Current
	if o.Promoted {
		verdict = "promoted " + o.Version
	}
	fmt.Fprintf(w, "\n%s (%s): %s\nmetrics: s3://…/%s\n", verdict, o.Kind, o.Reason, o.MetricsKey)
}

func printCandidates(w io.Writer, cands []recommend.Candidate, chosen string) {
	if len(cands) == 0 {
		return
	}
	k := cands[0].Validation.K
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "candidate\tHR@%d\tNDCG@%d\tcoverage\tvs popularity\ttrain s\t\n", k, k)
	pop := cands[0].Validation.NDCG
	for _, c := range cands {
		mark := ""
		if c.Name == chosen {
			mark = "  ← chosen"
		}
		ratio := "—"
		if pop > 0 {
			ratio = fmt.Sprintf("%.2f×", c.Validation.NDCG/pop)
		}
		fmt.Fprintf(tw, "%s\t%.4f\t%.4f\t%.3f\t%s\t%.2f\t%s\n", c.Name, c.Validation.HR, c.Validation.NDCG, c.Validation.Coverage, ratio, c.Seconds, mark)
	}
	tw.Flush()
}

// runEval prints every candidate's leave-last-out validation on all players.
func runEval(ctx context.Context, game string, getenv func(string) string, stdout io.Writer) error {
	pool, err := store.Open(ctx, getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer pool.Close()
	cfg, err := recommend.ConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := recommend.EvaluateGame(ctx, pool, game, cfg.Train)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("recommend eval: unknown game %q", game)
	}
	if err != nil {
		return fmt.Errorf("recommend eval: %w", err)
	}
	fmt.Fprintf(stdout, "game %s: %d players, %d items, %d interactions; each player's last interaction held out (%d players),\n"+
		"the full catalogue ranked minus what the player already has (%.1fs)\n\n",
		game, res.Players, res.Items, res.Interactions, res.HeldOut, time.Since(start).Seconds())
	best := res.BestCandidate()
	printCandidates(stdout, res.Candidates, best.Name)
	pop := res.Popular().Validation
	if pop.NDCG > 0 && best.Kind != recommend.KindPopular {
		fmt.Fprintf(stdout, "\nmodel %s: NDCG@%d %.4f = %.2f× popularity's %.4f\n", best.Name, best.Validation.K, best.Validation.NDCG, best.Validation.NDCG/pop.NDCG, pop.NDCG)
	}
	return nil
}

// runItems dispatches `gamemetrics items ...`.
func runItems(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "import" {
		return errors.New("items: want the subcommand import")
	}
	fs := newFlags("items import", stderr)
	game := fs.String("game", demoGameID(getenv), "game id (default: the `gamemetrics dev` demo game)")
	key := fs.String("key", getenv("GAMEMETRICS_ADMIN_KEY"), "admin key ($GAMEMETRICS_ADMIN_KEY; default: the `gamemetrics dev` demo game's)")
	url := fs.String("url", settings.From(getenv).String("RECOMMEND_URL", defaultRecommendURL), "recommend function URL ($RECOMMEND_URL)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *game == "" || fs.NArg() != 1 {
		return errors.New("items import: give --game and one CSV file (columns item_id, consumable, available, tags, price_minor, currency)")
	}
	if *key == "" {
		if d, ok := readDemoGame(getenv); ok && d.ID == *game {
			*key = d.AdminKey
		} else {
			return errors.New("items import: give --key (the game's admin key, gma_…)")
		}
	}
	b, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	// Checked here first, so a bad file is reported by line before anything is sent.
	items, err := recommend.ParseItemsCSV(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("items import: %s: %w", fs.Arg(0), err)
	}
	target := strings.TrimSuffix(*url, "/") + "/v1/games/" + *game + "/items"
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Authorization", "Bearer "+*key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("items import: send to %s (is recommend running? set --url or $RECOMMEND_URL): %w", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("items import: %s answered %s: %s", target, resp.Status, strings.TrimSpace(string(body)))
	}
	var res map[string]int
	json.Unmarshal(body, &res)
	fmt.Fprintf(stdout, "imported %d items into game %s (%d new, %d already known from events or an earlier import)\n", len(items), *game, res["created"], res["updated"])
	return nil
}

// readDemoGame reads the `gamemetrics dev` demo game, if there is one.
func readDemoGame(getenv func(string) string) (demoGame, bool) {
	var d demoGame
	b, err := os.ReadFile(filepath.Join(settings.From(getenv).String("GAMEMETRICS_DEV_DIR", ".gamemetrics"), "demo-game.json"))
	if err != nil || json.Unmarshal(b, &d) != nil {
		return d, false
	}
	return d, true
}

func demoGameID(getenv func(string) string) string {
	d, _ := readDemoGame(getenv)
	return d.ID
}
