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
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/settings"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// drainTimeout is how long a stopping server waits for in-flight requests.
// Knative gives a pod 30 s between SIGTERM and SIGKILL by default.
const drainTimeout = 25 * time.Second

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	port := fs.String("port", settings.From(getenv).String("PORT", "8080"), "port to listen on ($PORT)")
	fromKafka := fs.Bool("from-kafka", false, "process only: consume gamemetrics.events directly from Kafka ($KAFKA_BROKERS) instead of waiting for KafkaSource deliveries")
	// Flags may come before or after the function name
	// (`serve --port 9000 ingest` and `serve process --from-kafka`).
	var names []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		names, args = append(names, fs.Arg(0)), fs.Args()[1:]
	}
	if len(names) != 1 {
		return errors.New("serve: name one function, e.g. `gamemetrics serve ingest`")
	}
	name := names[0]
	log := telemetry.NewLogger(stderr, getenv("LOG_LEVEL"), "")
	deps := functions.NewDeps(getenv, log)
	defer deps.Close()
	l, err := net.Listen("tcp", net.JoinHostPort(settings.From(getenv).String("HOST", ""), *port))
	if err != nil {
		return err
	}
	if *fromKafka {
		return serveFromKafka(ctx, name, l, deps, log)
	}
	return serveFunction(ctx, name, l, deps, log)
}

// serveFromKafka runs process as a direct Kafka consumer (for deployments
// without Knative eventing) while serving its HTTP face, health and
// metrics on l. Either ending stops both; queued work is drained.
func serveFromKafka(ctx context.Context, name string, l net.Listener, deps *functions.Deps, log *slog.Logger) error {
	if name != serving.Process {
		l.Close()
		return fmt.Errorf("--from-kafka applies to process only, not %s", name)
	}
	reg := telemetry.NewRegistry()
	fn, cons, err := functions.BuildConsumer(ctx, deps, reg)
	if err != nil {
		l.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	log = log.With("function", name)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cerr := make(chan error, 1)
	go func() {
		cerr <- cons.Run(ctx)
		cancel()
	}()
	log.Info("serving", "addr", l.Addr().String(), "from-kafka", true)
	serr := serving.Serve(ctx, l, serving.Mux(fn, reg, log), drainTimeout, log)
	cancel()
	serr = errors.Join(serr, <-cerr)
	cons.Close()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer scancel()
	if err := fn.Stop(sctx); err != nil {
		serr = errors.Join(serr, fmt.Errorf("stop %s: %w", name, err))
	}
	log.Info("stopped")
	return serr
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
	serr := serving.Serve(ctx, l, serving.Mux(fn, reg, log), drainTimeout, log)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	if err := fn.Stop(sctx); err != nil {
		serr = errors.Join(serr, fmt.Errorf("stop %s: %w", name, err))
	}
	log.Info("stopped")
	return serr
}
