package devstack

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// server is a child process the stack owns.
type server struct {
	name   string
	cmd    *exec.Cmd
	out    *tail
	exited chan struct{}
}

// tail keeps the last bytes a server printed, for error messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8<<10 {
		t.buf = t.buf[len(t.buf)-4<<10:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

// runAs is the account servers run under: postgres refuses to run as root,
// so when we are root the Debian "postgres" account is used.
type runAs struct {
	cred *syscall.Credential
	uid  int
	gid  int
}

func serverAccount() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{uid: os.Getuid(), gid: os.Getgid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runAs{}, fmt.Errorf("running as root needs the Debian 'postgres' account (apt-get install -y postgresql): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return runAs{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid: uid, gid: gid}, nil
}

func command(ctx context.Context, as runAs, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	// Pdeathsig: a test binary that dies must not leave servers behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: as.cred, Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// start runs a long-lived server; stop sends sig and waits.
func (s *Stack) start(name string, cmd *exec.Cmd, stop syscall.Signal) (*server, error) {
	srv := &server{name: name, cmd: cmd, out: &tail{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = srv.out, srv.out
	cmd.Cancel = func() error { return cmd.Process.Signal(stop) }
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	go func() { cmd.Wait(); close(srv.exited) }()
	s.closers = append(s.closers, func() error {
		select {
		case <-srv.exited:
			return nil
		default:
		}
		cmd.Process.Signal(stop)
		select {
		case <-srv.exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-srv.exited
		}
		return nil
	})
	return srv, nil
}
