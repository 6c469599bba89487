package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/gamemetrics/gamemetrics/functions"
	"github.com/gamemetrics/gamemetrics/shared/function"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// drainTimeout is how long a stopping server waits for in-flight requests.
// Knative gives a pod 30 s between SIGTERM and SIGKILL by default.
const drainTimeout = 25 * time.Second

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	port := fs.String("port", envOr(getenv, "PORT", "8080"), "port to listen on ($PORT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("serve: name one function, e.g. `gamemetrics serve ingest`")
	}
	name := fs.Arg(0)
	log := telemetry.NewLogger(stderr, getenv("LOG_LEVEL"), "")
	deps := functions.NewDeps(getenv, log)
	defer deps.Close()
	l, err := net.Listen("tcp", net.JoinHostPort(envOr(getenv, "HOST", ""), *port))
	if err != nil {
		return err
	}
	return serveFunction(ctx, name, l, deps, log)
}

// serveFunction builds one function, serves it on l until ctx ends, then
// drains requests and stops the function.
func serveFunction(ctx context.Context, name string, l net.Listener, deps *functions.Deps, log *slog.Logger) error {
	reg := telemetry.NewRegistry()
	fn, err := functions.Build(ctx, name, deps, reg)
	if err != nil {
		l.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	log = log.With("function", name)
	log.Info("serving", "addr", l.Addr().String())
	serr := function.Serve(ctx, l, function.Mux(fn, reg, log), drainTimeout, log)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	if err := fn.Stop(sctx); err != nil {
		serr = errors.Join(serr, fmt.Errorf("stop %s: %w", name, err))
	}
	log.Info("stopped")
	return serr
}
