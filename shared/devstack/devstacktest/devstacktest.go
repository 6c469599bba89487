// Package devstacktest gives test binaries the real local stack: TestMain
// starts it once per package and every test shares it, isolating its data by
// creating its own game.
package devstacktest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/devstack"
)

// Main starts the stack (honouring DATABASE_URL, REDIS_URL, KAFKA_BROKERS and
// S3_ENDPOINT), stores it in *stack, runs the tests and stops it. A stack
// that cannot start fails the package with the reason; tests never skip.
func Main(m *testing.M, stack **devstack.Stack) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	s, err := devstack.Start(ctx, devstack.Config{
		Getenv:    os.Getenv,
		Ephemeral: true,
		Log:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the local stack the tests need did not start: %v\n", err)
		return 1
	}
	*stack = s
	code := m.Run()
	if err := s.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the local stack: %v\n", err)
	}
	return code
}
