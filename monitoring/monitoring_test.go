package monitoring

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.yaml.in/yaml/v3"

	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

const (
	rulesPath     = "prometheus/gamemetrics.rules.yaml"
	rulesTestPath = "prometheus/gamemetrics.rules.test.yaml"
	dashboardPath = "grafana/gamemetrics-overview.json"
	runbooksPath  = "runbooks.md"
	runbookBase   = "https://github.com/gamemetrics/gamemetrics/blob/main/monitoring/runbooks.md#"
)

// ---------------------------------------------------------------- promtool

func TestPromtool(t *testing.T) {
	t.Parallel()
	promtool := lookTool(t, "promtool")
	tests := []struct {
		name string
		args []string
	}{
		{"check rules accepts the rules file", []string{"check", "rules", rulesPath}},
		{"the rules pass their unit tests", []string{"test", "rules", rulesTestPath}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(promtool, tt.args...).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(tt.args, " "), err, out)
			}
		})
	}
}

// lookTool finds a Prometheus binary; its absence fails the test: the
// rules are only known to work once Prometheus itself has read them.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not on PATH: run `make test-deps`, which installs the Debian package prometheus (prometheus and promtool); as root: apt-get install -y prometheus", name)
	}
	return p
}

// ------------------------------------------------------- rules and dashboard

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	var f ruleFile
	decodeYAML(t, rulesPath, &f)
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no rules", rulesPath)
	}
	return rules
}

func alerts(t *testing.T) []rule {
	t.Helper()
	var as []rule
	for _, r := range loadRules(t) {
		if r.Alert != "" {
			as = append(as, r)
		}
	}
	return as
}

type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	UID           string
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// panels lists every panel, those inside collapsed rows included, rows not.
func (d dashboard) panels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" {
				out = append(out, p)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// expression is a PromQL expression and where it comes from.
type expression struct{ where, expr string }

func expressions(t *testing.T) []expression {
	t.Helper()
	var out []expression
	for _, r := range loadRules(t) {
		out = append(out, expression{rulesPath + ": " + r.Record + r.Alert, r.Expr})
	}
	for _, p := range loadDashboard(t).panels() {
		for _, tg := range p.Targets {
			out = append(out, expression{fmt.Sprintf("%s: panel %q target %s", dashboardPath, p.Title, tg.RefID), tg.Expr})
		}
	}
	return out
}

func recorded(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Record != "" {
			names[r.Record] = true
		}
	}
	return names
}

var (
	stringLiteral = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	identifier    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	selector      = regexp.MustCompile(`(gamemetrics[_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}`)
	matcher       = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
)

// metricNames are the gamemetrics series an expression reads.
func metricNames(expr string) []string {
	var names []string
	for _, id := range identifier.FindAllString(stringLiteral.ReplaceAllString(expr, `""`), -1) {
		if strings.HasPrefix(id, "gamemetrics_") || strings.HasPrefix(id, "gamemetrics:") {
			names = append(names, id)
		}
	}
	return names
}

// labelMatch is one label matcher of a selector in an expression.
type labelMatch struct {
	metric, label, op, value string
}

func labelMatches(t *testing.T, expr string) []labelMatch {
	t.Helper()
	var out []labelMatch
	for _, sel := range selector.FindAllStringSubmatch(expr, -1) {
		for _, m := range matcher.FindAllStringSubmatch(sel[2], -1) {
			v, err := strconv.Unquote(`"` + m[3] + `"`)
			if err != nil {
				t.Fatalf("label value %q in %q: %v", m[3], sel[0], err)
			}
			out = append(out, labelMatch{metric: sel[1], label: m[1], op: m[2], value: v})
		}
	}
	return out
}

// targetLabels are added by the scrape (PodMonitor, static configs), not by the code.
var targetLabels = map[string]bool{"job": true, "instance": true, "namespace": true, "pod": true,
	"container": true, "endpoint": true, "service": true, "function": true, "revision": true}

