package validate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Application mirrors the argoproj.io/v1alpha1 Application fields the
// GameMetrics app of apps uses, decoded strictly.
type Application struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Project string `json:"project"`
		Source  struct {
			RepoURL        string `json:"repoURL"`
			TargetRevision string `json:"targetRevision"`
			Path           string `json:"path"`
			Plugin         *struct {
				Name string `json:"name"`
				Env  []struct {
					Name  string `json:"name"`
					Value string `json:"value"`
				} `json:"env,omitempty"`
			} `json:"plugin,omitempty"`
		} `json:"source"`
		Destination struct {
			Server    string `json:"server"`
			Namespace string `json:"namespace"`
		} `json:"destination"`
		SyncPolicy *struct {
			Automated *struct {
				Prune    bool `json:"prune"`
				SelfHeal bool `json:"selfHeal"`
			} `json:"automated,omitempty"`
			SyncOptions []string `json:"syncOptions,omitempty"`
		} `json:"syncPolicy,omitempty"`
	} `json:"spec"`
}

// PluginEnv returns the plugin environment variable name ("" if unset).
func (a *Application) PluginEnv(name string) string {
	if a.Spec.Source.Plugin == nil {
		return ""
	}
	for _, e := range a.Spec.Source.Plugin.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// Wave is the argocd.argoproj.io/sync-wave annotation (0 when unset).
func (a *Application) Wave() int {
	n, _ := strconv.Atoi(a.Annotations["argocd.argoproj.io/sync-wave"])
	return n
}

// argoPlugin is the config management plugin every application renders
// through (knative/argocd/plugin.yaml).
const argoPlugin = "gamemetrics"

func checkApplication(d Document) (*Application, []Problem) {
	a, ps := decodeStrict[Application](d)
	if a == nil {
		return nil, ps
	}
	if a.Namespace != "argocd" {
		ps = append(ps, d.problem("metadata.namespace", "Applications live in argocd, got %q", a.Namespace))
	}
	if a.Spec.Project == "" || a.Spec.Source.RepoURL == "" || a.Spec.Source.TargetRevision == "" || a.Spec.Source.Path == "" {
		ps = append(ps, d.problem("spec", "project, source.repoURL, source.targetRevision and source.path are required"))
	}
	if a.Spec.Source.Plugin == nil || a.Spec.Source.Plugin.Name != argoPlugin {
		ps = append(ps, d.problem("spec.source.plugin.name", "must be %q: it fills in the placeholders exactly as knative/deploy.sh does", argoPlugin))
	}
	if a.Spec.Destination.Server != "https://kubernetes.default.svc" || a.Spec.Destination.Namespace == "" {
		ps = append(ps, d.problem("spec.destination", "deploy to the cluster ArgoCD runs in (https://kubernetes.default.svc) and name a namespace"))
	}
	if sp := a.Spec.SyncPolicy; sp == nil || sp.Automated == nil || !sp.Automated.Prune || !sp.Automated.SelfHeal {
		if a.Name != "" {
			ps = append(ps, d.problem("spec.syncPolicy.automated", "prune and selfHeal: git is the source of truth"))
		}
	}
	return a, ps
}

// ArgoCD is the app of apps: the root Application and the rendered
// applications of knative/argocd/apps.
type ArgoCD struct {
	Root Document
	Apps []Document
}

// LoadArgoCD reads knative/argocd under root.
func LoadArgoCD(ctx context.Context, root string) (*ArgoCD, error) {
	rootDocs, err := LoadFile(filepath.Join(root, "knative", "argocd", "root.yaml"))
	if err != nil {
		return nil, err
	}
	if len(rootDocs) != 1 {
		return nil, fmt.Errorf("knative/argocd/root.yaml: want one Application, got %d documents", len(rootDocs))
	}
	apps, err := Load(ctx, filepath.Join(root, "knative", "argocd", "apps"))
	if err != nil {
		return nil, err
	}
	return &ArgoCD{Root: rootDocs[0], Apps: apps}, nil
}

// ArgoCDProblems checks the app of apps offline: every Application decodes
// strictly; the root renders knative/argocd/apps; every application's path
// exists for every environment and is a kustomization, or is a chart of
// knative/platform/charts.txt; the platform applications are exactly
// knative/platform's parts (so ArgoCD and deploy.sh install the same); and
// the sync waves repeat deploy.sh's order.
func ArgoCDProblems(root string, a *ArgoCD, p *Platform) []Problem {
	var ps []Problem
	r, rps := checkApplication(a.Root)
	ps = append(ps, rps...)
	if r != nil && r.Spec.Source.Path != "knative/argocd/apps" {
		ps = append(ps, a.Root.problem("spec.source.path", "the root renders knative/argocd/apps, got %q", r.Spec.Source.Path))
	}
	apps := map[string]*Application{}
	docs := map[string]Document{}
	for _, d := range a.Apps {
		app, aps := checkApplication(d)
		ps = append(ps, aps...)
		ps = append(ps, placeholderProblems(d, append(slices.Clone(AllowedPlaceholders), "ENVIRONMENT"))...)
		if app == nil {
			continue
		}
		if r != nil && app.Spec.Source.RepoURL != r.Spec.Source.RepoURL {
			ps = append(ps, d.problem("spec.source.repoURL", "every application comes from the root's repository %s", r.Spec.Source.RepoURL))
		}
		apps[app.Name] = app
		docs[app.Name] = d
		for _, env := range Environments[1:] {
			path := strings.ReplaceAll(app.Spec.Source.Path, "${ENVIRONMENT}", env)
			dir := filepath.Join(root, path)
			if chart := app.PluginEnv("CHART"); chart != "" {
				if !slices.ContainsFunc(p.Charts, func(c Chart) bool { return c.Name == chart }) {
					ps = append(ps, d.problem("spec.source.plugin.env", "CHART %q is not in knative/platform/charts.txt", chart))
				}
				if path != "knative/platform" {
					ps = append(ps, d.problem("spec.source.path", "chart applications render in knative/platform (render.sh reads charts.txt there)"))
				}
				break
			}
			if _, err := os.Stat(filepath.Join(dir, "kustomization.yaml")); err != nil {
				ps = append(ps, d.problem("spec.source.path", "%s (%s) holds no kustomization.yaml", path, env))
			}
		}
	}

	// The platform applications: one per part of knative/platform.
	want := map[string]string{"knative-crds": "knative/platform/crds", "knative": "knative/platform/knative", "cluster": "knative/platform/cluster",
		"gamemetrics": "knative/overlays/${ENVIRONMENT}", "gamemetrics-eventing": "eventing/overlays/${ENVIRONMENT}"}
	for _, c := range p.Charts {
		want[c.Name] = "knative/platform"
	}
	for _, name := range sortedKeys(want) {
		app, ok := apps[name]
		switch {
		case !ok:
			ps = append(ps, problemf(filepath.Join(root, "knative", "argocd", "apps"), "Application/"+name, "", "missing: deploy.sh installs %s, so ArgoCD must too", want[name]))
		case app.Spec.Source.Path != want[name]:
			ps = append(ps, docs[name].problem("spec.source.path", "must be %s, got %s", want[name], app.Spec.Source.Path))
		}
	}
	for _, name := range sortedKeys(apps) {
		if _, ok := want[name]; !ok {
			ps = append(ps, docs[name].problem("metadata.name", "not a part of knative/platform or the application: deploy.sh would not install it"))
		}
	}

	// Waves: CRDs < Knative < charts < cluster resources < application < sources.
	order := [][]string{{"knative-crds"}, {"knative"}, nil, {"cluster"}, {"gamemetrics"}, {"gamemetrics-eventing"}}
	for _, c := range p.Charts {
		order[2] = append(order[2], c.Name)
	}
	for i := 1; i < len(order); i++ {
		for _, before := range order[i-1] {
			for _, after := range order[i] {
				b, okb := apps[before]
				a, oka := apps[after]
				if okb && oka && b.Wave() >= a.Wave() {
					ps = append(ps, docs[after].problem("metadata.annotations.argocd.argoproj.io/sync-wave", "%s (wave %d) must sync after %s (wave %d), as in knative/deploy.sh", after, a.Wave(), before, b.Wave()))
				}
			}
		}
	}
	return ps
}

var placeholderListRE = regexp.MustCompile(`(?m)^PLACEHOLDERS=\(([^)]*)\)`)

// ScriptPlaceholders reads the PLACEHOLDERS=(...) list of a shell script.
func ScriptPlaceholders(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := placeholderListRE.FindSubmatch(data)
	if m == nil {
		return nil, fmt.Errorf("%s: no PLACEHOLDERS=(...) line", path)
	}
	return strings.Fields(string(m[1])), nil
}
