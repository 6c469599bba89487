package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// request is what one wrk script sends on every request.
type request struct {
	headers [][2]string
	body    []byte
}

// wrkResult is what the script's done() hook prints (latencies in µs).
type wrkResult struct {
	DurationUS    int64 `json:"duration_us"`
	Requests      int64 `json:"requests"`
	StatusErrors  int64 `json:"status_errors"`
	ConnectErrors int64 `json:"connect_errors"`
	ReadErrors    int64 `json:"read_errors"`
	WriteErrors   int64 `json:"write_errors"`
	Timeouts      int64 `json:"timeouts"`
	P50US         int64 `json:"p50_us"`
	P90US         int64 `json:"p90_us"`
	P99US         int64 `json:"p99_us"`
	MaxUS         int64 `json:"max_us"`
	// cpu is the CPU time wrk used.
	cpu time.Duration
}

// rate is completed requests per second.
func (r wrkResult) rate() float64 {
	if r.DurationUS == 0 {
		return 0
	}
	return float64(r.Requests) / (float64(r.DurationUS) / 1e6)
}

// ok is requests answered 2xx (wrk counts other statuses as status errors;
// ingest answers POST with no 2xx but 202).
func (r wrkResult) ok() int64 { return r.Requests - r.StatusErrors }

func (r wrkResult) socketErrors() int64 {
	return r.ConnectErrors + r.ReadErrors + r.WriteErrors + r.Timeouts
}

const resultMarker = "WRKRESULT "

// script writes a wrk Lua script that sends req on every request and, when
// rate > 0, paces each wrk thread to rate/threads requests per second.
//
// wrk has no fixed-rate mode (wrk2 is not packaged), but it asks delay()
// for a wait before each request a connection sends after its previous
// answer. The script books send slots on one schedule per thread (LuaJIT's
// FFI reads CLOCK_MONOTONIC): as long as some connection is idle, a request
// leaves at every slot whatever the latency of the others, so latency is
// measured as an open-loop client would see it. A thread that falls behind
// its schedule does not catch up in a burst; the achieved rate is reported
// next to the target so such a run shows itself.
func script(dir, name string, req request, rate float64, threads int) (string, error) {
	var b strings.Builder
	b.WriteString("wrk.method = \"POST\"\n")
	fmt.Fprintf(&b, "wrk.body = %s\n", luaString(string(req.body)))
	for _, h := range req.headers {
		fmt.Fprintf(&b, "wrk.headers[ %s ] = %s\n", luaString(h[0]), luaString(h[1]))
	}
	if rate > 0 {
		fmt.Fprintf(&b, `local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval = %g
local next_at = 0
function delay()
  local t = now_ms()
  if next_at < t then next_at = t end
  local d = next_at - t
  next_at = next_at + interval
  return math.floor(d + 0.5)
end
`, 1000*float64(threads)/rate)
	}
	b.WriteString(`function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('` + resultMarker + `{"duration_us":%d,"requests":%d,"status_errors":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.duration, summary.requests, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`)
	path := filepath.Join(dir, name+".lua")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// luaString quotes s as a Lua long string, whose content is taken as is.
func luaString(s string) string {
	eq := ""
	for strings.Contains(s+"]", "]"+eq+"]") {
		eq += "="
	}
	// A long string drops a first newline; none of ours starts with one.
	return "[" + eq + "[" + s + "]" + eq + "]"
}

// runWrk runs wrk with script against url on cpus (taskset list, "" for
// any) and returns what the script reported.
func runWrk(ctx context.Context, o options, scriptPath, url string, connections int, d time.Duration) (wrkResult, error) {
	args := []string{"-t", strconv.Itoa(o.wrkThreads), "-c", strconv.Itoa(connections), "-d", fmt.Sprintf("%ds", int(d.Seconds())),
		"--timeout", "5s", "-s", scriptPath, url}
	cmd := pinned(ctx, o.loadCPUs, o.wrk, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w: %s", err, strings.TrimSpace(errOut.String()))
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), resultMarker); ok {
			var r wrkResult
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return wrkResult{}, fmt.Errorf("wrk result %q: %w", line, err)
			}
			r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			return r, nil
		}
	}
	return wrkResult{}, fmt.Errorf("wrk printed no result: %s %s", out.String(), errOut.String())
}

// pinned is an exec.Cmd running bin on the CPUs in cpus (a taskset list)
// or, with cpus empty, wherever the kernel puts it.
func pinned(ctx context.Context, cpus, bin string, args ...string) *exec.Cmd {
	if cpus == "" {
		return exec.CommandContext(ctx, bin, args...)
	}
	return exec.CommandContext(ctx, "taskset", append([]string{"-c", cpus, bin}, args...)...)
}
