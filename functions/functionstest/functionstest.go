// Package functionstest serves GameMetrics functions over HTTP inside a
// test process, each on its own loopback port exactly as `gamemetrics serve`
// does (serving.Mux, serving.Serve with draining), so end-to-end and
// chaos tests can kill, restart and read the metrics of each one, and wait
// for the report API to agree with a simulation's truth.
package functionstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gamemetrics/gamemetrics/functions"
	"github.com/gamemetrics/gamemetrics/shared/eventing"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// Server is one function served over HTTP.
type Server struct {
	Addr string
	// Metrics holds the metrics of the current incarnation (a restart
	// starts from zero, as a new pod would).
	Metrics *prometheus.Registry
	cancel  context.CancelFunc
	done    chan error
}

// Servers is a set of functions sharing one Deps.
type Servers struct {
	t    testing.TB
	deps *functions.Deps
	log  *slog.Logger
	m    map[string]*Server
	rt   *eventing.Runtime // Platform's eventing runtime
}

// New returns an empty set; Start adds functions. StopAll runs at cleanup.
func New(t testing.TB, deps *functions.Deps, log *slog.Logger) *Servers {
	s := &Servers{t: t, deps: deps, log: log, m: map[string]*Server{}}
	t.Cleanup(s.StopAll)
	return s
}

// Platform serves every implemented function and runs the local eventing
// runtime from the manifests in dir (../eventing/base from a test package),
// delivering from brokers to those functions, as `gamemetrics dev` does.
// The runtime stops at cleanup, before the functions: cleanups t registers
// after Platform returns run before both.
func Platform(t testing.TB, deps *functions.Deps, log *slog.Logger, dir string, brokers []string, reg prometheus.Registerer) *Servers {
	t.Helper()
	return PlatformOf(t, deps, log, dir, brokers, reg, nil)
}

// PlatformOf is Platform with only the named functions and the sources
// that deliver to them (nil: every implemented function and every source).
// An experiment about some functions runs those alone: on a 2-core machine
// under -race, the consumers of notify and recommend reading the same
// topic beside them took CPU production gives them in other pods, and
// process's stage-1 batches under 75 ms of PostgreSQL latency went from
// 350 ms to 550 ms on average with a tail past the 10 s transaction bound.
func PlatformOf(t testing.TB, deps *functions.Deps, log *slog.Logger, dir string, brokers []string, reg prometheus.Registerer, names []string) *Servers {
	t.Helper()
	s := New(t, deps, log)
	only := names // nil runs every source, whatever its sink
	if names == nil {
		names = functions.Implemented()
	}
	for _, name := range names {
		s.Start(name, "127.0.0.1:0")
	}
	rt, err := eventing.New(eventing.Config{Dir: dir, Brokers: brokers, Services: s.Services(), Log: log, Registerer: reg, PingJitter: -1, Only: only})
	if err != nil {
		t.Fatalf("local eventing from %s: %v", dir, err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.rt = rt
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := rt.Stop(ctx); err != nil {
			t.Errorf("stop eventing: %v", err)
		}
	})
	return s
}

// Start serves the named function on addr ("127.0.0.1:0" picks a port;
// Restart reuses the old one).
func (s *Servers) Start(name, addr string) {
	s.t.Helper()
	reg := telemetry.NewRegistry()
	fn, err := functions.Build(context.Background(), name, s.deps, reg)
	if err != nil {
		s.t.Fatalf("build %s: %v", name, err)
	}
	var l net.Listener
	for range 50 { // the old listener's port may take a moment to free up
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen for %s on %s: %v", name, addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{Addr: l.Addr().String(), Metrics: reg, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := serving.Serve(ctx, l, serving.Mux(fn, reg, s.log), 10*time.Second, s.log)
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		srv.done <- errors.Join(err, fn.Stop(sctx))
	}()
	s.m[name] = srv
}

// Stop shuts a function down as a SIGTERM would: it drains what it holds.
func (s *Servers) Stop(name string) {
	srv := s.m[name]
	if srv == nil || srv.cancel == nil {
		return
	}
	srv.cancel()
	if err := <-srv.done; err != nil {
		s.t.Errorf("stop %s: %v", name, err)
	}
	srv.cancel = nil
}

// Restart stops a function and serves a new one on the same address.
func (s *Servers) Restart(name string) {
	s.t.Helper()
	addr := s.Get(name).Addr
	s.Stop(name)
	s.Start(name, addr)
}

// StopAll stops every function still running.
//
// A Platform's eventing runtime stops first, as a cluster drains its
// sources before their sinks: a delivery still in flight to a function
// that has stopped would retry with backoff until the runtime's stop gave
// up (notify's and recommend's sources deliver every event too).
func (s *Servers) StopAll() {
	if s.rt != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := s.rt.Stop(ctx)
		cancel()
		if err != nil {
			s.t.Errorf("stop eventing: %v", err)
		}
	}
	for name := range s.m {
		s.Stop(name)
	}
}

// Ping fires the named PingSource of the Platform's eventing runtime now,
// as its schedule would, and returns once the tick was delivered.
func (s *Servers) Ping(ctx context.Context, name string) error {
	if s.rt == nil {
		return errors.New("functionstest: Ping needs a Platform's eventing runtime")
	}
	return s.rt.Ping(ctx, name)
}

// Get returns the named function's server (nil if never started).
func (s *Servers) Get(name string) *Server { return s.m[name] }

// URL is the named function's base URL, ending in "/".
func (s *Servers) URL(name string) string { return "http://" + s.m[name].Addr + "/" }

// Services maps every started function to its URL without the trailing
// slash, as eventing.Config.Services wants.
func (s *Servers) Services() map[string]string {
	out := make(map[string]string, len(s.m))
	for name, srv := range s.m {
		out[name] = "http://" + srv.Addr
	}
	return out
}

// WaitForTruth polls the report API through r until it agrees with truth
// exactly, and fails t with the remaining differences if it does not
// within the given time.
func WaitForTruth(t testing.TB, r simulation.Reader, truth simulation.Truth, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	start := time.Now()
	diffs, err := r.WaitForTruth(ctx, truth, 500*time.Millisecond)
	if err == nil && len(diffs) == 0 {
		t.Logf("the report API agreed with the truth after %s", time.Since(start).Round(time.Millisecond))
	}
	if err != nil {
		t.Fatalf("report API: %v", err)
	}
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("… and %d more", len(diffs)-20))
	}
	if len(diffs) > 0 {
		t.Fatalf("after %s the report API still disagrees with the simulator's truth:\n  %s", within, strings.Join(diffs, "\n  "))
	}
}

// Call sends an API request, with "Authorization: Bearer key" unless key is
// empty, and returns the status and the body; a transport failure fails t.
func Call(t testing.TB, method, url, key, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	return resp.StatusCode, b
}
