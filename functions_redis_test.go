package gamemetrics_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gamemetrics/gamemetrics/functions"
)

// Redis holds only the rate limiter and rebuildable live views, so a
// function that starts (or scales up from zero) while Redis is down must
// build and report itself ready; found by chaos/redis_test.go.
func TestEveryFunctionStartsAndIsReadyWhileRedisIsDown(t *testing.T) {
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "redis://" + l.Addr().String()
	l.Close()
	getenv := func(name string) string {
		if name == "REDIS_URL" {
			return down
		}
		return stack.Getenv(name)
	}
	deps := functions.NewDeps(getenv, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	t.Cleanup(deps.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range functions.Implemented() {
		t.Run(name, func(t *testing.T) {
			fn, err := functions.Build(ctx, name, deps, prometheus.NewRegistry())
			if err != nil {
				t.Fatalf("build with Redis down: %v", err)
			}
			t.Cleanup(func() { fn.Stop(context.Background()) })
			ready, err := fn.Ready(ctx)
			if !ready || err != nil {
				t.Errorf("ready = %v, %v; want ready (Redis is optional)", ready, err)
			}
		})
	}
}
