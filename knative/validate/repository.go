package validate

import (
	"context"
	"fmt"
	"path/filepath"
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

// Repository runs every check on a checkout: all environments, func.yaml,
// the Terraform rules and, if fmt is set, terraform fmt -check.
func Repository(ctx context.Context, root string, fmt_ bool) (Problems, error) {
	var ps Problems
	for _, name := range Environments {
		env, err := LoadEnvironment(ctx, root, name)
		if err != nil {
			return nil, err
		}
		ps = append(ps, CheckEnvironment(ctx, env)...)
	}
	ps = append(ps, CheckFuncYAML(filepath.Join(root, "func.yaml"))...)
	ps = append(ps, CheckTerraform(filepath.Join(root, "terraform"))...)
	if fmt_ {
		if err := TerraformFmt(filepath.Join(root, "terraform")); err != nil {
			ps = append(ps, Problem{File: filepath.Join(root, "terraform"), Message: fmt.Sprint(err)})
		}
	}
	return ps, nil
}
