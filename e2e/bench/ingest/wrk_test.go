package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Request bodies reach wrk as Lua long strings: whatever they hold (a batch
// ends in "]", JSON may hold "]]"), Lua must read them back unchanged.
func TestLuaStringsKeepTheBodyAsIs(t *testing.T) {
	for _, body := range []string{`[{"a":1}]`, `{"x":"]]"}`, `]=]`, "a\nb", `plain`} {
		q := luaString(body)
		n := strings.IndexByte(q[1:], '[') // the level: [==[ ... ]==]
		eq := strings.Repeat("=", n)
		if !strings.HasPrefix(q, "["+eq+"[") || !strings.HasSuffix(q, "]"+eq+"]") ||
			q[n+2:len(q)-n-2] != body || strings.Contains(body+"]", "]"+eq+"]") {
			t.Errorf("luaString(%q) = %s", body, q)
		}
	}
	// With wrk's LuaJIT at hand, have Lua itself read one back.
	luajit, err := exec.LookPath("luajit")
	if err != nil {
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "t.lua")
	body := `[{"id":"]]"}]`
	os.WriteFile(path, []byte("io.write("+luaString(body)+")"), 0o644)
	out, err := exec.Command(luajit, path).Output()
	if err != nil || string(out) != body {
		t.Errorf("luajit read %q (%v), want %q", out, err, body)
	}
}

func TestCPUListsAreCounted(t *testing.T) {
	for list, want := range map[string]int{"": 2, "0": 1, "1": 1, "0-3": 4, "0,2": 2, "0-1,4": 3} {
		if got := countCPUs(list, 2); got != want {
			t.Errorf("countCPUs(%q) = %d, want %d", list, got, want)
		}
	}
	for _, c := range []struct {
		from, to int
		want     string
	}{{0, 1, "0"}, {1, 2, "1"}, {0, 2, "0-1"}, {2, 4, "2-3"}} {
		if got := cpuRange(c.from, c.to); got != c.want {
			t.Errorf("cpuRange(%d, %d) = %q, want %q", c.from, c.to, got, c.want)
		}
	}
}
