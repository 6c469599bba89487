package devstacktest

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/cache"
	"github.com/gamemetrics/gamemetrics/shared/devstack"
)

// Clients are one test binary's connections to the stack, opened and the
// schema migrated on first use.
type Clients struct {
	Pool    *pgxpool.Pool
	Redis   *redis.Client
	Archive *archive.Client
}

var (
	connectOnce sync.Once
	clients     Clients
	connectErr  error
)

// Connect returns the binary's clients for s, failing tb with the reason
// when the stack cannot be reached.
func Connect(tb testing.TB, s *devstack.Stack) Clients {
	tb.Helper()
	connectOnce.Do(func() {
		ctx := context.Background()
		if clients.Pool, connectErr = s.Migrated(ctx); connectErr != nil {
			return
		}
		if clients.Redis, connectErr = cache.Open(ctx, s.RedisURL); connectErr != nil {
			return
		}
		clients.Archive, connectErr = archive.Open(ctx, archive.Config{
			Bucket: s.S3Bucket, Endpoint: s.S3Endpoint, Region: "us-east-1", ForcePathStyle: true,
			AccessKey: devstack.S3AccessKey, SecretKey: devstack.S3SecretKey,
		})
	})
	if connectErr != nil {
		tb.Fatalf("local stack: %v", connectErr)
	}
	return clients
}
