package cache

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RateLimiter limits events per second per game across every replica.
//
// A Redis round trip per request would cost more than the rest of ingest, so
// each replica reserves tokens from the shared per-second counter in chunks
// (a fiftieth of the limit) and spends them locally. The global count can
// never exceed the limit; a replica may strand at most one chunk per second
// that others could have used, which is the price of not asking Redis for
// every request.
type RateLimiter struct {
	rdb *redis.Client
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	mu     sync.Mutex
	second int64
	tokens int64
}

// NewRateLimiter returns a limiter whose shared counters live in rdb.
func NewRateLimiter(rdb *redis.Client) *RateLimiter {
	return &RateLimiter{rdb: rdb, now: time.Now, buckets: make(map[string]*bucket)}
}

// Allow takes n events from game's budget of limit events per second. When
// the budget is spent it returns false and how long to wait. limit <= 0
// means unlimited. An error means Redis could not be asked; the caller
// decides whether to fail open.
func (l *RateLimiter) Allow(ctx context.Context, game string, n, limit int64) (bool, time.Duration, error) {
	if limit <= 0 || n <= 0 {
		return true, 0, nil
	}
	now := l.now()
	sec := now.Unix()
	l.mu.Lock()
	b := l.buckets[game]
	if b == nil {
		b = &bucket{}
		l.buckets[game] = b
	}
	l.mu.Unlock()

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.second != sec {
		b.second, b.tokens = sec, 0
	}
	if b.tokens >= n {
		b.tokens -= n
		return true, 0, nil
	}
	chunk := max(n-b.tokens, limit/50, 1)
	key := "gm:rl:" + game + ":" + strconv.FormatInt(sec, 10)
	var incr *redis.IntCmd
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.IncrBy(ctx, key, chunk)
		p.Expire(ctx, key, 2*time.Second)
		return nil
	})
	if err != nil {
		return false, 0, err
	}
	before := incr.Val() - chunk
	granted := min(chunk, limit-before)
	if granted > 0 {
		b.tokens += granted
	}
	if b.tokens >= n {
		b.tokens -= n
		return true, 0, nil
	}
	wait := time.Unix(sec+1, 0).Sub(now)
	return false, wait, nil
}
