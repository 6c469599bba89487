// Package process turns the event stream into exact game aggregates. It is
// fed either by a Knative KafkaSource (one HTTP delivery per event, binary
// mode, at least once, possibly out of order and concurrently) or directly
// from Kafka by Consumer. Either way events go through two stages:
//
//   - stage 1 (stage1.go): concurrent deliveries are grouped into one
//     PostgreSQL transaction that makes each event durable and
//     deduplicated (its raw row, its (gameid, id), and the new events
//     queued in pending_events); a delivery is acknowledged once its batch
//     has committed. An event is safe from then on.
//   - stage 2 (aggregate.go): an aggregator in every process takes large
//     slices of pending events and, in one transaction each, merges them
//     into players, sessions, activity and rollups (merge.go, pure) and
//     consumes their pending rows. Replicas share the work by game.
//
// Exactness rules (see shared/store/migrations/0002_process.sql):
//   - an event counts once: (gameid, id) is recorded in event_ids in the same
//     transaction as the pending row that queues it, only new ids are
//     queued, and a pending row is consumed in the same transaction as the
//     aggregates it changes;
//   - player and session state is merged with min/max, so it does not depend
//     on delivery order; rollups derived from that state are moved with
//     deltas computed under a row lock;
//   - daily buckets are calendar days in the game's time zone
//     (games.timezone), hourly and minute buckets are UTC;
//   - a session is (gameid, subject, sessionid); it began at its earliest
//     session.start (or earliest event if none); its length is the length_s
//     of its session.end if one reported it, else latest event − begin; it
//     is closed once it has a session.end or 30 minutes without events.
//
// Events of a player erased by retain (table erasures) that ingest received
// before the erasure began are acknowledged and not stored, so a backlog or
// a retry cannot bring an erased player back; events stored but not yet
// aggregated when an erasure begins are never counted (stage 2 deletes
// them). Both stages take the games' write locks shared, the start of an
// erasure takes it exclusively (store.LockGameWrites), so the two never
// overlap.
//
// PostgreSQL is the truth. The Redis live view is updated after each
// aggregation commit; a Redis failure is logged and counted but never fails
// a delivery.
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
	// MaxBatch is the most deliveries stored in one stage-1 transaction.
	MaxBatch int
	// Linger is how long the first delivery of a batch waits for others.
	// While a transaction is in flight the next batch fills anyway, so a
	// small value costs little latency.
	Linger time.Duration
	// WriteTimeout bounds one transaction of either stage; past it every
	// delivery of a stage-1 batch gets a 5xx and is retried by the sender.
	WriteTimeout time.Duration
	// Flushers is how many stage-1 transactions may run at once. They
	// share no rows (each inserts its own events), so more than one lets
	// PostgreSQL use more cores while a batch travels.
	Flushers int
	// Retries is how often a transaction that lost a deadlock or
	// serialisation race is rerun before it fails.
	Retries int
	// LiveTimeout bounds the Redis update after an aggregation commit.
	LiveTimeout time.Duration

	// AggregateMax is the most events one aggregation transaction takes.
	// Larger slices collapse more events onto each rollup, player and
	// activity row (the database's work per event falls), at the price of
	// a longer transaction.
	AggregateMax int
	// AggregateLinger is how long the aggregator lets a slice build up
	// after a small one (freshness waits at most this, plus a
	// transaction). While a transaction runs the next slice fills anyway.
	AggregateLinger time.Duration
	// Aggregators is how many aggregation loops a process runs; a game is
	// aggregated by one loop at a time (across replicas too), so more help
	// only with several busy games. 0 runs none: the process only stores
	// events, and other replicas aggregate them.
	Aggregators int
	// AggregatePoll is how often an idle aggregator looks for events other
	// replicas stored (its own process wakes it at once).
	AggregatePoll time.Duration
	// PendingMax bounds the events this process has stored and not seen
	// aggregated: past it stage 1 waits (back-pressure on deliveries), up
	// to WriteTimeout, so a terminating pod can drain what it holds within
	// its grace period.
	PendingMax int
}

// DefaultConfig is what `gamemetrics serve process` uses unless told otherwise.
func DefaultConfig() Config {
	return Config{MaxBatch: 500, Flushers: 2, Linger: 2 * time.Millisecond, WriteTimeout: 10 * time.Second, Retries: 3,
		LiveTimeout: 2 * time.Second, AggregateMax: 20_000, AggregateLinger: 100 * time.Millisecond, Aggregators: 1,
		AggregatePoll: 250 * time.Millisecond, PendingMax: 200_000}
}

