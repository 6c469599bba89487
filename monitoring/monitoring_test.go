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
	runbooksPath = "runbooks.md"
	runbookBase  = "https://github.com/gamemetrics/gamemetrics/blob/main/monitoring/runbooks.md#"
)

// ruleFiles are the rules files; each X.rules.yaml has its promtool unit
// tests in X.rules.test.yaml beside it.
func ruleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("prometheus/*.rules.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no prometheus/*.rules.yaml: %v", err)
	}
	return files
}

func testFileOf(rules string) string { return strings.TrimSuffix(rules, ".yaml") + ".test.yaml" }

// dashboardFiles are the Grafana dashboards, one JSON file each.
func dashboardFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("grafana/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no grafana/*.json: %v", err)
	}
	return files
}

// ---------------------------------------------------------------- promtool

func TestPromtool(t *testing.T) {
	t.Parallel()
	promtool := lookTool(t, "promtool")
	for _, rules := range ruleFiles(t) {
		tests := []struct {
			name string
			args []string
		}{
			{"check rules accepts " + rules, []string{"check", "rules", rules}},
			{"the rules of " + rules + " pass their unit tests", []string{"test", "rules", testFileOf(rules)}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				out, err := exec.Command(promtool, tt.args...).CombinedOutput()
				if err != nil {
					t.Fatalf("promtool %s: %v\n%s", strings.Join(tt.args, " "), err, out)
				}
			})
		}
		t.Run(testFileOf(rules)+" tests "+rules+" and nothing else", func(t *testing.T) {
			var f struct {
				RuleFiles []string `yaml:"rule_files"`
			}
			decodeYAML(t, testFileOf(rules), &f)
			if want := []string{filepath.Base(rules)}; !slices.Equal(f.RuleFiles, want) {
				t.Errorf("rule_files %v, want %v", f.RuleFiles, want)
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
	file        string
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	var rules []rule
	for _, path := range ruleFiles(t) {
		var f ruleFile
		decodeYAML(t, path, &f)
		n := len(rules)
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				r.file = path
				rules = append(rules, r)
			}
		}
		if len(rules) == n {
			t.Fatalf("%s has no rules", path)
		}
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
	Title         string
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
	path   string
}

type panel struct {
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
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

// The data source variables every panel names: Prometheus for metrics,
// Loki for the logs panels.
var (
	promDatasource = datasource{Type: "prometheus", UID: "${datasource}"}
	logsDatasource = datasource{Type: "loki", UID: "${logs}"}
)

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	var ds []dashboard
	for _, path := range dashboardFiles(t) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		d.path = path
		ds = append(ds, d)
	}
	return ds
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

// expression is a query and where it comes from.
type expression struct{ where, expr string }

// expressions are the PromQL expressions of the rules and of the
// dashboards' Prometheus panels.
func expressions(t *testing.T) []expression {
	t.Helper()
	var out []expression
	for _, r := range loadRules(t) {
		out = append(out, expression{r.file + ": " + r.Record + r.Alert, r.Expr})
	}
	for _, d := range loadDashboards(t) {
		for _, p := range d.panels() {
			for _, tg := range p.Targets {
				if tg.Datasource != nil && *tg.Datasource == promDatasource {
					out = append(out, expression{fmt.Sprintf("%s: panel %q target %s", d.path, p.Title, tg.RefID), tg.Expr})
				}
			}
		}
	}
	return out
}

// logQueries are the LogQL queries of the dashboards' logs panels.
func logQueries(t *testing.T) []expression {
	t.Helper()
	var out []expression
	for _, d := range loadDashboards(t) {
		for _, p := range d.panels() {
			for _, tg := range p.Targets {
				if tg.Datasource != nil && *tg.Datasource == logsDatasource {
					out = append(out, expression{fmt.Sprintf("%s: panel %q target %s", d.path, p.Title, tg.RefID), tg.Expr})
				}
			}
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
	selector      = regexp.MustCompile(`([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}`)
	matcher       = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
	// What is not a metric name in PromQL: label lists of by/without/on/
	// ignoring/group_left/group_right, selectors' matchers, range and
	// subquery brackets, and numbers (1e3, 0x1f, 5m after an offset).
	labelList = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	matchers  = regexp.MustCompile(`\{[^}]*\}`)
	brackets  = regexp.MustCompile(`\[[^\]]*\]`)
	numbers   = regexp.MustCompile(`\b[0-9][0-9A-Za-z_.]*`)
	function  = regexp.MustCompile(`^\s*\(`)
)

// promqlKeywords are identifiers PromQL reserves that are not functions.
var promqlKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
	"group_right": true, "offset": true, "and": true, "or": true, "unless": true, "bool": true, "inf": true, "nan": true,
	"Inf": true, "NaN": true, "atan2": true}

// metricNames are the series an expression reads: every identifier that
// is no keyword, no function, no label name and no duration.
func metricNames(expr string) []string {
	e := stringLiteral.ReplaceAllString(expr, `""`)
	e = labelList.ReplaceAllString(e, " ")
	e = matchers.ReplaceAllString(e, " ")
	e = brackets.ReplaceAllString(e, " ")
	e = numbers.ReplaceAllString(e, " ")
	var names []string
	for _, loc := range identifier.FindAllStringIndex(e, -1) {
		id := e[loc[0]:loc[1]]
		if promqlKeywords[id] || function.MatchString(e[loc[1]:]) {
			continue
		}
		names = append(names, id)
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
	for _, sel := range selector.FindAllStringSubmatch(stringLiteral.ReplaceAllStringFunc(expr, func(s string) string {
		return strings.NewReplacer("{", "\x00", "}", "\x01").Replace(s) // braces inside strings (regexps) are no selectors
	}), -1) {
		body := strings.NewReplacer("\x00", "{", "\x01", "}").Replace(sel[2])
		for _, m := range matcher.FindAllStringSubmatch(body, -1) {
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

func TestMetricNamesOfAnExpression(t *testing.T) {
	tests := []struct{ expr, want string }{
		{`sum by (code) (rate(gamemetrics_ingest_requests_total{code=~"5.."}[5m])) or vector(0)`, "gamemetrics_ingest_requests_total"},
		{`histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval])))`, "x_bucket"},
		{`a / on (instance) group_left (pod) b offset 1d > 1e3`, "a b"},
		{`label_replace(absent(pg_up), "exporter", "postgres_exporter", "", "")`, "pg_up"},
		{`count_values("broker", kafka_topic_partition_leader{topic=~"gamemetrics\\..+"})`, "kafka_topic_partition_leader"},
		{`gamemetrics:ingest_requests_errors:ratio_rate1h > (14.4 * 0.001) and x:y:z > bool 2`, "gamemetrics:ingest_requests_errors:ratio_rate1h x:y:z"},
	}
	for _, tt := range tests {
		if got := strings.Join(metricNames(tt.expr), " "); got != tt.want {
			t.Errorf("metricNames(%s) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

func TestExpressionsUseOnlyKnownMetrics(t *testing.T) {
	inv := inventory(t)
	exp := exporterMetrics(t)
	rec := recorded(t)
	values := exporterLabelValues(t)
	for _, e := range expressions(t) {
		t.Run(e.where, func(t *testing.T) {
			names := metricNames(e.expr)
			if len(names) == 0 {
				t.Fatalf("reads no series: %s", e.expr)
			}
			for _, n := range names {
				switch _, gm := inv.lookup(n); {
				case rec[n] || gm:
				case strings.HasPrefix(n, "gamemetrics_") || strings.HasPrefix(n, "gamemetrics:"):
					t.Errorf("%s is neither a recording rule nor a metric registered in the Go code", n)
				case exp[n] == nil:
					t.Errorf("%s is no recording rule, no gamemetrics_ metric and not in %s (the exporters' metrics)", n, exportersPath)
				}
			}
			for _, m := range labelMatches(t, e.expr) {
				if rec[m.metric] {
					t.Errorf("%s{%s%s%q}: match raw metrics, not recording rules, on labels", m.metric, m.label, m.op, m.value)
					continue
				}
				if targetLabels[m.label] {
					continue
				}
				var domain []string
				if def, ok := inv.lookup(m.metric); ok {
					var err error
					if domain, err = def.domain(m.metric, m.label); err != nil {
						t.Errorf("%s{%s%s%q}: %v", m.metric, m.label, m.op, m.value, err)
						continue
					}
				} else if em := exp[m.metric]; em != nil {
					if !slices.Contains(em.Labels, m.label) {
						t.Errorf("%s{%s%s%q}: %s has no label %s (it has %s; %s)", m.metric, m.label, m.op, m.value, m.metric, m.label, strings.Join(em.Labels, ", "), em.Source)
						continue
					}
					if domain = values[m.label]; domain == nil {
						continue // a label whose values the project does not decide (partition, cmd, state...)
					}
				} else {
					continue // reported above
				}
				if err := matchesDomain(m, domain); err != nil {
					t.Errorf("%s{%s%s%q}: %v (known values: %s)", m.metric, m.label, m.op, m.value, err, strings.Join(domain, ", "))
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
	seen := map[string]string{}
	for _, a := range alerts(t) {
		t.Run(a.Alert, func(t *testing.T) {
			if prev, ok := seen[a.Alert]; ok {
				t.Errorf("alert name also used in %s", prev)
			}
			seen[a.Alert] = a.file
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

// TestEveryAlertIsUnitTestedFiringAndQuiet: each alert has a test that
// makes it fire and one that keeps it quiet, in the test file beside its
// own rules file (promtool loads only the files rule_files names).
func TestEveryAlertIsUnitTestedFiringAndQuiet(t *testing.T) {
	type coverage struct{ fires, quiet map[string]bool }
	byFile := map[string]coverage{}
	for _, rules := range ruleFiles(t) {
		var f struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string `yaml:"alertname"`
					ExpAlerts []any  `yaml:"exp_alerts"`
				} `yaml:"alert_rule_test"`
			} `yaml:"tests"`
		}
		decodeYAML(t, testFileOf(rules), &f)
		c := coverage{map[string]bool{}, map[string]bool{}}
		for _, tc := range f.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					c.fires[a.Alertname] = true
				} else {
					c.quiet[a.Alertname] = true
				}
			}
		}
		byFile[rules] = c
	}
	for _, a := range alerts(t) {
		t.Run(a.Alert, func(t *testing.T) {
			c := byFile[a.file]
			if !c.fires[a.Alert] {
				t.Errorf("no test in %s expects it to fire", testFileOf(a.file))
			}
			if !c.quiet[a.Alert] {
				t.Errorf("no test in %s expects it to stay quiet", testFileOf(a.file))
			}
		})
	}
}

func TestDashboards(t *testing.T) {
	uids := map[string]string{}
	for _, d := range loadDashboards(t) {
		t.Run(d.path, func(t *testing.T) {
			if want := strings.TrimSuffix(filepath.Base(d.path), ".json"); d.UID != want {
				t.Errorf("uid %q, want the file's name %q (the sidecar and the links find dashboards by uid)", d.UID, want)
			}
			if prev, ok := uids[d.UID]; ok {
				t.Errorf("uid %q also used by %s", d.UID, prev)
			}
			uids[d.UID] = d.path
			if strings.TrimSpace(d.Title) == "" {
				t.Error("has no title")
			}
			if d.SchemaVersion < 36 {
				t.Errorf("schemaVersion %d predates panel-level data sources", d.SchemaVersion)
			}
			variables := map[string]string{}
			for _, v := range d.Templating.List {
				if v.Type == "datasource" {
					variables[v.Name], _ = v.Query.(string)
				}
			}
			if variables["datasource"] != "prometheus" {
				t.Error(`templating has no variable {"name": "datasource", "type": "datasource", "query": "prometheus"}`)
			}
			var cells [][4]int
			for _, p := range d.panels() {
				ds := promDatasource
				if p.Type == "logs" {
					ds = logsDatasource
					if variables["logs"] != "loki" {
						t.Errorf(`panel %q reads logs but templating has no variable {"name": "logs", "type": "datasource", "query": "loki"}`, p.Title)
					}
				}
				if strings.TrimSpace(p.Title) == "" {
					t.Error("a panel has no title")
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no targets", p.Title)
				}
				if p.Datasource == nil || *p.Datasource != ds {
					t.Errorf("panel %q datasource is %+v, want %+v", p.Title, p.Datasource, ds)
				}
				for _, tg := range p.Targets {
					if strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("panel %q target %s has no expr", p.Title, tg.RefID)
					}
					if tg.Datasource == nil || *tg.Datasource != ds {
						t.Errorf("panel %q target %s datasource is %+v, want %+v", p.Title, tg.RefID, tg.Datasource, ds)
					}
				}
				g := p.GridPos
				if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
					t.Errorf("panel %q gridPos %+v is outside the 24-column grid", p.Title, g)
				}
				for _, c := range cells {
					if g.X < c[0]+c[2] && c[0] < g.X+g.W && g.Y < c[1]+c[3] && c[1] < g.Y+g.H {
						t.Errorf("panel %q (gridPos %+v) overlaps another panel", p.Title, g)
					}
				}
				cells = append(cells, [4]int{g.X, g.Y, g.W, g.H})
			}
		})
	}
	for _, fn := range []string{"ingest", "process", "report", "retain", "notify", "recommend", "kafka", "postgresql", "redis"} {
		if _, ok := uids["gamemetrics-"+fn]; !ok {
			t.Errorf("no dashboard gamemetrics-%s (grafana/gamemetrics-%s.json)", fn, fn)
		}
	}
}

// -------------------------------------------------------------- kubernetes

// kustomized renders monitoring/kustomization.yaml into its objects by
// kind/name.
func kustomized(t *testing.T) map[string]map[string]any {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl is not on PATH: it renders monitoring/kustomization.yaml (kubectl kustomize), as `make validate` needs too")
	}
	out, err := exec.Command(kubectl, "kustomize", ".").Output()
	if err != nil {
		t.Fatalf("kubectl kustomize monitoring/: %v\n%s", err, stderrOf(err))
	}
	return decodeObjects(t, out)
}

func decodeObjects(t *testing.T, b []byte) map[string]map[string]any {
	t.Helper()
	objects := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if o != nil {
			objects[str(o, "kind")+"/"+str(o, "metadata", "name")] = o
		}
	}
	return objects
}

// dashboardConfigMap is the ConfigMap that carries a dashboard file: the
// overview keeps the name it always had.
func dashboardConfigMap(path string) string {
	name := strings.TrimPrefix(strings.TrimSuffix(filepath.Base(path), ".json"), "gamemetrics-")
	if name == "overview" {
		return "gamemetrics-grafana-dashboard"
	}
	return "gamemetrics-grafana-dashboard-" + name
}

func TestKubernetesManifests(t *testing.T) {
	objects := kustomized(t)

	type carried struct {
		name, key, file string
		labels          map[string]string
	}
	var configMaps []carried
	for _, f := range ruleFiles(t) {
		configMaps = append(configMaps, carried{"gamemetrics-prometheus-rules", filepath.Base(f), f, nil})
	}
	for _, f := range dashboardFiles(t) {
		configMaps = append(configMaps, carried{dashboardConfigMap(f), filepath.Base(f), f, map[string]string{"grafana_dashboard": "1"}})
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
			// kubectl apply (client side) copies the object into an
			// annotation, and annotations are limited to 256 KiB.
			if b, _ := json.Marshal(o["data"]); len(b) > 200<<10 {
				t.Errorf("data is %d bytes: too close to the 256 KiB annotation limit of kubectl apply", len(b))
			}
		})
	}
	t.Run("every dashboard ConfigMap carries one file", func(t *testing.T) {
		for name, o := range objects {
			if strings.HasPrefix(name, "ConfigMap/gamemetrics-grafana-dashboard") {
				if data, _ := o["data"].(map[string]any); len(data) != 1 {
					t.Errorf("%s carries %d files", name, len(data))
				}
			}
		}
	})

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

	t.Run("the Kafka exporter is deployed, admitted and scraped", func(t *testing.T) {
		pm, ok := objects["PodMonitor/gamemetrics-kafka-exporter"]
		if !ok {
			t.Fatalf("not rendered; got %v", keys(objects))
		}
		spec := pm["spec"].(map[string]any)
		if ns := fmt.Sprint(spec["namespaceSelector"]); !strings.Contains(ns, "gamemetrics") {
			t.Errorf("namespaceSelector %s does not select gamemetrics", ns)
		}
		sel := spec["selector"].(map[string]any)["matchLabels"].(map[string]any)
		// Strimzi labels the exporter pod of Kafka <cluster> with
		// strimzi.io/cluster: <cluster> and strimzi.io/name: <cluster>-kafka-exporter
		// and names its metrics port tcp-prometheus (9404).
		cluster := kafkaCluster(t)
		if sel["strimzi.io/cluster"] != cluster.name || sel["strimzi.io/name"] != cluster.name+"-kafka-exporter" {
			t.Errorf("selects %v, want the pods Strimzi labels strimzi.io/cluster: %s, strimzi.io/name: %s-kafka-exporter", sel, cluster.name, cluster.name)
		}
		ep := spec["podMetricsEndpoints"].([]any)[0].(map[string]any)
		if ep["port"] != "tcp-prometheus" {
			t.Errorf("endpoint port %v, want tcp-prometheus (Strimzi's name for 9404)", ep["port"])
		}
		if !cluster.exporter {
			t.Errorf("the Kafka %s in ../knative/base/kafka.yaml has no spec.kafkaExporter: nothing to scrape", cluster.name)
		}
		if !cluster.admitted {
			t.Errorf("no NetworkPolicy in ../knative/base/networkpolicies.yaml admits namespace monitoring to the Kafka exporter on 9404 (the namespace denies all ingress by default)")
		}
	})

	t.Run("prometheusrule.sh wraps each rules file unchanged in a PrometheusRule", func(t *testing.T) {
		out, err := exec.Command("sh", "kubernetes/prometheusrule.sh").Output()
		if err != nil {
			t.Fatalf("prometheusrule.sh: %v\n%s", err, stderrOf(err))
		}
		docs := decodeObjects(t, out)
		for _, f := range ruleFiles(t) {
			name := "gamemetrics"
			if base := strings.TrimSuffix(filepath.Base(f), ".rules.yaml"); base != "gamemetrics" {
				name += "-" + base
			}
			pr, ok := docs["PrometheusRule/"+name]
			if !ok {
				t.Errorf("no PrometheusRule %s for %s; got %v", name, f, keys(docs))
				continue
			}
			if str(pr, "apiVersion") != "monitoring.coreos.com/v1" {
				t.Errorf("%s: apiVersion %s", name, str(pr, "apiVersion"))
			}
			var rules map[string]any
			decodeYAML(t, f, &rules)
			a, _ := json.Marshal(pr["spec"])
			b, _ := json.Marshal(rules)
			if !bytes.Equal(a, b) {
				t.Errorf("%s: spec differs from %s", name, f)
			}
		}
		if len(docs) != len(ruleFiles(t)) {
			t.Errorf("printed %d objects for %d rules files", len(docs), len(ruleFiles(t)))
		}
	})
}

// kafkaCluster is what ../knative/base says about the Strimzi cluster.
type strimziCluster struct {
	name               string
	exporter, admitted bool
}

func kafkaCluster(t *testing.T) strimziCluster {
	t.Helper()
	var c strimziCluster
	for _, doc := range yamlDocs(t, "../knative/base/kafka.yaml") {
		if str(doc, "kind") == "Kafka" {
			c.name = str(doc, "metadata", "name")
			_, c.exporter = doc["spec"].(map[string]any)["kafkaExporter"]
		}
	}
	if c.name == "" {
		t.Fatal("../knative/base/kafka.yaml has no Kafka")
	}
	for _, doc := range yamlDocs(t, "../knative/base/networkpolicies.yaml") {
		if str(doc, "kind") != "NetworkPolicy" {
			continue
		}
		spec := doc["spec"].(map[string]any)
		pod, _ := spec["podSelector"].(map[string]any)
		labels, _ := pod["matchLabels"].(map[string]any)
		if labels["strimzi.io/name"] != c.name+"-kafka-exporter" {
			continue
		}
		b, _ := json.Marshal(spec["ingress"])
		c.admitted = bytes.Contains(b, []byte(`"kubernetes.io/metadata.name":"monitoring"`)) && bytes.Contains(b, []byte(`"port":9404`))
	}
	return c
}

func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeObjectsList(t, b)
}

func decodeObjectsList(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		if o != nil {
			out = append(out, o)
		}
	}
}

// ---------------------------------------------- real Prometheus (integration)

func TestPrometheusLoadsTheRulesAgainstTheFunctionsMetrics(t *testing.T) {
	t.Parallel()
	bin := lookTool(t, "prometheus")
	inv := inventory(t)

	// A registry with every metric the functions register, same names, types,
	// labels and buckets, one series per label value the code produces; and
	// every exporter metric the rules and dashboards may read, with the
	// label values the project decides (topics, consumer groups).
	reg := prometheus.NewRegistry()
	for _, def := range inv.sorted() {
		reg.MustRegister(def.collector(t))
	}
	for _, c := range exporterCollectors(t) {
		reg.MustRegister(c)
	}
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(target.Close)

	dir := t.TempDir()
	var rules []string
	for _, f := range ruleFiles(t) {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, strconv.Quote(abs))
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%s]
scrape_configs:
- job_name: gamemetrics
  static_configs: [{targets: [%q]}]
`, strings.Join(rules, ", "), strings.TrimPrefix(target.URL, "http://"))
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
			t.Errorf("Prometheus loaded %d rules, the files have %d", n, want)
		}
	})

	t.Run("every dashboard query runs", func(t *testing.T) {
		r := strings.NewReplacer("$__rate_interval", "1m", "$__range", "1h", "$__interval", "15s")
		for _, e := range expressions(t) {
			if !strings.HasPrefix(e.where, "grafana/") {
				continue
			}
			var res struct{ Status, Error string }
			err := getJSON(api+"query?query="+url.QueryEscape(r.Replace(e.expr)), &res)
			if err != nil || res.Status != "success" {
				t.Errorf("%s: %v %s", e.where, err, res.Error)
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
