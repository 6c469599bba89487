package validate

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Every kind a deploy applies must exist in the cluster by the time it is
// applied: it is served by every Kubernetes (core), or its CRD is installed
// by a component of knative/platform (deploy.sh step 1, the ArgoCD platform
// applications), or it is a prerequisite the operator installs and
// knative/README.md lists ("Prerequisite kinds"). Anything else would stop
// a first deploy half-way with "no matches for kind".

// coreAPIVersions are the API groups/versions of Kubernetes itself.
var coreAPIVersions = []string{"v1", "apps/v1", "batch/v1", "networking.k8s.io/v1", "storage.k8s.io/v1", "policy/v1", "rbac.authorization.k8s.io/v1", "autoscaling/v2", "scheduling.k8s.io/v1"}

// Component is a part of the platform layer that installs CRDs.
type Component struct {
	Name string
	// Provides lists "apiVersion Kind" of the custom resources it serves.
	Provides []string
	// installedBy says how knative/platform installs it: a release file in a
	// kustomization (File in Kustomization) or a chart of charts.txt.
	Kustomization, File, Chart string
}

// PlatformComponents are the CRD-installing components of knative/platform.
func PlatformComponents() []Component {
	return []Component{
		{Name: "Knative Serving CRDs", Kustomization: "crds", File: "serving-crds.yaml",
			Provides: []string{"serving.knative.dev/v1 Service", "serving.knative.dev/v1 Configuration", "serving.knative.dev/v1 Route", "serving.knative.dev/v1 Revision"}},
		{Name: "Knative Eventing CRDs", Kustomization: "crds", File: "eventing-crds.yaml",
			Provides: []string{"sources.knative.dev/v1 PingSource", "sources.knative.dev/v1 ApiServerSource", "sources.knative.dev/v1 SinkBinding", "eventing.knative.dev/v1 Broker", "eventing.knative.dev/v1 Trigger"}},
		{Name: "eventing-kafka KafkaSource", Kustomization: "knative", File: "eventing-kafka-source.yaml",
			Provides: []string{"sources.knative.dev/v1 KafkaSource"}},
		{Name: "eventing-kafka KafkaSink", Kustomization: "knative", File: "eventing-kafka-sink.yaml",
			Provides: []string{"eventing.knative.dev/v1alpha1 KafkaSink"}},
		{Name: "Strimzi", Chart: "strimzi-kafka-operator",
			Provides: []string{"kafka.strimzi.io/v1beta2 Kafka", "kafka.strimzi.io/v1beta2 KafkaNodePool", "kafka.strimzi.io/v1beta2 KafkaTopic", "kafka.strimzi.io/v1beta2 KafkaUser"}},
		{Name: "External Secrets", Chart: "external-secrets",
			Provides: []string{"external-secrets.io/v1 ExternalSecret", "external-secrets.io/v1 ClusterSecretStore"}},
		{Name: "Karpenter", Chart: "karpenter",
			Provides: []string{"karpenter.sh/v1 NodePool", "karpenter.k8s.aws/v1 EC2NodeClass"}},
	}
}

// Platform is what knative/platform actually installs, read from its files.
type Platform struct {
	Root string
	// Releases are the remote files of each platform kustomization
	// (crds, knative), by kustomization name.
	Releases map[string][]string
	Charts   []Chart
}

// Chart is one line of knative/platform/charts.txt.
type Chart struct {
	Name, Namespace, Repository, Chart, Version, Values string
}

// LoadPlatform reads knative/platform under root.
func LoadPlatform(root string) (*Platform, error) {
	p := &Platform{Root: root, Releases: map[string][]string{}}
	for _, k := range []string{"crds", "knative"} {
		data, err := os.ReadFile(filepath.Join(root, "knative", "platform", k, "kustomization.yaml"))
		if err != nil {
			return nil, err
		}
		var kz struct {
			Resources []string `json:"resources"`
		}
		if err := yaml.Unmarshal(data, &kz); err != nil {
			return nil, fmt.Errorf("knative/platform/%s: %w", k, err)
		}
		p.Releases[k] = kz.Resources
	}
	charts, err := readCharts(filepath.Join(root, "knative", "platform", "charts.txt"))
	if err != nil {
		return nil, err
	}
	p.Charts = charts
	return p, nil
}

func readCharts(path string) ([]Chart, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Chart
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 6 {
			return nil, fmt.Errorf("%s:%d: want name namespace repository chart version values, got %q", path, n, line)
		}
		out = append(out, Chart{f[0], f[1], f[2], f[3], f[4], f[5]})
	}
	return out, sc.Err()
}

// Installs reports whether the platform installs the component.
func (p *Platform) Installs(c Component) bool {
	if c.Chart != "" {
		return slices.ContainsFunc(p.Charts, func(ch Chart) bool { return ch.Chart == c.Chart })
	}
	return slices.ContainsFunc(p.Releases[c.Kustomization], func(r string) bool { return strings.HasSuffix(r, "/"+c.File) })
}

