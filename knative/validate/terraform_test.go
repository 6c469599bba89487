package validate

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"knative.dev/pkg/version"
)

var terraformRoot = filepath.Join(repoRoot, "terraform")

func TestTerraformFollowsTheProjectRules(t *testing.T) {
	assertNoProblems(t, CheckTerraform(terraformRoot))
}

// Knative's controllers and webhooks exit at start on a cluster older than
// the DefaultKubernetesMinVersion of the knative.dev/pkg they are built on;
// knative/validate/go.mod pins the same pkg as the Knative release that
// knative/platform installs, so this is the minimum the cluster must meet.
func TestKubernetesVersionSupportsTheKnativeRelease(t *testing.T) {
	versions, err := KubernetesVersions(terraformRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{"dev", "staging", "production"} {
		if len(versions[env]) == 0 {
			t.Errorf("environment %s creates no EKS cluster the check can see", env)
		}
		t.Logf("%s: Kubernetes %v (Knative needs >= %s)", env, versions[env], version.DefaultKubernetesMinVersion)
	}
	assertNoProblems(t, KubernetesVersionProblems(terraformRoot, version.DefaultKubernetesMinVersion))
}

func TestKubernetesVersionCheckCatchesAnOldCluster(t *testing.T) {
	ps := KubernetesVersionProblems(filepath.Join("testdata", "terraform", "kubernetes-too-old"), version.DefaultKubernetesMinVersion)
	assertOnlyProblem(t, ps, "Kubernetes 1.32 is older than "+version.DefaultKubernetesMinVersion)
	if !strings.Contains(Problems(ps).String(), "environments/production") {
		t.Errorf("the problem should name the environment: %s", Problems(ps))
	}
}

func TestEveryTerraformModuleHasItsFiles(t *testing.T) {
	modules, err := filepath.Glob(filepath.Join(terraformRoot, "modules", "*"))
	if err != nil || len(modules) == 0 {
		t.Fatalf("no modules under %s: %v", terraformRoot, err)
	}
	for _, m := range modules {
		for _, f := range []string{"main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"} {
			if _, err := os.Stat(filepath.Join(m, f)); err != nil {
				t.Errorf("module %s: missing %s", filepath.Base(m), f)
			}
		}
	}
}

func TestEveryEnvironmentCommitsItsLockFile(t *testing.T) {
	for _, env := range []string{"dev", "staging", "production"} {
		if _, err := os.Stat(filepath.Join(terraformRoot, "environments", env, ".terraform.lock.hcl")); err != nil {
			t.Errorf("environments/%s: %v (run terraform init and commit .terraform.lock.hcl)", env, err)
		}
	}
}

// Each tree in testdata/terraform plants one mistake; CheckTerraform must
// report it and nothing else.
func TestTerraformChecksCatchPlantedMistakes(t *testing.T) {
	tests := []struct {
		dir  string
		want string
	}{
		{"bucket-public", "block_public_policy: must be true"},
		{"bucket-public-acl", `public ACL "public-read"`},
		{"bucket-unencrypted", "bucket is not encrypted with SSE-KMS"},
		{"bucket-unversioned", "versioning must be Enabled"},
		{"bucket-no-cold-transition", "no lifecycle rule transitions objects to a colder storage class"},
		{"secret-literal", "password: secret literal"},
		{"secret-literal-in-object", "password: secret literal"},
		{"secret-variable-default", "redis_auth_token must not have a default value"},
		{"rds-unencrypted", "aws_db_instance.this: storage_encrypted: must be true"},
		{"production-single-az", "production must run PostgreSQL Multi-AZ: resolves to cty.False"},
		{"redis-no-transit", "transit_encryption_enabled: must be true"},
		{"environment-not-thin", "environments hold values only"},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			assertOnlyProblem(t, CheckTerraform(filepath.Join("testdata", "terraform", tt.dir)), tt.want)
		})
	}
}

