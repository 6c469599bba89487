// Package retain keeps raw event storage bounded and erases players on
// request, in every store.
//
// Triggers (CloudEvents delivered to Handle):
//   - dev.knative.sources.ping with data {"task":"retention"} (daily): for
//     each game, day partitions of events older than hot_days are exported
//     to S3 (see shared/archive for the format), verified, and only then
//     dropped; partitions for the next days are created ahead of time;
//     archives older than archive_days are deleted. Reply:
//     com.gamemetrics.retention.completed with per-game counts.
//   - com.gamemetrics.player.erasure.requested with data
//     {"game":"...","player":"...","requested_by":"..."}: the player's raw
//     events, sessions, activity, player and spend rows and recommend's
//     interactions and segment (PostgreSQL), live
//     view members (Redis) and archived events (S3, by rewriting the
//     affected days) are removed and an audit row is recorded (table
//     erasures). Reply: com.gamemetrics.player.erasure.completed.
//
// Rollups are aggregates without player ids and are kept by both tasks, so
// reported counts (DAU, revenue, sessions, ...) do not change. The daily
// HyperLogLog sketches behind WAU/MAU estimates are different: they hold a
// hash of each player id (exactly, while a day has few players), so an
// erasure rebuilds the sketches of the player's active days from
// player_days without them; WAU/MAU estimates then leave that player out.
//
// Erasure removes what is stored when it runs, and the audit row it writes
// first also stops what is still on its way: process leaves out every event
// of the player that ingest received before the erasure began (still in
// Kafka, retried, or redelivered), acknowledging it without storing it,
// and never counts an event of the player it stored but had not counted
// yet when the erasure began (its aggregation deletes them; the erasure
// also deletes their raw rows itself). The erasure begins under the game's
// write lock (store.LockGameWrites), which process's transactions hold
// shared, so each of them is wholly before or wholly after it.
// Events the player sends after the erasure are new data and are counted.
// The raw events topics themselves keep records until their retention.ms
// (7 days in production, eventing/overlays/production/topics.yaml). Its
// cost is a scan of the game's hot partitions and of every archived day of
// the game.
//
// Crash safety. Both tasks are idempotent and resumable; every step can be
// rerun:
//   - an archive day is committed by writing its manifest, after every part
//     it lists was uploaded and read back (event count and SHA-256). Parts
//     are never overwritten: a rewrite uses new part numbers and deletes the
//     old parts only after the new manifest is stored. Parts no manifest
//     lists are leftovers of an interrupted run and are deleted later;
//   - a partition is dropped only after its day's manifest is committed and
//     holds every row of the partition (an existing archive is merged with
//     the partition, so a crash between commit and drop, or late events
//     arriving for an archived day, lose and duplicate nothing), and only if
//     the row count under a lock that stops new rows is what was exported;
//   - an erasure is keyed by its request id: a retried request resumes the
//     same audit row and finishes whatever steps are left.
//
// Retention, erasure and restore of one game are serialised by a
// PostgreSQL advisory lock, so they never race each other across replicas.
//
// event_ids (the dedup table) holds only (gameid, id, day): client-chosen
// event ids, no player column. Erasure keeps them, except ids that contain
// the player id as text (a client may build ids from it), which are
// deleted. Keeping them is deliberate: a replay of an erased player's events
// (Kafka redelivery) is then recognised as a duplicate and not stored again,
// which would otherwise bring the erased data back and count it twice.
package retain

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/settings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/cache"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// CloudEvent types retain consumes and produces.
const (
	TypePing              = "dev.knative.sources.ping"
	TypeErasureRequested  = "com.gamemetrics.player.erasure.requested"
	TypeErasureCompleted  = "com.gamemetrics.player.erasure.completed"
	TypeRetentionComplete = "com.gamemetrics.retention.completed"
	// Source of the replies.
	Source = "/gamemetrics/retain"
)

