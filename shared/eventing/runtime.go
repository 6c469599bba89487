// Package eventing is the local Knative eventing runtime: it reads the same
// KafkaSource, PingSource and KafkaSink manifests production applies
// (eventing/base) and delivers events the way Knative's data planes do, so
// `gamemetrics dev` and the end-to-end tests exercise the real wiring.
//
// A KafkaSource becomes a franz-go consumer group that POSTs every record
// to its sink as a binary-mode CloudEvent (records that already are
// CloudEvents pass through, others become dev.knative.kafka.event),
// ordered (one in flight per partition) or unordered (up to MaxInFlight),
// retrying 5xx/404/408/409/429 and transport errors with the manifest's
// backoff, sending other failures to the dead-letter sink, and committing
// every finished record, lost or not. A PingSource fires on its cron
// schedule in its timezone. Sinks that reference a Knative Service resolve
// through Config.Services; sinks that reference a KafkaSink produce to its
// topic on the local cluster.
package eventing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // PingSource time zones must not depend on the host's zoneinfo

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is everything the runtime depends on.
type Config struct {
	// Dir holds the manifests (default "eventing/base").
	Dir string
	// Namespace is used for resources that neither the file nor the
	// kustomization places in one (default "gamemetrics").
	Namespace string
	// Brokers are the Kafka seed brokers. The manifests' bootstrapServers
	// name the production cluster and are not used.
	Brokers []string
	// KafkaOpts are extra client options (TLS, SASL, ...) for every Kafka
	// client the runtime makes.
	KafkaOpts []kgo.Opt
	// Services maps a Knative Service name to the base URL its function
	// listens on locally, such as "process" → "http://127.0.0.1:8082".
	Services map[string]string
	// HTTPClient sends events. The default keeps enough idle connections
	// per host for MaxInFlight deliveries and sets no overall timeout (the
	// delivery spec's timeout bounds each request).
	HTTPClient *http.Client
	// Log receives the runtime's logs (default: discarded).
	Log *slog.Logger
	// Registerer gets the gamemetrics_eventing_* metrics (default: none).
	Registerer prometheus.Registerer
	// MaxInFlight bounds the deliveries in flight of each consumer of an
	// unordered KafkaSource (default 100, like Knative's unordered
	// dispatcher). Ordered sources have one in flight per partition.
	MaxInFlight int
	// CommitInterval is how often finished offsets are committed (default
	// 1s). Offsets are also committed when partitions are revoked and when
	// the runtime stops.
	CommitInterval time.Duration
	// PingJitter is the random delay added to each PingSource tick
	// (default 500ms like Knative; negative means none).
	PingJitter time.Duration
	// Only, when set, runs just the sources whose sink is one of these
	// Services (every manifest is still loaded and checked). A test of some
	// functions runs the sources that feed them and not, beside them on the
	// same CPUs, consumers that production runs in other pods.
	Only []string
}

// Runtime runs the sources of a manifest directory.
type Runtime struct {
	cfg       Config
	manifests *Manifests
	metrics   *metrics
	log       *slog.Logger
	kafka     []*kafkaSource
	pings     map[string]*pingSource
	topics    []string // every topic the sources read or the sinks write

	producerMu sync.Mutex
	producer   *kgo.Client

	mu       sync.Mutex
	started  bool
	stopped  bool
	pingStop context.CancelFunc
	pingDctx context.Context
	pingDcan context.CancelFunc
	pingWG   sync.WaitGroup
}

// New loads and validates the manifests in cfg.Dir and resolves every sink.
// A manifest the runtime does not understand, or a sink it cannot resolve,
// is an error here, before anything runs.
func New(cfg Config) (*Runtime, error) {
	if cfg.Dir == "" {
		cfg.Dir = "eventing/base"
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "gamemetrics"
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 100
	}
	if cfg.CommitInterval <= 0 {
		cfg.CommitInterval = time.Second
	}
	if cfg.PingJitter == 0 {
		cfg.PingJitter = 500 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        4 * cfg.MaxInFlight,
			MaxIdleConnsPerHost: 2 * cfg.MaxInFlight,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	m, err := Load(cfg.Dir, cfg.Namespace)
	if err != nil {
		return nil, err
	}
	reg := cfg.Registerer
	met, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("eventing metrics: %w", err)
	}
	r := &Runtime{cfg: cfg, manifests: m, metrics: met, log: cfg.Log.With("component", "eventing"), pings: map[string]*pingSource{}}
	topics := map[string]bool{}
	sinks := map[string]*KafkaSink{}
	for i := range m.KafkaSinks {
		s := &m.KafkaSinks[i]
		sinks[s.Metadata.Namespace+"/"+s.Metadata.Name] = s
	}
	var errs []error
	for _, s := range m.KafkaSources {
		if !r.runs(s.Spec.Sink) {
			continue
		}
		ks, err := r.newKafkaSource(s, sinks)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s %s: %w", s.Origin, kindKafkaSource, s.Metadata.Name, err))
			continue
		}
		for _, t := range ks.topics {
			topics[t] = true
		}
		r.kafka = append(r.kafka, ks)
	}
	for _, s := range m.PingSources {
		if !r.runs(s.Spec.Sink) {
			continue
		}
		sink, err := r.resolve("spec.sink", s.Spec.Sink, s.Metadata.Namespace, sinks)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s %s: %w", s.Origin, kindPingSource, s.Metadata.Name, err))
			continue
		}
		p := newPingSource(s, sink)
		p.metrics, p.log = met, r.log.With("kind", kindPingSource, "name", p.name)
		p.jitter = max(cfg.PingJitter, 0)
		r.pings[p.name] = p
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, s := range m.KafkaSinks {
		topics[s.Spec.Topic] = true
	}
	for t := range topics {
		r.topics = append(r.topics, t)
	}
	sort.Strings(r.topics)
	return r, nil
}

