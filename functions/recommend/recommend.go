// Package recommend answers which items a player is likely to want,
// learned from the game's own events.
//
// Intake. A KafkaSource (consumer group gamemetrics-recommend) delivers
// every event of gamemetrics.events; recommend keeps, per (game, player,
// item), integer counters of purchases (and their amount_minor), resource
// sinks naming an item and design events the game maps to items, plus each
// player's platform and country from their latest session start. Each event
// id counts once (recommend_event_ids, in the transaction that moves the
// counters), counters are sums and segments are decided by (event time,
// event id), so redelivery and any order give the same rows. Events of a
// player retain erased, received before the erasure began, are not counted.
//
// Training. A daily PingSource ({"task":"train"}) or `gamemetrics recommend
// train` builds, per game, from the counters weighted by the game's
// settings: a time-decayed popularity baseline (per platform/country
// segment with enough players), item-item cosine neighbours, and a learned
// model (EASE up to RECOMMEND_EASE_MAX_ITEMS items, implicit ALS with
// conjugate gradient above). Every candidate is scored on the players'
// chronologically last interactions, held out; the best one is refitted on
// everything and promoted only if it beats popularity and the current
// model. Models are stored in S3 (models/<game>/<version>/model.bin and
// metrics.json) with a pointer row in PostgreSQL (recommend_current); every
// replica loads the promoted models at start and polls the pointers.
//
// Serving. GET /v1/games/{game}/players/{player}/recommendations (read key)
// reads the player's counters at request time and scores the catalogue with
// the model (EASE and ALS fold the player's items in, so a purchase a minute
// ago changes the answer). Players with too little history get their
// segment's popular items (fallback). Owned non-consumables and unavailable
// items are never returned. Each answer is also written to
// gamemetrics.recommendations as com.gamemetrics.recommendation.generated.
// The same answer is the reply to a com.gamemetrics.recommendation.requested
// CloudEvent. Items (PUT/GET /v1/games/{game}/items) and settings need the
// admin key. The API is described by openapi.json, served at
// /v1/openapi.json.
package recommend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/settings"
	"github.com/gamemetrics/gamemetrics/shared/store"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// CloudEvent types recommend consumes and produces.
const (
	TypePing                 = "dev.knative.sources.ping"
	TypeRequested            = "com.gamemetrics.recommendation.requested"
	TypeGenerated            = "com.gamemetrics.recommendation.generated"
	TypeTrained              = "com.gamemetrics.recommend.trained"
	Source                   = "/gamemetrics/recommend"
	extGameID                = events.ExtGameID
	defaultLimit, maxLimit   = 10, 100
	maxPlayerLen             = events.MaxSubjectLen
	impressionProduceTimeout = 10 * time.Second
)

// Config tunes recommend. Start from DefaultConfig.
type Config struct {
	// MaxBatch and Linger group concurrent deliveries into one transaction
	// (most events per transaction, how long the first waits for others).
	MaxBatch int
	Linger   time.Duration
	// WriteTimeout bounds one batch transaction; past it the deliveries
	// get a 5xx and are redelivered.
	WriteTimeout time.Duration
	// SettingsTTL is how long intake caches a game's settings (its design
	// event mapping).
	SettingsTTL time.Duration
	// KeyCacheTTL is how long a key lookup is remembered.
	KeyCacheTTL time.Duration
	// QueryTimeout bounds the database work of one API request.
	QueryTimeout time.Duration
	// ModelPoll is how often the promoted models' pointers are read: a new
	// model is served within it.
	ModelPoll time.Duration
	// TrainEvery: the daily ping skips games trained more recently, so a
	// retried ping resumes where the last attempt stopped.
	TrainEvery time.Duration
	// PopularTTL is how long a game without a model keeps the popularity
	// counted from its interactions.
	PopularTTL time.Duration
	// Train tunes training.
	Train TrainConfig
}

// DefaultConfig is what `gamemetrics serve recommend` uses unless told otherwise.
func DefaultConfig() Config {
	return Config{MaxBatch: 500, Linger: 5 * time.Millisecond, WriteTimeout: 10 * time.Second, SettingsTTL: 30 * time.Second,
		KeyCacheTTL: 30 * time.Second, QueryTimeout: 2 * time.Second, ModelPoll: 30 * time.Second, TrainEvery: 20 * time.Hour,
		PopularTTL: time.Minute, Train: DefaultTrainConfig()}
}

