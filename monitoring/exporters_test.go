package monitoring

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/gamemetrics/gamemetrics/shared/kafka"
)

// exportersPath lists the metrics of the standard exporters (Kafka,
// PostgreSQL, Redis), the Go client's runtime collectors and Prometheus's
// own, with the source line that defines each.
const exportersPath = "exporters.yaml"

type exporterList struct {
	Exporters []struct {
		Name       string           `yaml:"name"`
		Repository string           `yaml:"repository"`
		Version    string           `yaml:"version"`
		Metrics    []exporterMetric `yaml:"metrics"`
	} `yaml:"exporters"`
}

type exporterMetric struct {
	Name     string   `yaml:"name"`
	Type     string   `yaml:"type"`
	Labels   []string `yaml:"labels"`
	Source   string   `yaml:"source"`
	exporter string
}

var (
	exportersOnce sync.Once
	exportersVal  map[string]*exporterMetric
	exportersErr  error
)

// exporterMetrics are the metrics of exporters.yaml by name.
func exporterMetrics(t *testing.T) map[string]*exporterMetric {
	t.Helper()
	exportersOnce.Do(func() {
		var l exporterList
		b, err := os.ReadFile(exportersPath)
		if err != nil {
			exportersErr = err
			return
		}
		if err := strictYAML(b, &l); err != nil {
			exportersErr = fmt.Errorf("%s: %w", exportersPath, err)
			return
		}
		exportersVal = map[string]*exporterMetric{}
		for _, e := range l.Exporters {
			for _, m := range e.Metrics {
				m.exporter = e.Name
				if _, dup := exportersVal[m.Name]; dup {
					exportersErr = fmt.Errorf("%s: %s listed twice", exportersPath, m.Name)
					return
				}
				exportersVal[m.Name] = &m
			}
		}
	})
	if exportersErr != nil {
		t.Fatal(exportersErr)
	}
	return exportersVal
}

func TestExporterListNamesItsSources(t *testing.T) {
	var l exporterList
	b, err := os.ReadFile(exportersPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := strictYAML(b, &l); err != nil {
		t.Fatalf("%s: %v", exportersPath, err)
	}
	name := regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	for _, e := range l.Exporters {
		for _, m := range e.Metrics {
			t.Run(e.Name+"/"+m.Name, func(t *testing.T) {
				if !name.MatchString(m.Name) {
					t.Errorf("%q is not a metric name", m.Name)
				}
				if m.Type != "counter" && m.Type != "gauge" {
					t.Errorf("type %q, want counter or gauge", m.Type)
				}
				if m.Type == "counter" && !strings.HasSuffix(m.Name, "_total") && e.Name != "postgres_exporter" {
					// postgres_exporter's pg_stat_database counters keep the view's column names.
					t.Errorf("counter without _total")
				}
				// A link to the defining line at the pinned version (or the
				// documentation for what no exporter defines).
				prefix := e.Repository + "/blob/" + e.Version + "/"
				if strings.HasPrefix(e.Repository, "https://github.com/") {
					if !strings.HasPrefix(m.Source, prefix) || !regexp.MustCompile(`#L[0-9]+$`).MatchString(m.Source) {
						t.Errorf("source %q is not a line of %s at %s (%s...#L<line>)", m.Source, e.Repository, e.Version, prefix)
					}
				} else if !strings.HasPrefix(m.Source, e.Repository) {
					t.Errorf("source %q is not on %s", m.Source, e.Repository)
				}
				for _, l := range m.Labels {
					if targetLabels[l] {
						t.Errorf("label %s is added by the scrape, not by the exporter", l)
					}
				}
			})
		}
	}
	for n := range exporterMetrics(t) {
		if strings.HasPrefix(n, "gamemetrics") {
			t.Errorf("%s: gamemetrics metrics come from the Go code, not from %s", n, exportersPath)
		}
	}
	for n := range exporterMetrics(t) {
		if !usedExporterMetrics(t)[n] {
			t.Errorf("%s is listed in %s but no rule or dashboard reads it", n, exportersPath)
		}
	}
}

func usedExporterMetrics(t *testing.T) map[string]bool {
	t.Helper()
	used := map[string]bool{}
	for _, e := range expressions(t) {
		for _, n := range metricNames(e.expr) {
			used[n] = true
		}
	}
	return used
}

// exporterLabelValues are the values the project decides for exporter
// labels: Kafka topics (shared/kafka) and consumer groups (the groups the
// KafkaUsers of knative/base/kafka.yaml may use). Other labels (partition,
// state, cmd, datname, ...) are the server's and not checked.
func exporterLabelValues(t *testing.T) map[string][]string {
	t.Helper()
	var groups []string
	for _, doc := range yamlDocs(t, "../knative/base/kafka.yaml") {
		if str(doc, "kind") != "KafkaUser" {
			continue
		}
		acls, _ := doc["spec"].(map[string]any)["authorization"].(map[string]any)["acls"].([]any)
		for _, a := range acls {
			r, _ := a.(map[string]any)["resource"].(map[string]any)
			if r["type"] == "group" && r["patternType"] == "literal" && !slices.Contains(groups, r["name"].(string)) {
				groups = append(groups, r["name"].(string))
			}
		}
	}
	if len(groups) == 0 {
		t.Fatal("../knative/base/kafka.yaml grants no consumer group")
	}
	slices.Sort(groups)
	return map[string][]string{"topic": kafka.Topics(), "consumergroup": groups}
}

// exporterCollectors serve every exporter metric (except Prometheus's own
// up) with one series per project value of each label, so the recording
// rules over them yield series in the real Prometheus.
func exporterCollectors(t *testing.T) []prometheus.Collector {
	t.Helper()
	values := exporterLabelValues(t)
	var cs []prometheus.Collector
	for _, m := range exporterMetrics(t) {
		if m.exporter == "prometheus" {
			continue
		}
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: m.Name, Help: "test copy of " + m.Source}, m.Labels)
		combos := [][]string{nil}
		for _, l := range m.Labels {
			vals := values[l]
			if vals == nil {
				vals = []string{"0"}
			}
			var next [][]string
			for _, c := range combos {
				for _, v := range vals {
					next = append(next, append(slices.Clone(c), v))
				}
			}
			combos = next
		}
		for _, c := range combos {
			g.WithLabelValues(c...).Set(1)
		}
		cs = append(cs, g)
	}
	return cs
}

// strictYAML decodes b into v, refusing fields v does not have.
func strictYAML(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}