// runs reports whether a source delivering to d runs under cfg.Only.
func (r *Runtime) runs(d *Destination) bool {
	if len(r.cfg.Only) == 0 {
		return true
	}
	return d != nil && d.Ref != nil && d.Ref.Kind == "Service" && slices.Contains(r.cfg.Only, d.Ref.Name)
}

func (r *Runtime) newKafkaSource(s KafkaSource, sinks map[string]*KafkaSink) (*kafkaSource, error) {
	ns := s.Metadata.Namespace
	sink, err := r.resolve("spec.sink", s.Spec.Sink, ns, sinks)
	if err != nil {
		return nil, err
	}
	ks := &kafkaSource{
		name:        s.Metadata.Name,
		namespace:   ns,
		group:       s.Spec.ConsumerGroup,
		topics:      s.Spec.Topics,
		atStart:     s.Spec.InitialOffset == "earliest",
		ordered:     s.Spec.Ordering != "unordered",
		maxInFlight: r.cfg.MaxInFlight,
		commitEvery: r.cfg.CommitInterval,
		consumers:   1,
		sink:        sink,
		policy:      policyFor(s.Spec.Delivery),
		envelope: envelope{
			source:  fmt.Sprintf("/apis/v1/namespaces/%s/kafkasources/%s", ns, s.Metadata.Name),
			keyType: s.Metadata.Labels[labelKeyType],
		},
		metrics: r.metrics,
		log:     r.log.With("kind", kindKafkaSource, "name", s.Metadata.Name),
	}
	if ks.group == "" {
		// Knative generates knative-kafka-source-<uid> once; locally the
		// group must survive restarts, so it is derived from the name.
		ks.group = "knative-kafka-source-" + ns + "-" + s.Metadata.Name
	}
	if s.Spec.Consumers != nil {
		ks.consumers = int(*s.Spec.Consumers)
	}
	if s.Spec.CEOverrides != nil {
		ks.envelope.overrides = s.Spec.CEOverrides.Extensions
	}
	if d := s.Spec.Delivery; d != nil && d.DeadLetterSink != nil {
		if ks.dls, err = r.resolve("spec.delivery.deadLetterSink", d.DeadLetterSink, ns, sinks); err != nil {
			return nil, err
		}
	}
	return ks, nil
}

// resolve turns a destination into a target.
func (r *Runtime) resolve(path string, d *Destination, ns string, sinks map[string]*KafkaSink) (target, error) {
	if d.URI != "" {
		return &httpTarget{url: d.URI, namespace: ns, client: r.cfg.HTTPClient}, nil
	}
	ref := d.Ref
	refNS := ns
	if ref.Namespace != "" {
		refNS = ref.Namespace
	}
	switch {
	case ref.APIVersion == apiServing && ref.Kind == kindService:
		if refNS != ns {
			return nil, fmt.Errorf("%s.ref: Service %s/%s is in another namespace; the runtime resolves Services of %s only", path, refNS, ref.Name, ns)
		}
		u, ok := r.cfg.Services[ref.Name]
		if !ok {
			known := make([]string, 0, len(r.cfg.Services))
			for n := range r.cfg.Services {
				known = append(known, n)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("%s.ref: Service %s has no local URL (known Services: %s)", path, ref.Name, strings.Join(known, ", "))
		}
		return &httpTarget{url: u, namespace: ns, client: r.cfg.HTTPClient}, nil
	case ref.APIVersion == apiEventingAlpha && ref.Kind == kindKafkaSink:
		s, ok := sinks[refNS+"/"+ref.Name]
		if !ok {
			return nil, fmt.Errorf("%s.ref: KafkaSink %s/%s is not declared in the manifests", path, refNS, ref.Name)
		}
		return &kafkaTarget{name: s.Metadata.Name, namespace: refNS, topic: s.Spec.Topic,
			structured: s.Spec.ContentMode != "binary", producer: r.producerClient}, nil
	default:
		return nil, fmt.Errorf("%s.ref: %s %s %s cannot be resolved locally (the runtime resolves %s Service and %s KafkaSink)",
			path, ref.APIVersion, ref.Kind, ref.Name, apiServing, apiEventingAlpha)
	}
}

// producerClient is the Kafka producer KafkaSinks write through, made on
// first use.
func (r *Runtime) producerClient() (*kgo.Client, error) {
	r.producerMu.Lock()
	defer r.producerMu.Unlock()
	if r.producer != nil {
		return r.producer, nil
	}
	opts, err := r.kafkaOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return nil, err
	}
	r.producer = cl
	return cl, nil
}

