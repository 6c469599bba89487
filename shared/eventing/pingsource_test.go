package eventing

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
)

func pingYAML(name, schedule, extra string) string {
	return fmt.Sprintf(`apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: {name: %s}
spec:
  schedule: %q
  timezone: Europe/Paris
%s  sink:
    ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: fn}
`, name, schedule, extra)
}

func newPingRuntime(t *testing.T, s *sink, docs ...string) *Runtime {
	t.Helper()
	r, err := New(Config{Dir: manifestDir(t, docs...), Services: map[string]string{"fn": s.srv.URL}, PingJitter: -1})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPingSendsTheEnvelopeKnativeSends(t *testing.T) {
	tests := []struct {
		name, extra     string
		wantContentType string
		wantData        string
	}{
		{"JSON data", "  contentType: application/json\n  data: '{\"task\":\"retention\"}'\n  ceOverrides: {extensions: {env: local}}\n",
			"application/json", `{"task":"retention"}`},
		{"base64 data", "  contentType: text/plain\n  dataBase64: aGVsbG8=\n", "text/plain", "hello"},
		{"no data", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink(t, nil)
			r := newPingRuntime(t, s, pingYAML("nightly", "15 2 * * *", tt.extra))
			before := time.Now()
			if err := r.Ping(context.Background(), "nightly"); err != nil {
				t.Fatal(err)
			}
			got := s.snapshot()
			if len(got) != 1 {
				t.Fatalf("sink got %d events, want 1", len(got))
			}
			e := got[0].event
			if e.Type() != "dev.knative.sources.ping" || e.Source() != "/apis/v1/namespaces/gamemetrics/pingsources/nightly" {
				t.Errorf("type %q source %q", e.Type(), e.Source())
			}
			if _, err := uuid.Parse(e.ID()); err != nil {
				t.Errorf("id %q is not a UUID", e.ID())
			}
			if e.Time().Before(before.Add(-time.Second)) || e.Time().After(time.Now().Add(time.Second)) {
				t.Errorf("time %v is not now", e.Time())
			}
			if e.DataContentType() != tt.wantContentType || string(e.Data()) != tt.wantData {
				t.Errorf("datacontenttype %q data %q, want %q %q", e.DataContentType(), e.Data(), tt.wantContentType, tt.wantData)
			}
			if strings.Contains(tt.extra, "env: local") && e.Extensions()["env"] != "local" {
				t.Errorf("ceOverrides extension missing: %v", e.Extensions())
			}
			if got[0].header.Get("Ce-Specversion") != "1.0" {
				t.Errorf("not binary content mode")
			}
		})
	}
	t.Run("ids are new on every tick", func(t *testing.T) {
		s := newSink(t, nil)
		r := newPingRuntime(t, s, pingYAML("p", "0 * * * *", ""))
		for range 2 {
			if err := r.Ping(context.Background(), "p"); err != nil {
				t.Fatal(err)
			}
		}
		if got := s.snapshot(); got[0].event.ID() == got[1].event.ID() {
			t.Errorf("two ticks share id %s", got[0].event.ID())
		}
	})
	t.Run("an unknown name is an error", func(t *testing.T) {
		r := newPingRuntime(t, newSink(t, nil), pingYAML("p", "0 * * * *", ""))
		if err := r.Ping(context.Background(), "nope"); err == nil {
			t.Error("Ping of an unknown PingSource succeeded")
		}
	})
}

func TestPingRetriesFiveTimesThenDrops(t *testing.T) {
	tests := []struct {
		name     string
		failures int // attempts answered 503 before 200
		attempts int
		dropped  bool
	}{
		{"two failures then accepted", 2, 3, false},
		{"always failing is dropped after 5 retries", 100, 6, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink(t, func(_ *event.Event, attempt int) (int, string) {
				if attempt <= tt.failures {
					return http.StatusServiceUnavailable, ""
				}
				return http.StatusOK, ""
			})
			r := newPingRuntime(t, s, pingYAML("p", "0 * * * *", ""))
			start := time.Now()
			err := r.Ping(context.Background(), "p")
			if (err != nil) != tt.dropped {
				t.Fatalf("Ping error = %v, want dropped=%v", err, tt.dropped)
			}
			if got := len(s.snapshot()); got != tt.attempts {
				t.Errorf("attempts = %d, want %d", got, tt.attempts)
			}
			// Backoff 50, 100, 200, 400, 800 ms.
			var want time.Duration
			for n := 1; n < tt.attempts; n++ {
				want += 50 * time.Millisecond << (n - 1)
			}
			if took := time.Since(start); took < want {
				t.Errorf("took %v, less than the backoff %v", took, want)
			}
		})
	}
}

func TestPingSourceFiresOnItsSchedule(t *testing.T) {
	s := newSink(t, nil)
	r := newPingRuntime(t, s, pingYAML("every-second", "* * * * * *", "  data: tick\n"))
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := s.waitFor(5*time.Second, "two ticks", func(got []received) bool { return len(got) >= 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := got[1].event.Time().Sub(got[0].event.Time()); d < 500*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("ticks %v apart, want about 1s", d)
	}
}
