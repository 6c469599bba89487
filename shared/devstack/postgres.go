package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresBinDirs are searched for initdb and postgres, newest first.
var postgresBinDirs = []string{"/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"}

func postgresBinary(name string) (string, error) {
	for _, d := range postgresBinDirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found: install the Debian PostgreSQL server (apt-get install -y postgresql-15) or set DATABASE_URL", name)
}

const databaseName = "gamemetrics"

func (s *Stack) startPostgres(ctx context.Context, cfg Config) (string, error) {
	as, err := serverAccount()
	if err != nil {
		return "", err
	}
	initdb, err := postgresBinary("initdb")
	if err != nil {
		return "", err
	}
	postgres, err := postgresBinary("postgres")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(s.dir, "postgres")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	// The server account must own its data directory and reach it.
	if err := os.Chown(dir, as.uid, as.gid); err != nil {
		return "", err
	}
	if s.tempDir || os.Geteuid() == 0 {
		os.Chmod(s.dir, 0o755)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		cmd := command(ctx, as, initdb, "-D", dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("initdb: %w: %s", err, strings.TrimSpace(string(out)))
		}
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	args := []string{"-D", dir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + dir,
		"-c", "max_connections=200",
		"-c", "shared_buffers=256MB",
		"-c", "max_wal_size=2GB",
		"-c", "logging_collector=off",
	}
	if cfg.Ephemeral {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	if cfg.Getenv("GAMEMETRICS_PG_STAT_STATEMENTS") != "" {
		// For profiling: CREATE EXTENSION pg_stat_statements, run the
		// benchmark, then read pg_stat_statements (see README, Benchmarks).
		args = append(args, "-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track=all")
	}
	srv, err := s.start("postgres", command(context.Background(), as, postgres, args...), syscall.SIGINT)
	if err != nil {
		return "", err
	}
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	err = waitFor(ctx, 30*time.Second, srv.exited, func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		var exists bool
		if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", databaseName).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			_, err = c.Exec(ctx, "CREATE DATABASE "+databaseName)
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("%w\n%s", err, srv.out)
	}
	s.log.Info("postgresql started", "port", port, "dir", dir)
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", port, databaseName), nil
}
