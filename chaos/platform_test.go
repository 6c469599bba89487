package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/gamemetrics/gamemetrics/functions"
	"github.com/gamemetrics/gamemetrics/functions/functionstest"
	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
	"github.com/gamemetrics/gamemetrics/shared/store"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

var stack *devstack.Stack

// TestMain starts the real local stack once; a stack that cannot start
// fails the package with the reason (devstacktest never skips).
// go-redis logs every failed dial to stderr; the experiments count them
// through the functions' metrics instead.
func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	toxics.Register("lose_commit_ack", new(loseCommitAck))
	os.Exit(devstacktest.Main(m, &stack))
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// platform is the pipeline of one experiment: every function served over
// HTTP and connected to PostgreSQL and Redis only through toxiproxy, and
// the local eventing runtime delivering gamemetrics.events to process.
type platform struct {
	t       testing.TB
	deps    *functions.Deps
	servers *functionstest.Servers
	game    store.Game
	keys    store.Keys
	log     *slog.Logger
	// db reaches PostgreSQL directly, around the proxy, for the checks.
	db *pgxpool.Pool
	// postgres and redis are the proxies every function connects through.
	postgres, redis *proxy
	// eventing holds the gamemetrics_eventing_* metrics.
	eventing *prometheus.Registry
	// kafka reads the events topic; start is its end offsets when the
	// experiment began.
	kafka *kadm.Client
	start kadm.ListedOffsets
}

