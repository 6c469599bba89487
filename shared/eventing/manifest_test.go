package eventing

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// localServices are the function URLs `gamemetrics dev` uses.
func localServices() map[string]string {
	return map[string]string{
		"ingest": "http://127.0.0.1:8081", "process": "http://127.0.0.1:8082", "recommend": "http://127.0.0.1:8083",
		"notify": "http://127.0.0.1:8084", "retain": "http://127.0.0.1:8085", "report": "http://127.0.0.1:8086",
	}
}

func TestTheProductionManifestsLoadAndResolve(t *testing.T) {
	dir := filepath.Join("..", "..", "eventing", "base")
	m, err := Load(dir, "ignored-because-the-kustomization-sets-one")
	if err != nil {
		t.Fatalf("Load(%s): %v", dir, err)
	}
	if len(m.KafkaSources) != 1 || len(m.KafkaSinks) != 1 || len(m.PingSources) != 3 {
		t.Fatalf("loaded %d KafkaSources, %d KafkaSinks, %d PingSources; want 1, 1, 3",
			len(m.KafkaSources), len(m.KafkaSinks), len(m.PingSources))
	}
	ks := m.KafkaSources[0]
	if ks.Metadata.Name != "gamemetrics-events" || ks.Metadata.Namespace != "gamemetrics" ||
		ks.Spec.Ordering != "unordered" || ks.Spec.ConsumerGroup != "gamemetrics-process" ||
		ks.Spec.Delivery == nil || ks.Spec.Delivery.DeadLetterSink == nil {
		t.Errorf("KafkaSource = %+v", ks)
	}
	p := policyFor(ks.Spec.Delivery)
	var got []time.Duration
	for n := 1; n <= p.retries; n++ {
		got = append(got, p.backoff(n))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}
	if len(got) != len(want) {
		t.Fatalf("backoffs = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("backoffs = %v, want %v (README: 1 s, 2 s, 4 s, 8 s, 16 s)", got, want)
			break
		}
	}
	r, err := New(Config{Dir: dir, Services: localServices()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if r.kafka[0].sink.String() != "http://127.0.0.1:8082" {
		t.Errorf("process sink = %s", r.kafka[0].sink)
	}
	if kt, ok := r.kafka[0].dls.(*kafkaTarget); !ok || kt.topic != "gamemetrics.events.dlq" || kt.structured {
		t.Errorf("dead-letter sink = %#v, want binary-mode KafkaSink on gamemetrics.events.dlq", r.kafka[0].dls)
	}
	if len(r.pings) != 3 || r.pings["retain-daily"].sink.String() != "http://127.0.0.1:8085" {
		t.Errorf("pings = %v", r.pings)
	}
}

func TestManifestsTheRuntimeDoesNotUnderstandAreErrorsAtStart(t *testing.T) {
	tests := []struct {
		dir  string
		want []string // every one must appear in the error
	}{
		{"unknown-field", []string{"source.yaml:9", "KafkaSource typo", "unknown field spec.consumerGroups"}},
		{"delivery-ordering", []string{"source.yaml:11", "KafkaSource misplaced-ordering", "unknown field spec.delivery.ordering"}},
		{"unknown-kind", []string{"trigger.yaml:11", "Trigger recommend", `apiVersion "eventing.knative.dev/v1" kind "Trigger"`}},
		{"ping-every", []string{"ping.yaml:1", "PingSource every", "@every is not supported"}},
		{"bad-timezone", []string{"PingSource nowhere", "spec.timezone"}},
		{"data-and-database64", []string{"PingSource both", "mutually exclusive"}},
		{"kustomization-patches", []string{"kustomization.yaml:8", "unknown field patches"}},
		{"bad-backoff", []string{"KafkaSource slow", "spec.delivery.backoffDelay", `"500ms"`}},
		{"unresolvable-sink", []string{"ping.yaml:1", "PingSource orphan", "Service nosuchfunction has no local URL"}},
		{"missing-kafkasink", []string{"KafkaSource no-dlq", "spec.delivery.deadLetterSink", "KafkaSink gamemetrics/not-declared is not declared"}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			_, err := New(Config{Dir: filepath.Join("testdata", tt.dir), Services: localServices()})
			if err == nil {
				t.Fatal("New accepted the manifests")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not mention %q", err, w)
				}
			}
		})
	}
}