// Config tunes retain. Start from DefaultConfig.
type Config struct {
	// PartEvents is the most events in one archive part object. Bigger
	// parts mean fewer objects; the part is built in memory (about 60 bytes
	// per event compressed).
	PartEvents int
	// AheadDays is how many days after today get their events partitions
	// created by each retention run.
	AheadDays int
	// Uploads is how many parts are uploaded and verified at once while the
	// next part is encoded.
	Uploads int
	// LockTimeout bounds the wait for the lock that stops new rows while a
	// partition is counted and dropped.
	LockTimeout time.Duration
}

// DefaultConfig is what `gamemetrics serve retain` uses unless told otherwise.
func DefaultConfig() Config {
	return Config{PartEvents: 250_000, AheadDays: 3, Uploads: 2, LockTimeout: 30 * time.Second}
}

// ConfigFromEnv reads RETAIN_PART_EVENTS and RETAIN_AHEAD_DAYS over the defaults.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c, env := DefaultConfig(), settings.From(getenv)
	c.PartEvents = env.Int("RETAIN_PART_EVENTS", c.PartEvents, 1)
	c.AheadDays = env.Int("RETAIN_AHEAD_DAYS", c.AheadDays, 0)
	return c, env.Err()
}

// Retain is the retain function. Build it with New.
type Retain struct {
	cfg     Config
	pool    *pgxpool.Pool
	live    *cache.Live
	arc     *archive.Client
	games   *store.Games
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
	handler http.Handler
	fault   func(point string) error
}

// New builds retain from its dependencies. The schema must be migrated
// (store.Migrate). now is the clock deciding which days have expired (nil
// means time.Now).
func New(cfg Config, pool *pgxpool.Pool, rdb *redis.Client, arc *archive.Client, log *slog.Logger, reg prometheus.Registerer, now func() time.Time) *Retain {
	d := DefaultConfig()
	if cfg.PartEvents < 1 {
		cfg.PartEvents = d.PartEvents
	}
	if cfg.Uploads < 1 {
		cfg.Uploads = 1
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = d.LockTimeout
	}
	if now == nil {
		now = time.Now
	}
	r := &Retain{
		cfg:     cfg,
		pool:    pool,
		live:    cache.NewLive(rdb),
		arc:     arc,
		games:   store.NewGames(pool),
		log:     log,
		metrics: newMetrics(reg),
		now:     now,
	}
	r.handler = serving.CloudEventHandler(r.Handle, log)
	return r
}

// Fault points where InjectFault's function is called.
const (
	// FaultExportUploaded: a day's parts are uploaded and verified, its
	// manifest not yet written.
	FaultExportUploaded = "export:uploaded"
	// FaultExportCommitted: a day's manifest is written, its partition not
	// yet dropped.
	FaultExportCommitted = "export:committed"
	// FaultEraseDatabase: the player's rows are deleted from PostgreSQL,
	// Redis and S3 not yet touched.
	FaultEraseDatabase = "erase:database"
	// FaultEraseUploaded: an archive day's rewritten parts are uploaded,
	// the new manifest not yet written.
	FaultEraseUploaded = "erase:uploaded"
)

// InjectFault is a test seam: f is called at each fault point (see the
// Fault constants) and an error it returns aborts the run right there, as
// a crash would. Production code never calls it.
func (r *Retain) InjectFault(f func(point string) error) { r.fault = f }

func (r *Retain) checkpoint(point string) error {
	if r.fault == nil {
		return nil
	}
	if err := r.fault(point); err != nil {
		return fmt.Errorf("fault injected at %s: %w", point, err)
	}
	return nil
}

