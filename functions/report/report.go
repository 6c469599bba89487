// Package report is how analysts read GameMetrics: an HTTP API of the
// standard game KPIs (series per day, week, month or hour in the game's time
// zone, retention cohorts, progression funnels, the live view), a dashboard
// page served from the binary, and scheduled digests written to S3 when a
// PingSource asks for them.
//
// report is the HTTP layer: it reads a request, asks shared/metrics (the
// queries over what process maintains in PostgreSQL, which notify's alert
// rules use too) or the Redis live view, and encodes the answer as JSON or
// CSV. The raw events export is shared/archive's WriteDay.
package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/cache"
	"github.com/gamemetrics/gamemetrics/shared/metrics"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// Config tunes report. Start from DefaultConfig.
type Config struct {
	// KeyCacheTTL is how long a read key lookup is remembered; a revoked
	// key stops working within it.
	KeyCacheTTL time.Duration
	// QueryTimeout bounds the database work of one API request.
	QueryTimeout time.Duration
	// ExportTimeout bounds one raw events export (a day of a big game is
	// millions of events).
	ExportTimeout time.Duration
	// ExactDistinctLimit decides how distinct players over a week or month
	// are counted (see metrics.WithExactDistinctLimit): exactly while the
	// range holds at most this many player-days, else from HyperLogLog
	// sketches.
	ExactDistinctLimit int64
}

// DefaultConfig is what `gamemetrics serve report` uses.
func DefaultConfig() Config {
	return Config{KeyCacheTTL: 30 * time.Second, QueryTimeout: 20 * time.Second, ExportTimeout: 15 * time.Minute, ExactDistinctLimit: metrics.DefaultExactDistinctLimit}
}

// Report is the report function. Build it with New.
type Report struct {
	cfg         Config
	pool        *pgxpool.Pool
	queries     *metrics.Queries
	live        *cache.Live
	objects     *archive.Client
	games       *store.Games
	keys        *store.KeyCache
	log         *slog.Logger
	instruments *instruments
	now         func() time.Time
	handler     http.Handler
}

// New builds report from its dependencies: the PostgreSQL pool process
// writes to (migrated), the Redis client of the live view, the S3 client
// digests are written with, a logger, a registry for its metrics and a
// clock (time.Now outside tests).
func New(cfg Config, pool *pgxpool.Pool, rdb *redis.Client, objects *archive.Client, log *slog.Logger, reg prometheus.Registerer, now func() time.Time) *Report {
	if now == nil {
		now = time.Now
	}
	if cfg.KeyCacheTTL <= 0 {
		cfg.KeyCacheTTL = DefaultConfig().KeyCacheTTL
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = DefaultConfig().QueryTimeout
	}
	if cfg.ExportTimeout <= 0 {
		cfg.ExportTimeout = DefaultConfig().ExportTimeout
	}
	games := store.NewGames(pool)
	r := &Report{
		cfg:         cfg,
		pool:        pool,
		queries:     metrics.New(pool, now, metrics.WithExactDistinctLimit(cfg.ExactDistinctLimit)),
		live:        cache.NewLive(rdb),
		objects:     objects,
		games:       games,
		keys:        store.NewKeyCache(games.ByReadKey, cfg.KeyCacheTTL),
		log:         log,
		instruments: newInstruments(reg),
		now:         now,
	}
	r.handler = r.routes()
	return r
}

// ServeHTTP serves the API, the dashboard and CloudEvents on POST /.
func (r *Report) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.handler.ServeHTTP(w, req) }

// Handle answers a PingSource tick (type dev.knative.sources.ping, data
// {"report":"daily"} or {"report":"weekly"}) by writing every game's digest
// of the last complete period to S3 and replying with a
// com.gamemetrics.report.generated event naming the objects.
func (r *Report) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	if e.Type() != TypePing {
		return nil, serving.Reject(http.StatusBadRequest, "report handles %s events, not %q", TypePing, e.Type())
	}
	kind, err := digestKind(e.Data())
	if err != nil {
		return nil, serving.Reject(http.StatusBadRequest, "%v", err)
	}
	return r.digests(ctx, kind, e.ID())
}

// Ready reports whether PostgreSQL answers (the live view and S3 are only
// needed by some requests).
func (r *Report) Ready(ctx context.Context) (bool, error) {
	if err := r.pool.Ping(ctx); err != nil {
		return false, fmt.Errorf("postgres: %w", err)
	}
	return true, nil
}

// Stop has nothing to drain: requests finish with the HTTP server.
func (r *Report) Stop(context.Context) error { return nil }

var errNoArchive = errors.New("no S3 bucket configured for digests (S3_BUCKET)")

// instruments are report's Prometheus metrics.
type instruments struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	digests  *prometheus.CounterVec
}

func newInstruments(reg prometheus.Registerer) *instruments {
	m := &instruments{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_report_requests_total",
			Help: "API requests by endpoint (metrics, retention, progression, live, game, dashboard) and status code."},
			[]string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gamemetrics_report_request_duration_seconds", Help: "Time to answer an API request, by endpoint.",
			Buckets: telemetry.LatencyBuckets()}, []string{"endpoint"}),
		digests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_report_digests_total",
			Help: "Digests written to S3, by report (daily, weekly) and outcome (written, failed)."},
			[]string{"report", "outcome"}),
	}
	reg.MustRegister(m.requests, m.duration, m.digests)
	return m
}