func TestExpressionsUseOnlyExportedMetrics(t *testing.T) {
	inv := inventory(t)
	rec := recorded(t)
	for _, e := range expressions(t) {
		t.Run(e.where, func(t *testing.T) {
			names := metricNames(e.expr)
			if len(names) == 0 {
				t.Fatalf("reads no gamemetrics series: %s", e.expr)
			}
			for _, n := range names {
				if rec[n] {
					continue
				}
				if _, ok := inv.lookup(n); !ok {
					t.Errorf("%s is neither a recording rule of %s nor a metric registered in the Go code", n, rulesPath)
				}
			}
			for _, m := range labelMatches(t, e.expr) {
				if rec[m.metric] {
					t.Errorf("%s{%s%s%q}: match raw metrics, not recording rules, on labels", m.metric, m.label, m.op, m.value)
					continue
				}
				def, ok := inv.lookup(m.metric)
				if !ok {
					continue // reported above
				}
				if targetLabels[m.label] {
					continue
				}
				domain, err := def.domain(m.metric, m.label)
				if err != nil {
					t.Errorf("%s{%s%s%q}: %v", m.metric, m.label, m.op, m.value, err)
					continue
				}
				if err := matchesDomain(m, domain); err != nil {
					t.Errorf("%s{%s%s%q}: %v (the code produces %s)", m.metric, m.label, m.op, m.value, err, strings.Join(domain, ", "))
				}
			}
		})
	}
}

// matchesDomain: an equality names a value the code produces, a regexp
// matches at least one of them.
func matchesDomain(m labelMatch, domain []string) error {
	switch m.op {
	case "=", "!=":
		if !slices.Contains(domain, m.value) {
			return errors.New("no such value")
		}
	case "=~", "!~":
		re, err := regexp.Compile("^(?:" + m.value + ")$")
		if err != nil {
			return err
		}
		for _, alt := range strings.Split(m.value, "|") {
			// Each alternative of a plain list (a|b|c) must exist on its own.
			if regexp.QuoteMeta(alt) == alt && !slices.Contains(domain, alt) {
				return fmt.Errorf("alternative %q is no such value", alt)
			}
		}
		if !slices.ContainsFunc(domain, re.MatchString) {
			return errors.New("matches no value")
		}
	}
	return nil
}

func TestEveryAlertIsReadyForOnCall(t *testing.T) {
	anchors := runbookAnchors(t)
	for _, a := range alerts(t) {
		t.Run(a.Alert, func(t *testing.T) {
			if s := a.Labels["severity"]; s != "page" && s != "ticket" {
				t.Errorf("severity is %q, want page or ticket", s)
			}
			for _, k := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(a.Annotations[k]) == "" {
					t.Errorf("has no %s annotation", k)
				}
			}
			u := a.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(u, runbookBase)
			if !ok {
				t.Fatalf("runbook_url %q does not point into %s", u, runbookBase)
			}
			if anchors[anchor] == 0 {
				t.Errorf("runbook_url anchor #%s is no heading of %s", anchor, runbooksPath)
			}
			if want := strings.ToLower(a.Alert); anchor != want {
				t.Errorf("runbook_url anchor is #%s, want the alert's own section #%s", anchor, want)
			}
		})
	}
}

func TestEveryRunbookSectionBelongsToAnAlert(t *testing.T) {
	names := map[string]bool{}
	for _, a := range alerts(t) {
		names[strings.ToLower(a.Alert)] = true
	}
	for anchor, level := range runbookAnchors(t) {
		if level == 2 && !names[anchor] {
			t.Errorf("%s has a section #%s for an alert the rules do not have", runbooksPath, anchor)
		}
	}
}

// runbookAnchors are GitHub's anchors for the headings of runbooks.md,
// with the headings' levels.
func runbookAnchors(t *testing.T) map[string]int {
	t.Helper()
	b, err := os.ReadFile(runbooksPath)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]int{}
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		level := len(line) - len(strings.TrimLeft(line, "#"))
		heading := strings.TrimSpace(line[level:])
		var slug strings.Builder
		for _, r := range strings.ToLower(heading) {
			switch {
			case r == ' ':
				slug.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				slug.WriteRune(r)
			}
		}
		anchors[slug.String()] = level
	}
	return anchors
}

