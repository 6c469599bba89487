package monitoring

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The Helm values of monitoring/helm are checked in three ways:
//
//   - always, offline: every key they set is one the chart (at the pinned
//     version) defines, by chart-keys.yaml, a list of every chart's keys
//     taken from its default values, its templates' .Values references and
//     its subcharts'; and the values agree with each other and with the rest
//     of monitoring/ (release labels, data source uids, log labels, exporter
//     versions, the OTLP endpoint);
//   - with GAMEMETRICS_HELM_CHARTS (a directory of unpacked charts,
//     monitoring/tools/helm-charts.sh), chart-keys.yaml is recomputed from
//     the charts and must be unchanged (-update-chart-keys rewrites it);
//   - with GAMEMETRICS_HELM_CHARTS and helm on PATH, `helm template` renders
//     every release (charts with a values.schema.json validate the values
//     against it) and the rendered objects are checked: every in-cluster
//     URL the values name is a rendered Service and port.
//
// The charts are not in the repository and CI has no network, so the last
// two run where the charts are (make validate says which ran).

const (
	helmDir       = "helm"
	chartKeysPath = "helm/chart-keys.yaml"
	chartsEnv     = "GAMEMETRICS_HELM_CHARTS"
	// kubePrometheusRelease selects GameMetrics' PodMonitors, ServiceMonitors and PrometheusRules.
	kubePrometheusRelease = "kube-prometheus-stack"
)

var updateChartKeys = flag.Bool("update-chart-keys", false, "rewrite "+chartKeysPath+" from the charts in $"+chartsEnv)

type helmRelease struct {
	Name       string `yaml:"name"`
	Chart      string `yaml:"chart"`
	Repository string `yaml:"repository"`
	Version    string `yaml:"version"`
	Values     string `yaml:"values"`
}

func helmReleases(t *testing.T) []helmRelease {
	t.Helper()
	var f struct {
		Releases []helmRelease `yaml:"releases"`
	}
	decodeYAML(t, filepath.Join(helmDir, "releases.yaml"), &f)
	if len(f.Releases) == 0 {
		t.Fatal("helm/releases.yaml lists no release")
	}
	return f.Releases
}

func releaseValues(t *testing.T, r helmRelease) map[string]any {
	t.Helper()
	var v map[string]any
	decodeYAML(t, filepath.Join(helmDir, r.Values), &v)
	return v
}

