// Package process turns the event stream into exact game aggregates. It is
// fed either by a Knative KafkaSource (one HTTP delivery per event, binary
// mode, at least once, possibly out of order and concurrently) or directly
// from Kafka by Consumer. Either way events go through one batch writer:
// concurrent deliveries are grouped into one PostgreSQL transaction, and a
// delivery is acknowledged only after its batch has committed.
//
// Exactness rules (see shared/store/migrations/0002_process.sql):
//   - an event counts once: (gameid, id) is recorded in event_ids in the same
//     transaction as every aggregate it changes, and only new ids change
//     counters;
//   - player and session state is merged with min/max, so it does not depend
//     on delivery order; rollups derived from that state are moved with
//     deltas computed under a row lock;
//   - daily buckets are calendar days in the game's time zone
//     (games.timezone), hourly buckets are UTC hours;
//   - a session is (gameid, subject, sessionid); it began at its earliest
//     session.start (or earliest event if none); its length is the length_s
//     of its session.end if one reported it, else latest event − begin; it
//     is closed once it has a session.end or 30 minutes without events.
//
// Events of a player erased by retain (table erasures) that ingest received
// before the erasure began are acknowledged and not stored, so a backlog or
// a retry cannot bring an erased player back.
//
// PostgreSQL is the truth. The Redis live view is updated after each commit;
// a Redis failure is logged and counted but never fails a delivery.
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/settings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/gamemetrics/gamemetrics/shared/cache"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// Config tunes process. Start from DefaultConfig.
type Config struct {
	// MaxBatch is the most deliveries written in one transaction.
	MaxBatch int
	// Linger is how long the first delivery of a batch waits for others.
	// While a transaction is in flight the next batch fills anyway, so a
	// small value costs little latency.
	Linger time.Duration
	// WriteTimeout bounds one batch transaction; past it every delivery of
	// the batch gets a 5xx and is retried by the sender.
	WriteTimeout time.Duration
	// Flushers is how many batch transactions may run at once. More than
	// one lets PostgreSQL use more cores, but transactions of one game then
	// queue on the same hot rollup rows; on a 2-core machine 1 measured
	// best (7.1k vs 4.9k events/s). Rows are locked in key order and
	// deadlocks are retried, so any value is safe.
	Flushers int
	// Retries is how often a transaction that lost a deadlock or
	// serialisation race is rerun before the batch fails.
	Retries int
	// LiveTimeout bounds the Redis update after a commit.
	LiveTimeout time.Duration
}

// DefaultConfig is what `gamemetrics serve process` uses unless told otherwise.
func DefaultConfig() Config {
	return Config{MaxBatch: 500, Flushers: 1, Linger: 2 * time.Millisecond, WriteTimeout: 10 * time.Second, Retries: 3, LiveTimeout: 2 * time.Second}
}

// ConfigFromEnv reads PROCESS_MAX_BATCH, PROCESS_FLUSHERS and PROCESS_LINGER over the defaults.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c, env := DefaultConfig(), settings.From(getenv)
	c.MaxBatch = env.Int("PROCESS_MAX_BATCH", c.MaxBatch, 1)
	c.Flushers = env.Int("PROCESS_FLUSHERS", c.Flushers, 1)
	c.Linger = env.Duration("PROCESS_LINGER", c.Linger, 0)
	return c, env.Err()
}

// Process is the process function. Build it with New; Stop it to drain.
type Process struct {
	cfg       Config
	pool      *pgxpool.Pool
	live      *cache.Live
	validator *events.Validator
	zones     *zones
	writer    *writer
	batcher   *batcher
	log       *slog.Logger
	metrics   *metrics
	handler   http.Handler
	now       func() time.Time
	tracer    trace.Tracer // nil: tracing off
}

// Option adds an optional dependency to New.
type Option func(*Process)

// WithTracerProvider traces each delivered event through tp: a consumer
// span per event continuing the trace of the span that produced it (the
// event's traceparent extension, set by ingest), with the PostgreSQL
// queries of its delivery as child spans. A nil tp leaves tracing off.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(p *Process) {
		if tp != nil {
			p.tracer = telemetry.Tracer(tp)
		}
	}
}

// New builds process from its dependencies and starts its batcher. The
// schema must be migrated (store.Migrate).
func New(cfg Config, pool *pgxpool.Pool, rdb *redis.Client, log *slog.Logger, reg prometheus.Registerer, opts ...Option) *Process {
	if cfg.MaxBatch < 1 {
		cfg.MaxBatch = 1
	}
	p := &Process{
		cfg:       cfg,
		pool:      pool,
		live:      cache.NewLive(rdb),
		validator: events.NewValidator(),
		zones:     &zones{games: store.NewGames(pool), m: make(map[string]*time.Location)},
		log:       log,
		metrics:   newMetrics(reg),
		now:       time.Now,
	}
	p.writer = &writer{pool: pool, partitions: store.NewPartitions(pool), zones: p.zones.known, rezone: p.zones.set, retries: cfg.Retries}
	p.batcher = newBatcher(cfg.MaxBatch, cfg.Flushers, cfg.Linger, p.flush)
	p.handler = serving.CloudEventHandler(p.Handle, log)
	for _, o := range opts {
		o(p)
	}
	return p
}

