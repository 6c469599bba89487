// Package gamemetrics is the function bundle that the Knative `func` CLI
// builds from the repository root (see func.yaml): one image for every
// GameMetrics function. func's scaffolding calls New and serves the instance
// with the func-go HTTP runtime; Start reads $FUNCTION and builds that
// function exactly as `gamemetrics serve` does.
package gamemetrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"

	"github.com/gamemetrics/gamemetrics/functions"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// Bundle is the instance func's scaffolding serves. func-go calls Start
// in its own goroutine while the server already answers probes, so the
// started function is published atomically and requests before that get 503.
type Bundle struct {
	started atomic.Pointer[started]
}

type started struct {
	fn   serving.Function
	deps *functions.Deps
	mux  http.Handler
}

// New returns an unstarted bundle (the func "instanced" shape).
func New() *Bundle { return &Bundle{} }

// Start builds the function named by FUNCTION from cfg, which the func
// runtime fills with the environment (and ./cfg when present).
func (b *Bundle) Start(ctx context.Context, cfg map[string]string) error {
	getenv := func(k string) string { return cfg[k] }
	name := getenv("FUNCTION")
	if name == "" {
		return errors.New("FUNCTION is not set: want one of ingest, process, recommend, notify, retain, report")
	}
	log := telemetry.NewLogger(os.Stderr, getenv("LOG_LEVEL"), name)
	deps := functions.NewDeps(getenv, log)
	reg := telemetry.NewRegistry()
	fn, err := functions.Build(ctx, name, deps, reg)
	if err != nil {
		deps.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	b.started.Store(&started{fn: fn, deps: deps, mux: serving.Mux(fn, reg, log)})
	return nil
}

// Handle serves every request the func runtime does not answer itself
// (it owns /health/readiness and /health/liveness and asks Ready/Alive).
func (b *Bundle) Handle(w http.ResponseWriter, r *http.Request) {
	st := b.started.Load()
	if st == nil {
		serving.WriteJSONError(w, http.StatusServiceUnavailable, "function not started yet")
		return
	}
	st.mux.ServeHTTP(w, r)
}

// Ready reports whether the function's dependencies answer.
func (b *Bundle) Ready(ctx context.Context) (bool, error) {
	st := b.started.Load()
	if st == nil {
		return false, errors.New("not started yet")
	}
	return st.fn.Ready(ctx)
}

// Alive is true while the process runs: a process still starting or one
// that lost a dependency should report not-ready, not be restarted.
func (b *Bundle) Alive(context.Context) (bool, error) { return true, nil }

// Stop drains the function and closes its clients. The func runtime has
// already stopped accepting requests when it calls Stop.
func (b *Bundle) Stop(ctx context.Context) error {
	st := b.started.Swap(nil)
	if st == nil {
		return nil
	}
	err := st.fn.Stop(ctx)
	st.deps.Close()
	return err
}