func releaseNamed(t *testing.T, name string) helmRelease {
	t.Helper()
	for _, r := range helmReleases(t) {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("helm/releases.yaml has no release %s", name)
	return helmRelease{}
}

// chartKeys are the value keys a chart defines, as dotted paths: Keys
// holds every key, Open the keys below which any structure is the user's
// (an empty map, a list or null by default, or a key only its templates
// read).
type chartKeys struct {
	Version    string
	Keys, Open []string
}

// keySnapshot is what chart-keys.yaml keeps of a chart's keys: for every
// map the release's values set keys in ("" is the top), all the keys the
// chart defines there, a trailing * on those whose contents are free. A
// misspelt key is then caught offline; a key in a map not recorded yet
// needs the charts once (-update-chart-keys).
type keySnapshot struct {
	Version string              `yaml:"version"`
	Maps    map[string][]string `yaml:"maps"`
}

func loadChartKeys(t *testing.T) map[string]keySnapshot {
	t.Helper()
	var m map[string]keySnapshot
	decodeYAML(t, chartKeysPath, &m)
	return m
}

// snapshot records the keys of ck in every map values descends into.
func (ck chartKeys) snapshot(values map[string]any) keySnapshot {
	keys, open := set(ck.Keys), set(ck.Open)
	children := map[string][]string{}
	for _, k := range ck.Keys {
		parent, name := "", k
		if i := strings.LastIndex(k, "."); i >= 0 {
			parent, name = k[:i], k[i+1:]
		}
		if open[k] {
			name += "*"
		}
		children[parent] = append(children[parent], name)
	}
	snap := keySnapshot{Version: ck.Version, Maps: map[string][]string{}}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		c := slices.Clone(children[prefix])
		sort.Strings(c)
		snap.Maps[prefix] = c
		for k, v := range m {
			p := join(prefix, k)
			if sub, ok := v.(map[string]any); ok && keys[p] && !open[p] {
				walk(p, sub)
			}
		}
	}
	walk("", values)
	return snap
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// ---------------------------------------------------------------- offline

func TestHelmValuesSetOnlyKeysTheirChartsDefine(t *testing.T) {
	known := loadChartKeys(t)
	files, _ := filepath.Glob(filepath.Join(helmDir, "*.yaml"))
	listed := map[string]bool{"releases.yaml": true, "chart-keys.yaml": true}
	for _, r := range helmReleases(t) {
		listed[r.Values] = true
		t.Run(r.Name, func(t *testing.T) {
			ck, ok := known[r.Chart]
			if !ok {
				t.Fatalf("%s has no keys of chart %s: run `%s=<charts> go test ./monitoring/ -run TestHelmChartKeys -update-chart-keys`", chartKeysPath, r.Chart, chartsEnv)
			}
			if ck.Version != r.Version {
				t.Fatalf("%s has the keys of %s %s, releases.yaml deploys %s: update it from the charts (-update-chart-keys)", chartKeysPath, r.Chart, ck.Version, r.Version)
			}
			for _, p := range unknownKeys(releaseValues(t, r), ck) {
				t.Errorf("%s: %s", r.Values, p)
			}
		})
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s is not the values of any release in helm/releases.yaml", f)
		}
	}
}

// unknownKeys lists the keys of values that snap does not know.
func unknownKeys(values map[string]any, snap keySnapshot) []string {
	var bad []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		known, ok := snap.Maps[prefix]
		if !ok {
			bad = append(bad, fmt.Sprintf("keys of %q are not recorded in %s: run it once with the charts (-update-chart-keys)", prefix, chartKeysPath))
			return
		}
		for k, v := range m {
			switch {
			case slices.Contains(known, k+"*"):
			case !slices.Contains(known, k):
				bad = append(bad, fmt.Sprintf("%s is no key the chart defines (in %q it has: %s)", join(prefix, k), prefix, strings.Join(known, " ")))
			default:
				if sub, ok := v.(map[string]any); ok {
					walk(join(prefix, k), sub)
				}
			}
		}
	}
	walk("", values)
	sort.Strings(bad)
	return bad
}

func TestUnknownKeysOfValues(t *testing.T) {
	ck := chartKeys{Keys: []string{"a", "a.b", "a.c", "a.e", "d", "f"}, Open: []string{"d", "a.c"}}
	values := map[string]any{"a": map[string]any{"b": 1, "c": map[string]any{"free": 1}}, "d": map[string]any{"x": map[string]any{"y": 1}}}
	snap := ck.snapshot(values)
	if got, want := fmt.Sprint(snap.Maps), `map[:[a d* f] a:[b c* e]]`; got != want {
		t.Errorf("snapshot %s, want %s", got, want)
	}
	values["a"].(map[string]any)["typo"] = 2
	values["g"] = map[string]any{"h": 1}
	var got []string
	for _, p := range unknownKeys(values, snap) {
		got = append(got, strings.Fields(p)[0])
	}
	if want := "a.typo g"; strings.Join(got, " ") != want {
		t.Errorf("unknownKeys = %q, want %q", got, want)
	}
}

