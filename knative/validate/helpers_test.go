package validate

import (
	"context"
	"strings"
	"sync"
	"testing"
)

// repoRoot is the repository root seen from knative/validate.
const repoRoot = "../.."

// rendered caches the renders of each environment: kubectl kustomize is the
// slow part of these tests.
var rendered = struct {
	sync.Mutex
	envs map[string]Environment
}{envs: map[string]Environment{}}

// loadEnvironment renders knative/ and eventing/ of env once per test run.
func loadEnvironment(t *testing.T, env string) Environment {
	t.Helper()
	rendered.Lock()
	defer rendered.Unlock()
	if e, ok := rendered.envs[env]; ok {
		return e
	}
	e, err := LoadEnvironment(context.Background(), repoRoot, env)
	if err != nil {
		t.Fatalf("render %s: %v", env, err)
	}
	rendered.envs[env] = e
	return e
}

// assertOnlyProblem fails unless there is at least one problem and every
// problem mentions want: a fixture must plant exactly one kind of mistake.
func assertOnlyProblem(t *testing.T, ps []Problem, want string) {
	t.Helper()
	if len(ps) == 0 {
		t.Fatalf("the planted mistake was not caught; want a problem mentioning %q", want)
	}
	for _, p := range ps {
		if !strings.Contains(p.String(), want) {
			t.Errorf("unexpected problem (want only ones mentioning %q):\n  %s", want, p)
		}
	}
}

func assertNoProblems(t *testing.T, ps []Problem) {
	t.Helper()
	for _, p := range ps {
		t.Errorf("%s", p)
	}
}

// assertSomeProblem fails unless a problem mentions want (for the external
// tools, which may report a planted mistake under several rules).
func assertSomeProblem(t *testing.T, ps []Problem, want string) {
	t.Helper()
	for _, p := range ps {
		if strings.Contains(p.String(), want) {
			return
		}
	}
	t.Errorf("no problem mentions %q; got:\n%s", want, Problems(ps))
}
