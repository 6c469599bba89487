package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Flags may come before or after the function name; the errors say what
// is missing. (No environment: serve must stop at configuration.)
func TestServeParsesFlagsOnEitherSideOfTheFunctionName(t *testing.T) {
	none := func(string) string { return "" }
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"serve", "process", "--from-kafka", "--port", "0"}, "set DATABASE_URL"},
		{[]string{"serve", "--port", "0", "ingest"}, "set DATABASE_URL"},
		{[]string{"serve", "--port", "0", "ingest", "report"}, "name one function"},
		{[]string{"serve", "--port", "0"}, "name one function"},
		{[]string{"serve", "--port", "0", "ingest", "--from-kafka"}, "process only"},
		{[]string{"serve", "--port", "0", "billing"}, "unknown function"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), tt.args, none, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}
