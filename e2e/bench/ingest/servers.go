package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is one HTTP server under test, running as its own process.
type server struct {
	name   string
	url    string
	cmd    *exec.Cmd
	exited chan struct{}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs cmd and waits until GET url+ready answers 200.
func start(name string, cmd *exec.Cmd, port int, ready string) (*server, error) {
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, url: fmt.Sprintf("http://127.0.0.1:%d/", port), cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.url + strings.TrimPrefix(ready, "/"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s exited before it was ready", name)
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s not ready on %s", name, s.url)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop asks the server to drain and waits for it.
func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// cpu is the CPU time the server's process has used so far.
func (s *server) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name: utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// startIngest runs `gamemetrics serve ingest` against the local stack.
func startIngest(ctx context.Context, o options, env []string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := pinned(ctx, o.serverCPUs, o.gamemetrics, "serve", "ingest")
	cmd.Env = append(append(os.Environ(), env...),
		"PORT="+strconv.Itoa(port), "HOST=127.0.0.1", "LOG_LEVEL=warn",
		"INGEST_RATE_LIMIT="+strconv.FormatInt(o.rateLimit, 10))
	if o.profileDir != "" {
		cmd.Env = append(cmd.Env, "PPROF_ADDR="+o.pprofAddr)
	}
	return start("ingest", cmd, port, "readyz")
}

// startBaseline runs this program again as the plain net/http server.
func startBaseline(ctx context.Context, o options) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := pinned(ctx, o.serverCPUs, self, "-serve-baseline", "127.0.0.1:"+strconv.Itoa(port))
	cmd.Env = append(os.Environ(), pinnedEnv+"=1")
	return start("net/http", cmd, port, "ready")
}

// serveBaseline is the plain net/http server ingest is measured against:
// it reads the body and answers 202, as cheaply as net/http allows, with
// the same server settings as serving.Serve.
func serveBaseline(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet { // the readiness check
				return
			}
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusAccepted)
		}),
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// pinnedEnv marks a process this program already placed on its CPUs.
const pinnedEnv = "BENCH_INGEST_PINNED"

// pinSelf re-executes this program on o.loadCPUs (with the stack it
// starts: PostgreSQL, Redis and kfake inherit the placement), unless it
// runs there already. The placement is passed on as flags, since the
// pinned process sees only its own CPUs.
func pinSelf(o options) error {
	if o.loadCPUs == "" || os.Getenv(pinnedEnv) != "" {
		return nil
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("pinning needs taskset (util-linux): %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	env := append(os.Environ(), pinnedEnv+"=1")
	args := append([]string{"taskset", "-c", o.loadCPUs, self}, os.Args[1:]...)
	args = append(args, "-server-cpus", o.serverCPUs, "-load-cpus", o.loadCPUs, "-wrk-threads", strconv.Itoa(o.wrkThreads))
	return syscall.Exec(taskset, args, env)
}
