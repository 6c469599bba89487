package validate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"knative.dev/pkg/version"
)

// Environments are the kustomize overlays, plus "base".
var Environments = []string{"base", "dev", "staging", "production"}

// kustomizeDir is where an environment's kustomization lives under top
// (knative or eventing).
func kustomizeDir(root, top, env string) string {
	if env == "base" {
		return filepath.Join(root, top, "base")
	}
	return filepath.Join(root, top, "overlays", env)
}

// LoadEnvironment renders knative/ and eventing/ of one environment.
func LoadEnvironment(ctx context.Context, root, env string) (Environment, error) {
	kn, err := Load(ctx, kustomizeDir(root, "knative", env))
	if err != nil {
		return Environment{}, err
	}
	ev, err := Load(ctx, kustomizeDir(root, "eventing", env))
	if err != nil {
		return Environment{}, err
	}
	return Environment{Name: env, Knative: kn, Eventing: ev}, nil
}

// Options selects the checks that need external tools.
type Options struct {
	// Fmt runs terraform fmt -check.
	Fmt bool
	// Tools runs terraform init/validate (offline, the provider mirror of
	// $TF_CLI_CONFIG_FILE) on every module and environment, and tflint.
	Tools bool
}

// Repository runs every check on a checkout: all environments, func.yaml,
// the Terraform rules and tools, the Kubernetes version, the platform
// layer, the kinds a deploy applies, and the ArgoCD app of apps.
func Repository(ctx context.Context, root string, opt Options) (Problems, error) {
	var ps Problems
	for _, name := range Environments {
		env, err := LoadEnvironment(ctx, root, name)
		if err != nil {
			return nil, err
		}
		ps = append(ps, CheckEnvironment(ctx, env)...)
	}
	ps = append(ps, CheckFuncYAML(filepath.Join(root, "func.yaml"))...)
	tf := filepath.Join(root, "terraform")
	ps = append(ps, CheckTerraform(tf)...)
	ps = append(ps, KubernetesVersionProblems(tf, version.DefaultKubernetesMinVersion)...)
	if opt.Fmt {
		if err := TerraformFmt(tf); err != nil {
			ps = append(ps, Problem{File: tf, Message: fmt.Sprint(err)})
		}
	}
	if opt.Tools {
		cfg, err := CLIConfigFromEnv()
		if err != nil {
			return nil, err
		}
		roots, err := TerraformRoots(tf)
		if err != nil {
			return nil, err
		}
		for _, dir := range roots {
			ps = append(ps, TerraformValidate(ctx, dir, cfg)...)
		}
		ps = append(ps, TFLint(ctx, tf)...)
	}

	platform, err := LoadPlatform(root)
	if err != nil {
		return nil, err
	}
	serving, err := ServingModule(filepath.Join(root, "knative", "validate", "go.mod"))
	if err != nil {
		return nil, err
	}
	ps = append(ps, PlatformProblems(platform, serving)...)
	prerequisites, err := PrerequisiteKinds(filepath.Join(root, "knative", "README.md"))
	if err != nil {
		return nil, err
	}
	var applied []Document
	for _, dir := range AppliedRenders() {
		docs, err := Load(ctx, filepath.Join(root, dir))
		if err != nil {
			return nil, err
		}
		applied = append(applied, docs...)
	}
	ps = append(ps, KindProblems(applied, platform, prerequisites)...)
	argo, err := LoadArgoCD(ctx, root)
	if err != nil {
		return nil, err
	}
	ps = append(ps, ArgoCDProblems(root, argo, platform)...)
	for _, script := range []string{"knative/deploy.sh", "knative/argocd/render.sh"} {
		got, err := ScriptPlaceholders(filepath.Join(root, script))
		if err != nil {
			return nil, err
		}
		want := AllowedPlaceholders
		if strings.HasSuffix(script, "render.sh") {
			want = append(slices.Clone(want), "ENVIRONMENT")
		}
		if !slices.Equal(got, want) {
			ps = append(ps, problemf(script, "", "PLACEHOLDERS", "substitutes %v, the manifests may use %v", got, want))
		}
	}
	return ps, nil
}

// ServingModule reads the knative.dev/serving version a go.mod requires.
func ServingModule(gomod string) (string, error) {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	f, err := modfile.Parse(gomod, data, nil)
	if err != nil {
		return "", err
	}
	for _, r := range f.Require {
		if r.Mod.Path == "knative.dev/serving" {
			return r.Mod.Version, nil
		}
	}
	return "", fmt.Errorf("%s does not require knative.dev/serving", gomod)
}