// ConfigFromEnv reads PROCESS_MAX_BATCH, PROCESS_FLUSHERS, PROCESS_LINGER,
// PROCESS_AGGREGATE_MAX, PROCESS_AGGREGATE_LINGER, PROCESS_AGGREGATORS and
// PROCESS_PENDING_MAX over the defaults.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c, env := DefaultConfig(), settings.From(getenv)
	c.MaxBatch = env.Int("PROCESS_MAX_BATCH", c.MaxBatch, 1)
	c.Flushers = env.Int("PROCESS_FLUSHERS", c.Flushers, 1)
	c.Linger = env.Duration("PROCESS_LINGER", c.Linger, 0)
	c.AggregateMax = env.Int("PROCESS_AGGREGATE_MAX", c.AggregateMax, 1)
	c.AggregateLinger = env.Duration("PROCESS_AGGREGATE_LINGER", c.AggregateLinger, 0)
	c.Aggregators = env.Int("PROCESS_AGGREGATORS", c.Aggregators, 0)
	c.PendingMax = env.Int("PROCESS_PENDING_MAX", c.PendingMax, 1)
	return c, env.Err()
}

// Process is the process function. Build it with New; Stop it to drain.
type Process struct {
	cfg       Config
	pool      *pgxpool.Pool
	live      *cache.Live
	validator *events.Validator
	dims      *registrar // caps custom dimension values per game
	zones     *zones
	stage1    *stage1
	batcher   *batcher
	agg       *aggregator
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

// New builds process from its dependencies and starts its batcher and
// aggregator. The schema must be migrated (store.Migrate).
func New(cfg Config, pool *pgxpool.Pool, rdb *redis.Client, log *slog.Logger, reg prometheus.Registerer, opts ...Option) *Process {
	def := DefaultConfig()
	cfg.MaxBatch = max(1, cfg.MaxBatch)
	cfg.AggregateMax = max(1, cfg.AggregateMax)
	cfg.Aggregators = max(0, cfg.Aggregators)
	if cfg.AggregatePoll <= 0 {
		cfg.AggregatePoll = def.AggregatePoll
	}
	if cfg.PendingMax <= 0 {
		cfg.PendingMax = def.PendingMax
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = def.WriteTimeout
	}
	p := &Process{
		cfg:       cfg,
		pool:      pool,
		live:      cache.NewLive(rdb),
		validator: events.NewValidator(),
		dims:      newRegistrar(pool, false),
		zones:     &zones{games: store.NewGames(pool), m: make(map[string]*time.Location)},
		log:       log,
		metrics:   newMetrics(reg),
		now:       time.Now,
	}
	p.stage1 = &stage1{pool: pool, partitions: store.NewPartitions(pool), retries: cfg.Retries}
	p.batcher = newBatcher(cfg.MaxBatch, cfg.Flushers, cfg.Linger, p.flush)
	p.agg = newAggregator(p)
	p.handler = serving.CloudEventHandler(p.Handle, log)
	for _, o := range opts {
		o(p)
	}
	return p
}

// Handle processes one delivered event. It returns nil once the event is
// durable (stored and queued for aggregation, or a duplicate of one that
// is, or held by a player's erasure); a *serving.Error with a 4xx for an event that can
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
		return nil, serving.Transient("event not stored", err)
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

// flush stores one batch from the batcher and answers its deliveries.
func (p *Process) flush(batch []*pending) {
	recs := make([]*record, len(batch))
	for i, q := range batch {
		recs[i] = q.rec
	}
	errs := p.apply(context.Background(), recs)
	for i, q := range batch {
		q.done <- errs[i]
	}
}

// apply stores recs in one stage-1 transaction and returns each record's
// result (nil when durable). A batch that fails on the data of one record
// is retried record by record, so a poison event fails alone with a 4xx
// and its neighbours are stored. When this process holds PendingMax events
// not aggregated yet, apply first waits (up to WriteTimeout) for the
// aggregator to catch up.
func (p *Process) apply(ctx context.Context, recs []*record) []error {
	start := time.Now()
	errs := make([]error, len(recs))
	wctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
	err := p.agg.waitUntil(wctx, func(events int) bool { return events < p.cfg.PendingMax })
	cancel()
	if err != nil {
		p.metrics.batchErrors.WithLabelValues("behind").Inc()
		for i, r := range recs {
			errs[i] = p.failure(r, fmt.Errorf("aggregation is behind: %w", err))
		}
		return errs
	}
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
	var fresh, erased int
	wctx, cancel = context.WithTimeout(ctx, p.cfg.WriteTimeout)
	out, err := p.stage1.write(wctx, append([]*record(nil), unique...))
	cancel()
	switch {
	case err == nil:
		fresh, erased = len(out.fresh), len(out.erased)
		p.agg.stored(out.rows)
	case permanent(err) && len(unique) > 1:
		p.metrics.batchErrors.WithLabelValues("isolating").Inc()
		p.log.Warn("batch failed on its data, retrying event by event", "events", len(unique), "err", err)
		for i, r := range unique {
			wctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
			out, err := p.stage1.write(wctx, []*record{r})
			cancel()
			uerrs[i] = p.failure(r, err)
			if err == nil {
				fresh, erased = fresh+len(out.fresh), erased+len(out.erased)
				p.agg.stored(out.rows)
			}
		}
	default:
		p.metrics.batchErrors.WithLabelValues(kind(err)).Inc()
		p.log.Error("batch not committed", "events", len(unique), "err", err)
		for i, r := range unique {
			uerrs[i] = p.failure(r, err)
		}
	}
	committed := 0
	for i := range recs {
		errs[i] = uerrs[slot[i]]
		if errs[i] == nil {
			committed++
		}
	}
	p.metrics.batchSize.Observe(float64(len(recs)))
	p.metrics.batchDuration.Observe(time.Since(start).Seconds())
	p.metrics.events.WithLabelValues("new").Add(float64(fresh))
	p.metrics.events.WithLabelValues("erased").Add(float64(erased))
	p.metrics.events.WithLabelValues("duplicate").Add(float64(committed - fresh - erased))
	return errs
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

// recordLive updates the Redis live view with newly aggregated events.
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

// Drain waits until every event this process has acknowledged so far is
// aggregated (by its own aggregator or another replica's), or ctx ends.
// Tests, and whoever seeds data through Handle, call it before reading
// aggregates; Stop calls it too.
func (p *Process) Drain(ctx context.Context) error {
	return p.agg.waitUntil(ctx, func(events int) bool { return events == 0 })
}

// Stop refuses new deliveries, stores the queued ones, and drains: it
// waits until what this process stored is aggregated, then stops the
// aggregator. Knative sends SIGTERM on every scale-down, and its grace
// period bounds ctx; what a pod cannot drain in time stays pending for
// the other replicas (nothing is lost).
func (p *Process) Stop(ctx context.Context) error {
	err := p.batcher.stop(ctx)
	if p.cfg.Aggregators > 0 {
		err = errors.Join(err, p.Drain(ctx))
	}
	p.agg.stop()
	return err
}

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

type metrics struct {
	events              *prometheus.CounterVec
	batchSize           prometheus.Histogram
	batchDuration       prometheus.Histogram
	batchErrors         *prometheus.CounterVec
	liveErrors          prometheus.Counter
	lag                 prometheus.Histogram
	consumed            prometheus.Counter
	commitErrors        prometheus.Counter
	pending             prometheus.Gauge
	aggregated          *prometheus.CounterVec
	aggregationSize     prometheus.Histogram
	aggregationDuration prometheus.Histogram
	aggregationErrors   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_process_events_total",
			Help: "Delivered events by outcome: new, duplicate, erased (of a player erased after ingest received them; acknowledged, not stored), rejected (4xx before writing), poison (4xx on write), failed (5xx)."},
			[]string{"outcome"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gamemetrics_process_batch_size_events", Help: "Events per stage-1 transaction (deliveries made durable together).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15)}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gamemetrics_process_batch_duration_seconds", Help: "Time to store one stage-1 batch, retries included: what a delivery waits for.",
			Buckets: telemetry.LatencyBuckets()}),
		batchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_process_batch_errors_total",
			Help: "Stage-1 batches not committed as a whole, by kind (transient, data, isolating, behind: the aggregator did not catch up in time)."}, []string{"kind"}),
		liveErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_process_live_errors_total", Help: "Redis live-view updates that failed after an aggregation commit."}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gamemetrics_process_freshness_seconds", Help: "Time from ingest receiving an event to its aggregates being committed (stage 2).",
			Buckets: telemetry.LatencyBuckets()}),
		consumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_process_consumed_records_total", Help: "Kafka records consumed in direct consumer mode."}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_process_offset_commit_errors_total", Help: "Kafka offset commits that failed (the records are redelivered; harmless)."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gamemetrics_process_pending_events", Help: "Events this process stored (stage 1) that it has not seen aggregated yet."}),
		aggregated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_process_aggregated_events_total",
			Help: "Stored events by what aggregation did with them: counted, erased (a player's erasure began after they were stored: not counted, deleted), failed (can never be counted: set aside in pending_events_failed)."},
			[]string{"outcome"}),
		aggregationSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gamemetrics_process_aggregation_size_events", Help: "Events per aggregation transaction (stage 2).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 17)}),
		aggregationDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gamemetrics_process_aggregation_duration_seconds", Help: "Time of one aggregation transaction, claim to commit.",
			Buckets: telemetry.LatencyBuckets()}),
		aggregationErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_process_aggregation_errors_total",
			Help: "Aggregation transactions that failed, by kind (transient: retried; data: taken apart to find the event at fault)."}, []string{"kind"}),
	}
	reg.MustRegister(m.events, m.batchSize, m.batchDuration, m.batchErrors, m.liveErrors, m.lag, m.consumed, m.commitErrors,
		m.pending, m.aggregated, m.aggregationSize, m.aggregationDuration, m.aggregationErrors)
	return m
}
