package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gamemetrics/gamemetrics/functions"
	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/eventing"
	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/settings"
	"github.com/gamemetrics/gamemetrics/shared/store"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// devPorts are the default local ports of each function.
var devPorts = map[string]int{"ingest": 8081, "process": 8082, "recommend": 8083, "notify": 8084, "retain": 8085, "report": 8086}

// demoGame is what dev remembers about its demo game between runs. Only the
// local dev data directory holds plain keys.
type demoGame struct {
	ID       string `json:"id"`
	WriteKey string `json:"write_key"`
	ReadKey  string `json:"read_key"`
	AdminKey string `json:"admin_key"`
}

func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("dev", stderr)
	dir := fs.String("dir", settings.From(getenv).String("GAMEMETRICS_DEV_DIR", ".gamemetrics"), "where the local stack keeps its data")
	manifests := fs.String("eventing", settings.From(getenv).String("GAMEMETRICS_EVENTING_DIR", "eventing/base"), "eventing manifests the local eventing runtime runs")
	ports := map[string]*int{}
	env := settings.From(getenv)
	for _, name := range serving.Names() {
		v := strings.ToUpper(name) + "_PORT"
		ports[name] = fs.Int(name+"-port", env.Int(v, devPorts[name], 1), "port of "+name+" ($"+v+")")
	}
	if err := env.Err(); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := telemetry.NewLogger(stderr, settings.From(getenv).String("LOG_LEVEL", "warn"), "")
	start := time.Now()
	stack, pool, err := devstack.StartMigrated(ctx, devstack.Config{Dir: *dir, Getenv: getenv, Log: log})
	if err != nil {
		return fmt.Errorf("local stack: %w", err)
	}
	defer stack.Close()
	defer pool.Close()
	demo, err := ensureDemoGame(ctx, store.NewGames(pool), filepath.Join(*dir, "demo-game.json"))
	if err != nil {
		return err
	}

	fnenv := devDefaults(stackEnv(stack, getenv), *ports[serving.Report])
	deps := functions.NewDeps(fnenv, log)
	defer deps.Close()
	var wg sync.WaitGroup
	errc := make(chan error, len(ports)+1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, name := range functions.Implemented() {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*ports[name])))
		if err != nil {
			return fmt.Errorf("%s: %w (set --%s-port)", name, err, name)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serveFunction(ctx, name, l, deps, log); err != nil {
				errc <- err
				cancel()
			}
		}()
	}

	// The same KafkaSource and PingSources production applies, delivered
	// to the local function servers with Knative's semantics.
	services := map[string]string{}
	for name, port := range ports {
		services[name] = fmt.Sprintf("http://127.0.0.1:%d", *port)
	}
	kopts, err := kafka.OptsFromEnv(fnenv)
	if err != nil {
		cancel()
		wg.Wait()
		return err
	}
	rt, err := eventing.New(eventing.Config{Dir: *manifests, KafkaOpts: kopts, Services: services,
		Log: log.With("function", "eventing"), Registerer: telemetry.NewRegistry()})
	if err != nil {
		cancel()
		wg.Wait()
		return fmt.Errorf("local eventing: %w", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := rt.Run(ctx, 30*time.Second); err != nil {
			errc <- fmt.Errorf("local eventing: %w", err)
			cancel()
		}
	}()
	printDev(stdout, stack, demo, ports, *dir, time.Since(start))
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping…")
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// stackEnv layers the stack's addresses over the process environment.
func stackEnv(stack *devstack.Stack, getenv func(string) string) func(string) string {
	return func(name string) string {
		if v := stack.Getenv(name); v != "" {
			return v
		}
		return getenv(name)
	}
}

// devDefaults are the settings a local platform wants unless the
// environment says otherwise: notify may send to receivers on this machine
// (plain http, loopback), and links to the local dashboard.
func devDefaults(getenv func(string) string, reportPort int) func(string) string {
	defaults := map[string]string{
		"NOTIFY_ALLOW_PRIVATE_DESTINATIONS": "true",
		"NOTIFY_DASHBOARD_URL":              fmt.Sprintf("http://127.0.0.1:%d/", reportPort),
	}
	return func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return defaults[name]
	}
}

