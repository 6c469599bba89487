package devstack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

func (s *Stack) startRedis(ctx context.Context, cfg Config) (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server not found: run `make deps` (as root) or `apt-get install -y redis-server`, or set REDIS_URL")
	}
	dir := filepath.Join(s.dir, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--daemonize", "no", "--protected-mode", "no", "--save", "", "--logfile", ""}
	if cfg.Ephemeral {
		args = append(args, "--appendonly", "no")
	} else {
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	}
	srv, err := s.start("redis", command(context.Background(), runAs{}, bin, args...), syscall.SIGTERM)
	if err != nil {
		return "", err
	}
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	opts, _ := redis.ParseURL(url)
	err = waitFor(ctx, 15*time.Second, srv.exited, func(ctx context.Context) error {
		c := redis.NewClient(opts)
		defer c.Close()
		return c.Ping(ctx).Err()
	})
	if err != nil {
		return "", fmt.Errorf("%w\n%s", err, srv.out)
	}
	s.log.Info("redis started", "port", port)
	return url, nil
}