func TestHelmValuesAgreeWithTheRestOfMonitoring(t *testing.T) {
	kps := releaseValues(t, releaseNamed(t, kubePrometheusRelease))

	t.Run("the PodMonitors and PrometheusRules carry the release label kube-prometheus-stack selects", func(t *testing.T) {
		for _, f := range []string{"kubernetes/podmonitor.yaml", "kubernetes/kafka-exporter-podmonitor.yaml"} {
			for _, doc := range yamlDocs(t, f) {
				if got := str(doc, "metadata", "labels", "release"); got != kubePrometheusRelease {
					t.Errorf("%s: label release %q, want %q", f, got, kubePrometheusRelease)
				}
			}
		}
		out, err := exec.Command("sh", "kubernetes/prometheusrule.sh").Output()
		if err != nil {
			t.Fatalf("prometheusrule.sh: %v", err)
		}
		for name, o := range decodeObjects(t, out) {
			if got := str(o, "metadata", "labels", "release"); got != kubePrometheusRelease {
				t.Errorf("%s: label release %q, want %q", name, got, kubePrometheusRelease)
			}
		}
		// The chart's selectors match the release label unless told not to.
		spec, _ := dig(kps, "prometheus", "prometheusSpec").(map[string]any)
		for _, k := range []string{"ruleSelectorNilUsesHelmValues", "podMonitorSelectorNilUsesHelmValues", "serviceMonitorSelectorNilUsesHelmValues"} {
			if v, ok := spec[k]; ok && v != true {
				t.Errorf("prometheus.prometheusSpec.%s is %v: then the release label would not select GameMetrics' objects", k, v)
			}
		}
		for _, r := range helmReleases(t) {
			if r.Name == kubePrometheusRelease {
				continue
			}
			v := releaseValues(t, r)
			var labels any
			for _, path := range [][]string{{"serviceMonitor", "labels"}, {"serviceMonitor", "additionalLabels"}, {"monitoring", "serviceMonitor", "labels"}} {
				if l := dig(v, path...); l != nil {
					labels = l
				}
			}
			if m, _ := labels.(map[string]any); m["release"] != kubePrometheusRelease {
				t.Errorf("%s: its ServiceMonitor is not labelled release: %s (got %v), so Prometheus would not scrape it", r.Values, kubePrometheusRelease, labels)
			}
		}
	})

	t.Run("Grafana loads the dashboard ConfigMaps and links logs and traces", func(t *testing.T) {
		dash, _ := dig(kps, "grafana", "sidecar", "dashboards").(map[string]any)
		// monitoring/kustomization.yaml: label grafana_dashboard: "1", annotation grafana_folder.
		if dash["enabled"] != true || dash["label"] != "grafana_dashboard" || dash["labelValue"] != "1" || dash["folderAnnotation"] != "grafana_folder" {
			t.Errorf("grafana.sidecar.dashboards %v does not load the ConfigMaps of kustomization.yaml (label grafana_dashboard: \"1\", annotation grafana_folder)", dash)
		}
		if ns := dash["searchNamespace"]; ns != "monitoring" && ns != "ALL" {
			t.Errorf("grafana.sidecar.dashboards.searchNamespace %v: the dashboards are in namespace monitoring", ns)
		}
		sources, _ := dig(kps, "grafana", "additionalDataSources").([]any)
		byType := map[string]map[string]any{}
		for _, s := range sources {
			m, _ := s.(map[string]any)
			byType[fmt.Sprint(m["type"])] = m
		}
		loki, tempo := byType["loki"], byType["tempo"]
		if loki == nil || tempo == nil {
			t.Fatalf("grafana.additionalDataSources has no Loki or no Tempo (the dashboards' ${logs} variable needs Loki): %v", sources)
		}
		derived, _ := dig(loki, "jsonData", "derivedFields").([]any)
		linked := false
		for _, d := range derived {
			m, _ := d.(map[string]any)
			if m["matcherRegex"] == "trace_id" && m["matcherType"] == "label" && m["datasourceUid"] == tempo["uid"] {
				linked = true
			}
		}
		if !linked {
			t.Errorf("Loki's derivedFields %v do not turn the trace_id structured metadata into a link to Tempo (uid %v)", derived, tempo["uid"])
		}
		if got := dig(tempo, "jsonData", "tracesToLogsV2", "datasourceUid"); got != loki["uid"] {
			t.Errorf("Tempo's tracesToLogsV2 goes to %v, not Loki (uid %v)", got, loki["uid"])
		}
		if q, _ := dig(tempo, "jsonData", "tracesToLogsV2", "query").(string); !strings.Contains(q, "trace_id=") {
			t.Errorf("Tempo's logs query %q does not filter on the trace_id structured metadata", q)
		}
	})

	t.Run("the exporters run the versions exporters.yaml was checked against", func(t *testing.T) {
		versions := map[string]string{}
		var list exporterList
		decodeYAML(t, exportersPath, &list)
		for _, e := range list.Exporters {
			versions[e.Name] = e.Version
		}
		for release, exporter := range map[string]string{"postgres-exporter": "postgres_exporter", "redis-exporter": "redis_exporter"} {
			r := releaseNamed(t, release)
			if got := dig(releaseValues(t, r), "image", "tag"); got != versions[exporter] {
				t.Errorf("%s: image.tag %v, exporters.yaml lists %s %s", r.Values, got, exporter, versions[exporter])
			}
		}
	})
}

