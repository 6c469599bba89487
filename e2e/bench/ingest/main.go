// Command ingest measures the ingest write path against the cost of HTTP
// itself: `gamemetrics serve ingest` runs as its own process against the
// local stack (kfake with 3 brokers, acks=all), and a plain net/http server
// that reads the body and answers 202 runs beside it. wrk loads each in
// turn with the same requests, rounds alternating, so both are measured in
// the same minutes of a shared machine. It reports requests/s, events/s,
// p50/p99 and the ratio to net/http for single binary-mode events,
// structured events and batches of 100, then p99 at half the maximum
// single-event rate, and it checks that every 202 is backed by records in
// Kafka.
//
// By default the server under test (ingest or net/http) gets half of the
// CPUs and everything else (wrk, kfake, PostgreSQL, Redis, this program)
// the other half, so the load generator and the Kafka cluster do not take
// CPU from the server they measure; -server-cpus and -load-cpus change the
// split and -pin=false turns it off.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench ingest:", err)
		os.Exit(1)
	}
}

type options struct {
	gamemetrics     string
	wrk             string
	duration        time.Duration
	rounds          int
	connections     int
	rateConnections int
	pin             bool
	serverCPUs      string
	loadCPUs        string
	wrkThreads      int
	rateLimit       int64
	modes           string
	profileDir      string
	pprofAddr       string
	serveBaseline   string
}

// mode is one kind of request the benchmark sends.
type mode struct {
	name       string
	perRequest int
	req        request
}

