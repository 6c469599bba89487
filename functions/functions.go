// Package functions wires each GameMetrics function to the dependencies it
// needs, opened from configuration read once by the caller. `gamemetrics
// serve`, `gamemetrics dev` and the root bundle built by `func` all build
// functions here, so every way of running one wires it the same way.
package functions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/functions/ingest"
	"github.com/gamemetrics/gamemetrics/functions/process"
	"github.com/gamemetrics/gamemetrics/functions/report"
	"github.com/gamemetrics/gamemetrics/functions/retain"
	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/cache"
	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// builder returns what wires the named function to its dependencies, nil
// for a function this build does not have. Adding a function is one case.
func builder(name string) func(context.Context, *Deps, *slog.Logger, prometheus.Registerer) (serving.Function, error) {
	switch name {
	case serving.Ingest:
		return buildIngest
	case serving.Process:
		return func(ctx context.Context, d *Deps, log *slog.Logger, reg prometheus.Registerer) (serving.Function, error) {
			p, err := buildProcess(ctx, d, log, reg)
			if err != nil {
				return nil, err // not a nil *Process in a non-nil interface
			}
			return p, nil
		}
	case serving.Report:
		return buildReport
	case serving.Retain:
		return buildRetain
	}
	return nil
}

// Implemented lists the functions this build can serve, in the order
// `gamemetrics dev` starts them.
func Implemented() []string {
	var out []string
	for _, name := range serving.Names() {
		if builder(name) != nil {
			out = append(out, name)
		}
	}
	return out
}

// Deps are the shared clients of one process: one PostgreSQL pool, one
// Redis client, one Kafka producer and one S3 client, however many
// functions use them. Each is opened on first use and exactly once, even
// when functions are built concurrently (`gamemetrics dev` builds every
// function at once), and Close closes each once.
type Deps struct {
	getenv func(string) string
	log    *slog.Logger

	pool     lazy[*pgxpool.Pool]
	redis    lazy[*redis.Client]
	producer lazy[*kgo.Client]
	archive  lazy[*archive.Client]
}

// lazy is a client opened on first use. A failed open is not remembered,
// so the next build tries again.
type lazy[T any] struct {
	mu     sync.Mutex
	v      T
	opens  int // how often open succeeded: 1 at most
	closed bool
}

func (l *lazy[T]) get(open func() (T, error)) (T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var zero T
	if l.closed {
		return zero, errors.New("functions: dependencies already closed")
	}
	if l.opens > 0 {
		return l.v, nil
	}
	v, err := open()
	if err != nil {
		return zero, err
	}
	l.v, l.opens = v, l.opens+1
	return v, nil
}

func (l *lazy[T]) close(closeFn func(T)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.opens > 0 && !l.closed {
		closeFn(l.v)
	}
	l.closed = true
}

// NewDeps prepares dependencies read from getenv; they are opened on first use.
func NewDeps(getenv func(string) string, log *slog.Logger) *Deps {
	return &Deps{getenv: getenv, log: log}
}

// Pool is the process's PostgreSQL pool ($DATABASE_URL), opened on first use.
func (d *Deps) Pool(ctx context.Context) (*pgxpool.Pool, error) {
	return d.pool.get(func() (*pgxpool.Pool, error) { return store.Open(ctx, d.getenv("DATABASE_URL")) })
}