func TestTerraformReferenceFixtureIsClean(t *testing.T) {
	assertNoProblems(t, CheckTerraform(filepath.Join("testdata", "terraform", "good")))
	assertNoProblems(t, KubernetesVersionProblems(filepath.Join("testdata", "terraform", "good"), version.DefaultKubernetesMinVersion))
}

func TestTerraformIsFormatted(t *testing.T) {
	if err := TerraformFmt(terraformRoot); err != nil {
		t.Fatal(err)
	}
}

func TestTerraformFmtCatchesUnformattedFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte("variable \"x\" {\ntype=string\n  description = \"x\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := TerraformFmt(dir)
	if err == nil {
		t.Fatal("terraform fmt -check accepted an unformatted file")
	}
	if !strings.Contains(err.Error(), "main.tf") {
		t.Errorf("the error should name the file: %v", err)
	}
}

// cliConfig is the offline provider configuration make validate writes.
func cliConfig(t *testing.T) string {
	t.Helper()
	cfg, err := CLIConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestTerraformRootsAreDiscovered(t *testing.T) {
	roots, err := TerraformRoots(terraformRoot)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range roots {
		rel, _ := filepath.Rel(terraformRoot, r)
		names = append(names, rel)
	}
	for _, want := range []string{"environments/dev", "environments/staging", "environments/production", "modules/platform", "modules/eks", "modules/karpenter"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("roots %v lack %s", names, want)
		}
	}
}

// terraform init -backend=false and terraform validate, offline against the
// provider mirror, for every module and environment.
func TestTerraformValidatePassesEveryModuleAndEnvironment(t *testing.T) {
	cfg := cliConfig(t)
	roots, err := TerraformRoots(terraformRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range roots {
		rel, _ := filepath.Rel(terraformRoot, dir)
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			assertNoProblems(t, TerraformValidate(context.Background(), dir, cfg))
		})
	}
}

// copyTree copies a fixture into a temporary directory, so that init's
// .terraform never lands in testdata.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestTerraformValidateCatchesPlantedMistakes(t *testing.T) {
	cfg := cliConfig(t)
	tests := []struct {
		fixture string // under testdata/tfvalidate
		dir     string // the root to validate, inside the fixture
		want    string
	}{
		{"undeclared-variable", ".", "Reference to undeclared input variable"},
		{"lock-mismatch", "environments/dev", "locked provider registry.terraform.io/hashicorp/aws 5.99.0 does not match"},
		{"unmirrored-provider", ".", "hashicorp/random"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			tree := copyTree(t, filepath.Join("testdata", "tfvalidate", tt.fixture))
			assertSomeProblem(t, TerraformValidate(context.Background(), filepath.Join(tree, tt.dir), cfg), tt.want)
		})
	}
}

func TestTFLintPassesEveryModuleAndEnvironment(t *testing.T) {
	assertNoProblems(t, TFLint(context.Background(), terraformRoot))
}

func TestTFLintCatchesPlantedMistakes(t *testing.T) {
	tree := copyTree(t, filepath.Join("testdata", "tflint", "undocumented-variable"))
	config, err := os.ReadFile(filepath.Join(terraformRoot, ".tflint.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, ".tflint.hcl"), config, 0o644); err != nil {
		t.Fatal(err)
	}
	assertSomeProblem(t, TFLint(context.Background(), tree), "terraform_documented_variables")
}

// Without a provider mirror, make validate must stop and say what is missing.
func TestMakeValidateSaysWhatIsMissingWithoutAProviderMirror(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("this test runs make: install it")
	}
	tmp := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "-C", repoRoot, "terraform-mirror",
		"TF_MIRROR_SEARCH="+tmp, "TF_CLI_CONFIG="+filepath.Join(tmp, "terraform.rc"), "TF_PLUGIN_MIRROR=")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("make terraform-mirror succeeded without a mirror:\n%s", out)
	}
	for _, want := range []string{"no filesystem mirror of the Terraform provider hashicorp/aws", "registry.terraform.io/hashicorp/aws/<version>/<os>_<arch>/terraform-provider-aws_*", "providers mirror"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the message lacks %q:\n%s", want, out)
		}
	}
}