// ConfigFromEnv reads RECOMMEND_* over the defaults.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c, env := DefaultConfig(), settings.From(getenv)
	c.MaxBatch = env.Int("RECOMMEND_MAX_BATCH", c.MaxBatch, 1)
	c.Linger = env.Duration("RECOMMEND_LINGER", c.Linger, 0)
	c.ModelPoll = env.Duration("RECOMMEND_MODEL_POLL", c.ModelPoll, time.Second)
	c.TrainEvery = env.Duration("RECOMMEND_TRAIN_EVERY", c.TrainEvery, 0)
	c.Train.EASEMaxItems = env.Int("RECOMMEND_EASE_MAX_ITEMS", c.Train.EASEMaxItems, 0)
	c.Train.ValidationPlayers = env.Int("RECOMMEND_VALIDATION_PLAYERS", c.Train.ValidationPlayers, 1)
	c.Train.Workers = env.Int("RECOMMEND_TRAIN_WORKERS", c.Train.Workers, 1)
	c.Train.CandidatePlayers = env.Int("RECOMMEND_CANDIDATE_PLAYERS", c.Train.CandidatePlayers, 100)
	c.Train.Kinds = env.List("RECOMMEND_KINDS", c.Train.Kinds)
	var kindErr error
	for _, k := range c.Train.Kinds {
		if k != KindKNN && k != KindEASE && k != KindALS {
			kindErr = fmt.Errorf("RECOMMEND_KINDS=%s: %q is not a kind (want a list of %s, %s, %s)", strings.Join(c.Train.Kinds, ","), k, KindKNN, KindEASE, KindALS)
		}
	}
	return c, errors.Join(env.Err(), kindErr)
}

// Recommend is the recommend function. Build it with New.
type Recommend struct {
	cfg       Config
	pool      *pgxpool.Pool
	arc       *archive.Client
	producer  *kgo.Client
	games     *store.Games
	readKeys  *store.KeyCache
	adminKeys *store.KeyCache
	validator *events.Validator
	log       *slog.Logger
	metrics   *metrics
	now       func() time.Time
	handler   http.Handler
	batcher   *batcher
	models    *registry

	intakeMu    sync.Mutex
	intakeCache map[string]cachedSettings

	scratch     sync.Pool // of *scratch, one request's ranking buffers
	impressions sync.WaitGroup
	stopPoll    context.CancelFunc
	pollDone    chan struct{}
}

// New builds recommend from its dependencies: the migrated PostgreSQL pool,
// the S3 client models are stored in (nil: training fails, serving uses
// live popularity), the Kafka producer served recommendations are written
// with (nil: they are not), a logger, a registry for its metrics and a
// clock (nil: time.Now). It starts loading the promoted models at once;
// Ready reports false until the first load finished.
func New(cfg Config, pool *pgxpool.Pool, arc *archive.Client, producer *kgo.Client, log *slog.Logger, reg prometheus.Registerer, now func() time.Time) *Recommend {
	d := DefaultConfig()
	if cfg.MaxBatch < 1 {
		cfg.MaxBatch = d.MaxBatch
	}
	for _, f := range []struct{ v, def *time.Duration }{{&cfg.WriteTimeout, &d.WriteTimeout}, {&cfg.SettingsTTL, &d.SettingsTTL},
		{&cfg.KeyCacheTTL, &d.KeyCacheTTL}, {&cfg.QueryTimeout, &d.QueryTimeout}, {&cfg.ModelPoll, &d.ModelPoll}, {&cfg.PopularTTL, &d.PopularTTL}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if now == nil {
		now = time.Now
	}
	games := store.NewGames(pool)
	r := &Recommend{
		cfg: cfg, pool: pool, arc: arc, producer: producer, games: games,
		readKeys:    store.NewKeyCache(games.ByReadKey, cfg.KeyCacheTTL),
		adminKeys:   store.NewKeyCache(games.ByAdminKey, cfg.KeyCacheTTL),
		validator:   events.NewValidator(),
		log:         log,
		metrics:     newMetrics(reg),
		now:         now,
		intakeCache: map[string]cachedSettings{},
	}
	r.models = newRegistry(r)
	r.batcher = newBatcher(cfg.MaxBatch, cfg.Linger, r.writeBatch)
	r.handler = r.routes()
	ctx, cancel := context.WithCancel(context.Background())
	r.stopPoll, r.pollDone = cancel, make(chan struct{})
	go r.models.poll(ctx, r.pollDone)
	return r
}

// Handle takes one CloudEvent: an event of the game stream (interactions),
// a PingSource tick ({"task":"train"}) or a recommendation request.
func (r *Recommend) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	switch e.Type() {
	case TypePing:
		return r.handlePing(ctx, e)
	case TypeRequested:
		return r.handleRequested(ctx, e)
	}
	rec, err := r.decode(ctx, &e)
	if err != nil {
		if serving.StatusOf(err) < 500 {
			r.metrics.events.WithLabelValues("rejected").Inc()
		}
		return nil, err
	}
	if rec == nil {
		r.metrics.events.WithLabelValues("ignored").Inc()
		return nil, nil
	}
	err = r.batcher.submit(ctx, rec)
	if err != nil && serving.StatusOf(err) == http.StatusInternalServerError {
		// Stopping, or the delivery's own deadline: redeliver.
		err = serving.Transient("interaction not committed", err)
	}
	return nil, err
}