func TestNamespacesComeFromTheFileThenTheKustomizationThenTheDefault(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", `
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: {name: a, namespace: elsewhere}
spec: {sink: {uri: "http://127.0.0.1:9/"}}
---
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: {name: b}
spec: {sink: {uri: "http://127.0.0.1:9/"}}
`)
	m, err := Load(dir, "fallback")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.PingSources[0].Metadata.Namespace + "," + m.PingSources[1].Metadata.Namespace; got != "elsewhere,fallback" {
		t.Errorf("namespaces without kustomization = %s, want elsewhere,fallback", got)
	}
	write("kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: kns\nresources: [a.yaml]\n")
	if m, err = Load(dir, "fallback"); err != nil {
		t.Fatal(err)
	}
	if got := m.PingSources[0].Metadata.Namespace + "," + m.PingSources[1].Metadata.Namespace; got != "kns,kns" {
		t.Errorf("namespaces with kustomization = %s, want kns,kns (kustomize overrides)", got)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "PT0.5S", want: 500 * time.Millisecond},
		{in: "PT0.2S", want: 200 * time.Millisecond},
		{in: "PT0,25S", want: 250 * time.Millisecond},
		{in: "PT1M", want: time.Minute},
		{in: "PT1H30M", want: 90 * time.Minute},
		{in: "P1DT2H", want: 26 * time.Hour},
		{in: "P2D", want: 48 * time.Hour},
		{in: "PT1.5M", want: 90 * time.Second},
		{in: "pt10s", want: 10 * time.Second},
		{in: "PT0S", want: 0},
		{in: "", bad: true},
		{in: "500ms", bad: true},
		{in: "P", bad: true},
		{in: "PT", bad: true},
		{in: "P1M", bad: true},      // months
		{in: "P1Y", bad: true},      // years
		{in: "P1W", bad: true},      // weeks
		{in: "PT1S1M", bad: true},   // out of order
		{in: "PT1M1M", bad: true},   // repeated
		{in: "P1H", bad: true},      // needs T
		{in: "PT1D", bad: true},     // days are not a time component
		{in: "PT1.5M1S", bad: true}, // fraction not last
		{in: "PT.5S", bad: true},
		{in: "PT5.S", bad: true},
		{in: "PT1.2.3S", bad: true},
		{in: "-PT1S", bad: true},
		{in: "PT1ST", bad: true},
		{in: "PT99999999999999999999S", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"PT0.5S", "P1DT2H3M4.5S", "PT1M", "P1W", "PT,5S", "PT9223372036S"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v: negative", s, d)
		}
		if !strings.HasPrefix(strings.ToUpper(s), "P") {
			t.Fatalf("ParseDuration(%q) accepted a string without P", s)
		}
	})
}

func TestSchedulesTickInTheirTimeZone(t *testing.T) {
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name, schedule, tz string
		after, want        string // RFC3339, want in UTC
	}{
		{"daily in UTC", "15 2 * * *", "UTC", "2026-03-01T10:00:00Z", "2026-03-02T02:15:00Z"},
		{"daily before the time today", "15 2 * * *", "", "2026-03-01T01:00:00Z", "2026-03-01T02:15:00Z"},
		{"weekly on Mondays", "0 1 * * 1", "UTC", "2026-03-03T00:00:00Z", "2026-03-09T01:00:00Z"},
		{"daily in Berlin winter (UTC+1)", "30 0 * * *", "Europe/Berlin", "2026-01-10T12:00:00Z", "2026-01-10T23:30:00Z"},
		{"daily in Berlin summer (UTC+2)", "30 0 * * *", "Europe/Berlin", "2026-07-10T12:00:00Z", "2026-07-10T22:30:00Z"},
		{"New York across the DST change", "0 9 * * *", "America/New_York", "2026-03-07T15:00:00Z", "2026-03-08T13:00:00Z"},
		{"optional seconds field", "30 * * * * *", "UTC", "2026-03-01T10:00:00Z", "2026-03-01T10:00:30Z"},
		{"every minute by default", "", "", "2026-03-01T10:00:05Z", "2026-03-01T10:01:00Z"},
		{"descriptor", "@daily", "Asia/Tokyo", "2026-03-01T10:00:00Z", "2026-03-01T15:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSchedule(tt.schedule, tt.tz)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Next(utc(tt.after))
			if !got.Equal(utc(tt.want)) {
				t.Errorf("Next(%s) = %s (%s), want %s", tt.after, got.UTC().Format(time.RFC3339), got, tt.want)
			}
		})
	}
}

func TestSchedulesKnativeRefuses(t *testing.T) {
	for _, tt := range []struct{ schedule, tz string }{
		{"@every 1m", ""},
		{"* * * *", ""},
		{"61 * * * *", ""},
		{"* * * * * * *", ""},
		{"0 3 * * *", "Not/AZone"},
		{"CRON_TZ=UTC 0 3 * * *", "UTC"},
	} {
		if _, err := ParseSchedule(tt.schedule, tt.tz); err == nil {
			t.Errorf("ParseSchedule(%q, %q) accepted it", tt.schedule, tt.tz)
		}
	}
}

func FuzzParseManifests(f *testing.F) {
	for _, p := range []string{
		"../../eventing/base/kafkasource.yaml", "../../eventing/base/pingsources.yaml",
		"../../eventing/base/kafkasink.yaml", "testdata/unknown-kind/trigger.yaml",
		"testdata/delivery-ordering/source.yaml",
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseManifests("fuzz.yaml", b)
		if err != nil {
			return
		}
		_ = m.validate()
		if _, err := parseKustomization("kustomization.yaml", b); err != nil {
			return
		}
	})
}

func TestParseManifestsValidatesWhatItDecodes(t *testing.T) {
	good := []byte(`apiVersion: sources.knative.dev/v1
kind: KafkaSource
metadata: {name: s}
spec:
  bootstrapServers: [kafka:9092]
  topics: [gamemetrics.events]
  sink: {uri: "http://127.0.0.1:9/"}
`)
	if _, err := ParseManifests("good.yaml", good); err != nil {
		t.Fatalf("ParseManifests(good) = %v", err)
	}
	bad := []byte(strings.Replace(string(good), "  topics: [gamemetrics.events]\n", "", 1))
	_, err := ParseManifests("bad.yaml", bad)
	if err == nil || !strings.Contains(err.Error(), "spec.topics is required") {
		t.Fatalf("ParseManifests(no topics) = %v, want spec.topics is required", err)
	}
}
