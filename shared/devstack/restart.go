package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// RestartPostgres stops the stack's PostgreSQL (fast shutdown: open
// connections are cut, as in a crash or failover), keeps it down for
// downtime, and starts it again on the same port and data directory with
// the same settings. Tests use it to check that callers see transient
// errors and recover. It fails when DATABASE_URL pointed the stack at an
// external server.
func (s *Stack) RestartPostgres(ctx context.Context, downtime time.Duration) error {
	dir := filepath.Join(s.dir, "postgres")
	opts, err := os.ReadFile(filepath.Join(dir, "postmaster.opts"))
	if err != nil {
		return fmt.Errorf("restart postgres: not started by this stack: %w", err)
	}
	// postmaster.opts is the command line the server was started with:
	// the binary, then each argument in double quotes.
	line := strings.TrimSpace(string(opts))
	bin, _, _ := strings.Cut(line, " ")
	var args []string
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(line, -1) {
		args = append(args, m[1])
	}
	pid, err := postmasterPID(dir)
	if err != nil {
		return err
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	if err := proc.Signal(syscall.SIGINT); err != nil {
		return fmt.Errorf("stop postgres (pid %d): %w", pid, err)
	}
	// The server is our child: the stack's closer reaps it; wait until the
	// pid file is gone, which PostgreSQL removes last on shutdown.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("restart postgres: still running 30 s after SIGINT")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(downtime):
	}
	as, err := serverAccount()
	if err != nil {
		return err
	}
	srv, err := s.start("postgres", command(context.Background(), as, bin, args...), syscall.SIGINT)
	if err != nil {
		return err
	}
	return waitFor(ctx, 30*time.Second, srv.exited, func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, s.DatabaseURL)
		if err != nil {
			return err
		}
		return c.Close(ctx)
	})
}

func postmasterPID(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("restart postgres: not running: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("restart postgres: bad postmaster.pid: %w", err)
	}
	return pid, nil
}