// Handle processes one delivered event. It returns nil once the event's
// effects are committed; a *serving.Error with a 4xx for an event that can
// never be processed (it goes to the dead-letter sink), or a 5xx when the
// database is unavailable (the sender retries).
func (p *Process) Handle(ctx context.Context, e event.Event) (_ *event.Event, err error) {
	parent, state := telemetry.TakeTraceParent(&e)
	if p.tracer != nil {
		var span trace.Span
		ctx, span = p.tracer.Start(telemetry.WithRemoteParent(ctx, parent, state), "process event",
			trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
				attribute.String("messaging.system", "kafka"), attribute.String("messaging.operation.type", "process"),
				attribute.String("cloudevents.event_id", e.ID()), attribute.String("cloudevents.event_type", e.Type())))
		defer func() { telemetry.EndSpan(span, err) }()
	}
	rec, err := p.decode(ctx, &e)
	if err != nil {
		if serving.StatusOf(err) < 500 {
			p.metrics.events.WithLabelValues("rejected").Inc()
		}
		return nil, err
	}
	if err := p.batcher.submit(ctx, rec); err != nil {
		var fe *serving.Error
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, serving.Transient("event not committed", err)
	}
	return nil, nil
}

// decode checks a delivered event and flattens it for the writer.
func (p *Process) decode(ctx context.Context, e *event.Event) (*record, error) {
	game, _ := e.Extensions()[events.ExtGameID].(string)
	if game == "" {
		return nil, serving.Reject(http.StatusBadRequest, "event %q has no gameid extension (events must come through ingest)", e.ID())
	}
	if rej := p.validator.ValidateStored(e); rej != nil {
		return nil, serving.Reject(http.StatusBadRequest, "event %q is invalid: %s", e.ID(), rej.Error())
	}
	loc, err := p.zones.lookup(ctx, game)
	if errors.Is(err, store.ErrNotFound) {
		return nil, serving.Reject(http.StatusUnprocessableEntity, "event %q: unknown game %q", e.ID(), game)
	}
	if err != nil {
		return nil, serving.Transient("look up game", err)
	}
	rec, err := newRecord(e, game, loc)
	if err != nil {
		return nil, serving.Reject(http.StatusBadRequest, "event %q: %v", e.ID(), err)
	}
	return rec, nil
}

// flush writes one batch from the batcher and answers its deliveries.
func (p *Process) flush(batch []*pending) {
	recs := make([]*record, len(batch))
	for i, q := range batch {
		recs[i] = q.rec
	}
	errs, fresh := p.apply(context.Background(), recs)
	for i, q := range batch {
		q.done <- errs[i]
	}
	p.recordLive(fresh)
}

// apply writes recs in one transaction and returns each record's result
// (nil when committed) and the records that were new. A batch that fails
// on the data of one record is retried record by record, so a poison event
// fails alone with a 4xx and its neighbours are committed.
func (p *Process) apply(ctx context.Context, recs []*record) ([]error, []*record) {
	start := time.Now()
	errs := make([]error, len(recs))
	// One copy of each (game, id) goes to the database; every copy gets its result.
	type eventKey struct{ game, id string }
	index := make(map[eventKey]int, len(recs))
	var unique []*record
	slot := make([]int, len(recs))
	for i, r := range recs {
		k := eventKey{r.game, r.id}
		j, ok := index[k]
		if !ok {
			j = len(unique)
			index[k] = j
			unique = append(unique, r)
		}
		slot[i] = j
	}
	uerrs := make([]error, len(unique))
	var fresh []*record
	erased := 0
	wctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
	out, err := p.writer.write(wctx, append([]*record(nil), unique...))
	cancel()
	switch {
	case err == nil:
		fresh, erased = out.fresh, len(out.erased)
	case permanent(err) && len(unique) > 1:
		p.metrics.batchErrors.WithLabelValues("isolating").Inc()
		p.log.Warn("batch failed on its data, retrying event by event", "events", len(unique), "err", err)
		for i, r := range unique {
			wctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
			out, err := p.writer.write(wctx, []*record{r})
			cancel()
			uerrs[i] = p.failure(r, err)
			if err == nil {
				fresh = append(fresh, out.fresh...)
				erased += len(out.erased)
			}
		}
	default:
		p.metrics.batchErrors.WithLabelValues(kind(err)).Inc()
		p.log.Error("batch not committed", "events", len(unique), "err", err)
		for i, r := range unique {
			uerrs[i] = p.failure(r, err)
		}
	}
	for i := range recs {
		errs[i] = uerrs[slot[i]]
	}
	p.metrics.batchSize.Observe(float64(len(recs)))
	p.metrics.batchDuration.Observe(time.Since(start).Seconds())
	now := p.now()
	committed := 0
	for _, e := range errs {
		if e == nil {
			committed++
		}
	}
	p.metrics.events.WithLabelValues("new").Add(float64(len(fresh)))
	p.metrics.events.WithLabelValues("erased").Add(float64(erased))
	p.metrics.events.WithLabelValues("duplicate").Add(float64(committed - len(fresh) - erased))
	for _, r := range fresh {
		if !r.received.IsZero() {
			p.metrics.lag.Observe(now.Sub(r.received).Seconds())
		}
	}
	return errs, fresh
}

