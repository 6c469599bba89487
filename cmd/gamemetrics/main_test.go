package main

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
)

// stack is the local stack the CLI tests share; each test makes its own game.
var stack *devstack.Stack

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

// migrated runs `gamemetrics migrate` against the shared stack and returns
// a context that bounds the rest of the test.
func migrated(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"migrate"}, stack.Getenv, &out, &errb); err != nil {
		t.Fatalf("migrate: %v\n%s", err, errb.String())
	}
	return ctx
}