// kafkaOpts are the options every Kafka client of the runtime starts from.
func (r *Runtime) kafkaOpts() ([]kgo.Opt, error) {
	if len(r.cfg.Brokers) == 0 && len(r.cfg.KafkaOpts) == 0 {
		return nil, errors.New("eventing runtime: no Kafka brokers configured (Config.Brokers or kgo.SeedBrokers in Config.KafkaOpts)")
	}
	var opts []kgo.Opt
	if len(r.cfg.Brokers) > 0 {
		opts = append(opts, kgo.SeedBrokers(r.cfg.Brokers...))
	}
	return append(opts, r.cfg.KafkaOpts...), nil
}

func (r *Runtime) closeProducer() {
	r.producerMu.Lock()
	defer r.producerMu.Unlock()
	if r.producer != nil {
		r.producer.Close()
		r.producer = nil
	}
}

// Manifests returns what the runtime loaded.
func (r *Runtime) Manifests() *Manifests { return r.manifests }

// Start checks that every topic the manifests use exists, then starts the
// consumer groups and the PingSource schedules in the background. ctx
// bounds the start only; Stop ends the runtime.
func (r *Runtime) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return errors.New("eventing runtime already started")
	}
	if len(r.topics) > 0 {
		if err := r.checkTopics(ctx); err != nil {
			return err
		}
	}
	r.started = true
	base, err := r.kafkaOpts()
	if err != nil && len(r.kafka) > 0 {
		return err
	}
	for i, ks := range r.kafka {
		if err := ks.start(base); err != nil {
			for _, started := range r.kafka[:i] {
				started.stop(ctx)
			}
			r.started = false
			return fmt.Errorf("%s %s: %w", kindKafkaSource, ks.name, err)
		}
		r.log.Info("KafkaSource started", "name", ks.name, "topics", ks.topics, "group", ks.group,
			"ordered", ks.ordered, "consumers", ks.consumers, "sink", ks.sink.String())
	}
	var pctx context.Context
	pctx, r.pingStop = context.WithCancel(context.Background())
	r.pingDctx, r.pingDcan = context.WithCancel(context.Background())
	for _, p := range r.pings {
		r.pingWG.Add(1)
		go func() {
			defer r.pingWG.Done()
			p.run(pctx, r.pingDctx, time.Now)
		}()
		r.log.Info("PingSource started", "name", p.name, "next", p.schedule.Next(time.Now()), "sink", p.sink.String())
	}
	return nil
}

func (r *Runtime) checkTopics(ctx context.Context) error {
	opts, err := r.kafkaOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	details, err := kadm.NewClient(cl).ListTopics(ctx, r.topics...)
	if err != nil {
		return fmt.Errorf("eventing runtime: list topics: %w", err)
	}
	var missing []string
	for _, t := range r.topics {
		if d, ok := details[t]; !ok || d.Err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("eventing runtime: topics %s do not exist (the sources read them or the KafkaSinks write them)", strings.Join(missing, ", "))
	}
	return nil
}

// Stop stops fetching and scheduling, lets deliveries in flight finish
// until ctx ends (those still running then are canceled and, for Kafka
// records, delivered again after a restart), commits offsets and leaves
// the consumer groups.
func (r *Runtime) Stop(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started || r.stopped {
		r.closeProducer() // Ping may have made one without Start
		return nil
	}
	r.stopped = true
	var wg sync.WaitGroup
	for _, ks := range r.kafka {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ks.stop(ctx)
		}()
	}
	r.pingStop()
	done := make(chan struct{})
	go func() { r.pingWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		r.pingDcan()
		<-done
	}
	r.pingDcan()
	wg.Wait()
	r.closeProducer()
	r.log.Info("eventing runtime stopped")
	return ctx.Err()
}

// Run starts the runtime, waits for ctx to end and stops it, giving
// deliveries in flight up to grace to finish.
func (r *Runtime) Run(ctx context.Context, grace time.Duration) error {
	if err := r.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	return r.Stop(sctx)
}

// Ping fires the PingSource name now, as its schedule would, and returns
// once the event was delivered or dropped after its retries. Operators and
// tests use it to trigger retention or reports without waiting for cron.
// It works whether or not the runtime is started.
func (r *Runtime) Ping(ctx context.Context, name string) error {
	p, ok := r.pings[name]
	if !ok {
		names := make([]string, 0, len(r.pings))
		for n := range r.pings {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("no PingSource %q (have: %s)", name, strings.Join(names, ", "))
	}
	return p.fire(ctx)
}

// PingSources lists the PingSource names and their next tick after now.
func (r *Runtime) PingSources(now time.Time) map[string]time.Time {
	out := make(map[string]time.Time, len(r.pings))
	for n, p := range r.pings {
		out[n] = p.schedule.Next(now)
	}
	return out
}