func (r *Recommend) handlePing(ctx context.Context, e event.Event) (*event.Event, error) {
	var req struct {
		Task  string `json:"task"`
		Game  string `json:"game"`
		Force bool   `json:"force"`
	}
	if d := e.Data(); len(d) > 0 {
		if err := json.Unmarshal(d, &req); err != nil {
			return nil, serving.Reject(http.StatusBadRequest, "ping data is not JSON: %v", err)
		}
	}
	if req.Task != "train" {
		return nil, serving.Reject(http.StatusBadRequest, "unknown task %q (want train)", req.Task)
	}
	var outs []TrainOutcome
	var err error
	if req.Game != "" {
		var o TrainOutcome
		o, err = r.TrainGame(ctx, req.Game)
		outs = append(outs, o)
	} else {
		outs, err = r.TrainAll(ctx, req.Force)
	}
	if err != nil {
		if serving.StatusOf(err) < 500 {
			return nil, err
		}
		return nil, serving.Transient("training not finished (a retry resumes it)", err)
	}
	return r.reply(TypeTrained, "", "", map[string]any{"games": outs})
}

func (r *Recommend) reply(typ, game, subject string, data any) (*event.Event, error) {
	out := event.New()
	out.SetID(uuid.NewString())
	out.SetSource(Source)
	out.SetType(typ)
	out.SetTime(r.now())
	if subject != "" {
		out.SetSubject(subject)
	}
	if game != "" {
		out.SetExtension(extGameID, game)
	}
	if err := out.SetData(event.ApplicationJSON, data); err != nil {
		return nil, err
	}
	return &out, nil
}

// ServeHTTP serves the API and CloudEvents on POST /.
func (r *Recommend) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.handler.ServeHTTP(w, req) }

// Ready reports whether PostgreSQL answers and the promoted models were
// loaded once.
func (r *Recommend) Ready(ctx context.Context) (bool, error) {
	if err := r.pool.Ping(ctx); err != nil {
		return false, fmt.Errorf("postgres: %w", err)
	}
	if !r.models.loaded() {
		return false, errors.New("the promoted models are still loading")
	}
	return true, nil
}

// Stop writes the queued deliveries, stops polling for models and waits
// for the served recommendations still being written to Kafka.
func (r *Recommend) Stop(ctx context.Context) error {
	err := r.batcher.close(ctx)
	r.stopPoll()
	select {
	case <-r.pollDone:
	case <-ctx.Done():
	}
	done := make(chan struct{})
	go func() { r.impressions.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("served recommendations still being written to Kafka: %w", ctx.Err()))
	}
	return err
}

type metrics struct {
	events          *prometheus.CounterVec
	batchSeconds    prometheus.Histogram
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	recommendations *prometheus.CounterVec
	impressions     *prometheus.CounterVec
	trainings       *prometheus.CounterVec
	trainSeconds    prometheus.Histogram
	modelLoads      *prometheus.CounterVec
	models          prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_recommend_events_total",
			Help: "Delivered events by outcome: counted, duplicate, erased (of an erased player), ignored (nothing recommend keeps), rejected (4xx), failed (5xx, redelivered)."},
			[]string{"outcome"}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gamemetrics_recommend_batch_duration_seconds", Help: "Time to write one batch of interactions.",
			Buckets: telemetry.LatencyBuckets()}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_recommend_requests_total",
			Help: "API requests by endpoint (recommendations, similar, items, settings, openapi) and status code."},
			[]string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gamemetrics_recommend_request_duration_seconds", Help: "Time to answer an API request, by endpoint.",
			Buckets: telemetry.LatencyBuckets()}, []string{"endpoint"}),
		recommendations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_recommend_recommendations_total",
			Help: "Recommendations served, by fallback (true: popular items for a player with too little history or a game without a learned model)."},
			[]string{"fallback"}),
		impressions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_recommend_impressions_total",
			Help: "Served recommendations written to gamemetrics.recommendations, by outcome (written, failed)."},
			[]string{"outcome"}),
		trainings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_recommend_trainings_total",
			Help: "Training runs per game by outcome: promoted, kept (the current model stays), skipped, failed."},
			[]string{"outcome"}),
		trainSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gamemetrics_recommend_training_duration_seconds", Help: "Time to train one game's models.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14)}),
		modelLoads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_recommend_model_loads_total", Help: "Promoted models loaded from S3, by outcome (loaded, failed)."},
			[]string{"outcome"}),
		models: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gamemetrics_recommend_models", Help: "Promoted models this replica serves."}),
	}
	reg.MustRegister(m.events, m.batchSeconds, m.requests, m.duration, m.recommendations, m.impressions, m.trainings, m.trainSeconds, m.modelLoads, m.models)
	return m
}