// knativeReleaseRE finds the release tag in a Knative release URL.
var knativeReleaseRE = regexp.MustCompile(`/releases/download/knative-v([0-9]+\.[0-9]+\.[0-9]+)/`)

// PlatformProblems checks the platform layer's own files: every release
// file is pinned to the Knative release that matches the knative.dev
// modules knative/validate validates with (Knative 1.N = module v0.(N+27)),
// every chart is pinned, and its values file exists.
func PlatformProblems(p *Platform, servingModule string) []Problem {
	var ps []Problem
	want := KnativeRelease(servingModule)
	for _, k := range sortedKeys(p.Releases) {
		where := filepath.Join(p.Root, "knative", "platform", k, "kustomization.yaml")
		for _, r := range p.Releases[k] {
			if !strings.HasPrefix(r, "https://") {
				continue
			}
			m := knativeReleaseRE.FindStringSubmatch(r)
			switch {
			case m == nil:
				ps = append(ps, problemf(where, "", "resources", "%s is not a pinned Knative release file", r))
			case m[1] != want:
				ps = append(ps, problemf(where, "", "resources", "%s is Knative %s, but knative/validate checks the manifests with knative.dev/serving %s (Knative %s): bump both together", r, m[1], servingModule, want))
			}
		}
	}
	for _, c := range p.Charts {
		where := filepath.Join(p.Root, "knative", "platform", "charts.txt")
		if !regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(c.Version) {
			ps = append(ps, problemf(where, c.Name, "version", "pin an exact chart version, got %q", c.Version))
		}
		if _, err := os.Stat(filepath.Join(p.Root, c.Values)); err != nil {
			ps = append(ps, problemf(where, c.Name, "values", "%v", err))
		}
	}
	return ps
}

// KnativeRelease maps a knative.dev/serving module version (v0.50.0) to
// its Knative release (1.23.0).
func KnativeRelease(module string) string {
	var minor, patch int
	if _, err := fmt.Sscanf(module, "v0.%d.%d", &minor, &patch); err != nil {
		return "?"
	}
	return fmt.Sprintf("1.%d.%d", minor-27, patch)
}

// PrerequisiteKinds reads the "Prerequisite kinds" table of knative/README.md:
// rows whose first cell is `apiVersion Kind`.
func PrerequisiteKinds(readme string) ([]string, error) {
	data, err := os.ReadFile(readme)
	if err != nil {
		return nil, err
	}
	var kinds []string
	in := false
	row := regexp.MustCompile("^\\| *`([^`]+ [A-Za-z]+)` *\\|")
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "#") {
			in = strings.Contains(line, "Prerequisite kinds")
			continue
		}
		if m := row.FindStringSubmatch(line); in && m != nil {
			kinds = append(kinds, m[1])
		}
	}
	if len(kinds) == 0 {
		return nil, fmt.Errorf("%s: no \"Prerequisite kinds\" table", readme)
	}
	return kinds, nil
}

// KindProblems reports every document whose kind is neither core, nor
// installed by the platform, nor a documented prerequisite.
func KindProblems(docs []Document, p *Platform, prerequisites []string) []Problem {
	provided := map[string]string{}
	for _, c := range PlatformComponents() {
		if !p.Installs(c) {
			continue
		}
		for _, k := range c.Provides {
			provided[k] = c.Name
		}
	}
	var ps []Problem
	seen := map[string]bool{}
	for _, d := range docs {
		gvk := d.GVK()
		if seen[d.Source+" "+gvk] {
			continue
		}
		seen[d.Source+" "+gvk] = true
		switch {
		case slices.Contains(coreAPIVersions, d.APIVersion):
		case provided[gvk] != "":
		case slices.Contains(prerequisites, gvk):
		default:
			ps = append(ps, d.problem("apiVersion", "%s is not served by Kubernetes, not installed by knative/platform (crds, knative, charts.txt) and not listed under \"Prerequisite kinds\" in knative/README.md: a deploy would stop at \"no matches for kind\"", gvk))
		}
	}
	return ps
}

// AppliedRenders are the kustomizations a deploy applies, rendered offline
// (the platform kustomizations with remote release files are checked by
// PlatformProblems instead): the overlays deploy.sh applies, the platform's
// cluster resources, the ArgoCD applications, monitoring and chaos.
func AppliedRenders() []string {
	dirs := []string{"knative/platform/cluster", "knative/argocd/apps", "monitoring", "chaos/mesh"}
	for _, env := range Environments[1:] {
		dirs = append(dirs, "knative/overlays/"+env, "eventing/overlays/"+env)
	}
	return dirs
}
