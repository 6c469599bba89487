// Command recommend measures the recommend function the way a studio would
// meet it, each part in its own process against the local stack:
//
//   - eval: a simulated game of 5,000 players with tastes over 1,000 items
//     is fed through recommend's intake, the catalogue imported, and
//     `gamemetrics recommend eval` prints every model's HR@10, NDCG@10 and
//     coverage against popularity's;
//   - train: 100,000 players × 2,000 items of simulated acquisitions are
//     written to PostgreSQL and `gamemetrics recommend train --local` is
//     timed, with the peak resident memory of its process;
//   - serve: 1,000,000 players × 10,000 items are written and trained,
//     `gamemetrics serve recommend` runs as its own process, and wrk (another
//     process) asks for random players' recommendations with several
//     connection counts, reporting throughput and latency percentiles.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gamemetrics/gamemetrics/functions/recommend"
	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench recommend:", err)
		os.Exit(1)
	}
}

type options struct {
	gamemetrics, wrk string
	phases           map[string]bool
	evalDays         []int
	trainRuns        int
	duration         time.Duration
	connections      []int
	servePlayers     int
	serveItems       int
	serveGame        string
	kinds            string
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("recommend", flag.ContinueOnError)
	var o options
	phases := fs.String("phases", "eval,train,serve", "which measurements to run")
	days := fs.String("eval-days", "7,28", "days of simulated history for eval, comma-separated")
	conns := fs.String("connections", "4,16,64", "wrk connection counts")
	fs.StringVar(&o.gamemetrics, "gamemetrics", "bin/gamemetrics", "path to the gamemetrics binary")
	fs.StringVar(&o.wrk, "wrk", "wrk", "path to wrk")
	fs.IntVar(&o.trainRuns, "train-runs", 3, "training runs of the 100,000 × 2,000 game")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "length of each wrk run")
	fs.IntVar(&o.servePlayers, "serve-players", 1_000_000, "players of the serving benchmark")
	fs.IntVar(&o.serveItems, "serve-items", 10_000, "items of the serving benchmark")
	fs.StringVar(&o.serveGame, "serve-game", "", "serve this game of a kept stack (-dir) instead of seeding and training a new one")
	fs.StringVar(&o.kinds, "kinds", "", "RECOMMEND_KINDS for the serving benchmark's training (default: all, the best wins)")
	dir := fs.String("dir", "", "keep the stack's data here (default: a temporary directory), to rerun -serve-game")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		o.phases[strings.TrimSpace(p)] = true
	}
	for _, d := range strings.Split(*days, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(d))
		if err != nil {
			return fmt.Errorf("-eval-days: %w", err)
		}
		o.evalDays = append(o.evalDays, n)
	}
	for _, c := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil {
			return fmt.Errorf("-connections: %w", err)
		}
		o.connections = append(o.connections, n)
	}
	stack, pool, err := devstack.StartMigrated(ctx, devstack.Config{Getenv: os.Getenv, Ephemeral: *dir == "", Dir: *dir})
	if err != nil {
		return fmt.Errorf("local stack: %w", err)
	}
	defer stack.Close()
	defer pool.Close()
	b := &bench{o: o, stack: stack, pool: pool, out: stdout}
	if o.phases["eval"] {
		for _, d := range o.evalDays {
			if err := b.eval(ctx, d); err != nil {
				return fmt.Errorf("eval: %w", err)
			}
		}
	}
	if o.phases["train"] {
		if err := b.train(ctx); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	if o.phases["serve"] {
		if err := b.serve(ctx); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	return nil
}

type bench struct {
	o     options
	stack *devstack.Stack
	pool  *pgxpool.Pool
	out   io.Writer
}

func (b *bench) env(extra ...string) []string {
	return append(append(os.Environ(), b.stack.Env()...), extra...)
}

// gm runs a gamemetrics command and returns its output, wall time and the
// peak resident memory of its process.
func (b *bench) gm(ctx context.Context, args ...string) (string, time.Duration, int64, error) {
	return b.gmEnv(ctx, nil, args...)
}

func (b *bench) gmEnv(ctx context.Context, env []string, args ...string) (string, time.Duration, int64, error) {
	cmd := exec.CommandContext(ctx, b.o.gamemetrics, args...)
	cmd.Env = append(b.env("LOG_LEVEL=warn"), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss * 1024 // kilobytes on Linux
	}
	if err != nil {
		return out.String(), took, rss, fmt.Errorf("gamemetrics %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), took, rss, nil
}

func (b *bench) newGame(ctx context.Context, name string) (store.Game, store.Keys, error) {
	return store.NewGames(b.pool).Create(ctx, name, "UTC")
}

// eval feeds a simulated game through recommend's intake and runs
// `gamemetrics recommend eval` on it.
func (b *bench) eval(ctx context.Context, days int) error {
	const players, items, seed = 5000, 1000, 1
	g, keys, err := b.newGame(ctx, fmt.Sprintf("eval %d days", days))
	if err != nil {
		return err
	}
	arc, err := archive.Open(ctx, archive.Config{Bucket: b.stack.S3Bucket, Endpoint: b.stack.S3Endpoint, Region: "us-east-1",
		ForcePathStyle: true, AccessKey: devstack.S3AccessKey, SecretKey: devstack.S3SecretKey})
	if err != nil {
		return err
	}
	r := recommend.New(recommend.DefaultConfig(), b.pool, arc, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), nil)
	defer r.Stop(context.Background())
	srv := httptest.NewServer(r)
	defer srv.Close()
	sim := simulation.Generate(simulation.Config{Players: players, Items: items, Days: days, Seed: seed,
		End: time.Now().UTC().Truncate(time.Second), RunID: g.ID + "-"})
	start := time.Now()
	if err := feed(ctx, r, g.ID, sim); err != nil {
		return err
	}
	fed := time.Since(start)
	var csv bytes.Buffer
	simulation.NewCatalogue(items, seed).WriteCSV(&csv)
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v1/games/"+g.ID+"/items", &csv)
	req.Header.Set("Authorization", "Bearer "+keys.Admin)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("PUT items: %s", resp.Status)
	}
	out, took, _, err := b.gm(ctx, "recommend", "eval", "--game", g.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "\n## eval: %d players × %d items, %d days of simulated history (seed %d)\n\n", players, items, days, seed)
	fmt.Fprintf(b.out, "%d events fed through recommend's intake in %s (%.0f events/s, 16 concurrent deliveries)\n", len(sim), fed.Round(time.Millisecond), float64(len(sim))/fed.Seconds())
	fmt.Fprintf(b.out, "$ gamemetrics recommend eval --game %s   # %.1fs\n%s", g.ID, took.Seconds(), out)
	return nil
}

// feed hands the simulated events to recommend as the KafkaSource would.
func feed(ctx context.Context, r *recommend.Recommend, game string, sim []simulation.Event) error {
	ch := make(chan simulation.Event, 256)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 16 {
		wg.Go(func() {
			for se := range ch {
				var e event.Event
				if err := json.Unmarshal(se.JSON(), &e); err != nil {
					panic(err)
				}
				e.SetExtension(events.ExtGameID, game)
				if _, err := r.Handle(ctx, e); err != nil {
					mu.Lock()
					first = errors.Join(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, e := range sim {
		ch <- e
	}
	close(ch)
	wg.Wait()
	return first
}

// seed writes a game of players with tastes over items straight into
// recommend's tables (what intake would have written for their purchases
// and sinks over 28 days), by COPY.
func (b *bench) seed(ctx context.Context, game string, players, items int) (int64, error) {
	cat := simulation.NewCatalogue(items, 2)
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	var irows [][]any
	for _, it := range cat.Items {
		irows = append(irows, []any{game, it.ID, it.Consumable, true, []string{fmt.Sprintf("cluster-%d", it.Cluster)}, it.Price, true})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"recommend_items"},
		[]string{"gameid", "item_id", "consumable", "available", "tags", "price_minor", "from_catalogue"}, pgx.CopyFromRows(irows)); err != nil {
		return 0, err
	}
	platforms := []string{"ios", "android", "web", "windows", "console"}
	countries := []string{"US", "DE", "BR", "JP", "IN", "FR", "GB", "KR"}
	end := time.Now().UTC()
	r := rand.New(rand.NewPCG(3, 4))
	type row struct {
		purchases, sinks, amount int64
		first, last              time.Time
	}
	var total int64
	var batch, segRows [][]any
	flush := func() error {
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"recommend_interactions"},
			[]string{"gameid", "subject", "item_id", "purchases", "amount_minor", "sinks", "views", "first_at", "last_at"}, pgx.CopyFromRows(batch)); err != nil {
			return err
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"recommend_players"},
			[]string{"gameid", "subject", "platform", "country", "segment_at", "segment_id"}, pgx.CopyFromRows(segRows)); err != nil {
			return err
		}
		batch, segRows = batch[:0], segRows[:0]
		return nil
	}
	for p := range players {
		country := r.IntN(len(countries))
		s := cat.Shopper(p, country)
		player := fmt.Sprintf("p%07d", p)
		segRows = append(segRows, []any{game, player, platforms[r.IntN(len(platforms))], countries[country], end, "s"})
		n := 1
		for n < 200 && r.Float64() > 1.0/6 {
			n++
		}
		got := map[string]*row{}
		for range n {
			it := s.Pick(r.Float64() < 0.2)
			at := end.Add(-time.Duration(r.Float64() * float64(28*24*time.Hour)))
			x := got[it.ID]
			if x == nil {
				x = &row{first: at, last: at}
				got[it.ID] = x
			}
			if it.IAP {
				x.purchases++
				x.amount += it.Price
			} else {
				x.sinks++
			}
			if at.Before(x.first) {
				x.first = at
			}
			if at.After(x.last) {
				x.last = at
			}
		}
		for id, x := range got {
			batch = append(batch, []any{game, player, id, x.purchases, x.amount, x.sinks, int64(0), x.first, x.last})
			total++
		}
		if len(batch) >= 50_000 {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	_, err = conn.Exec(ctx, "ANALYZE recommend_interactions")
	return total, err
}

var trainLine = regexp.MustCompile(`trained in ([0-9.]+)s`)

// train times `gamemetrics recommend train --local` on 100,000 × 2,000.
func (b *bench) train(ctx context.Context) error {
	const players, items = 100_000, 2_000
	g, _, err := b.newGame(ctx, "train bench")
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := b.seed(ctx, g.ID, players, items)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "\n## train: %d players × %d items, %d interactions (seeded in %s)\n\n", players, items, n, time.Since(start).Round(time.Second))
	fmt.Fprintln(b.out, "| run | wall time (process) | training (its own report) | peak RSS |")
	fmt.Fprintln(b.out, "|---|---|---|---|")
	var last string
	for i := range b.o.trainRuns {
		out, took, rss, err := b.gm(ctx, "recommend", "train", "--local", "--game", g.ID)
		if err != nil {
			return err
		}
		own := "?"
		if m := trainLine.FindStringSubmatch(out); m != nil {
			own = m[1] + " s"
		}
		fmt.Fprintf(b.out, "| %d | %.1f s | %s | %.0f MiB |\n", i+1, took.Seconds(), own, float64(rss)/(1<<20))
		last = out
	}
	fmt.Fprintf(b.out, "\nlast run:\n%s", last)
	return nil
}

// serve seeds and trains a large game, serves it from its own process and
// loads it with wrk.
func (b *bench) serve(ctx context.Context) error {
	players, items := b.o.servePlayers, b.o.serveItems
	var game, readKey string
	if b.o.serveGame != "" {
		rot, err := store.NewGames(b.pool).RotateKey(ctx, b.o.serveGame, store.ReadKey, 24*time.Hour)
		if err != nil {
			return err
		}
		game, readKey = b.o.serveGame, rot.Key
		fmt.Fprintf(b.out, "\n## serve: game %s of the kept stack\n\n", game)
	} else {
		g, keys, err := b.newGame(ctx, "serve bench")
		if err != nil {
			return err
		}
		game, readKey = g.ID, keys.Read
		start := time.Now()
		n, err := b.seed(ctx, game, players, items)
		if err != nil {
			return err
		}
		fmt.Fprintf(b.out, "\n## serve: %d players × %d items, %d interactions (seeded in %s), game %s\n\n", players, items, n, time.Since(start).Round(time.Second), game)
		args := []string{"recommend", "train", "--local", "--game", game}
		cmd := b.gm
		if b.o.kinds != "" {
			fmt.Fprintf(b.out, "RECOMMEND_KINDS=%s\n", b.o.kinds)
			cmd = func(ctx context.Context, args ...string) (string, time.Duration, int64, error) {
				return b.gmEnv(ctx, []string{"RECOMMEND_KINDS=" + b.o.kinds}, args...)
			}
		}
		out, took, rss, err := cmd(ctx, args...)
		if err != nil {
			return err
		}
		fmt.Fprintf(b.out, "training: %.1f s, peak RSS %.0f MiB\n%s\n", took.Seconds(), float64(rss)/(1<<20), out)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.CommandContext(ctx, b.o.gamemetrics, "serve", "recommend")
	cmd.Env = b.env("PORT="+strconv.Itoa(port), "HOST=127.0.0.1", "LOG_LEVEL=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return errors.New("gamemetrics serve recommend not ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintf(b.out, "serve recommend ready in %s (model loaded from S3)\n", time.Since(deadline.Add(-2*time.Minute)).Round(time.Millisecond))
	// One answer, to show what is measured.
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/games/%s/players/p0000042/recommendations?limit=10", base, game), nil)
	req.Header.Set("Authorization", "Bearer "+readKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	sample, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Fprintf(b.out, "sample answer: %s\n", trim(sample, 300))

	dir, err := os.MkdirTemp("", "bench-recommend-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "recommend.lua")
	lua := fmt.Sprintf(`local players = %d
math.randomseed(os.time())
request = function()
  local p = math.random(0, players - 1)
  return wrk.format("GET", string.format("/v1/games/%s/players/p%%07d/recommendations?limit=10", p), {["Authorization"] = "Bearer %s"})
end
`, players, game, readKey)
	if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
		return err
	}
	// Warm up connections and caches.
	if _, err := b.wrk(ctx, script, base, 4, 3*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "\n| connections | requests/s | p50 | p90 | p99 | non-2xx | in recommend: p99 bucket, share ≤ 10 ms | CPU cores: recommend / wrk | load average |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range b.o.connections {
		before := cpuOf(cmd.Process.Pid)
		hb, err := serverLatency(base)
		if err != nil {
			return err
		}
		t0 := time.Now()
		res, err := b.wrk(ctx, script, base, c, b.o.duration)
		if err != nil {
			return err
		}
		wall := time.Since(t0).Seconds()
		used := (cpuOf(cmd.Process.Pid) - before).Seconds() / wall
		ha, err := serverLatency(base)
		if err != nil {
			return err
		}
		p99, within := ha.since(hb).quantile(0.99, 0.010)
		fmt.Fprintf(b.out, "| %d | %.0f | %s | %s | %s | %d | ≤ %s, %.2f%% | %.2f / %.2f | %s |\n", c, res.rps, res.p50, res.p90, res.p99, res.non2xx,
			p99, 100*within, used, res.cpu.Seconds()/wall, loadAverage())
	}
	return nil
}

// histogram is recommend's own request-duration histogram of the
// recommendations endpoint: cumulative counts by upper bound (seconds).
type histogram struct {
	le    []float64
	count []float64
}

var bucketLine = regexp.MustCompile(`(?m)^gamemetrics_recommend_request_duration_seconds_bucket\{endpoint="recommendations",le="([^"]+)"\} ([0-9.e+]+)$`)

func serverLatency(base string) (histogram, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return histogram{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var h histogram
	for _, m := range bucketLine.FindAllStringSubmatch(string(body), -1) {
		le, _ := strconv.ParseFloat(m[1], 64) // "+Inf" parses as +Inf
		n, _ := strconv.ParseFloat(m[2], 64)
		h.le, h.count = append(h.le, le), append(h.count, n)
	}
	return h, nil
}

func (h histogram) since(before histogram) histogram {
	out := histogram{le: h.le, count: make([]float64, len(h.count))}
	for i := range h.count {
		out.count[i] = h.count[i]
		if i < len(before.count) {
			out.count[i] -= before.count[i]
		}
	}
	return out
}

// quantile returns the upper bound of the bucket holding quantile q, and
// the share of requests answered within limit seconds (a bucket bound).
func (h histogram) quantile(q, limit float64) (string, float64) {
	if len(h.count) == 0 || h.count[len(h.count)-1] == 0 {
		return "?", 0
	}
	total := h.count[len(h.count)-1]
	bound, within := "?", 0.0
	for i, le := range h.le {
		if bound == "?" && h.count[i] >= q*total {
			bound = (time.Duration(le * float64(time.Second))).String()
		}
		if le <= limit {
			within = h.count[i] / total
		}
	}
	return bound, within
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

type wrkResult struct {
	rps           float64
	p50, p90, p99 string
	non2xx        int
	cpu           time.Duration
}

var (
	wrkLatency = regexp.MustCompile(`(?m)^\s+(50|90|99)%\s+(\S+)`)
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+([0-9]+)`)
)

func (b *bench) wrk(ctx context.Context, script, base string, conns int, d time.Duration) (wrkResult, error) {
	threads := min(2, conns)
	cmd := exec.CommandContext(ctx, b.o.wrk, "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", int(d.Seconds())), "--latency", "-s", script, base)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w\n%s", err, out.String())
	}
	var r wrkResult
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	for _, m := range wrkLatency.FindAllStringSubmatch(out.String(), -1) {
		switch m[1] {
		case "50":
			r.p50 = m[2]
		case "90":
			r.p90 = m[2]
		case "99":
			r.p99 = m[2]
		}
	}
	if m := wrkRPS.FindStringSubmatch(out.String()); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := wrkNon2xx.FindStringSubmatch(out.String()); m != nil {
		r.non2xx, _ = strconv.Atoi(m[1])
	}
	if r.p99 == "" {
		return r, fmt.Errorf("wrk output not understood:\n%s", out.String())
	}
	return r, nil
}

// cpuOf is the CPU time a process has used (utime + stime).
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100
}

func trim(b []byte, n int) string {
	s := string(bytes.TrimSpace(b))
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