// round is one wrk run against one server.
type round struct {
	mode   string
	server string
	n      int
	res    wrkResult
	cpu    time.Duration
	// self is this program's CPU time in the round: kfake's, mostly.
	self time.Duration
	// kafka is how many records reached gamemetrics.events during the round.
	kafka int64
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.gamemetrics, "gamemetrics", "bin/gamemetrics", "path to the gamemetrics binary")
	fs.StringVar(&o.wrk, "wrk", "wrk", "path to wrk (Debian package wrk)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each round (whole seconds)")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds per server and mode, alternating ingest and net/http")
	fs.IntVar(&o.connections, "connections", 64, "wrk connections at maximum rate")
	fs.IntVar(&o.rateConnections, "rate-connections", 256, "wrk connections in the fixed-rate phase (enough that one slow answer does not hold up the schedule)")
	fs.BoolVar(&o.pin, "pin", true, "split the CPUs between the server under test and everything else")
	fs.StringVar(&o.serverCPUs, "server-cpus", "", "CPUs of the server under test, as taskset -c takes them (default: the upper half)")
	fs.StringVar(&o.loadCPUs, "load-cpus", "", "CPUs of wrk, kfake, PostgreSQL and Redis (default: the lower half)")
	fs.IntVar(&o.wrkThreads, "wrk-threads", 0, "wrk threads (default: one per load CPU)")
	fs.Int64Var(&o.rateLimit, "rate-limit", 1_000_000_000, "INGEST_RATE_LIMIT for ingest: high enough never to refuse, so the limiter runs but does not limit")
	fs.StringVar(&o.modes, "modes", "single,structured,batch", "which requests to measure")
	fs.StringVar(&o.profileDir, "profile", "", "write a CPU profile of ingest's first round of each mode here (needs a gamemetrics built with -tags pprof)")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "127.0.0.1:6061", "where ingest serves pprof with -profile")
	fs.StringVar(&o.serveBaseline, "serve-baseline", "", "internal: run the net/http baseline server on this address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.serveBaseline != "" {
		return serveBaseline(o.serveBaseline)
	}
	if err := o.placement(); err != nil {
		return err
	}
	if err := pinSelf(o); err != nil {
		return err
	}
	if _, err := exec.LookPath(o.wrk); err != nil {
		return fmt.Errorf("%s not found: install the Debian package wrk (make bench-ingest does)", o.wrk)
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}

	stack, pool, err := devstack.StartMigrated(ctx, devstack.Config{Getenv: os.Getenv, Ephemeral: true})
	if err != nil {
		return fmt.Errorf("local stack: %w", err)
	}
	defer stack.Close()
	defer pool.Close()
	_, keys, err := store.NewGames(pool).Create(ctx, "bench", "UTC")
	if err != nil {
		return err
	}
	ingest, err := startIngest(ctx, o, stack.Env())
	if err != nil {
		return err
	}
	defer ingest.stop()
	baseline, err := startBaseline(ctx, o)
	if err != nil {
		return err
	}
	defer baseline.stop()

	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	dir, err := os.MkdirTemp("", "bench-ingest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var modes []mode
	for _, m := range allModes(keys.Write) {
		if slices.Contains(strings.Split(o.modes, ","), m.name) {
			modes = append(modes, m)
		}
	}
	if len(modes) == 0 {
		return fmt.Errorf("-modes %q: want some of single, structured, batch", o.modes)
	}
	scripts := map[string]string{}
	for _, m := range modes {
		if err := check(ingest.url, m); err != nil {
			return err
		}
		if scripts[m.name], err = script(dir, m.name, m.req, 0, o.wrkThreads); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "ingest benchmark: %s rounds, %d connections, wrk %d thread(s); server under test on CPUs %s, wrk and the stack on CPUs %s\n",
		o.duration, o.connections, o.wrkThreads, orAll(o.serverCPUs), orAll(o.loadCPUs))

	// Warm up connections, caches and the producer.
	for _, s := range []*server{baseline, ingest} {
		if _, err := runWrk(ctx, o, scripts[modes[0].name], s.url, o.connections, 3*time.Second); err != nil {
			return err
		}
	}

	var rounds []round
	measure := func(m mode, s *server, n int, scriptPath string, connections int) (round, error) {
		before, err := totalOffsets(ctx, adm)
		if err != nil {
			return round{}, err
		}
		var prof chan error
		var stopSelf func() error
		if o.profileDir != "" && s == ingest && n == 1 {
			name := strings.NewReplacer(", ", "-", " ", "-").Replace(m.name)
			prof = make(chan error, 1)
			go func() {
				prof <- cpuProfile(o.pprofAddr, filepath.Join(o.profileDir, "ingest-"+name+".pprof"), o.duration-2*time.Second)
			}()
			if stopSelf, err = selfProfile(filepath.Join(o.profileDir, "stack-"+name+".pprof")); err != nil {
				return round{}, err
			}
		}
		cpu, self := s.cpu(), selfCPU()
		res, err := runWrk(ctx, o, scriptPath, s.url, connections, o.duration)
		if err != nil {
			return round{}, fmt.Errorf("%s, %s: %w", m.name, s.name, err)
		}
		r := round{mode: m.name, server: s.name, n: n, res: res, cpu: s.cpu() - cpu, self: selfCPU() - self}
		if prof != nil {
			if err := errors.Join(<-prof, stopSelf()); err != nil {
				return round{}, fmt.Errorf("profile: %w", err)
			}
		}
		time.Sleep(300 * time.Millisecond) // requests cut off by wrk's end finish
		after, err := totalOffsets(ctx, adm)
		if err != nil {
			return round{}, err
		}
		r.kafka = after - before
		return r, nil
	}
	for _, m := range modes {
		for n := 1; n <= o.rounds; n++ {
			// Alternate which server goes first, so a drift of the
			// machine's speed during a pair favours neither.
			order := []*server{baseline, ingest}
			if n%2 == 0 {
				order = []*server{ingest, baseline}
			}
			for _, s := range order {
				r, err := measure(m, s, n, scripts[m.name], o.connections)
				if err != nil {
					return err
				}
				rounds = append(rounds, r)
				fmt.Fprintf(os.Stderr, "%s round %d %s: %.0f requests/s, p99 %s\n", m.name, n, s.name, r.res.rate(), us(r.res.P99US))
			}
		}
	}

	// Fixed rate: half of ingest's maximum single-event rate.
	var paced []round
	var target float64
	if single := ratesOf(rounds, "single", ingest.name); len(single) > 0 {
		target = median(single) / 2
		m := modes[0]
		paced1, err := script(dir, "paced", m.req, target, o.wrkThreads)
		if err != nil {
			return err
		}
		for n := 1; n <= o.rounds; n++ {
			for _, s := range []*server{baseline, ingest} {
				r, err := measure(mode{name: "single, fixed rate", perRequest: 1}, s, n, paced1, o.rateConnections)
				if err != nil {
					return err
				}
				paced = append(paced, r)
				fmt.Fprintf(os.Stderr, "fixed rate %.0f/s round %d %s: %.0f requests/s, p99 %s\n", target, n, s.name, r.res.rate(), us(r.res.P99US))
			}
		}
	}

	perRequest := map[string]int{"single, fixed rate": 1}
	for _, m := range modes {
		perRequest[m.name] = m.perRequest
	}
	report(stdout, o, modes, rounds, paced, target, ingest.name, baseline.name)
	return durable(stdout, append(rounds, paced...), perRequest, ingest.name)
}