func TestEveryAlertIsUnitTestedFiringAndQuiet(t *testing.T) {
	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	decodeYAML(t, rulesTestPath, &f)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, a := range alerts(t) {
		t.Run(a.Alert, func(t *testing.T) {
			if !fires[a.Alert] {
				t.Errorf("no test in %s expects it to fire", rulesTestPath)
			}
			if !quiet[a.Alert] {
				t.Errorf("no test in %s expects it to stay quiet", rulesTestPath)
			}
		})
	}
}

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	t.Run("has a Prometheus data source variable", func(t *testing.T) {
		ok := false
		for _, v := range d.Templating.List {
			ok = ok || v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus"
		}
		if !ok {
			t.Error(`templating has no variable {"name": "datasource", "type": "datasource", "query": "prometheus"}`)
		}
		if d.SchemaVersion < 36 {
			t.Errorf("schemaVersion %d predates panel-level data sources", d.SchemaVersion)
		}
	})
	usesVariable := func(ds *datasource) bool {
		return ds != nil && ds.Type == "prometheus" && ds.UID == "${datasource}"
	}
	for _, p := range d.panels() {
		t.Run(fmt.Sprintf("panel %q has a title, queries and the data source variable", p.Title), func(t *testing.T) {
			if strings.TrimSpace(p.Title) == "" {
				t.Error("has no title")
			}
			if len(p.Targets) == 0 {
				t.Error("has no targets")
			}
			if !usesVariable(p.Datasource) {
				t.Errorf("datasource is %+v, want prometheus ${datasource}", p.Datasource)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("target %s has no expr", tg.RefID)
				}
				if !usesVariable(tg.Datasource) {
					t.Errorf("target %s datasource is %+v, want prometheus ${datasource}", tg.RefID, tg.Datasource)
				}
			}
		})
	}
}

// -------------------------------------------------------------- kubernetes

func TestKubernetesManifests(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl is not on PATH: it renders monitoring/kustomization.yaml (kubectl kustomize), as `make validate` needs too")
	}
	out, err := exec.Command(kubectl, "kustomize", ".").Output()
	if err != nil {
		t.Fatalf("kubectl kustomize monitoring/: %v\n%s", err, stderrOf(err))
	}
	objects := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		objects[str(o, "kind")+"/"+str(o, "metadata", "name")] = o
	}

	configMaps := []struct {
		name, key, file string
		labels          map[string]string
	}{
		{"gamemetrics-prometheus-rules", "gamemetrics.rules.yaml", rulesPath, nil},
		{"gamemetrics-grafana-dashboard", "gamemetrics-overview.json", dashboardPath, map[string]string{"grafana_dashboard": "1"}},
	}
	for _, cm := range configMaps {
		t.Run("ConfigMap "+cm.name+" carries "+cm.file+" unchanged", func(t *testing.T) {
			o, ok := objects["ConfigMap/"+cm.name]
			if !ok {
				t.Fatalf("not rendered; got %v", keys(objects))
			}
			want, err := os.ReadFile(cm.file)
			if err != nil {
				t.Fatal(err)
			}
			if got := str(o, "data", cm.key); got != string(want) {
				t.Errorf("data[%s] differs from %s", cm.key, cm.file)
			}
			for k, v := range cm.labels {
				if got := str(o, "metadata", "labels", k); got != v {
					t.Errorf("label %s = %q, want %q", k, got, v)
				}
			}
			if ns := str(o, "metadata", "namespace"); ns != "monitoring" {
				t.Errorf("namespace %q, want monitoring", ns)
			}
		})
	}

	t.Run("the PodMonitor scrapes the port and labels of the Knative services", func(t *testing.T) {
		pm, ok := objects["PodMonitor/gamemetrics-functions"]
		if !ok {
			t.Fatalf("not rendered; got %v", keys(objects))
		}
		if v := str(pm, "apiVersion"); v != "monitoring.coreos.com/v1" {
			t.Errorf("apiVersion %q", v)
		}
		spec := pm["spec"].(map[string]any)
		if ns := fmt.Sprint(spec["namespaceSelector"]); !strings.Contains(ns, "gamemetrics") {
			t.Errorf("namespaceSelector %s does not select gamemetrics", ns)
		}
		ep := spec["podMetricsEndpoints"].([]any)[0].(map[string]any)
		if ep["port"] != "user-port" || ep["path"] != "/metrics" {
			t.Errorf("endpoint %v, want port user-port (Knative's name for the function's port) and path /metrics", ep)
		}
		sel := spec["selector"].(map[string]any)["matchLabels"].(map[string]any)
		services, _ := filepath.Glob("../knative/base/services/*.yaml")
		if len(services) == 0 {
			t.Fatal("no ../knative/base/services/*.yaml")
		}
		for _, f := range services {
			var svc map[string]any
			decodeYAML(t, f, &svc)
			tmpl := svc["spec"].(map[string]any)["template"].(map[string]any)
			for k, v := range sel {
				if got := str(tmpl, "metadata", "labels", k); got != v {
					t.Errorf("%s: pod template label %s = %q, the PodMonitor selects %q", f, k, got, v)
				}
			}
			if a := str(tmpl, "metadata", "annotations", "prometheus.io/port"); a != "8080" {
				t.Errorf("%s: prometheus.io/port %q, want 8080 (the function's own port)", f, a)
			}
			c := tmpl["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
			port := c["ports"].([]any)[0].(map[string]any)["containerPort"]
			if fmt.Sprint(port) != "8080" {
				t.Errorf("%s: containerPort %v, want 8080", f, port)
			}
		}
	})

	t.Run("prometheusrule.sh wraps the rules file unchanged in a PrometheusRule", func(t *testing.T) {
		out, err := exec.Command("sh", "kubernetes/prometheusrule.sh").Output()
		if err != nil {
			t.Fatalf("prometheusrule.sh: %v\n%s", err, stderrOf(err))
		}
		var pr map[string]any
		if err := yaml.Unmarshal(out, &pr); err != nil {
			t.Fatalf("prometheusrule.sh output is not YAML: %v", err)
		}
		if str(pr, "kind") != "PrometheusRule" || str(pr, "apiVersion") != "monitoring.coreos.com/v1" {
			t.Errorf("got %s %s", str(pr, "apiVersion"), str(pr, "kind"))
		}
		var rules map[string]any
		decodeYAML(t, rulesPath, &rules)
		a, _ := json.Marshal(pr["spec"])
		b, _ := json.Marshal(rules)
		if !bytes.Equal(a, b) {
			t.Error("spec differs from the rules file")
		}
	})
}

