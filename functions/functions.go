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

// Implemented lists the functions this build can serve.
func Implemented() []string {
	return []string{serving.Ingest, serving.Process, serving.Report, serving.Retain}
}

// Deps are the shared clients of one process: one pool, one Redis client,
// one Kafka producer, whatever number of functions use them.
type Deps struct {
	getenv func(string) string
	log    *slog.Logger

	Pool     *pgxpool.Pool
	Redis    *redis.Client
	Producer *kgo.Client
}

// NewDeps prepares dependencies read from getenv; they are opened on first use.
func NewDeps(getenv func(string) string, log *slog.Logger) *Deps {
	return &Deps{getenv: getenv, log: log}
}

func (d *Deps) pool(ctx context.Context) (*pgxpool.Pool, error) {
	if d.Pool == nil {
		p, err := store.Open(ctx, d.getenv("DATABASE_URL"))
		if err != nil {
			return nil, err
		}
		d.Pool = p
	}
	return d.Pool, nil
}

// redis builds the Redis client without requiring Redis to answer: a
// function that starts (or scales up from zero) during a Redis outage must
// still serve, since PostgreSQL and Kafka hold everything that matters.
func (d *Deps) redis(ctx context.Context) (*redis.Client, error) {
	if d.Redis == nil {
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
		d.Redis = c
	}
	return d.Redis, nil
}

func (d *Deps) producer(cfg ingest.Config) (*kgo.Client, error) {
	if d.Producer == nil {
		kc, err := kafka.ConfigFromEnv(d.getenv)
		if err != nil {
			return nil, err
		}
		p, err := kafka.NewProducer(kc, cfg.ProduceTimeout)
		if err != nil {
			return nil, fmt.Errorf("kafka producer: %w", err)
		}
		d.Producer = p
	}
	return d.Producer, nil
}

// Close releases every client that was opened. Call it after the functions
// using them have stopped.
func (d *Deps) Close() {
	if d.Producer != nil {
		d.Producer.Close()
	}
	if d.Redis != nil {
		d.Redis.Close()
	}
	if d.Pool != nil {
		d.Pool.Close()
	}
}

// Build returns the named function wired to deps, registering its metrics
// on reg.
func Build(ctx context.Context, name string, deps *Deps, reg prometheus.Registerer) (serving.Function, error) {
	if !slices.Contains(serving.Names(), name) {
		return nil, fmt.Errorf("unknown function %q: want one of %s", name, strings.Join(serving.Names(), ", "))
	}
	if !slices.Contains(Implemented(), name) {
		return nil, errors.New("function " + name + " is not part of this build yet (implemented: " + strings.Join(Implemented(), ", ") + ")")
	}
	log := deps.log.With("function", name)
	// Every function reads PostgreSQL (games, aggregates) and Redis.
	pool, err := deps.pool(ctx)
	if err != nil {
		return nil, err
	}
	rdb, err := deps.redis(ctx)
	if err != nil {
		return nil, err
	}
	switch name {
	case serving.Ingest:
		cfg, err := ingest.ConfigFromEnv(deps.getenv)
		if err != nil {
			return nil, err
		}
		prod, err := deps.producer(cfg)
		if err != nil {
			return nil, err
		}
		return ingest.New(cfg, store.NewGames(pool), prod, rdb, log, reg), nil
	case serving.Process:
		cfg, err := process.ConfigFromEnv(deps.getenv)
		if err != nil {
			return nil, err
		}
		return process.New(cfg, pool, rdb, log, reg), nil
	case serving.Report:
		var objects *archive.Client
		if s3cfg := archive.ConfigFromEnv(deps.getenv); s3cfg.Bucket != "" {
			if objects, err = archive.Open(ctx, s3cfg); err != nil {
				return nil, err
			}
		} else {
			log.Warn("no S3_BUCKET: the API serves, but PingSource digests will fail until one is configured")
		}
		return report.New(report.DefaultConfig(), pool, rdb, objects, log, reg, time.Now), nil
	case serving.Retain:
		cfg, err := retain.ConfigFromEnv(deps.getenv)
		if err != nil {
			return nil, err
		}
		objects, err := archive.Open(ctx, archive.ConfigFromEnv(deps.getenv))
		if err != nil {
			return nil, err
		}
		return retain.New(cfg, pool, rdb, objects, log, reg, time.Now), nil
	}
	panic("functions: " + name + " is listed in Implemented but has no wiring in Build")
}
