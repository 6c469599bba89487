package validate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// servingModule is the knative.dev/serving version of knative/validate/go.mod.
func servingModule(t *testing.T) string {
	t.Helper()
	v, err := ServingModule("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func loadPlatform(t *testing.T, root string) *Platform {
	t.Helper()
	p, err := LoadPlatform(root)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func prerequisites(t *testing.T) []string {
	t.Helper()
	kinds, err := PrerequisiteKinds(filepath.Join(repoRoot, "knative", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return kinds
}

// appliedDocs renders every kustomization a deploy applies (offline).
func appliedDocs(t *testing.T) []Document {
	t.Helper()
	var docs []Document
	for _, dir := range AppliedRenders() {
		d, err := Load(context.Background(), filepath.Join(repoRoot, dir))
		if err != nil {
			t.Fatalf("render %s: %v", dir, err)
		}
		docs = append(docs, d...)
	}
	return docs
}

func TestThePlatformIsPinnedToTheValidatedKnativeRelease(t *testing.T) {
	mod := servingModule(t)
	if got := KnativeRelease(mod); got != "1.23.0" {
		t.Logf("knative.dev/serving %s is Knative %s", mod, got)
	}
	assertNoProblems(t, PlatformProblems(loadPlatform(t, repoRoot), mod))
}

func TestPlatformCheckCatchesAKnativeReleaseOutOfStep(t *testing.T) {
	p := loadPlatform(t, repoRoot)
	p.Releases["knative"] = slices.Clone(p.Releases["knative"])
	p.Releases["knative"][0] = strings.Replace(p.Releases["knative"][0], "knative-v1.23.0", "knative-v1.22.0", 1)
	assertOnlyProblem(t, PlatformProblems(p, servingModule(t)), "is Knative 1.22.0, but knative/validate checks the manifests with knative.dev/serving")
}

// Every kind that kustomize renders for a deploy is served by Kubernetes,
// installed by knative/platform, or a documented prerequisite.
func TestEveryAppliedKindIsCoreInstalledOrADocumentedPrerequisite(t *testing.T) {
	assertNoProblems(t, KindProblems(appliedDocs(t), loadPlatform(t, repoRoot), prerequisites(t)))
}

func TestKindCheckCatchesPlantedMistakes(t *testing.T) {
	docs := appliedDocs(t)
	t.Run("a kind nothing installs", func(t *testing.T) {
		extra, err := Split("planted.yaml", []byte("apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x, namespace: gamemetrics}\n"))
		if err != nil {
			t.Fatal(err)
		}
		assertOnlyProblem(t, KindProblems(append(slices.Clone(docs), extra...), loadPlatform(t, repoRoot), prerequisites(t)), "monitoring.coreos.com/v1 ServiceMonitor is not served by Kubernetes")
	})
	t.Run("the Strimzi chart dropped from the platform", func(t *testing.T) {
		p := loadPlatform(t, repoRoot)
		p.Charts = slices.DeleteFunc(slices.Clone(p.Charts), func(c Chart) bool { return c.Name == "strimzi" })
		assertOnlyProblem(t, KindProblems(docs, p, prerequisites(t)), "kafka.strimzi.io/v1beta2")
	})
	t.Run("a prerequisite no longer documented", func(t *testing.T) {
		pre := slices.DeleteFunc(prerequisites(t), func(k string) bool { return k == "monitoring.coreos.com/v1 PodMonitor" })
		assertOnlyProblem(t, KindProblems(docs, loadPlatform(t, repoRoot), pre), "monitoring.coreos.com/v1 PodMonitor")
	})
}

// deploy.sh, the ArgoCD plugin and the validator agree on the placeholders.
func TestDeployScriptAndArgoCDPluginSubstituteTheAllowedPlaceholders(t *testing.T) {
	deploy, err := ScriptPlaceholders(filepath.Join(repoRoot, "knative", "deploy.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(deploy, AllowedPlaceholders) {
		t.Errorf("deploy.sh substitutes %v, the validator allows %v", deploy, AllowedPlaceholders)
	}
	plugin, err := ScriptPlaceholders(filepath.Join(repoRoot, "knative", "argocd", "render.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if want := append(slices.Clone(AllowedPlaceholders), "ENVIRONMENT"); !slices.Equal(plugin, want) {
		t.Errorf("knative/argocd/render.sh substitutes %v, want %v (deploy.sh's and ENVIRONMENT)", plugin, want)
	}
}

func TestPlatformRenderUsesOnlyAllowedPlaceholders(t *testing.T) {
	docs, err := Load(context.Background(), filepath.Join(repoRoot, "knative", "platform", "cluster"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		assertNoProblems(t, CheckDocument(context.Background(), d))
		assertNoProblems(t, placeholderProblems(d, AllowedPlaceholders))
	}
	for _, f := range []string{"knative/config-domain.yaml", "knative/kourier-service.yaml", "values/karpenter.yaml", "values/external-dns.yaml", "values/external-secrets.yaml"} {
		data, err := os.ReadFile(filepath.Join(repoRoot, "knative", "platform", f))
		if err != nil {
			t.Fatal(err)
		}
		assertNoProblems(t, placeholderProblems(Document{Source: f, Raw: data}, AllowedPlaceholders))
	}
}

func loadArgoCD(t *testing.T) *ArgoCD {
	t.Helper()
	a, err := LoadArgoCD(context.Background(), repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestTheArgoCDAppOfAppsIsValid(t *testing.T) {
	a := loadArgoCD(t)
	if len(a.Apps) < 6 {
		t.Fatalf("knative/argocd/apps renders %d Applications", len(a.Apps))
	}
	assertNoProblems(t, ArgoCDProblems(repoRoot, a, loadPlatform(t, repoRoot)))
}

func TestArgoCDChecksCatchPlantedMistakes(t *testing.T) {
	tests := []struct {
		name string
		mut  mutation
		want string
	}{
		{"an application path that does not exist", mutation{ref: "Application/gamemetrics", old: "path: knative/overlays/${ENVIRONMENT}", new: "path: knative/overlay/${ENVIRONMENT}"}, "knative/overlay/"},
		{"a chart that is not in charts.txt", mutation{ref: "Application/karpenter", old: "value: karpenter", new: "value: karpenter-crd"}, `CHART "karpenter-crd" is not in knative/platform/charts.txt`},
		{"the sources synced before the Services", mutation{ref: "Application/gamemetrics-eventing", old: `argocd.argoproj.io/sync-wave: "1"`, new: `argocd.argoproj.io/sync-wave: "0"`}, "gamemetrics-eventing (wave 0) must sync after gamemetrics (wave 0)"},
		{"a misspelled field", mutation{ref: "Application/cluster", old: "syncPolicy:", new: "syncPolicies:"}, "Application/cluster"}, // strict decoding refuses it, so the application is missing too
		{"a placeholder the plugin does not fill in", mutation{ref: "Application/gamemetrics", old: "targetRevision: main", new: "targetRevision: ${BRANCH}"}, "unknown placeholder ${BRANCH}"},
	}
	base := loadArgoCD(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.mut.apply(t, Environment{Knative: base.Apps})
			a := &ArgoCD{Root: base.Root, Apps: env.Knative}
			assertOnlyProblem(t, ArgoCDProblems(repoRoot, a, loadPlatform(t, repoRoot)), tt.want)
		})
	}
	t.Run("a platform part without an application", func(t *testing.T) {
		apps := slices.DeleteFunc(slices.Clone(base.Apps), func(d Document) bool { return d.Name == "external-secrets" })
		assertOnlyProblem(t, ArgoCDProblems(repoRoot, &ArgoCD{Root: base.Root, Apps: apps}, loadPlatform(t, repoRoot)), "Application/external-secrets")
	})
}

// Repository is what `go run ./cmd/validate` runs: every check at once.
func TestRepositoryRunsEveryCheckCleanly(t *testing.T) {
	ps, err := Repository(context.Background(), repoRoot, Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertNoProblems(t, ps)
}