// The JSON log fields map to labels deliberately: few labels with bounded
// values; anything per event or player is structured metadata at most.
func TestLogLabelsAreFewAndBounded(t *testing.T) {
	cfg := alloyConfig(t)
	labels, metadata, extracted := alloyLogFields(cfg)
	want := []string{"container", "function", "level", "namespace"}
	if got := keys(labels); !slices.Equal(got, want) {
		t.Errorf("Alloy labels log streams with %v, want exactly %v", got, want)
	}
	for _, f := range []string{"gameid", "eventid", "trace_id", "span_id", "pod"} {
		if !metadata[f] {
			t.Errorf("%s is not structured metadata (alloy.yaml): the runbooks and Grafana's trace link filter on it", f)
		}
	}
	// Per-player and per-request values never become labels, and player
	// ids are not even extracted.
	for _, f := range []string{"subject", "player", "playerid", "player_id", "sessionid", "eventid", "gameid", "trace_id", "span_id", "pod", "msg", "err", "filename"} {
		if labels[f] {
			t.Errorf("%s is a stream label: a stream per value", f)
		}
	}
	for _, f := range []string{"subject", "player", "playerid", "player_id", "sessionid"} {
		if extracted[f] {
			t.Errorf("Alloy extracts %s from the log lines", f)
		}
	}
	// The fields extracted are the ones the Go code writes.
	src := readAll(t, "../shared/telemetry/logtrace.go", "../shared/telemetry/telemetry.go")
	for _, f := range []string{"trace_id", "span_id", "function"} {
		if !extracted[f] || !strings.Contains(src, `"`+f+`"`) {
			t.Errorf("field %s: extracted %v, written by shared/telemetry %v", f, extracted[f], strings.Contains(src, `"`+f+`"`))
		}
	}
	// Every LogQL selector of the dashboards and runbooks uses only labels.
	var queries []expression
	queries = append(queries, logQueries(t)...)
	b, err := os.ReadFile(runbooksPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```logql\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		for _, line := range strings.Split(strings.TrimSpace(m[1]), "\n") {
			queries = append(queries, expression{runbooksPath, line})
		}
	}
	if len(queries) == 0 {
		t.Fatal("no LogQL query in the dashboards or runbooks")
	}
	streamSelector := regexp.MustCompile(`\{([^{}]*)\}`)
	for _, q := range queries {
		sels := streamSelector.FindAllStringSubmatch(q.expr, -1)
		if sels == nil {
			t.Errorf("%s: %q has no stream selector", q.where, q.expr)
		}
		for _, sel := range sels {
			for _, m := range matcher.FindAllStringSubmatch(sel[1], -1) {
				if !labels[m[1]] {
					t.Errorf("%s: %q selects on %s, which is no stream label (%v); filter structured metadata after the selector", q.where, q.expr, m[1], keys(labels))
				}
			}
		}
	}
}

func TestTracesReachAlloy(t *testing.T) {
	var cm map[string]any
	decodeYAML(t, "../knative/base/configmap.yaml", &cm)
	endpoint := str(cm, "data", "OTEL_EXPORTER_OTLP_ENDPOINT")
	want := "http://" + releaseNamed(t, "alloy").Name + ".monitoring.svc.cluster.local:4318"
	if endpoint != want {
		t.Errorf("knative/base/configmap.yaml OTEL_EXPORTER_OTLP_ENDPOINT %q, want Alloy's OTLP/HTTP port %s", endpoint, want)
	}
	cfg := alloyConfig(t)
	if !regexp.MustCompile(`(?s)otelcol\.receiver\.otlp "[^"]+" \{.*?http \{\s*endpoint = "0\.0\.0\.0:4318"`).MatchString(cfg) {
		t.Error("Alloy's config has no OTLP/HTTP receiver on 4318")
	}
	ports := fmt.Sprint(dig(releaseValues(t, releaseNamed(t, "alloy")), "alloy", "extraPorts"))
	if !strings.Contains(ports, "port:4318") {
		t.Errorf("alloy.extraPorts %s does not expose 4318 on the Service", ports)
	}
	// The namespace's NetworkPolicies let the functions reach it.
	found := false
	for _, doc := range yamlDocs(t, "../knative/base/networkpolicies.yaml") {
		b, _ := yaml.Marshal(doc["spec"])
		if bytes.Contains(b, []byte("Egress")) && bytes.Contains(b, []byte("port: 4318")) && bytes.Contains(b, []byte("kubernetes.io/metadata.name: monitoring")) {
			found = true
		}
	}
	if !found {
		t.Error("no NetworkPolicy in knative/base/networkpolicies.yaml lets the functions reach monitoring on 4318 (the namespace denies egress by default)")
	}
}

