package validate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var terraformRoot = filepath.Join(repoRoot, "terraform")

func TestTerraformFollowsTheInfrastructureRules(t *testing.T) {
	assertNoProblems(t, CheckTerraform(terraformRoot))
}

func TestEveryEnvironmentComposesAllModules(t *testing.T) {
	want := []string{"eks", "elasticache", "iam", "msk", "rds", "s3", "vpc"}
	mods, err := ModulesOf(terraformRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{"dev", "staging", "production"} {
		if got := mods[env]; !slices.Equal(got, want) {
			t.Errorf("terraform/environments/%s instantiates %v, want %v", env, got, want)
		}
	}
	if len(mods) != 3 {
		t.Errorf("environments: got %v, want dev, staging, production", mods)
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
		{"variable-no-description", "variable.instance_class: description: every variable needs a description"},
		{"variable-no-type", "variable.instance_class: type: every variable needs a type"},
		{"secret-literal", "password: secret literal"},
		{"secret-literal-in-object", "password: secret literal"},
		{"secret-variable-default", "redis_auth_token must not have a default value"},
		{"rds-unencrypted", "aws_db_instance.this: storage_encrypted: must be true"},
		{"production-single-az", "production must pass multi_az = true"},
		{"redis-no-transit", "transit_encryption_enabled: must be true"},
		{"msk-plaintext", `client_broker: must be "TLS", got "TLS_PLAINTEXT"`},
		{"environments-differ", `environment staging does not instantiate module "cache"`},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			assertOnlyProblem(t, CheckTerraform(filepath.Join("testdata", "terraform", tt.dir)), tt.want)
		})
	}
}

func TestTerraformReferenceFixtureIsClean(t *testing.T) {
	assertNoProblems(t, CheckTerraform(filepath.Join("testdata", "terraform", "good")))
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