// newPlatform builds the pipeline of one experiment; env ("NAME=value")
// overrides what the functions read from the stack's environment.
func newPlatform(t testing.TB, timezone string, env ...string) *platform {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	clients := devstacktest.Connect(t, stack)
	toxi := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	pg := newProxy(t, toxi, "postgres", stack.DatabaseURL)
	rd := newProxy(t, toxi, "redis", stack.RedisURL)
	getenv := func(name string) string {
		switch name {
		case "DATABASE_URL":
			return pg.url
		case "REDIS_URL":
			return rd.url
		}
		for _, kv := range env {
			if k, v, _ := strings.Cut(kv, "="); k == name {
				return v
			}
		}
		return stack.Getenv(name)
	}
	deps := functions.NewDeps(getenv, log)
	t.Cleanup(deps.Close)
	game, keys, err := store.NewGames(clients.Pool).Create(ctx, t.Name(), timezone)
	if err != nil {
		t.Fatal(err)
	}
	reg := telemetry.NewRegistry()
	// The experiments are about ingest, process and report: the platform
	// runs those and the sources feeding them (see PlatformOf).
	servers := functionstest.PlatformOf(t, deps, log, "../eventing/base", stack.KafkaBrokers, reg,
		[]string{serving.Ingest, serving.Process, serving.Report})
	// Heal everything first so the runtime and the draining functions can
	// finish (this cleanup runs before Platform's).
	t.Cleanup(func() {
		pg.heal()
		rd.heal()
	})
	kc, err := kafka.ClientFromEnv(stack.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	p := &platform{t: t, deps: deps, servers: servers, game: game, keys: keys, log: log,
		db: clients.Pool, postgres: pg, redis: rd, eventing: reg, kafka: kadm.NewClient(kc)}
	p.start = p.endOffsets()
	return p
}

// While a broker is down or leaders move, the admin client's metadata can
// name an old leader (NOT_LEADER_FOR_PARTITION, or a broker whose
// connections fail): it is asked again, with fresh metadata, for up to 30 s.
func (p *platform) endOffsets() kadm.ListedOffsets {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ends, err := p.kafka.ListEndOffsets(context.Background(), kafka.TopicEvents)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			return ends
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("end offsets of %s: %v", kafka.TopicEvents, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inKafka is how many records ingest wrote to the events topic since the
// experiment began. It can exceed what ingest acknowledged: a request
// answered 503 because Kafka's acknowledgement came after the produce
// timeout (likely on a loaded machine) may still have been stored, and the
// client's retry then writes the same events again (duplicates process
// recognises by id).
func (p *platform) inKafka() int {
	var n int64
	p.endOffsets().Each(func(o kadm.ListedOffset) {
		from, _ := p.start.Lookup(o.Topic, o.Partition)
		n += o.Offset - from.Offset
	})
	return int(n)
}

// restart stops a function and serves a new one on the same address.
func (p *platform) restart(name string) { p.servers.Restart(name) }

func (p *platform) url(name string) string { return p.servers.URL(name) }

// sendConfig is how the simulated clients of an experiment send.
func (p *platform) sendConfig(seed uint64) simulation.SendConfig {
	return simulation.SendConfig{URL: p.url(serving.Ingest), WriteKey: p.keys.Write, Batch: 50, Concurrency: 4, Seed: seed}
}

// metric sums the samples of a counter or gauge (a histogram's count) in
// reg whose labels include the given name/value pairs.
func metric(reg prometheus.Gatherer, name string, labels ...string) float64 {
	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Histogram != nil:
				total += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return total
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// histogramMean is a histogram's mean observation in reg.
func histogramMean(reg prometheus.Gatherer, name string) float64 {
	families, _ := reg.Gather()
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			h := f.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() > 0 {
				return h.GetSampleSum() / float64(h.GetSampleCount())
			}
		}
	}
	return 0
}

// processed is a process metric of its current incarnation.
func (p *platform) processed(outcome string) int {
	return int(metric(p.servers.Get(serving.Process).Metrics, "gamemetrics_process_events_total", "outcome", outcome))
}

// waitFor polls cond until it holds, failing with what after within.
func (p *platform) waitFor(what string, within time.Duration, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			p.t.Fatalf("after %s: still waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stored counts the game's rows in events and event_ids, read directly
// from PostgreSQL.
func (p *platform) stored(ctx context.Context) (events, ids int) {
	p.t.Helper()
	err := p.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM events WHERE gameid = $1), (SELECT count(*) FROM event_ids WHERE gameid = $1)`,
		p.game.ID).Scan(&events, &ids)
	if err != nil {
		p.t.Fatalf("count stored events: %v", err)
	}
	return events, ids
}

// assertStoredOnce checks that each of the unique events is stored exactly
// once: as many raw rows and idempotency keys as distinct event ids, and
// as many "new" outcomes in process as well.
func (p *platform) assertStoredOnce(evs []simulation.Event) {
	p.t.Helper()
	unique := map[string]bool{}
	for _, e := range evs {
		unique[e.ID] = true
	}
	events, ids := p.stored(context.Background())
	if events != len(unique) || ids != len(unique) {
		p.t.Errorf("PostgreSQL holds %d events and %d event ids, want exactly %d of each", events, ids, len(unique))
	}
}

// reader reads the report API with the game's read key.
func (p *platform) reader() simulation.Reader {
	return simulation.Reader{BaseURL: p.url(serving.Report), Game: p.game.ID, ReadKey: p.keys.Read}
}

// get reads a report API path with the read key; the status is returned
// with the decoded body.
func (p *platform) get(ctx context.Context, path string, v any) (int, error) {
	return p.reader().Get(ctx, path, v)
}

// waitForTruth polls the report API until it agrees with the truth exactly.
func (p *platform) waitForTruth(truth simulation.Truth, within time.Duration) {
	p.t.Helper()
	functionstest.WaitForTruth(p.t, p.reader(), truth, within)
}

// proxy is one toxiproxy proxy in front of a stack server. The toxiproxy
// server runs in the test process; its proxies and toxics are the same
// values its HTTP API creates.
type proxy struct {
	t     testing.TB
	p     *toxiproxy.Proxy
	url   string // the server's URL with the proxy's address
	toxic []string
}

func newProxy(t testing.TB, srv *toxiproxy.ApiServer, name, serverURL string) *proxy {
	t.Helper()
	u, err := url.Parse(serverURL)
	if err != nil || u.Host == "" {
		t.Fatalf("toxiproxy for %s: cannot find the host in %q: %v", name, serverURL, err)
	}
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", u.Host)
	if err := srv.Collection.Add(p, true); err != nil {
		t.Fatalf("toxiproxy: start the %s proxy to %s: %v", name, u.Host, err)
	}
	t.Cleanup(func() { srv.Collection.Remove(name) })
	u.Host = p.Listen
	return &proxy{t: t, p: p, url: u.String()}
}

// add puts a toxic on the proxy, such as
// add("slow", "latency", "downstream", map[string]any{"latency": 75}).
func (x *proxy) add(name, typ, stream string, attributes map[string]any) {
	x.t.Helper()
	b, _ := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "attributes": attributes})
	if _, err := x.p.Toxics.AddToxicJson(bytes.NewReader(b)); err != nil {
		x.t.Fatalf("toxiproxy %s: add %s toxic %s: %v", x.p.Name, typ, name, err)
	}
	x.toxic = append(x.toxic, name)
}

// remove takes a toxic off the proxy.
func (x *proxy) remove(name string) {
	x.t.Helper()
	if err := x.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
		x.t.Fatalf("toxiproxy %s: remove toxic %s: %v", x.p.Name, name, err)
	}
	x.toxic = removeName(x.toxic, name)
}

// disable closes the proxy's listener and every connection through it, as
// if the server were gone: new connections are refused.
func (x *proxy) disable() { x.p.Stop() }

// enable listens again on the same address.
func (x *proxy) enable() {
	x.t.Helper()
	if x.p.Enabled {
		return
	}
	if err := x.p.Start(); err != nil {
		x.t.Fatalf("toxiproxy %s: enable again on %s: %v", x.p.Name, x.p.Listen, err)
	}
}

// heal removes every toxic and enables the proxy.
func (x *proxy) heal() {
	for _, name := range x.toxic {
		x.p.Toxics.RemoveToxic(context.Background(), name)
	}
	x.toxic = nil
	if !x.p.Enabled {
		x.p.Start()
	}
}

func removeName(names []string, name string) []string {
	out := names[:0]
	for _, n := range names {
		if n != name {
			out = append(out, n)
		}
	}
	return out
}

// loseCommitAck is a toxic for the downstream (server to client) stream of
// a PostgreSQL connection: when the server's answer holds the
// CommandComplete of a COMMIT, it drops it and closes the connection. The
// transaction is committed; the client only sees its connection die and
// cannot know. Every commit made while it is active is such a commit.
type loseCommitAck struct{}

// commitComplete is the CommandComplete message of COMMIT: 'C', its length
// (4 + len("COMMIT\x00") = 11) and the tag.
var commitComplete = append([]byte{'C', 0, 0, 0, 11}, "COMMIT\x00"...)

func (*loseCommitAck) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil || bytes.Contains(c.Data, commitComplete) {
				stub.Close()
				return
			}
			stub.Output <- c
		}
	}
}
