package serving

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// Mux serves fn at "/" with the health and metrics endpoints beside it:
// /healthz and /readyz for our own probes, /health/liveness and
// /health/readiness as the func runtime names them, and /metrics.
func Mux(fn Function, reg *prometheus.Registry, log *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	alive := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	ready := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if ok, err := fn.Ready(ctx); !ok {
			log.Warn("not ready", "err", err)
			http.Error(w, fmt.Sprintf("not ready: %v", err), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /healthz", alive)
	mux.Handle("GET /health/liveness", alive)
	mux.Handle("GET /readyz", ready)
	mux.Handle("GET /health/readiness", ready)
	mux.Handle("GET /metrics", telemetry.Handler(reg))
	mux.Handle("/", fn)
	return mux
}

// Serve runs h on l until ctx ends, then stops accepting, waits up to drain
// for in-flight requests (Knative sends SIGTERM on every scale-down, so this
// is the normal way a replica ends), and returns.
func Serve(ctx context.Context, l net.Listener, h http.Handler, drain time.Duration, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("drain HTTP server: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
