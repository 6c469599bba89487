// Command gamemetrics is the GameMetrics operator CLI: it migrates the
// database, manages games and their keys, serves any function over HTTP,
// and runs the whole platform locally with `gamemetrics dev`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `gamemetrics — real-time game analytics

Usage:
  gamemetrics dev [--dir .gamemetrics] [--ingest-port 8081]
        run the local stack, migrations, a demo game and every function
  gamemetrics migrate
        apply the embedded database migrations ($DATABASE_URL)
  gamemetrics status [--sample 5s] [--max-lag 100000] [--groups G,...] [--game G]
        check a deployment: PostgreSQL, Redis, Kafka, S3, topics, consumer lag,
        pending migrations, retention; exits non-zero when a check fails
  gamemetrics games create --name NAME [--timezone Area/City]
        register a game; prints its id, write, read and admin keys
  gamemetrics games list
  gamemetrics games rotate-key --game G --kind write|read|admin [--grace 720h]
        issue a new key; the previous one works for --grace more (0: revoked now)
  gamemetrics games set-timezone --game G --timezone Area/City
        change a game's day boundaries and rebuild its day rollups from raw events
  gamemetrics serve FUNCTION
        serve one function (ingest, process, recommend, notify, retain, report)
        on $PORT (default 8080) with /healthz, /readyz and /metrics
  gamemetrics serve process --from-kafka
        process consuming gamemetrics.events directly (no Knative eventing)
  gamemetrics events tail [--topic gamemetrics.events] [-n 10]
        print the newest records of a topic with their headers ($KAFKA_BROKERS)
  gamemetrics events replay [--from gamemetrics.events.dlq] [--to gamemetrics.events] [--dry-run]
        copy dead-lettered events back for process once the cause is fixed (counted once)
  gamemetrics games set-retention --game G [--hot-days N] [--archive-days N]
        days raw events stay in PostgreSQL, then in the S3 archive
  gamemetrics players erase --game G --player P [--by WHO] [--request-id ID] [--url $RETAIN_URL | --local]
        erase a player from PostgreSQL, Redis and the archive (via the retain function)
  gamemetrics archive restore --game G --from YYYY-MM-DD [--to YYYY-MM-DD]
        load archived days back into PostgreSQL, deduplicated, aggregates unchanged
  gamemetrics simulate [--players 1000] [--days 7] [--rate 0] [--duplicates 0.05]
        [--late 0.01] [--malformed 0.01] [--shuffle] [--truth FILE] [--realtime 10m]
        send realistic game traffic to ingest; --truth writes the exact expected answers;
        --realtime then keeps 5% of the players online

Configuration comes from the environment: DATABASE_URL, REDIS_URL,
KAFKA_BROKERS (+ KAFKA_TLS, KAFKA_SASL_*), S3_ENDPOINT, S3_BUCKET, PORT,
LOG_LEVEL, INGEST_RATE_LIMIT. See README.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gamemetrics:", err)
		}
		os.Exit(1)
	}
}

// run is the whole program, so it can be tested without a process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "dev":
		return runDev(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, getenv, stdout)
	case "status":
		return runStatus(ctx, rest, getenv, stdout, stderr)
	case "games":
		return runGames(ctx, rest, getenv, stdout, stderr)
	case "serve":
		return runServe(ctx, rest, getenv, stderr)
	case "events":
		return runEvents(ctx, rest, getenv, stdout, stderr)
	case "players":
		return runPlayers(ctx, rest, getenv, stdout, stderr)
	case "archive":
		return runArchive(ctx, rest, getenv, stdout, stderr)
	case "simulate":
		return runSimulate(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// newFlags returns a FlagSet that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