// ---------------------------------------------- real Prometheus (integration)

func TestPrometheusLoadsTheRulesAgainstTheFunctionsMetrics(t *testing.T) {
	t.Parallel()
	bin := lookTool(t, "prometheus")
	inv := inventory(t)

	// A registry with every metric the functions register, same names, types,
	// labels and buckets, one series per label value the code produces.
	reg := prometheus.NewRegistry()
	for _, def := range inv.sorted() {
		reg.MustRegister(def.collector(t))
	}
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(target.Close)

	dir := t.TempDir()
	rules, err := filepath.Abs(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
- job_name: gamemetrics
  static_configs: [{targets: [%q]}]
`, rules, strings.TrimPrefix(target.URL, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	var logs lockedBuffer
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	api := "http://" + addr + "/api/v1/"
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nprometheus log:\n%s", append(args, logs.String())...)
	}

	// Every recording rule produces series from the scraped metrics: the
	// names and labels the rules expect are the ones the code exports.
	rec := recorded(t)
	var missing []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			fail("prometheus exited: %v", err)
		default:
		}
		missing = missing[:0]
		for name := range rec {
			var res struct {
				Data struct{ Result []any }
			}
			if err := getJSON(api+"query?query="+url.QueryEscape(name), &res); err != nil || len(res.Data.Result) == 0 {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		fail("recording rules without series after a minute: %s", strings.Join(missing, ", "))
	}

	t.Run("every rule group evaluates with health ok", func(t *testing.T) {
		var res struct {
			Data struct {
				Groups []struct {
					Name  string
					Rules []struct {
						Name, Health, LastError string
					}
				}
			}
		}
		if err := getJSON(api+"rules", &res); err != nil {
			fail("rules API: %v", err)
		}
		n := 0
		for _, g := range res.Data.Groups {
			for _, r := range g.Rules {
				n++
				if r.Health != "ok" {
					t.Errorf("group %s rule %s: health %q %s", g.Name, r.Name, r.Health, r.LastError)
				}
			}
		}
		if want := len(loadRules(t)); n != want {
			t.Errorf("Prometheus loaded %d rules, the file has %d", n, want)
		}
	})

	t.Run("every dashboard query runs", func(t *testing.T) {
		r := strings.NewReplacer("$__rate_interval", "1m", "$__range", "1h", "$__interval", "15s")
		for _, p := range loadDashboard(t).panels() {
			for _, tg := range p.Targets {
				var res struct{ Status, Error string }
				err := getJSON(api+"query?query="+url.QueryEscape(r.Replace(tg.Expr)), &res)
				if err != nil || res.Status != "success" {
					t.Errorf("panel %q target %s: %v %s", p.Title, tg.RefID, err, res.Error)
				}
			}
		}
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func getJSON(u string, v any) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %s: %w", u, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", u, resp.Status, b)
	}
	return nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// ------------------------------------------ metrics registered in the Go code

// TestInventoryFindsEveryRegisteredMetric cross-checks the syntax-tree
// reader with a plain text scan for Name: "gamemetrics_..." options.
func TestInventoryFindsEveryRegisteredMetric(t *testing.T) {
	inv := inventory(t)
	nameOpt := regexp.MustCompile(`Name:\s*"(gamemetrics_[A-Za-z0-9_]+)"`)
	scanned := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() && path != ".." && (strings.HasPrefix(e.Name(), ".") || e.Name() == "bin") {
			return filepath.SkipDir
		}
		if e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range nameOpt.FindAllStringSubmatch(string(b), -1) {
			scanned[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(inv), keys(scanned); !slices.Equal(got, want) {
		t.Errorf("the syntax-tree reader found\n%s\nthe text scan\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, d := range inv.sorted() {
		if len(d.labels) > 0 && d.field == "" {
			t.Errorf("%s (%s): not assigned to a struct field, so its label values are unknown; extend readInventory", d.name, d.pos)
		}
	}
}

// metricDef is a metric as the Go code registers it.
type metricDef struct {
	name    string
	kind    string // counter, gauge, histogram, summary
	labels  []string
	buckets []float64
	pos     string
	pkg     *goPackage
	field   string // the struct field holding it, to find its WithLabelValues calls
	// values[i] are the literal values passed for labels[i]; dynamic[i] is
	// set when some call passes a value only known at run time.
	values  []map[string]bool
	dynamic []bool
}

type goPackage struct {
	dir      string
	consts   map[string]string // package-level string constants
	literals map[string]bool   // every string literal
	statuses map[string]bool   // HTTP status codes named by http.Status* constants
}

type metricInventory map[string]*metricDef

func (inv metricInventory) lookup(series string) (*metricDef, bool) {
	if d, ok := inv[series]; ok {
		return d, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok {
			if d, ok := inv[base]; ok && (d.kind == "histogram" || d.kind == "summary" && suffix != "_bucket") {
				return d, true
			}
		}
	}
	return nil, false
}

func (inv metricInventory) sorted() []*metricDef {
	var ds []*metricDef
	for _, d := range inv {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].name < ds[j].name })
	return ds
}

// domain lists the values label can take on series.
func (d *metricDef) domain(series, label string) ([]string, error) {
	if label == "le" {
		if d.kind != "histogram" || !strings.HasSuffix(series, "_bucket") {
			return nil, errors.New("le exists only on the _bucket series of a histogram")
		}
		vals := []string{"+Inf"}
		for _, b := range d.buckets {
			s := strconv.FormatFloat(b, 'g', -1, 64)
			vals = append(vals, s)
			if !strings.ContainsAny(s, ".e") {
				vals = append(vals, s+".0") // Prometheus 3 normalises le="1" to "1.0"
			}
		}
		return vals, nil
	}
	i := slices.Index(d.labels, label)
	if i < 0 {
		return nil, fmt.Errorf("%s has no label %s (it has %s)", d.name, label, strings.Join(d.labels, ", "))
	}
	set := map[string]bool{}
	switch {
	case label == "code":
		// An HTTP status written with strconv.Itoa: the codes the package names.
		maps(set, d.pkg.statuses)
	case d.dynamic[i]:
		maps(set, d.values[i])
		maps(set, d.pkg.literals)
	default:
		maps(set, d.values[i])
	}
	vals := keys(set)
	if len(vals) == 0 {
		return nil, fmt.Errorf("found no value the code gives label %s", label)
	}
	return vals, nil
}

// collector builds a collector shaped like d with one series per known
// combination of label values.
func (d *metricDef) collector(t *testing.T) prometheus.Collector {
	t.Helper()
	help := "test copy of " + d.pos
	var combos [][]string
	combos = append(combos, nil)
	for i, l := range d.labels {
		vals := keys(d.values[i])
		switch {
		case l == "code":
			vals = keys(d.pkg.statuses)
		case d.dynamic[i] || len(vals) == 0:
			vals = append(vals, "test")
		}
		if len(vals) == 0 {
			t.Fatalf("%s: no value for label %s", d.name, l)
		}
		var next [][]string
		for _, c := range combos {
			for _, v := range vals {
				next = append(next, append(slices.Clone(c), v))
			}
		}
		combos = next
	}
	switch d.kind {
	case "counter":
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: d.name, Help: help}, d.labels)
		for _, c := range combos {
			v.WithLabelValues(c...).Add(1)
		}
		return v
	case "gauge":
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: d.name, Help: help}, d.labels)
		for _, c := range combos {
			v.WithLabelValues(c...).Set(1)
		}
		return v
	case "histogram":
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: d.name, Help: help, Buckets: d.buckets}, d.labels)
		for _, c := range combos {
			v.WithLabelValues(c...).Observe(0.01)
		}
		return v
	default:
		v := prometheus.NewSummaryVec(prometheus.SummaryOpts{Name: d.name, Help: help}, d.labels)
		for _, c := range combos {
			v.WithLabelValues(c...).Observe(0.01)
		}
		return v
	}
}

var (
	inventoryOnce sync.Once
	inventoryVal  metricInventory
	inventoryErr  error
)

// inventory reads every gamemetrics_ metric the repository's Go code
// (tests excluded) registers, with its labels and label values.
func inventory(t *testing.T) metricInventory {
	t.Helper()
	inventoryOnce.Do(func() { inventoryVal, inventoryErr = readInventory("..") })
	if inventoryErr != nil {
		t.Fatal(inventoryErr)
	}
	if len(inventoryVal) == 0 {
		t.Fatal("found no gamemetrics_ metric in the Go sources")
	}
	return inventoryVal
}

func readInventory(root string) (metricInventory, error) {
	statuses, err := httpStatuses()
	if err != nil {
		return nil, err
	}
	dirs := map[string][]string{}
	err = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := e.Name()
		if e.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "bin" || name == "testdata" || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			dirs[filepath.Dir(path)] = append(dirs[filepath.Dir(path)], path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	inv := metricInventory{}
	fset := token.NewFileSet()
	for dir, files := range dirs {
		pkg := &goPackage{dir: dir, consts: map[string]string{}, literals: map[string]bool{}, statuses: map[string]bool{}}
		var parsed []*ast.File
		for _, f := range files {
			af, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				return nil, err
			}
			parsed = append(parsed, af)
		}
		// Constants, literals and HTTP statuses of the package.
		for _, af := range parsed {
			eachConst(af, func(name string, value ast.Expr) {
				if s, ok := stringLit(value); ok {
					pkg.consts[name] = s
				}
			})
			ast.Inspect(af, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.BasicLit:
					if s, ok := stringLit(n); ok {
						pkg.literals[s] = true
					}
				case *ast.SelectorExpr:
					if x, ok := n.X.(*ast.Ident); ok && x.Name == "http" {
						if code, ok := statuses[n.Sel.Name]; ok {
							pkg.statuses[code] = true
						}
					}
				}
				return true
			})
		}
		// Metric constructors, and the struct fields they are assigned to.
		fields := map[*ast.CallExpr]string{}
		byField := map[string]*metricDef{}
		for _, af := range parsed {
			ast.Inspect(af, func(n ast.Node) bool {
				if kv, ok := n.(*ast.KeyValueExpr); ok {
					if call, ok := kv.Value.(*ast.CallExpr); ok {
						if k, ok := kv.Key.(*ast.Ident); ok {
							fields[call] = k.Name
						}
					}
				}
				return true
			})
		}
		var inspectErr error
		for _, af := range parsed {
			ast.Inspect(af, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || inspectErr != nil {
					return inspectErr == nil
				}
				def, err := metricConstructor(fset, pkg, call)
				if err != nil {
					inspectErr = err
					return false
				}
				if def == nil {
					return true
				}
				if prev, ok := inv[def.name]; ok {
					inspectErr = fmt.Errorf("%s registered twice: %s and %s", def.name, prev.pos, def.pos)
					return false
				}
				def.field = fields[call]
				inv[def.name] = def
				if def.field != "" {
					byField[def.field] = def
				}
				return true
			})
		}
		if inspectErr != nil {
			return nil, inspectErr
		}
		// Label values: X.<field>.WithLabelValues(...) calls.
		for _, af := range parsed {
			ast.Inspect(af, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "WithLabelValues" {
					return true
				}
				var field string
				switch x := sel.X.(type) {
				case *ast.SelectorExpr:
					field = x.Sel.Name
				case *ast.Ident:
					field = x.Name
				}
				def := byField[field]
				if def == nil {
					return true
				}
				if call.Ellipsis.IsValid() {
					for i := range def.dynamic {
						def.dynamic[i] = true
					}
					return true
				}
				for i, arg := range call.Args {
					if i >= len(def.labels) {
						break
					}
					if s, ok := stringLit(arg); ok {
						def.values[i][s] = true
					} else if id, ok := arg.(*ast.Ident); ok && pkg.consts[id.Name] != "" {
						def.values[i][pkg.consts[id.Name]] = true
					} else {
						def.dynamic[i] = true
					}
				}
				return true
			})
		}
	}
	return inv, nil
}

// metricConstructor reads a prometheus.NewX(Opts{Name: "gamemetrics_..."}, labels) call.
func metricConstructor(fset *token.FileSet, pkg *goPackage, call *ast.CallExpr) (*metricDef, error) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return nil, nil
	}
	if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "prometheus" || !strings.HasPrefix(sel.Sel.Name, "New") || len(call.Args) == 0 {
		return nil, nil
	}
	kind := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(sel.Sel.Name, "New"), "Vec"))
	if kind != "counter" && kind != "gauge" && kind != "histogram" && kind != "summary" {
		return nil, nil
	}
	opts, ok := call.Args[0].(*ast.CompositeLit)
	if !ok {
		return nil, nil
	}
	pos := fset.Position(call.Pos()).String()
	def := &metricDef{kind: kind, pos: pos, pkg: pkg}
	var bucketsExpr ast.Expr
	for _, e := range opts.Elts {
		kv, ok := e.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		switch kv.Key.(*ast.Ident).Name {
		case "Name":
			def.name, _ = stringLit(kv.Value)
		case "Namespace", "Subsystem", "ConstLabels":
			return nil, fmt.Errorf("%s: %s is not read by this test; extend readInventory", pos, kv.Key.(*ast.Ident).Name)
		case "Buckets":
			bucketsExpr = kv.Value
		}
	}
	if !strings.HasPrefix(def.name, "gamemetrics_") {
		return nil, nil
	}
	if strings.HasSuffix(sel.Sel.Name, "Vec") {
		if len(call.Args) < 2 {
			return nil, fmt.Errorf("%s: %s without label names", pos, sel.Sel.Name)
		}
		labels, err := stringSlice(call.Args[1])
		if err != nil {
			return nil, fmt.Errorf("%s: label names of %s: %w", pos, def.name, err)
		}
		def.labels = labels
	}
	def.values = make([]map[string]bool, len(def.labels))
	for i := range def.values {
		def.values[i] = map[string]bool{}
	}
	def.dynamic = make([]bool, len(def.labels))
	if kind == "histogram" {
		b, err := buckets(bucketsExpr)
		if err != nil {
			return nil, fmt.Errorf("%s: buckets of %s: %w", pos, def.name, err)
		}
		def.buckets = b
	}
	return def, nil
}

// stringSlice evaluates []string{"a", "b"}, a variable holding one, or
// append(slice, "c", ...).
func stringSlice(e ast.Expr) ([]string, error) {
	switch e := e.(type) {
	case *ast.CompositeLit:
		var out []string
		for _, el := range e.Elts {
			s, ok := stringLit(el)
			if !ok {
				return nil, fmt.Errorf("%T is not a string literal", el)
			}
			out = append(out, s)
		}
		return out, nil
	case *ast.Ident:
		if e.Obj != nil {
			if as, ok := e.Obj.Decl.(*ast.AssignStmt); ok {
				for i, l := range as.Lhs {
					if id, ok := l.(*ast.Ident); ok && id.Name == e.Name && i < len(as.Rhs) {
						return stringSlice(as.Rhs[i])
					}
				}
			}
		}
	case *ast.CallExpr:
		if f, ok := e.Fun.(*ast.Ident); ok && f.Name == "append" && len(e.Args) > 0 {
			out, err := stringSlice(e.Args[0])
			if err != nil {
				return nil, err
			}
			out = slices.Clone(out)
			for _, a := range e.Args[1:] {
				s, ok := stringLit(a)
				if !ok {
					return nil, fmt.Errorf("append of %T", a)
				}
				out = append(out, s)
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("cannot evaluate %T", e)
}

// buckets evaluates a Buckets option the way the code builds them.
func buckets(e ast.Expr) ([]float64, error) {
	switch e := e.(type) {
	case nil:
		return prometheus.DefBuckets, nil
	case *ast.CompositeLit:
		var out []float64
		for _, el := range e.Elts {
			f, err := number(el)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
		}
		return out, nil
	case *ast.CallExpr:
		sel, ok := e.Fun.(*ast.SelectorExpr)
		if !ok {
			break
		}
		pkg, _ := sel.X.(*ast.Ident)
		switch {
		case pkg != nil && pkg.Name == "telemetry" && sel.Sel.Name == "LatencyBuckets":
			return telemetry.LatencyBuckets(), nil
		case pkg != nil && pkg.Name == "prometheus" && len(e.Args) == 3 &&
			(sel.Sel.Name == "ExponentialBuckets" || sel.Sel.Name == "LinearBuckets"):
			var a [3]float64
			for i, arg := range e.Args {
				f, err := number(arg)
				if err != nil {
					return nil, err
				}
				a[i] = f
			}
			if sel.Sel.Name == "LinearBuckets" {
				return prometheus.LinearBuckets(a[0], a[1], int(a[2])), nil
			}
			return prometheus.ExponentialBuckets(a[0], a[1], int(a[2])), nil
		}
	}
	return nil, fmt.Errorf("cannot evaluate %T; extend buckets()", e)
}

func number(e ast.Expr) (float64, error) {
	if lit, ok := e.(*ast.BasicLit); ok && (lit.Kind == token.FLOAT || lit.Kind == token.INT) {
		return strconv.ParseFloat(lit.Value, 64)
	}
	return 0, fmt.Errorf("%T is not a number literal", e)
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// httpStatuses maps net/http's Status* constant names to their codes, read
// from the Go distribution's net/http/status.go.
func httpStatuses() (map[string]string, error) {
	goroot := runtime.GOROOT()
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		goroot = strings.TrimSpace(string(out))
	}
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(goroot, "src", "net", "http", "status.go"), nil, 0)
	if err != nil {
		return nil, fmt.Errorf("read net/http status codes: %w", err)
	}
	out := map[string]string{}
	eachConst(f, func(name string, value ast.Expr) {
		if lit, ok := value.(*ast.BasicLit); ok && lit.Kind == token.INT {
			out[name] = lit.Value
		}
	})
	if out["StatusServiceUnavailable"] != "503" {
		return nil, errors.New("net/http/status.go: StatusServiceUnavailable not found")
	}
	return out, nil
}

// ----------------------------------------------------------------- helpers

func decodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// str digs a string out of nested maps.
func str(o map[string]any, path ...string) string {
	var cur any = o
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func maps(dst, src map[string]bool) {
	for k := range src {
		dst[k] = true
	}
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

// eachConst calls f for every constant of file with an explicit value.
func eachConst(file *ast.File, f func(name string, value ast.Expr)) {
	for _, decl := range file.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if i < len(vs.Values) {
					f(n.Name, vs.Values[i])
				}
			}
		}
	}
}
