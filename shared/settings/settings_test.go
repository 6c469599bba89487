package settings_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/settings"
)

func env(vars map[string]string) *settings.Env {
	return settings.From(func(k string) string { return vars[k] })
}

func TestUnsetAndBlankVariablesKeepTheDefaults(t *testing.T) {
	e := env(map[string]string{"BLANK": "  "})
	if got := e.Int("BLANK", 7, 1); got != 7 {
		t.Errorf("Int = %d", got)
	}
	if got := e.Duration("UNSET", time.Second, 0); got != time.Second {
		t.Errorf("Duration = %s", got)
	}
	if got := e.Bool("UNSET", true); !got {
		t.Error("Bool = false")
	}
	if got := e.List("UNSET", []string{"a"}); !slices.Equal(got, []string{"a"}) {
		t.Errorf("List = %q", got)
	}
	if got := e.String("UNSET", "d"); got != "d" {
		t.Errorf("String = %q", got)
	}
	if got := e.OneOf("UNSET", "x", "x", "y"); got != "x" {
		t.Errorf("OneOf = %q", got)
	}
	if err := e.Err(); err != nil {
		t.Errorf("Err = %v", err)
	}
	if err := settings.From(nil).Err(); err != nil {
		t.Errorf("nil getenv: %v", err)
	}
}

func TestGoodValuesAreParsed(t *testing.T) {
	e := env(map[string]string{"N": " 12 ", "BIG": "9000000000", "D": "250ms", "B": "TRUE", "L": " a, b,,c ", "S": "x", "O": "scram-sha-256", "F": "0.5"})
	if got := e.Int("N", 0, 1); got != 12 {
		t.Errorf("Int = %d", got)
	}
	if got := e.Int64("BIG", 0, 0); got != 9_000_000_000 {
		t.Errorf("Int64 = %d", got)
	}
	if got := e.Duration("D", 0, 0); got != 250*time.Millisecond {
		t.Errorf("Duration = %s", got)
	}
	if got := e.Bool("B", false); !got {
		t.Error("Bool = false")
	}
	if got := e.List("L", nil); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("List = %q", got)
	}
	if got := e.String("S", ""); got != "x" {
		t.Errorf("String = %q", got)
	}
	if got := e.OneOf("O", "", "PLAIN", "SCRAM-SHA-256"); got != "SCRAM-SHA-256" {
		t.Errorf("OneOf = %q", got)
	}
	if got := e.Float("F", 0, 0); got != 0.5 {
		t.Errorf("Float = %g", got)
	}
	if err := e.Err(); err != nil {
		t.Errorf("Err = %v", err)
	}
}

func TestBadValuesNameTheVariableAndWhatItWants(t *testing.T) {
	cases := []struct {
		name string
		read func(*settings.Env)
		want string
	}{
		{"not a number", func(e *settings.Env) { e.Int("V", 1, 1) }, `V="x": want an integer ≥ 1`},
		{"below the minimum", func(e *settings.Env) { e.Int("V", 1, 1) }, `V="0": want an integer ≥ 1`},
		{"not a duration", func(e *settings.Env) { e.Duration("V", time.Second, 0) }, `V="10": want a duration ≥ 0s`},
		{"negative duration", func(e *settings.Env) { e.Duration("V", time.Second, 0) }, `V="-1s": want a duration ≥ 0s`},
		{"not a boolean", func(e *settings.Env) { e.Bool("V", false) }, `V="yes please": want true or false`},
		{"not a choice", func(e *settings.Env) { e.OneOf("V", "", "PLAIN") }, `V="GSSAPI": want one of PLAIN`},
		{"only commas", func(e *settings.Env) { e.List("V", nil) }, `V=",,": want a comma-separated list`},
		{"not a float", func(e *settings.Env) { e.Float("V", 0, 0) }, `V="NaN": want a number ≥ 0`},
	}
	values := map[string]string{
		"not a number": "x", "below the minimum": "0", "not a duration": "10", "negative duration": "-1s",
		"not a boolean": "yes please", "not a choice": "GSSAPI", "only commas": ",,", "not a float": "NaN",
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := env(map[string]string{"V": values[tc.name]})
			tc.read(e)
			if err := e.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestEveryBadVariableIsReportedAtOnce(t *testing.T) {
	e := env(map[string]string{"A": "x", "B": "y"})
	if got := e.Int("A", 3, 0); got != 3 {
		t.Errorf("a bad value returns the default, got %d", got)
	}
	e.Duration("B", 0, 0)
	err := e.Err()
	if err == nil || !strings.Contains(err.Error(), "A=") || !strings.Contains(err.Error(), "B=") {
		t.Errorf("Err = %v, want both A and B", err)
	}
}