// Handle runs the task an event asks for and answers with its result.
func (r *Retain) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	switch e.Type() {
	case TypePing:
		var req struct {
			Task string `json:"task"`
		}
		if d := e.Data(); len(d) > 0 {
			if err := json.Unmarshal(d, &req); err != nil {
				return nil, serving.Reject(http.StatusBadRequest, "ping data is not JSON: %v", err)
			}
		}
		if req.Task != "" && req.Task != "retention" {
			return nil, serving.Reject(http.StatusBadRequest, "unknown task %q (want retention)", req.Task)
		}
		res, err := r.RunRetention(ctx)
		if err != nil {
			return nil, serving.Transient("retention not finished (the next run resumes it)", err)
		}
		return r.reply(TypeRetentionComplete, res)
	case TypeErasureRequested:
		var req struct {
			Game        string `json:"game"`
			Player      string `json:"player"`
			RequestedBy string `json:"requested_by"`
		}
		if err := json.Unmarshal(e.Data(), &req); err != nil {
			return nil, serving.Reject(http.StatusBadRequest, "erasure request data: %v", err)
		}
		by := req.RequestedBy
		if by == "" {
			by = e.Source()
		}
		at := e.Time()
		if at.IsZero() {
			at = r.now()
		}
		res, err := r.Erase(ctx, ErasureRequest{ID: e.ID(), Game: req.Game, Player: req.Player, RequestedBy: by, RequestedAt: at})
		if err != nil {
			if serving.StatusOf(err) < 500 {
				return nil, err
			}
			return nil, serving.Transient("erasure not finished (a retry resumes it)", err)
		}
		return r.reply(TypeErasureCompleted, res)
	default:
		return nil, serving.Reject(http.StatusBadRequest, "retain does not handle events of type %q", e.Type())
	}
}

func (r *Retain) reply(typ string, data any) (*event.Event, error) {
	out := event.New()
	out.SetID(uuid.NewString())
	out.SetSource(Source)
	out.SetType(typ)
	out.SetTime(r.now())
	if err := out.SetData(event.ApplicationJSON, data); err != nil {
		return nil, err
	}
	return &out, nil
}

// ServeHTTP accepts CloudEvents deliveries on any path.
func (r *Retain) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.handler.ServeHTTP(w, req) }

// Ready reports whether PostgreSQL answers.
func (r *Retain) Ready(ctx context.Context) (bool, error) {
	if err := r.pool.Ping(ctx); err != nil {
		return false, fmt.Errorf("postgres: %w", err)
	}
	return true, nil
}

// Stop has nothing to drain: each task runs within its request.
func (r *Retain) Stop(context.Context) error { return nil }

// lockGame takes the advisory lock that serialises retention, erasure and
// restore of one game across every replica. The returned function releases it.
func (r *Retain) lockGame(ctx context.Context, game string) (func(), error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte("gamemetrics:retain:" + game))
	key := int64(h.Sum64())
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		conn.Release()
		return nil, fmt.Errorf("lock game %s: %w", game, err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", key); err != nil {
			// The lock is session-scoped: closing the connection frees it.
			conn.Conn().Close(ctx)
		}
		conn.Release()
	}, nil
}

type metrics struct {
	eventsArchived    prometheus.Counter
	bytesArchived     prometheus.Counter
	partitionsDropped prometheus.Counter
	daysDeleted       prometheus.Counter
	erasures          prometheus.Counter
	erased            *prometheus.CounterVec
	restored          prometheus.Counter
	duration          *prometheus.HistogramVec
	failures          *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		eventsArchived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_retain_archived_events_total", Help: "Events written to S3 archives (verified)."}),
		bytesArchived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_retain_archived_bytes_total", Help: "Compressed bytes of archive parts written to S3."}),
		partitionsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_retain_dropped_partitions_total", Help: "Day partitions dropped after their archive was verified."}),
		daysDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_retain_deleted_archive_days_total", Help: "Archived days deleted after archive_days."}),
		erasures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_retain_erasures_total", Help: "Player erasures completed."}),
		erased: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_retain_erased_items_total", Help: "Rows, keys and archived events removed by erasures, by store (postgres, redis, s3)."},
			[]string{"store"}),
		restored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_retain_restored_events_total", Help: "Archived events loaded back into PostgreSQL."}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gamemetrics_retain_run_duration_seconds", Help: "Duration of one game's retention, of an erasure, of a restore.",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 12)}, []string{"task"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_retain_failures_total", Help: "Tasks that stopped with an error (they are resumed by the next run or retry)."},
			[]string{"task"}),
	}
	reg.MustRegister(m.eventsArchived, m.bytesArchived, m.partitionsDropped, m.daysDeleted, m.erasures, m.erased, m.restored, m.duration, m.failures)
	return m
}