// ensureDemoGame reuses the demo game saved in path, or creates one.
func ensureDemoGame(ctx context.Context, games *store.Games, path string) (demoGame, error) {
	var d demoGame
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &d) == nil {
		// Every saved key must still work (games rotate-key may have
		// replaced one, and a file from before admin keys has none);
		// otherwise a new demo game is made.
		w, werr := games.ByWriteKey(ctx, d.WriteKey)
		r, rerr := games.ByReadKey(ctx, d.ReadKey)
		a, aerr := games.ByAdminKey(ctx, d.AdminKey)
		if werr == nil && rerr == nil && aerr == nil && w.ID == d.ID && r.ID == d.ID && a.ID == d.ID {
			return d, nil
		}
	}
	g, keys, err := games.Create(ctx, "Demo Game", "UTC")
	if err != nil {
		return d, err
	}
	d = demoGame{ID: g.ID, WriteKey: keys.Write, ReadKey: keys.Read, AdminKey: keys.Admin}
	b, _ := json.MarshalIndent(d, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return d, err
	}
	return d, nil
}

func printDev(w io.Writer, s *devstack.Stack, d demoGame, ports map[string]*int, devDir string, took time.Duration) {
	ingest := fmt.Sprintf("http://127.0.0.1:%d/", *ports[serving.Ingest])
	var running []string
	for _, name := range functions.Implemented() {
		running = append(running, fmt.Sprintf("%s http://127.0.0.1:%d/", name, *ports[name]))
	}
	fmt.Fprintf(w, `
GameMetrics is running locally (started in %.1fs). Ctrl-C stops it; data stays in the dev directory.

  ingest       %s   (metrics: %smetrics)
  dashboard    http://127.0.0.1:%d/   (enter the read key below)
  functions    %s
  eventing     KafkaSources gamemetrics.events -> process, recommend, notify; PingSources -> retain, report, recommend, notify (from eventing/base)
  PostgreSQL   %s
  Redis        %s
  Kafka        %s
  S3           %s (bucket %s)

Demo game %s
  write key    %s   (game clients: ingest)
  read key     %s   (analysts: report API, dashboard)
  admin key    %s   (alert rules, destinations, player rules: gamemetrics alerts|destinations|player-rules ...)

Send an event:
  curl -i %s \
    -H 'Authorization: Bearer %s' \
    -H 'Content-Type: application/json' \
    -H 'ce-specversion: 1.0' -H "ce-id: $(date +%%s%%N)" -H 'ce-source: /my-game/client' \
    -H 'ce-type: com.gamemetrics.session.start' -H 'ce-subject: player-1' \
    -H 'ce-sessionid: s-1' -H "ce-time: $(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)" \
    -d '{"platform":"ios","app_version":"1.0.0","country":"US"}'

See it in Kafka:
  KAFKA_BROKERS=%s go run ./cmd/gamemetrics events tail -n 1

Simulate 1,000 players, then keep some online (the dashboard's live view moves):
  GAMEMETRICS_DEV_DIR=%s go run ./cmd/gamemetrics simulate --players 1000 --realtime 10m

Recommendations: simulate players with tastes, import their catalogue, train, ask:
  GAMEMETRICS_DEV_DIR=%[18]s go run ./cmd/gamemetrics simulate --players 5000 --items 1000 --days 28 --items-csv %[18]s/items.csv
  GAMEMETRICS_DEV_DIR=%[18]s go run ./cmd/gamemetrics items import %[18]s/items.csv
  GAMEMETRICS_DEV_DIR=%[18]s go run ./cmd/gamemetrics recommend train
  curl -H 'Authorization: Bearer %[13]s' http://127.0.0.1:%[19]d/v1/games/%[11]s/players/player-00042/recommendations

`, took.Seconds(), ingest, ingest, *ports[serving.Report], strings.Join(running, ", "), s.DatabaseURL, s.RedisURL, strings.Join(s.KafkaBrokers, ","), s.S3Endpoint, s.S3Bucket,
		d.ID, d.WriteKey, d.ReadKey, d.AdminKey, ingest, d.WriteKey, strings.Join(s.KafkaBrokers, ","), devDir, *ports[serving.Recommend])
}