func alloyConfig(t *testing.T) string {
	t.Helper()
	cfg, _ := dig(releaseValues(t, releaseNamed(t, "alloy")), "alloy", "configMap", "content").(string)
	if cfg == "" {
		t.Fatal("alloy.yaml has no alloy.configMap.content")
	}
	return cfg
}

// alloyLogFields reads an Alloy config's log pipeline: the stream labels
// (target labels of discovery.relabel and stage.labels, less those
// stage.label_drop drops), structured metadata keys, and the fields
// stage.json extracts.
func alloyLogFields(cfg string) (labels, metadata, extracted map[string]bool) {
	labels, metadata, extracted = map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, m := range regexp.MustCompile(`target_label\s*=\s*"([^"]+)"`).FindAllStringSubmatch(cfg, -1) {
		if !strings.HasPrefix(m[1], "__") {
			labels[m[1]] = true
		}
	}
	block := func(name string) []string {
		var bodies []string
		for _, m := range regexp.MustCompile(`(?s)`+regexp.QuoteMeta(name)+`\s*\{\s*(?:values|expressions)\s*=\s*[\{\[](.*?)[\}\]]`).FindAllStringSubmatch(cfg, -1) {
			bodies = append(bodies, m[1])
		}
		return bodies
	}
	key := regexp.MustCompile(`(?m)^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=`)
	for _, b := range block("stage.labels") {
		for _, m := range key.FindAllStringSubmatch(b, -1) {
			labels[m[1]] = true
		}
	}
	for _, b := range block("stage.structured_metadata") {
		for _, m := range key.FindAllStringSubmatch(b, -1) {
			metadata[m[1]] = true
		}
	}
	for _, b := range block("stage.json") {
		for _, m := range key.FindAllStringSubmatch(b, -1) {
			extracted[m[1]] = true
		}
	}
	for _, b := range block("stage.label_drop") {
		for _, m := range regexp.MustCompile(`"([^"]+)"`).FindAllStringSubmatch(b, -1) {
			delete(labels, m[1])
		}
	}
	return labels, metadata, extracted
}