// placement fills in the CPU split.
func (o *options) placement() error {
	n := runtime.NumCPU()
	if !o.pin {
		o.serverCPUs, o.loadCPUs = "", ""
	} else if o.serverCPUs == "" && o.loadCPUs == "" {
		if n < 2 {
			return errors.New("pinning needs 2 CPUs or more; use -pin=false")
		}
		o.loadCPUs, o.serverCPUs = cpuRange(0, n/2), cpuRange(n/2, n)
	}
	if o.wrkThreads <= 0 {
		o.wrkThreads = max(1, countCPUs(o.loadCPUs, n))
	}
	return nil
}

func cpuRange(from, to int) string {
	if to-from == 1 {
		return fmt.Sprint(from)
	}
	return fmt.Sprintf("%d-%d", from, to-1)
}

// countCPUs counts the CPUs of a taskset list such as "0", "0-3" or "0,2".
func countCPUs(list string, all int) int {
	if list == "" {
		return all
	}
	n := 0
	for _, part := range strings.Split(list, ",") {
		var a, b int
		if _, err := fmt.Sscanf(part, "%d-%d", &a, &b); err == nil {
			n += b - a + 1
		} else {
			n++
		}
	}
	return n
}

func orAll(cpus string) string {
	if cpus == "" {
		return "any"
	}
	return cpus
}

const purchaseData = `{"item_id":"gems_100","item_type":"currency_pack","currency":"USD","amount_minor":499,"transaction_id":"t-1"}`

func allModes(key string) []mode {
	ts := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	auth := [2]string{"Authorization", "Bearer " + key}
	structured := func(i int) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":"bench-%d","source":"/bench","type":"com.gamemetrics.purchase","subject":"player-%d","time":%q,"datacontenttype":"application/json","data":%s}`,
			i, i%20, ts, purchaseData)
	}
	batch := make([]json.RawMessage, 100)
	for i := range batch {
		batch[i] = json.RawMessage(structured(i))
	}
	batchBody, _ := json.Marshal(batch)
	return []mode{
		{name: "single", perRequest: 1, req: request{body: []byte(purchaseData), headers: [][2]string{auth,
			{"Content-Type", "application/json"}, {"Ce-Specversion", "1.0"}, {"Ce-Id", "bench-1"}, {"Ce-Source", "/bench"},
			{"Ce-Type", "com.gamemetrics.purchase"}, {"Ce-Subject", "player-1"}, {"Ce-Time", ts}}}},
		{name: "structured", perRequest: 1, req: request{body: []byte(structured(1)), headers: [][2]string{auth,
			{"Content-Type", "application/cloudevents+json"}}}},
		{name: "batch", perRequest: 100, req: request{body: batchBody, headers: [][2]string{auth,
			{"Content-Type", "application/cloudevents-batch+json"}}}},
	}
}

// check sends one request of m and wants every event accepted, so the
// rounds measure the path that writes to Kafka, not a refusal.
func check(url string, m mode) error {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(m.req.body))
	for _, h := range m.req.headers {
		req.Header.Set(h[0], h[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Accepted int `json:"accepted"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); resp.StatusCode != http.StatusAccepted || err != nil || body.Accepted != m.perRequest {
		return fmt.Errorf("%s request: ingest answered %d %s, want 202 with %d accepted", m.name, resp.StatusCode, b, m.perRequest)
	}
	return nil
}

func cpuProfile(addr, path string, d time.Duration) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, max(1, int(d.Seconds()))))
	if err != nil {
		return fmt.Errorf("%w (is gamemetrics built with -tags pprof?)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof answered %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// selfCPU is the CPU time this process (kfake, the stack's Go parts) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// selfProfile profiles this process (kfake, mostly) until the returned
// function is called.
func selfProfile(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error { pprof.StopCPUProfile(); return f.Close() }, nil
}

func totalOffsets(ctx context.Context, adm *kadm.Client) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, kafka.TopicEvents)
	if err != nil {
		return 0, err
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	return total, nil
}
