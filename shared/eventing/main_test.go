package eventing

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
)

var stack *devstack.Stack

// TestMain starts the real local stack once. Fuzzing workers re-run the
// test binary many times, so under -fuzz the stack is not started and the
// tests that need Kafka are skipped (run them without -fuzz).
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		os.Exit(m.Run())
	}
	os.Exit(devstacktest.Main(m, &stack))
}

func needStack(t *testing.T) {
	t.Helper()
	if stack == nil {
		t.Skip("fuzzing: the local stack is not started; run the tests without -fuzz")
	}
}

// newTopics creates topics of their own for one test.
func newTopics(t testing.TB, partitions int32, n int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var names []string
	base := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	for i := 0; i < n; i++ {
		names = append(names, fmt.Sprintf("%s-%d-%d", base, time.Now().UnixNano(), i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, partitions, -1, nil, names...)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Error(); err != nil {
		t.Fatal(err)
	}
	return names
}

func produce(t testing.TB, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// readTopic reads n records of topic from the start.
func readTopic(t testing.TB, topic string, n int, within time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from %s in %v", len(out), n, topic, within)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// received is one request the test sink got.
type received struct {
	event   *event.Event
	header  http.Header
	attempt int // 1 for the first delivery of this event id
}

// sink is a real HTTP server playing a function: it decodes each request
// as a CloudEvent, records it, and answers what script says.
type sink struct {
	t      testing.TB
	srv    *httptest.Server
	script func(e *event.Event, attempt int) (status int, body string)
	delay  time.Duration

	mu           sync.Mutex
	got          []received
	attempts     map[string]int
	inFlight     map[string]int // by partition
	maxPerPart   int
	total, maxIn int
	changed      chan struct{}
}

func newSink(t testing.TB, script func(e *event.Event, attempt int) (int, string)) *sink {
	s := &sink{t: t, script: script, attempts: map[string]int{}, inFlight: map[string]int{}, changed: make(chan struct{})}
	if s.script == nil {
		s.script = func(*event.Event, int) (int, string) { return http.StatusAccepted, "" }
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	e, err := cehttp.NewEventFromHTTPRequest(r)
	if err != nil {
		s.t.Errorf("sink got a request that is not a CloudEvent: %v", err)
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	part := fmt.Sprint(e.Extensions()[extPartition])
	s.mu.Lock()
	s.attempts[e.ID()]++
	n := s.attempts[e.ID()]
	s.inFlight[part]++
	s.maxPerPart = max(s.maxPerPart, s.inFlight[part])
	s.total++
	s.maxIn = max(s.maxIn, s.total)
	s.mu.Unlock()
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	status, body := s.script(e, n)
	s.mu.Lock()
	s.inFlight[part]--
	s.total--
	s.got = append(s.got, received{event: e, header: r.Header.Clone(), attempt: n})
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// waitFor waits until cond holds over what the sink received.
func (s *sink) waitFor(within time.Duration, what string, cond func(got []received) bool) []received {
	s.t.Helper()
	deadline := time.After(within)
	for {
		s.mu.Lock()
		got := slices.Clone(s.got)
		ch := s.changed
		s.mu.Unlock()
		if cond(got) {
			return got
		}
		select {
		case <-ch:
		case <-deadline:
			s.t.Fatalf("waited %v for %s; the sink got %d requests", within, what, len(got))
		}
	}
}

func (s *sink) snapshot() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func distinctIDs(got []received) map[string]int {
	ids := map[string]int{}
	for _, r := range got {
		ids[r.event.ID()]++
	}
	return ids
}

// manifestDir writes YAML documents into a fresh manifest directory.
func manifestDir(t testing.TB, docs ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "eventing.yaml"), []byte(strings.Join(docs, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// kafkaSourceYAML is a KafkaSource reading topic into the Service "fn",
// dead-lettering to the KafkaSink "dlq" when dlq is set.
func kafkaSourceYAML(name, topic, ordering string, retry int, backoff string, dlq bool) string {
	y := fmt.Sprintf(`apiVersion: sources.knative.dev/v1beta1
kind: KafkaSource
metadata:
  name: %s
  labels: {kafkasources.sources.knative.dev/key-type: string}
spec:
  consumerGroup: %s-group
  bootstrapServers: [ignored:9092]
  topics: [%s]
  initialOffset: earliest
  ordering: %s
  delivery:
    retry: %d
    backoffPolicy: exponential
    backoffDelay: %s
    timeout: PT5S
`, name, topic, topic, ordering, retry, backoff)
	if dlq {
		y += `    deadLetterSink:
      ref: {apiVersion: eventing.knative.dev/v1alpha1, kind: KafkaSink, name: dlq}
`
	}
	return y + `  sink:
    ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: fn}
`
}

func kafkaSinkYAML(topic string) string {
	return fmt.Sprintf(`apiVersion: eventing.knative.dev/v1alpha1
kind: KafkaSink
metadata: {name: dlq}
spec:
  topic: %s
  bootstrapServers: [ignored:9092]
  contentMode: binary
`, topic)
}

// startRuntime builds and starts a runtime on dir whose Service "fn" is
// the sink; Cleanup stops it if the test did not.
func startRuntime(t testing.TB, dir string, s *sink, tune func(*Config)) *Runtime {
	t.Helper()
	cfg := Config{
		Dir:            dir,
		Brokers:        stack.KafkaBrokers,
		Services:       map[string]string{"fn": s.srv.URL},
		Log:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Registerer:     prometheus.NewRegistry(),
		CommitInterval: 100 * time.Millisecond,
		PingJitter:     -1,
	}
	if tune != nil {
		tune(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r.Stop(ctx)
	})
	return r
}

func stop(t testing.TB, r *Runtime, grace time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	_ = r.Stop(ctx) // past grace it reports the deadline, which some tests want
}

func itoa(i int) string { return strconv.Itoa(i) }
