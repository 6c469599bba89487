package validate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// TerraformRoots lists every directory under root that holds .tf files
// (each module and each environment), skipping .terraform and testdata:
// they are discovered, so a new module is validated without a list to edit.
func TerraformRoots(root string) ([]string, error) {
	seen := map[string]bool{}
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (d.Name() == ".terraform" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".tf") && !seen[filepath.Dir(path)] {
			seen[filepath.Dir(path)] = true
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	if err == nil && len(dirs) == 0 {
		err = fmt.Errorf("no Terraform configuration under %s", root)
	}
	return dirs, err
}

// terraformBinary finds terraform or says how to get it.
func terraformBinary() (string, error) {
	bin, err := exec.LookPath("terraform")
	if err != nil {
		return "", errors.New("terraform binary not found in PATH: install Terraform >= 1.11 (the machine image ships 1.11.4 in /usr/local/bin)")
	}
	return bin, nil
}

// CLIConfigFromEnv returns the Terraform CLI configuration that points init
// at the provider mirror: $TF_CLI_CONFIG_FILE, which `make validate` writes
// to bin/terraform.rc after discovering the mirror.
func CLIConfigFromEnv() (string, error) {
	cfg := os.Getenv("TF_CLI_CONFIG_FILE")
	if cfg == "" {
		return "", errors.New("TF_CLI_CONFIG_FILE is not set: run `make validate`, which discovers the filesystem mirror of hashicorp/aws and writes bin/terraform.rc (or set TF_PLUGIN_MIRROR to the directory holding registry.terraform.io/)")
	}
	data, err := os.ReadFile(cfg)
	if err != nil {
		return "", fmt.Errorf("TF_CLI_CONFIG_FILE=%s: %w", cfg, err)
	}
	if !bytes.Contains(data, []byte("filesystem_mirror")) {
		return "", fmt.Errorf("TF_CLI_CONFIG_FILE=%s has no filesystem_mirror block: offline init needs one", cfg)
	}
	return cfg, nil
}

func terraformCmd(ctx context.Context, bin, dir, cliConfig string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+cliConfig, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
	return cmd
}

// TerraformValidate runs `terraform init -backend=false` and `terraform
// validate` in dir with the provider mirror of cliConfig. A directory with a
// committed .terraform.lock.hcl (an environment) is initialised with
// -lockfile=readonly, so a lock file that does not match the providers the
// configuration requires fails here instead of being rewritten.
func TerraformValidate(ctx context.Context, dir, cliConfig string) []Problem {
	bin, err := terraformBinary()
	if err != nil {
		return []Problem{problemf(dir, "", "", "%v", err)}
	}
	args := []string{"init", "-backend=false", "-input=false", "-no-color"}
	if _, err := os.Stat(filepath.Join(dir, ".terraform.lock.hcl")); err == nil && isEnvironment(dir) {
		args = append(args, "-lockfile=readonly")
	}
	if out, err := terraformCmd(ctx, bin, dir, cliConfig, args...).CombinedOutput(); err != nil {
		return []Problem{problemf(dir, "", "", "terraform init -backend=false (offline, provider mirror of %s): %v\n%s", cliConfig, err, bytes.TrimSpace(out))}
	}
	var stderr bytes.Buffer
	cmd := terraformCmd(ctx, bin, dir, cliConfig, "validate", "-json", "-no-color")
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	var res struct {
		Valid       bool `json:"valid"`
		Diagnostics []struct {
			Severity string `json:"severity"`
			Summary  string `json:"summary"`
			Detail   string `json:"detail"`
			Range    *struct {
				Filename string `json:"filename"`
				Start    struct {
					Line int `json:"line"`
				} `json:"start"`
			} `json:"range"`
		} `json:"diagnostics"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return []Problem{problemf(dir, "", "", "terraform validate: %v %v: %s%s", runErr, err, out, stderr.Bytes())}
	}
	var ps []Problem
	for _, d := range res.Diagnostics {
		if d.Severity != "error" {
			continue
		}
		where := dir
		if d.Range != nil {
			where = fmt.Sprintf("%s:%d", filepath.Join(dir, d.Range.Filename), d.Range.Start.Line)
		}
		ps = append(ps, problemf(where, "", "", "terraform validate: %s: %s", d.Summary, d.Detail))
	}
	if !res.Valid && len(ps) == 0 {
		ps = append(ps, problemf(dir, "", "", "terraform validate: invalid configuration"))
	}
	return ps
}

func isEnvironment(dir string) bool {
	return filepath.Base(filepath.Dir(dir)) == "environments"
}

// TFLintBinary is $TFLINT (make validate sets it to bin/tflint, installed
// with go install), else tflint in PATH.
func TFLintBinary() (string, error) {
	if b := os.Getenv("TFLINT"); b != "" {
		if _, err := os.Stat(b); err != nil {
			return "", fmt.Errorf("TFLINT=%s: %w (make validate installs it with go install into bin/)", b, err)
		}
		return b, nil
	}
	b, err := exec.LookPath("tflint")
	if err != nil {
		return "", errors.New("tflint not found: run `make validate`, which installs it with go install into bin/ and sets TFLINT")
	}
	return b, nil
}

// TFLint runs `tflint --recursive` over root with root/.tflint.hcl (the
// bundled Terraform ruleset, preset "all") and reports every issue.
func TFLint(ctx context.Context, root string) []Problem {
	bin, err := TFLintBinary()
	if err != nil {
		return []Problem{problemf(root, "", "", "%v", err)}
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return []Problem{problemf(root, "", "", "%v", err)}
	}
	cmd := exec.CommandContext(ctx, bin, "--recursive", "--config", filepath.Join(abs, ".tflint.hcl"), "--format", "json", "--no-color")
	cmd.Dir = abs
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	var res struct {
		Issues []struct {
			Rule struct {
				Name string `json:"name"`
			} `json:"rule"`
			Message string `json:"message"`
			Range   struct {
				Filename string `json:"filename"`
				Start    struct {
					Line int `json:"line"`
				} `json:"start"`
			} `json:"range"`
		} `json:"issues"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return []Problem{problemf(root, "", "", "tflint: %v %v: %s%s", runErr, err, out, stderr.Bytes())}
	}
	var ps []Problem
	for _, i := range res.Issues {
		ps = append(ps, problemf(fmt.Sprintf("%s:%d", filepath.Join(root, i.Range.Filename), i.Range.Start.Line), "", i.Rule.Name, "tflint: %s", i.Message))
	}
	for _, e := range res.Errors {
		ps = append(ps, problemf(root, "", "", "tflint: %s", e.Message))
	}
	return ps
}

// TerraformFmt runs `terraform fmt -check -recursive` on dir.
func TerraformFmt(dir string) error {
	bin, err := terraformBinary()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "fmt", "-check", "-recursive", "-diff", dir)
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("terraform fmt -check -recursive %s: %v; run `terraform fmt -recursive %s`:\n%s", dir, err, dir, out)
	}
	return nil
}