// Redis is the Redis client ($REDIS_URL). It is built without requiring
// Redis to answer: a function that starts (or scales up from zero) during a
// Redis outage must still serve, since PostgreSQL and Kafka hold everything
// that matters.
func (d *Deps) Redis(ctx context.Context) (*redis.Client, error) {
	return d.redis.get(func() (*redis.Client, error) {
		c, err := cache.Dial(d.getenv("REDIS_URL"))
		if err != nil {
			return nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := c.Ping(pctx).Err(); err != nil {
			d.log.Warn("Redis does not answer; starting without it (no rate limiting, live view stale) until it does",
				"addr", c.Options().Addr, "err", err)
		}
		return c, nil
	})
}

// Producer is the durable Kafka producer (acks=all, idempotent) whose
// delivery timeout is ingest's produce timeout.
func (d *Deps) Producer(deliveryTimeout time.Duration) (*kgo.Client, error) {
	return d.producer.get(func() (*kgo.Client, error) {
		kc, err := kafka.ConfigFromEnv(d.getenv)
		if err != nil {
			return nil, err
		}
		p, err := kafka.NewProducer(kc, deliveryTimeout)
		if err != nil {
			return nil, fmt.Errorf("kafka producer: %w", err)
		}
		return p, nil
	})
}

// Archive is the S3 client of the archive bucket ($S3_BUCKET and friends).
func (d *Deps) Archive(ctx context.Context) (*archive.Client, error) {
	return d.archive.get(func() (*archive.Client, error) {
		cfg, err := archive.ConfigFromEnv(d.getenv)
		if err != nil {
			return nil, err
		}
		return archive.Open(ctx, cfg)
	})
}

// database returns the pool and the Redis client every function reads
// (games and aggregates, live views).
func (d *Deps) database(ctx context.Context) (*pgxpool.Pool, *redis.Client, error) {
	pool, err := d.Pool(ctx)
	if err != nil {
		return nil, nil, err
	}
	rdb, err := d.Redis(ctx)
	return pool, rdb, err
}

// Close releases every client that was opened. Call it after the functions
// using them have stopped; a second Close does nothing.
func (d *Deps) Close() {
	d.producer.close((*kgo.Client).Close)
	d.redis.close(func(c *redis.Client) { c.Close() })
	d.archive.close(func(*archive.Client) {})
	d.pool.close((*pgxpool.Pool).Close)
}

// Build returns the named function wired to deps, registering its metrics
// on reg.
func Build(ctx context.Context, name string, deps *Deps, reg prometheus.Registerer) (serving.Function, error) {
	if !slices.Contains(serving.Names(), name) {
		return nil, fmt.Errorf("unknown function %q: want one of %s", name, strings.Join(serving.Names(), ", "))
	}
	build := builder(name)
	if build == nil {
		return nil, errors.New("function " + name + " is not part of this build yet (implemented: " + strings.Join(Implemented(), ", ") + ")")
	}
	return build(ctx, deps, deps.log.With("function", name), reg)
}

// BuildConsumer builds process with its direct Kafka consumer, for
// `gamemetrics serve process --from-kafka` (deployments without Knative
// eventing). The consumer reads PROCESS_KAFKA_* and the Kafka connection
// from the environment. Run the consumer, Close it, then Stop process.
func BuildConsumer(ctx context.Context, deps *Deps, reg prometheus.Registerer) (*process.Process, *process.Consumer, error) {
	kc, err := kafka.ConfigFromEnv(deps.getenv)
	if err != nil {
		return nil, nil, err
	}
	ccfg, err := process.ConsumerConfigFromEnv(deps.getenv)
	if err != nil {
		return nil, nil, err
	}
	p, err := buildProcess(ctx, deps, deps.log.With("function", serving.Process), reg)
	if err != nil {
		return nil, nil, err
	}
	cons, err := process.NewConsumer(p, kc, ccfg)
	if err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return nil, nil, errors.Join(err, p.Stop(sctx))
	}
	return p, cons, nil
}

func buildIngest(ctx context.Context, deps *Deps, log *slog.Logger, reg prometheus.Registerer) (serving.Function, error) {
	cfg, err := ingest.ConfigFromEnv(deps.getenv)
	if err != nil {
		return nil, err
	}
	pool, rdb, err := deps.database(ctx)
	if err != nil {
		return nil, err
	}
	prod, err := deps.Producer(cfg.ProduceTimeout)
	if err != nil {
		return nil, err
	}
	return ingest.New(cfg, store.NewGames(pool), prod, rdb, log, reg), nil
}

func buildProcess(ctx context.Context, deps *Deps, log *slog.Logger, reg prometheus.Registerer) (*process.Process, error) {
	cfg, err := process.ConfigFromEnv(deps.getenv)
	if err != nil {
		return nil, err
	}
	pool, rdb, err := deps.database(ctx)
	if err != nil {
		return nil, err
	}
	return process.New(cfg, pool, rdb, log, reg), nil
}

func buildReport(ctx context.Context, deps *Deps, log *slog.Logger, reg prometheus.Registerer) (serving.Function, error) {
	pool, rdb, err := deps.database(ctx)
	if err != nil {
		return nil, err
	}
	var objects *archive.Client
	if deps.getenv("S3_BUCKET") != "" {
		if objects, err = deps.Archive(ctx); err != nil {
			return nil, err
		}
	} else {
		log.Warn("no S3_BUCKET: the API serves, but PingSource digests will fail until one is configured")
	}
	return report.New(report.DefaultConfig(), pool, rdb, objects, log, reg, time.Now), nil
}

func buildRetain(ctx context.Context, deps *Deps, log *slog.Logger, reg prometheus.Registerer) (serving.Function, error) {
	cfg, err := retain.ConfigFromEnv(deps.getenv)
	if err != nil {
		return nil, err
	}
	pool, rdb, err := deps.database(ctx)
	if err != nil {
		return nil, err
	}
	objects, err := deps.Archive(ctx)
	if err != nil {
		return nil, err
	}
	return retain.New(cfg, pool, rdb, objects, log, reg, time.Now), nil
}