func kind(err error) string {
	if permanent(err) {
		return "data"
	}
	return "transient"
}

// failure turns a write error of one record into its delivery result.
func (p *Process) failure(r *record, err error) error {
	switch {
	case err == nil:
		return nil
	case permanent(err):
		p.metrics.events.WithLabelValues("poison").Inc()
		p.log.Warn("event can never be stored", "gameid", r.game, "eventid", r.id, "type", r.typ, "err", err)
		return &serving.Error{Status: http.StatusUnprocessableEntity, Reason: fmt.Sprintf("event %q cannot be stored", r.id), Err: err}
	default:
		p.metrics.events.WithLabelValues("failed").Inc()
		return serving.Transient("database unavailable, retry", err)
	}
}

// recordLive updates the Redis live view with committed new events.
func (p *Process) recordLive(fresh []*record) {
	if len(fresh) == 0 {
		return
	}
	evs := make([]cache.LiveEvent, len(fresh))
	for i, r := range fresh {
		evs[i] = cache.LiveEvent{Game: r.game, Player: r.subject, Time: r.time, Day: r.local}
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.LiveTimeout)
	defer cancel()
	if err := p.live.Record(ctx, p.now(), evs); err != nil {
		p.metrics.liveErrors.Inc()
		p.log.Warn("live view not updated (PostgreSQL has the events; the view catches up with later events)", "events", len(evs), "err", err)
	}
}

// ServeHTTP accepts CloudEvents deliveries on any path.
func (p *Process) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.handler.ServeHTTP(w, r) }

// Ready reports whether PostgreSQL answers (Redis is optional).
func (p *Process) Ready(ctx context.Context) (bool, error) {
	if err := p.pool.Ping(ctx); err != nil {
		return false, fmt.Errorf("postgres: %w", err)
	}
	return true, nil
}

// Stop refuses new deliveries and waits for queued ones to be written.
func (p *Process) Stop(ctx context.Context) error { return p.batcher.stop(ctx) }

// zones caches each game's time zone.
type zones struct {
	games *store.Games
	mu    sync.RWMutex
	m     map[string]*time.Location
}

func (z *zones) lookup(ctx context.Context, game string) (*time.Location, error) {
	z.mu.RLock()
	loc, ok := z.m[game]
	z.mu.RUnlock()
	if ok {
		return loc, nil
	}
	g, err := z.games.Get(ctx, game)
	if err != nil {
		return nil, err
	}
	loc = g.Location()
	z.mu.Lock()
	z.m[game] = loc
	z.mu.Unlock()
	return loc, nil
}

// known returns the zone of a game looked up before (records exist only
// for such games).
func (z *zones) known(game string) *time.Location {
	z.mu.RLock()
	defer z.mu.RUnlock()
	if loc, ok := z.m[game]; ok {
		return loc
	}
	return time.UTC
}

type metrics struct {
	events        *prometheus.CounterVec
	batchSize     prometheus.Histogram
	batchDuration prometheus.Histogram
	batchErrors   *prometheus.CounterVec
	liveErrors    prometheus.Counter
	lag           prometheus.Histogram
	consumed      prometheus.Counter
	commitErrors  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_process_events_total",
			Help: "Delivered events by outcome: new, duplicate, erased (of a player erased after ingest received them; acknowledged, not stored), rejected (4xx before writing), poison (4xx on write), failed (5xx)."},
			[]string{"outcome"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gamemetrics_process_batch_size_events", Help: "Events per batch transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15)}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gamemetrics_process_batch_duration_seconds", Help: "Time to write one batch, retries included.",
			Buckets: telemetry.LatencyBuckets()}),
		batchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_process_batch_errors_total",
			Help: "Batches not committed as a whole, by kind (transient, data, isolating)."}, []string{"kind"}),
		liveErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_process_live_errors_total", Help: "Redis live-view updates that failed after a commit."}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gamemetrics_process_freshness_seconds", Help: "Time from ingest receiving an event to its aggregates being committed.",
			Buckets: telemetry.LatencyBuckets()}),
		consumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_process_consumed_records_total", Help: "Kafka records consumed in direct consumer mode."}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_process_offset_commit_errors_total", Help: "Kafka offset commits that failed (the records are redelivered; harmless)."}),
	}
	reg.MustRegister(m.events, m.batchSize, m.batchDuration, m.batchErrors, m.liveErrors, m.lag, m.consumed, m.commitErrors)
	return m
}
