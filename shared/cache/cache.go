// Package cache is GameMetrics' Redis layer: the client, the per-game rate
// limiter shared by every ingest replica, and the live views. Nothing
// here is the only copy of any data: Redis can be flushed and rebuilt.
package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Open connects to the Redis at url (redis:// or rediss://) and pings it.
func Open(ctx context.Context, url string) (*redis.Client, error) {
	c, err := Dial(url)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to Redis at %s: %w", c.Options().Addr, err)
	}
	return c, nil
}

// Dial builds a client for url without connecting. Redis holds only the
// rate limiter and views that can be rebuilt, so the functions start, serve
// and stay ready without it (see each function's Ready); go-redis connects
// on first use and reconnects by itself when Redis comes back.
func Dial(url string) (*redis.Client, error) {
	if url == "" {
		return nil, errors.New("no Redis configured (set REDIS_URL)")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parse REDIS_URL: %w", err)
	}
	return redis.NewClient(opts), nil
}
