package devstack

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of CPU times in /proc
// (100 on every Linux platform Go supports).
const clockTicks = 100

// PostgresCPU returns the CPU time (user + system) the stack's PostgreSQL
// server has used so far: the postmaster, every live server process
// (backends, WAL writer, checkpointer, autovacuum) and every one that has
// exited (the postmaster reaps them, so their time is in its children's
// total). Benchmarks take the difference around a run to report the
// database's CPU per event, a figure that, unlike throughput, does not
// depend on what else the machine is doing. It fails when DATABASE_URL
// pointed the stack at a server it did not start.
func (s *Stack) PostgresCPU() (time.Duration, error) {
	pid, err := postmasterPID(filepath.Join(s.dir, "postgres"))
	if err != nil {
		return 0, fmt.Errorf("postgres CPU: %w", err)
	}
	self, err := procStat(pid)
	if err != nil {
		return 0, fmt.Errorf("postgres CPU: %w", err)
	}
	ticks := self.utime + self.stime + self.cutime + self.cstime
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := procStat(child)
		if err != nil || st.ppid != pid {
			continue // gone meanwhile (its time is now the postmaster's), or not ours
		}
		ticks += st.utime + st.stime
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

type procTimes struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

// procStat reads the parent and CPU times of a process from /proc/<pid>/stat.
func procStat(pid int) (procTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procTimes{}, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields after it start past the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): ppid is field 4, utime..cstime are 14..17.
	if len(f) < 15 {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	var t procTimes
	t.ppid, _ = strconv.Atoi(f[1])
	for i, p := range []*int64{&t.utime, &t.stime, &t.cutime, &t.cstime} {
		*p, _ = strconv.ParseInt(f[11+i], 10, 64)
	}
	return t, nil
}
