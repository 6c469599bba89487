package cache

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RateLimiter limits events per second per game across every replica.
//
// The limit is one token bucket per game in Redis, filled at limit tokens
// per second up to limit (a second's worth: a request may carry up to the
// whole limit at once). A Redis round trip per request would cost more than
// the rest of ingest, so each replica takes tokens from that bucket in
// batches (a lease of 2% of the limit, or what one request needs if that is
// more) into a local bucket, and spends them without asking Redis. The next
// lease is fetched in the background when the local bucket falls below half
// a lease, or when the lease is half a second old (leases expire after a
// second), so a request waits for Redis only when it needs more than the
// replica holds; a refusal is remembered until the shared bucket can have
// refilled, so a game over its limit costs no round trip per request either.
//
// Tolerance: every event admitted was taken from the shared bucket, so over
// any interval T all replicas together admit at most limit×T + limit (the
// bucket's capacity), as one token bucket would, plus what the replicas held
// when the interval began (at most a lease and a half each). Tokens a
// replica holds are lost to the others: a game sending steadily through R
// replicas gets at least limit − R × (a lease and a half) per second, 97% of
// the limit per replica sharing it. TestLimitHoldsAcrossReplicas measures
// both bounds.
type RateLimiter struct {
	rdb  *redis.Client
	take *redis.Script
	now  func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

// Tuning of the local buckets.
const (
	leaseFraction = 50 // a lease is limit/leaseFraction tokens
	// leaseTTL is how long leased tokens stay usable: beyond it they would
	// add to a burst the shared bucket has already refilled for.
	leaseTTL = time.Second
	// failBackoff is how often a replica asks a Redis that failed again;
	// requests meanwhile get the error at once (callers admit them and
	// count it) instead of each waiting for a connection that fails.
	failBackoff = time.Second
)

// bucket is one game's tokens on this replica.
type bucket struct {
	mu       sync.Mutex
	tokens   int64
	leasedAt time.Time
	// refill is closed when the lease in flight is done; nil when none is.
	refill chan struct{}
	// emptyUntil is when the shared bucket may have tokens again, after
	// it had none for a request.
	emptyUntil time.Time
	// failed is the error of the last lease, nil once one succeeds;
	// failedTill is when to ask again.
	failed     error
	failedTill time.Time
}

// NewRateLimiter returns a limiter whose shared buckets live in rdb.
func NewRateLimiter(rdb *redis.Client) *RateLimiter {
	return &RateLimiter{rdb: rdb, take: redis.NewScript(takeScript), now: time.Now, buckets: make(map[string]*bucket)}
}

// takeScript leases up to want tokens from the shared bucket of key, which
// fills at rate tokens per second up to burst, and returns how many it got.
// The clock is Redis's, so replicas' clocks do not matter.
const takeScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(v[1]), tonumber(v[2])
if tokens == nil or at == nil then
  tokens, at = burst, now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000000)
local granted = math.max(0, math.min(want, math.floor(tokens)))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return granted
`

// Allow takes n events from game's budget of limit events per second. When
// the budget is spent it returns false and how long to wait. limit <= 0
// means unlimited. An error means Redis could not be asked; the caller
// decides whether to fail open.
func (l *RateLimiter) Allow(ctx context.Context, game string, n, limit int64) (bool, time.Duration, error) {
	if limit <= 0 || n <= 0 {
		return true, 0, nil
	}
	if n > limit {
		// More than the bucket ever holds: no wait makes it pass.
		return false, time.Second, nil
	}
	b := l.bucket(game)
	b.mu.Lock()
	defer b.mu.Unlock()
	ownLease := false
	for attempt := 0; ; attempt++ {
		now := l.now()
		if now.Sub(b.leasedAt) > leaseTTL {
			b.tokens = 0
		}
		if b.tokens >= n {
			b.tokens -= n
			switch {
			case b.tokens < max(limit/leaseFraction, 1)/2:
				l.startRefill(b, game, limit, 0) // before the local bucket runs out
			case now.Sub(b.leasedAt) > leaseTTL/2:
				// Before the lease expires, a new one replaces it, so a
				// game well under its limit never waits for Redis either.
				l.startRefill(b, game, limit, -1)
			}
			return true, 0, nil
		}
		if b.failed != nil {
			// The last lease failed: no request waits for Redis while it
			// fails; a lease in the background asks again, once per
			// failBackoff, and its success ends this.
			if !now.Before(b.failedTill) {
				l.startRefill(b, game, limit, n-b.tokens)
			}
			return false, 0, b.failed
		}
		if ownLease || attempt == 4 {
			// A lease for what this request lacks came back short: the
			// shared bucket is empty for it until it refills the rest.
			missing := float64(n-b.tokens) / float64(limit)
			b.emptyUntil = now.Add(time.Duration(missing * float64(time.Second)))
		}
		if now.Before(b.emptyUntil) {
			return false, max(b.emptyUntil.Sub(now), time.Millisecond), nil
		}
		// Wait for a lease: the one in flight, or one for at least what
		// this request lacks.
		done := b.refill
		if done == nil {
			done, ownLease = l.startRefill(b, game, limit, n-b.tokens), true
		}
		b.mu.Unlock()
		select {
		case <-done:
			b.mu.Lock()
		case <-ctx.Done():
			b.mu.Lock()
			return false, 0, ctx.Err()
		}
	}
}

func (l *RateLimiter) bucket(game string) *bucket {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[game]
	if b == nil {
		b = &bucket{}
		l.buckets[game] = b
	}
	return b
}

// startRefill leases at least need tokens (and at least a lease) in the
// background and returns the channel closed when it is done; need < 0 asks
// for a lease that replaces the tokens held instead of adding to them.
// b.mu is held.
func (l *RateLimiter) startRefill(b *bucket, game string, limit, need int64) chan struct{} {
	if b.refill != nil {
		return b.refill
	}
	done := make(chan struct{})
	b.refill = done
	want, renew := max(need, limit/leaseFraction, 1), need < 0
	go func() {
		// Its own deadline: the lease serves every request, not only the
		// one that started it.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		got, err := l.take.Run(ctx, l.rdb, []string{"gm:rl:" + game}, limit, limit, want).Int64()
		b.mu.Lock()
		now := l.now()
		if err != nil {
			b.failed, b.failedTill = err, now.Add(failBackoff)
		} else {
			b.failed, b.failedTill = nil, time.Time{}
			if renew || now.Sub(b.leasedAt) > leaseTTL {
				b.tokens = 0
			}
			b.tokens += got
			b.leasedAt = now
		}
		b.refill = nil
		b.mu.Unlock()
		close(done)
	}()
	return done
}
