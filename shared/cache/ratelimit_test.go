package cache_test

import (
	"context"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gamemetrics/gamemetrics/shared/cache"
	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
)

var stack *devstack.Stack

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

// commands counts the commands a client sends to Redis.
type commands struct{ n atomic.Int64 }

func (c *commands) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *commands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// replica is one ingest replica's limiter, with its own Redis connection.
func replica(t *testing.T) (*cache.RateLimiter, *commands) {
	t.Helper()
	rdb, err := cache.Open(context.Background(), stack.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	c := &commands{}
	rdb.AddHook(c)
	return cache.NewRateLimiter(rdb), c
}

// Three replicas sending one game's events as fast as the limiter lets
// them, for three seconds, admit what one token bucket of the limit would
// (its capacity plus the limit per second), less at most a lease and a half
// per replica held unspent, and never more.
func TestLimitHoldsAcrossReplicas(t *testing.T) {
	const (
		limit    = 3000
		replicas = 3
		per      = 10 // events per request
		period   = 3 * time.Second
		lease    = limit / 50
	)
	game := "rl-replicas-" + t.Name()
	ctx, cancel := context.WithTimeout(context.Background(), period)
	defer cancel()
	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range replicas {
		l, _ := replica(t)
		for range 4 { // concurrent requests on each replica
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					ok, wait, err := l.Allow(ctx, game, per, limit)
					switch {
					case err != nil && ctx.Err() == nil:
						t.Errorf("Allow: %v", err)
						return
					case ok:
						admitted.Add(per)
					default:
						time.Sleep(min(wait, 5*time.Millisecond))
					}
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	most := limit*elapsed + limit + replicas*lease*3/2
	least := (limit*period.Seconds()+limit)*0.9 - replicas*lease*3/2
	got := float64(admitted.Load())
	t.Logf("%d replicas admitted %.0f events in %.2f s against a limit of %d/s (bounds %.0f–%.0f)", replicas, got, elapsed, limit, least, most)
	if got > most {
		t.Errorf("admitted %.0f events, more than the limit allows (%.0f)", got, most)
	}
	if got < least {
		t.Errorf("admitted %.0f events, fewer than the limit should let through (%.0f)", got, least)
	}
}

// Requests within the limit do not ask Redis each: a lease serves many.
func TestRequestsWithinTheLimitDoNotEachAskRedis(t *testing.T) {
	l, cmds := replica(t)
	const requests = 2000
	for i := range requests {
		ok, _, err := l.Allow(context.Background(), "rl-lease-"+t.Name(), 1, 100_000)
		if !ok || err != nil {
			t.Fatalf("request %d refused: %v", i, err)
		}
	}
	// A lease is 2,000 tokens: the first request's, then one fetched ahead.
	time.Sleep(100 * time.Millisecond)
	if n := cmds.n.Load(); n > 4 {
		t.Errorf("%d requests sent %d commands to Redis, want a few leases", requests, n)
	}
}

// A request larger than the limit never passes; two that together exceed
// it do not both pass; a game over its limit is refused without asking
// Redis again until the bucket can have refilled.
func TestRefusals(t *testing.T) {
	l, cmds := replica(t)
	ctx := context.Background()
	game := "rl-refusals-" + t.Name()
	if ok, wait, err := l.Allow(ctx, game, 6, 5); ok || wait <= 0 || err != nil {
		t.Errorf("6 events against a limit of 5: ok=%v wait=%s err=%v, want refused with a wait", ok, wait, err)
	}
	if ok, _, err := l.Allow(ctx, game, 4, 5); !ok || err != nil {
		t.Fatalf("4 events against a limit of 5: refused (%v)", err)
	}
	ok, wait, err := l.Allow(ctx, game, 4, 5)
	if ok || err != nil || wait <= 0 || wait > time.Second {
		t.Fatalf("4 more at once: ok=%v wait=%s err=%v, want refused, wait under a second", ok, wait, err)
	}
	before := cmds.n.Load()
	for range 100 {
		if ok, _, _ := l.Allow(ctx, game, 4, 5); ok {
			t.Fatal("admitted while the bucket is empty")
		}
	}
	if n := cmds.n.Load() - before; n > 1 {
		t.Errorf("100 refused requests sent %d commands to Redis", n)
	}
	time.Sleep(wait + 50*time.Millisecond)
	if ok, _, err := l.Allow(ctx, game, 4, 5); !ok || err != nil {
		t.Errorf("after the wait it said: refused (%v)", err)
	}
}

// With Redis gone the limiter answers with an error (ingest admits and
// counts the request) and stops asking for a while instead of making every
// request wait for a connection that fails.
func TestRedisDownFailsFastAndRetriesLater(t *testing.T) {
	l0, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l0.Addr().String()
	l0.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	c := &commands{}
	rdb.AddHook(c)
	l := cache.NewRateLimiter(rdb)
	start := time.Now()
	for range 50 {
		if _, _, err := l.Allow(context.Background(), "rl-down", 1, 1000); err == nil {
			t.Fatal("no error with Redis down")
		}
	}
	if n := c.n.Load(); n > 1 {
		t.Errorf("50 requests with Redis down sent %d commands, want 1 then a back-off", n)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("50 requests with Redis down took %s", d)
	}
	// Past the back-off a lease asks again, in the background: the
	// request that starts it does not wait for it.
	time.Sleep(1100 * time.Millisecond)
	start = time.Now()
	if _, _, err := l.Allow(context.Background(), "rl-down", 1, 1000); err == nil {
		t.Fatal("no error with Redis down")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("a request after the back-off waited %s for Redis", d)
	}
	time.Sleep(500 * time.Millisecond)
	if n := c.n.Load(); n != 2 {
		t.Errorf("after the back-off %d commands in all, want 2", n)
	}
}