func TestAlloyLogFieldsOfAConfig(t *testing.T) {
	cfg := `rule {
  target_label = "namespace"
}
rule { target_label = "__path__" }
rule { target_label = "pod" }
stage.json {
  expressions = {
    level = "level",
    gameid = "gameid",
  }
}
stage.labels {
  values = {
    level = "",
  }
}
stage.structured_metadata {
  values = { pod = "" }
}
stage.label_drop {
  values = ["pod"]
}`
	labels, metadata, extracted := alloyLogFields(cfg)
	if got := strings.Join(keys(labels), " "); got != "level namespace" {
		t.Errorf("labels %s", got)
	}
	if got := strings.Join(keys(metadata), " "); got != "pod" {
		t.Errorf("metadata %s", got)
	}
	if got := strings.Join(keys(extracted), " "); got != "gameid level" {
		t.Errorf("extracted %s", got)
	}
}

// ------------------------------------------------------ with the charts

// chartsDir is $GAMEMETRICS_HELM_CHARTS, "" when unset.
func chartsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(chartsEnv)
	if dir == "" {
		return ""
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("%s=%s is no directory of charts (monitoring/tools/helm-charts.sh makes one): %v", chartsEnv, dir, err)
	}
	return dir
}

func TestHelmChartKeys(t *testing.T) {
	dir := chartsDir(t)
	if dir == "" {
		t.Skipf("%s is not set: %s was not compared with the charts (offline CI has none; make validate says how)", chartsEnv, chartKeysPath)
	}
	computed := map[string]keySnapshot{}
	for _, r := range helmReleases(t) {
		ck, err := readChartKeys(dir, filepath.Join(dir, r.Chart))
		if err != nil {
			t.Fatal(err)
		}
		if ck.Version != r.Version {
			t.Errorf("%s/%s is version %s, releases.yaml deploys %s", dir, r.Chart, ck.Version, r.Version)
		}
		computed[r.Chart] = ck.snapshot(releaseValues(t, r))
	}
	var b bytes.Buffer
	b.WriteString("# The value keys of each chart in helm/releases.yaml, at its version (its\n" +
		"# default values, the .Values paths its templates read, its subcharts'), in\n" +
		"# every map the release's values set keys in; * marks keys whose contents\n" +
		"# are free (empty maps, lists, nulls, keys only templates read).\n" +
		"# Generated, do not edit: " + chartsEnv + "=<charts> go test ./monitoring/ -run TestHelmChartKeys -update-chart-keys\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(computed); err != nil {
		t.Fatal(err)
	}
	if *updateChartKeys {
		if err := os.WriteFile(chartKeysPath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(chartKeysPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, b.Bytes()) {
		t.Errorf("%s differs from the keys of the charts in %s: rewrite it with -update-chart-keys", chartKeysPath, dir)
	}
}

var valuesRef = regexp.MustCompile(`\.Values((?:\.[A-Za-z_][A-Za-z0-9_-]*)+)`)

// readChartKeys reads the keys of the chart in dir; subcharts come from its
// charts/ directory, else from root.
func readChartKeys(root, dir string) (chartKeys, error) {
	var meta struct {
		Version      string `yaml:"version"`
		Dependencies []struct {
			Name      string `yaml:"name"`
			Alias     string `yaml:"alias"`
			Condition string `yaml:"condition"`
		} `yaml:"dependencies"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return chartKeys{}, err
	}
	if err := yaml.Unmarshal(b, &meta); err != nil {
		return chartKeys{}, fmt.Errorf("%s/Chart.yaml: %w", dir, err)
	}
	keys, open := map[string]bool{}, map[string]bool{"global": true}
	var defaults map[string]any
	if b, err := os.ReadFile(filepath.Join(dir, "values.yaml")); err == nil {
		if err := yaml.Unmarshal(b, &defaults); err != nil {
			return chartKeys{}, fmt.Errorf("%s/values.yaml: %w", dir, err)
		}
	}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			p := prefix + k
			keys[p] = true
			switch v := v.(type) {
			case map[string]any:
				if len(v) == 0 {
					open[p] = true
				} else {
					walk(p+".", v)
				}
			case nil, []any:
				open[p] = true
			}
		}
	}
	walk("", defaults)
	// Maps the chart's schema leaves open (a component's own configuration,
	// passed through as it is).
	if b, err := os.ReadFile(filepath.Join(dir, "values.schema.json")); err == nil {
		var schema map[string]any
		if err := json.Unmarshal(b, &schema); err != nil {
			return chartKeys{}, fmt.Errorf("%s/values.schema.json: %w", dir, err)
		}
		var walkSchema func(prefix string, node map[string]any)
		walkSchema = func(prefix string, node map[string]any) {
			props, _ := node["properties"].(map[string]any)
			for k, v := range props {
				p := prefix + k
				sub, _ := v.(map[string]any)
				if sub["additionalProperties"] == true {
					keys[p], open[p] = true, true
				}
				walkSchema(p+".", sub)
			}
		}
		walkSchema("", schema)
	}
	// Keys only the templates read: free below.
	err = filepath.WalkDir(filepath.Join(dir, "templates"), func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range valuesRef.FindAllStringSubmatch(string(b), -1) {
			parts := strings.Split(strings.TrimPrefix(m[1], "."), ".")
			for i := range parts {
				p := strings.Join(parts[:i+1], ".")
				if keys[p] {
					continue
				}
				keys[p] = true
				open[p] = true
				break
			}
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		return chartKeys{}, err
	}
	for _, d := range meta.Dependencies {
		prefix := d.Name
		if d.Alias != "" {
			prefix = d.Alias
		}
		sub := filepath.Join(dir, "charts", d.Name)
		if _, err := os.Stat(filepath.Join(sub, "Chart.yaml")); err != nil {
			sub = filepath.Join(root, d.Name)
		}
		keys[prefix] = true
		for _, c := range strings.Split(d.Condition, ",") {
			if c = strings.TrimSpace(c); c != "" {
				keys[c] = true
			}
		}
		sk, err := readChartKeys(root, sub)
		if err != nil {
			return chartKeys{}, fmt.Errorf("subchart %s of %s: %w", d.Name, dir, err)
		}
		for _, k := range sk.Keys {
			keys[prefix+"."+k] = true
		}
		for _, k := range sk.Open {
			open[prefix+"."+k] = true
		}
	}
	// Below an open key nothing needs listing.
	prune := func(m map[string]bool) []string {
		var out []string
		for k := range m {
			covered := false
			for p := k; strings.Contains(p, "."); {
				p = p[:strings.LastIndex(p, ".")]
				if open[p] {
					covered = true
					break
				}
			}
			if !covered {
				out = append(out, k)
			}
		}
		sort.Strings(out)
		return out
	}
	return chartKeys{Version: meta.Version, Keys: prune(keys), Open: prune(open)}, nil
}

func TestHelmTemplateRendersEveryRelease(t *testing.T) {
	dir := chartsDir(t)
	if dir == "" {
		t.Skipf("%s is not set: the Helm values were checked against %s but not rendered (make validate says how)", chartsEnv, chartKeysPath)
	}
	helm, err := exec.LookPath("helm")
	if err != nil {
		t.Fatalf("%s is set but helm is not on PATH: go install helm.sh/helm/v3/cmd/helm@v3.22.0", chartsEnv)
	}
	services := map[string][]int{} // name: ports
	rendered := map[string][]map[string]any{}
	for _, r := range helmReleases(t) {
		cmd := exec.Command(helm, "template", r.Name, filepath.Join(dir, r.Chart), "--namespace", "monitoring",
			"--kube-version", "1.32.0", "-f", filepath.Join(helmDir, r.Values))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("helm template %s: %v\n%s", r.Name, err, stderr.String())
			continue
		}
		docs := decodeObjectsList(t, out)
		rendered[r.Name] = docs
		for _, d := range docs {
			if str(d, "kind") == "Service" {
				ps, _ := dig(d, "spec", "ports").([]any)
				for _, p := range ps {
					m, _ := p.(map[string]any)
					if n, ok := m["port"].(int); ok {
						services[str(d, "metadata", "name")] = append(services[str(d, "metadata", "name")], n)
					}
				}
			}
			if b, _ := yaml.Marshal(d); bytes.Contains(bytes.ToLower(b), []byte("image: quay.io/minio")) || bytes.Contains(b, []byte("minio/minio")) {
				t.Errorf("%s renders MinIO (AGPL, not used): %s %s", r.Name, str(d, "kind"), str(d, "metadata", "name"))
			}
		}
		t.Logf("%s: %d objects", r.Name, len(docs))
	}

	t.Run("every in-cluster URL the values and the functions use is a rendered Service port", func(t *testing.T) {
		url := regexp.MustCompile(`(?:https?://)?([a-z0-9-]+)\.monitoring\.svc\.cluster\.local(?::([0-9]+))?`)
		files, _ := filepath.Glob(filepath.Join(helmDir, "*.yaml"))
		files = append(files, "../knative/base/configmap.yaml")
		n := 0
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range url.FindAllStringSubmatch(string(b), -1) {
				n++
				port := 80
				if m[2] != "" {
					fmt.Sscan(m[2], &port)
				}
				ports, ok := services[m[1]]
				if !ok {
					t.Errorf("%s: %s: no Service %s is rendered (have %v)", f, m[0], m[1], keys(services))
				} else if !slices.Contains(ports, port) {
					t.Errorf("%s: %s: Service %s has ports %v, not %d", f, m[0], m[1], ports, port)
				}
			}
		}
		if n == 0 {
			t.Error("found no in-cluster URL to check")
		}
	})

	t.Run("Prometheus selects by the release label and the ServiceMonitors carry it", func(t *testing.T) {
		for name, docs := range rendered {
			for _, d := range docs {
				switch str(d, "kind") {
				case "Prometheus":
					for _, sel := range []string{"ruleSelector", "podMonitorSelector", "serviceMonitorSelector"} {
						if got := str(d, "spec", sel, "matchLabels", "release"); got != kubePrometheusRelease {
							t.Errorf("Prometheus %s: %s release %q", str(d, "metadata", "name"), sel, got)
						}
					}
				case "ServiceMonitor":
					if name != kubePrometheusRelease && str(d, "metadata", "labels", "release") != kubePrometheusRelease {
						t.Errorf("%s: ServiceMonitor %s has no label release: %s", name, str(d, "metadata", "name"), kubePrometheusRelease)
					}
				}
			}
		}
	})

	t.Run("Alloy runs the configuration of alloy.yaml", func(t *testing.T) {
		found := false
		for _, d := range rendered["alloy"] {
			if str(d, "kind") == "ConfigMap" && strings.TrimSpace(str(d, "data", "config.alloy")) == strings.TrimSpace(alloyConfig(t)) {
				found = true
			}
		}
		if !found {
			t.Error("no ConfigMap carries alloy.configMap.content as config.alloy")
		}
	})

	t.Run("Loki keeps structured metadata and applies retention", func(t *testing.T) {
		for _, d := range rendered["loki"] {
			if str(d, "kind") != "ConfigMap" || str(d, "metadata", "name") != "loki" {
				continue
			}
			var cfg map[string]any
			if err := yaml.Unmarshal([]byte(str(d, "data", "config.yaml")), &cfg); err != nil {
				t.Fatalf("loki config.yaml: %v", err)
			}
			if dig(cfg, "limits_config", "allow_structured_metadata") != true || dig(cfg, "compactor", "retention_enabled") != true {
				t.Errorf("rendered Loki config: limits_config %v, compactor %v", dig(cfg, "limits_config"), dig(cfg, "compactor"))
			}
			return
		}
		t.Error("no ConfigMap loki rendered")
	})
}

// dig walks maps along path; nil where it ends.
func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func set(s []string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, x := range s {
		m[x] = true
	}
	return m
}

func readAll(t *testing.T, paths ...string) string {
	t.Helper()
	var b strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}
