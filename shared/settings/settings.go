// Package settings reads typed configuration from the environment, once, at
// start. Every function, the direct consumer and the CLI read their
// variables through it, so a bad value stops the process at start with the
// variable's name and what it wants, instead of being ignored or failing
// later deep inside a request.
//
//	env := settings.From(getenv)
//	cfg.MaxBatch = env.Int("PROCESS_MAX_BATCH", cfg.MaxBatch, 1)
//	cfg.Linger = env.Duration("PROCESS_LINGER", cfg.Linger, 0)
//	if err := env.Err(); err != nil { ... }
//
// An unset or blank variable keeps the default. Errors accumulate, so one
// start reports every bad variable at once.
package settings

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Env reads variables through getenv and remembers every bad one.
type Env struct {
	getenv func(string) string
	errs   []error
}

// From reads variables through getenv (os.Getenv, or a map in tests and
// in `gamemetrics dev`, which layers the local stack over the environment).
// A nil getenv reads nothing, so every setting keeps its default.
func From(getenv func(string) string) *Env {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	return &Env{getenv: getenv}
}

// Err joins the problems of every variable read so far, nil when all were
// good. Each names the variable, the value and what it wants.
func (e *Env) Err() error { return errors.Join(e.errs...) }

func (e *Env) lookup(name string) (string, bool) {
	v := strings.TrimSpace(e.getenv(name))
	return v, v != ""
}

func (e *Env) bad(name, v, want string) {
	e.errs = append(e.errs, fmt.Errorf("%s=%q: want %s", name, v, want))
}

// String returns the variable, or def when it is unset.
func (e *Env) String(name, def string) string {
	if v, ok := e.lookup(name); ok {
		return v
	}
	return def
}

// OneOf returns the variable, which must be one of choices (compared
// case-insensitively, returned as the choice is spelled), or def.
func (e *Env) OneOf(name, def string, choices ...string) string {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	for _, c := range choices {
		if strings.EqualFold(v, c) {
			return c
		}
	}
	e.bad(name, v, "one of "+strings.Join(choices, ", "))
	return def
}

// Int returns the variable as an integer of at least min, or def.
func (e *Env) Int(name string, def, min int) int {
	return int(e.Int64(name, int64(def), int64(min)))
}

// Int64 returns the variable as a 64-bit integer of at least min, or def.
func (e *Env) Int64(name string, def, min int64) int64 {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min {
		e.bad(name, v, fmt.Sprintf("an integer ≥ %d", min))
		return def
	}
	return n
}

// Float returns the variable as a number of at least min, or def.
func (e *Env) Float(name string, def, min float64) float64 {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil || x < min || math.IsNaN(x) {
		e.bad(name, v, fmt.Sprintf("a number ≥ %g", min))
		return def
	}
	return x
}

// Duration returns the variable as a Go duration ("250ms", "10s", "1h30m")
// of at least min, or def.
func (e *Env) Duration(name string, def, min time.Duration) time.Duration {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < min {
		e.bad(name, v, fmt.Sprintf("a duration ≥ %s such as 500ms, 10s or 1m", min))
		return def
	}
	return d
}

// Bool returns the variable as a boolean (1, t, true, 0, f, false, any
// case), or def.
func (e *Env) Bool(name string, def bool) bool {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.bad(name, v, "true or false")
		return def
	}
	return b
}

// List returns the variable split at commas, each item trimmed and empty
// items dropped, or def when it is unset.
func (e *Env) List(name string, def []string) []string {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	if len(out) == 0 {
		e.bad(name, v, "a comma-separated list")
		return def
	}
	return out
}
