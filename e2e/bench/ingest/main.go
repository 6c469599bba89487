// Command ingest measures the ingest write path the way a game backend would
// load it: `gamemetrics serve ingest` runs as its own process against the
// local stack, and vegeta (another process) sends HTTP load. It reports
// single-event requests/s, events/s in batches of 100, and p99 latency at
// half the maximum single-event rate, and it checks that every 202 is backed
// by records in Kafka.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
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
	gamemetrics string
	vegeta      string
	duration    time.Duration
	workers     int
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.gamemetrics, "gamemetrics", "bin/gamemetrics", "path to the gamemetrics binary")
	fs.StringVar(&o.vegeta, "vegeta", "bin/vegeta", "path to the vegeta binary")
	fs.DurationVar(&o.duration, "duration", 15*time.Second, "length of each load phase")
	fs.IntVar(&o.workers, "workers", 128, "vegeta workers (concurrent connections) at maximum rate")
	if err := fs.Parse(args); err != nil {
		return err
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

	url, pid, stop, err := startIngest(ctx, o.gamemetrics, stack)
	if err != nil {
		return err
	}
	defer stop()
	dir, err := os.MkdirTemp("", "bench-ingest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	single, batch, err := writeTargets(dir, url, keys.Write)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// Warm up connections, caches and the producer.
	if _, _, err := attackCPU(ctx, o, single, 2000, 3*time.Second); err != nil {
		return err
	}

	type phase struct {
		name         string
		targets      string
		rate         int
		perRequest   int
		report       report
		acknowledged int64
		cpu          cpuShare
	}
	phases := []*phase{
		{name: "single events, max rate", targets: single, perRequest: 1},
		{name: "batches of 100, max rate", targets: batch, perRequest: 100},
		{name: "single events, half max rate", targets: single, perRequest: 1},
	}
	for i, p := range phases {
		if i == 2 {
			p.rate = int(phases[0].report.Throughput / 2)
		}
		before, err := totalOffsets(ctx, adm)
		if err != nil {
			return err
		}
		cpuBefore := sampleCPU(pid)
		start := time.Now()
		var vegetaCPU time.Duration
		if p.report, vegetaCPU, err = attackCPU(ctx, o, p.targets, p.rate, o.duration); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		p.cpu = sampleCPU(pid).since(cpuBefore, vegetaCPU, time.Since(start))
		after, err := totalOffsets(ctx, adm)
		if err != nil {
			return err
		}
		p.acknowledged = after - before
	}

	fmt.Fprintf(stdout, "\ningest benchmark (%s per phase, %d vegeta workers, ingest and vegeta as separate processes, kfake 3 brokers acks=all)\n\n", o.duration, o.workers)
	fmt.Fprintln(stdout, "| phase | requests/s | events/s | p50 | p99 | 202s | events in Kafka | CPU cores: ingest / vegeta / kfake+stack |")
	fmt.Fprintln(stdout, "|---|---|---|---|---|---|---|---|")
	var problems []error
	for _, p := range phases {
		accepted := p.report.StatusCodes["202"]
		fmt.Fprintf(stdout, "| %s | %.0f | %.0f | %s | %s | %d/%d | %d | %.2f / %.2f / %.2f |\n", p.name, p.report.Throughput,
			p.report.Throughput*float64(p.perRequest), time.Duration(p.report.Latencies.P50).Round(10*time.Microsecond),
			time.Duration(p.report.Latencies.P99).Round(10*time.Microsecond), accepted, p.report.Requests, p.acknowledged,
			p.cpu.ingest, p.cpu.vegeta, p.cpu.self)
		if want := accepted * int64(p.perRequest); p.acknowledged < want {
			problems = append(problems, fmt.Errorf("%s: %d events answered 202 but only %d records reached Kafka", p.name, want, p.acknowledged))
		}
	}
	fmt.Fprintf(stdout, "\nAll processes share this machine's %d cores; ingest's own CPU per request is the number to scale by.\n", runtime.NumCPU())
	for _, p := range phases[:2] {
		if p.cpu.ingest > 0 {
			fmt.Fprintf(stdout, "%s: ingest used %.2f cores, i.e. %.0f events/s per ingest core\n", p.name, p.cpu.ingest,
				p.report.Throughput*float64(p.perRequest)/p.cpu.ingest)
		}
	}
	return errors.Join(problems...)
}

// cpuSample is CPU time consumed so far by ingest and by this process
// (which hosts the kfake cluster and the stack's in-process parts).
type cpuSample struct{ ingest, self time.Duration }

// cpuShare is cores used on average during a phase.
type cpuShare struct{ ingest, vegeta, self float64 }

func sampleCPU(pid int) cpuSample {
	var s cpuSample
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name: utime and stime are fields 14 and 15.
		if i := bytes.LastIndexByte(b, ')'); i > 0 {
			f := strings.Fields(string(b[i+2:]))
			if len(f) > 13 {
				ut, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				s.ingest = time.Duration(ut+st) * time.Second / 100 // USER_HZ
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return s
}

func (s cpuSample) since(before cpuSample, vegeta, wall time.Duration) cpuShare {
	w := wall.Seconds()
	return cpuShare{ingest: (s.ingest - before.ingest).Seconds() / w, vegeta: vegeta.Seconds() / w, self: (s.self - before.self).Seconds() / w}
}

// startIngest runs `gamemetrics serve ingest` on a free port.
func startIngest(ctx context.Context, bin string, stack *devstack.Stack) (string, int, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", 0, nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.CommandContext(ctx, bin, "serve", "ingest")
	cmd.Env = append(os.Environ(), stack.Env()...)
	cmd.Env = append(cmd.Env, "PORT="+strconv.Itoa(port), "HOST=127.0.0.1", "LOG_LEVEL=warn", "INGEST_RATE_LIMIT=0")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url + "/", cmd.Process.Pid, stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return "", 0, nil, fmt.Errorf("gamemetrics serve ingest not ready on %s", url)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// vegetaTarget is one line of vegeta's JSON target format.
type vegetaTarget struct {
	Method string              `json:"method"`
	URL    string              `json:"url"`
	Body   string              `json:"body"`
	Header map[string][]string `json:"header"`
}

func writeTargets(dir, url, key string) (single, batch string, err error) {
	ts := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	data := `{"item_id":"gems_100","item_type":"currency_pack","currency":"USD","amount_minor":499,"transaction_id":"t-1"}`
	one := vegetaTarget{Method: "POST", URL: url, Body: base64.StdEncoding.EncodeToString([]byte(data)), Header: map[string][]string{
		"Authorization": {"Bearer " + key}, "Content-Type": {"application/json"}, "Ce-Specversion": {"1.0"},
		"Ce-Id": {"bench-1"}, "Ce-Source": {"/bench"}, "Ce-Type": {"com.gamemetrics.purchase"},
		"Ce-Subject": {"player-1"}, "Ce-Time": {ts},
	}}
	var events []json.RawMessage
	for i := range 100 {
		events = append(events, json.RawMessage(fmt.Sprintf(
			`{"specversion":"1.0","id":"bench-%d","source":"/bench","type":"com.gamemetrics.purchase","subject":"player-%d","time":%q,"datacontenttype":"application/json","data":%s}`,
			i, i%20, ts, data)))
	}
	body, _ := json.Marshal(events)
	many := vegetaTarget{Method: "POST", URL: url, Body: base64.StdEncoding.EncodeToString(body), Header: map[string][]string{
		"Authorization": {"Bearer " + key}, "Content-Type": {"application/cloudevents-batch+json"},
	}}
	single, batch = filepath.Join(dir, "single.json"), filepath.Join(dir, "batch.json")
	for path, t := range map[string]vegetaTarget{single: one, batch: many} {
		b, _ := json.Marshal(t)
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			return "", "", err
		}
	}
	return single, batch, nil
}

// report is the part of `vegeta report -type=json` we use.
type report struct {
	Requests   int64 `json:"requests"`
	Throughput float64
	Latencies  struct {
		P50 int64 `json:"50th"`
		P99 int64 `json:"99th"`
	} `json:"latencies"`
	StatusCodes map[string]int64 `json:"status_codes"`
	Errors      []string         `json:"errors"`
}

// attackCPU runs vegeta at rate requests/s (0 = as fast as the workers go)
// and returns its report and the CPU time vegeta used.
func attackCPU(ctx context.Context, o options, targets string, rate int, d time.Duration) (report, time.Duration, error) {
	args := []string{"attack", "-format=json", "-targets=" + targets, "-duration=" + d.String(), "-timeout=30s", "-keepalive=true"}
	if rate <= 0 {
		args = append(args, "-rate=0", "-max-workers="+strconv.Itoa(o.workers))
	} else {
		args = append(args, "-rate="+strconv.Itoa(rate)+"/s", "-max-workers="+strconv.Itoa(o.workers*4))
	}
	atk := exec.CommandContext(ctx, o.vegeta, args...)
	atk.Stderr = os.Stderr
	var results bytes.Buffer
	atk.Stdout = &results
	if err := atk.Run(); err != nil {
		return report{}, 0, fmt.Errorf("vegeta attack: %w", err)
	}
	cpu := atk.ProcessState.UserTime() + atk.ProcessState.SystemTime()
	rep := exec.CommandContext(ctx, o.vegeta, "report", "-type=json")
	rep.Stdin = &results
	out, err := rep.Output()
	if err != nil {
		return report{}, 0, fmt.Errorf("vegeta report: %w", err)
	}
	var r report
	if err := json.Unmarshal(out, &r); err != nil {
		return report{}, 0, err
	}
	// vegeta's throughput counts successful (2xx) requests per second.
	var raw struct {
		Throughput float64 `json:"throughput"`
	}
	json.Unmarshal(out, &raw)
	r.Throughput = raw.Throughput
	if len(r.Errors) > 0 {
		slog.Warn("vegeta saw errors", "errors", r.Errors)
	}
	return r, cpu, nil
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
