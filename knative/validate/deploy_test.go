package validate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	testRepo    = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/gamemetrics-dev/gamemetrics"
	testCLIRepo = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/gamemetrics-dev/gamemetrics-cli"
	testDigest  = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testCLISHA  = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// deployEnv is what terraform outputs would give deploy.sh.
func deployEnv(env string) []string {
	return append(os.Environ(), "DRY_RUN=1",
		"AWS_ACCOUNT_ID=123456789012",
		"CLUSTER_NAME=gamemetrics-"+env,
		"DOMAIN="+env+".play.example.com",
		"ACM_CERTIFICATE_ARN=arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666",
		"KARPENTER_NODE_ROLE=gamemetrics-"+env+"-karpenter-node",
		"KARPENTER_QUEUE=gamemetrics-"+env+"-karpenter",
		"RDS_MASTER_SECRET_ARN=arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0a1b2c3d-AbCdEf",
		"PATH="+os.Getenv("PATH"))
}

// dryRun runs deploy.sh with DRY_RUN=1 and returns its output.
func dryRun(t *testing.T, env string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("deploy.sh tests need bash on PATH")
	}
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot, "knative", "deploy.sh"), env}, args...)...)
	cmd.Env = deployEnv(env)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// deployStep is one step of a dry run: its commands and its manifests.
type deployStep struct {
	name     string
	commands []string
	docs     []Document
}

func parseDryRun(t *testing.T, out string) []deployStep {
	t.Helper()
	var steps []deployStep
	var manifest strings.Builder
	flush := func() {
		if len(steps) == 0 || manifest.Len() == 0 {
			return
		}
		docs, err := Split("deploy.sh "+steps[len(steps)-1].name, []byte(manifest.String()))
		if err != nil {
			t.Fatal(err)
		}
		steps[len(steps)-1].docs = append(steps[len(steps)-1].docs, docs...)
		manifest.Reset()
	}
	for _, line := range strings.SplitAfter(out, "\n") {
		switch {
		case strings.HasPrefix(line, "# deploy.sh step "):
			flush()
			steps = append(steps, deployStep{name: strings.TrimSpace(strings.TrimPrefix(line, "# deploy.sh step "))})
		case strings.HasPrefix(line, "# + "):
			flush()
			if len(steps) == 0 {
				t.Fatalf("a command before the first step: %s", line)
			}
			steps[len(steps)-1].commands = append(steps[len(steps)-1].commands, strings.TrimSpace(strings.TrimPrefix(line, "# + ")))
		default:
			manifest.WriteString(line)
		}
	}
	flush()
	return steps
}

// On an empty cluster only one order works: CRDs and operators, then the
// namespace and the secrets, Kafka, the migration Job, the Services, and
// the sources whose sinks the Services are. The dry run shows that order
// and that each step applies exactly its kinds.
func TestDeployScriptAppliesInTheOrderAnEmptyClusterNeeds(t *testing.T) {
	wantSteps := []string{"1 platform", "2 secrets", "3 kafka", "4 migrations", "5 services", "6 sources"}
	wantKinds := map[string][]string{
		"1 platform":   {"Namespace"},
		"2 secrets":    {"ConfigMap", "ExternalSecret", "NetworkPolicy", "ServiceAccount"},
		"3 kafka":      {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"},
		"4 migrations": {"Job"},
		"5 services":   {"Service"},
		"6 sources":    {"KafkaSink", "KafkaSource", "PingSource"},
	}
	for _, env := range Environments[1:] {
		t.Run(env, func(t *testing.T) {
			out, err := dryRun(t, env, testRepo+"@"+testDigest, testCLIRepo+"@"+testCLISHA)
			if err != nil {
				t.Fatalf("deploy.sh %s: %v\n%s", env, err, out)
			}
			steps := parseDryRun(t, out)
			var names []string
			for _, s := range steps {
				names = append(names, s.name)
				var kinds []string
				for _, d := range s.docs {
					if !slices.Contains(kinds, d.Kind) {
						kinds = append(kinds, d.Kind)
					}
				}
				slices.Sort(kinds)
				if !slices.Equal(kinds, wantKinds[s.name]) {
					t.Errorf("step %s applies %v, want %v", s.name, kinds, wantKinds[s.name])
				}
			}
			if !slices.Equal(names, wantSteps) {
				t.Fatalf("steps %v, want %v", names, wantSteps)
			}
			platform := strings.Join(steps[0].commands, "\n")
			for _, want := range []string{"kustomize knative/platform/crds", "wait --for=condition=Established crd", "kustomize knative/platform/knative", "helm upgrade --install strimzi", "helm upgrade --install external-secrets", "helm upgrade --install karpenter", "kustomize knative/platform/cluster"} {
				if !strings.Contains(platform, want) {
					t.Errorf("step 1 does not run %q:\n%s", want, platform)
				}
			}
			if i, j := strings.Index(platform, "platform/crds"), strings.Index(platform, "platform/knative"); i > j {
				t.Errorf("the Knative release is applied before its CRDs")
			}
			if i, j := strings.Index(platform, "-f 1-namespace.yaml"), strings.Index(platform, "helm upgrade --install strimzi"); i < 0 || i > j {
				t.Errorf("the gamemetrics namespace must exist before the Strimzi chart, which watches it")
			}
			for _, s := range steps[1:] {
				apply := slices.IndexFunc(s.commands, func(c string) bool { return strings.Contains(c, "apply --server-side --field-manager=gamemetrics-app") })
				wait := slices.IndexFunc(s.commands, func(c string) bool { return strings.Contains(c, " wait ") })
				if apply < 0 || wait < apply {
					t.Errorf("step %s must apply with the application's field manager and then wait: %v", s.name, s.commands)
				}
			}
			if !strings.Contains(strings.Join(steps[3].commands, "\n"), "delete job gamemetrics-migrate") {
				t.Errorf("step 4 must replace the previous migration Job (Jobs are immutable)")
			}

			text := out
			if got := strings.Count(text, "image: "+testRepo+"@"+testDigest); got != len(Functions()) {
				t.Errorf("%d function images pinned to the digest, want %d", got, len(Functions()))
			}
			if !strings.Contains(text, "image: "+testCLIRepo+"@"+testCLISHA) {
				t.Errorf("the migration Job does not run the pinned CLI image")
			}
			if strings.Contains(text, "${") {
				t.Errorf("placeholders left in the output")
			}
			for _, want := range []string{
				"role/gamemetrics-" + env + "-retain",
				"role/gamemetrics-" + env + "-ingest",
				"S3_BUCKET: gamemetrics-" + env + "-archive-123456789012",
				"key: gamemetrics-" + env + "/postgres/app",
				"key: arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0a1b2c3d-AbCdEf",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q", want)
				}
			}
		})
	}
}

func TestDeployScriptRejectsAnUnpinnedImage(t *testing.T) {
	out, err := dryRun(t, "dev", "registry.example.com/gamemetrics:latest", testCLIRepo+"@"+testCLISHA)
	if err == nil {
		t.Fatalf("deploy.sh accepted a tag instead of a digest:\n%s", out)
	}
	if !strings.Contains(out, "images must be REPO@sha256") {
		t.Errorf("unclear error: %s", out)
	}
}

func TestDeployScriptRefusesAKindNoStepApplies(t *testing.T) {
	// A copy of the repository with one more resource of a kind deploy.sh
	// has no step for.
	tmp := t.TempDir()
	for _, dir := range []string{"knative", "eventing"} {
		if out, err := exec.Command("cp", "-R", filepath.Join(repoRoot, dir), tmp).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v %s", dir, err, out)
		}
	}
	extra := "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: extra\nspec:\n  selector: {}\n  endpoints: [{port: http}]\n"
	if err := os.WriteFile(filepath.Join(tmp, "knative", "base", "extra.yaml"), []byte(extra), 0o644); err != nil {
		t.Fatal(err)
	}
	k := filepath.Join(tmp, "knative", "base", "kustomization.yaml")
	data, _ := os.ReadFile(k)
	if err := os.WriteFile(k, []byte(strings.Replace(string(data), "- migrate.yaml\n", "- migrate.yaml\n- extra.yaml\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(tmp, "knative", "deploy.sh"), "dev", testRepo+"@"+testDigest, testCLIRepo+"@"+testCLISHA)
	cmd.Env = deployEnv("dev")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no step applies kind ServiceMonitor") {
		t.Fatalf("deploy.sh applied a kind it has no step for: %v\n%s", err, out)
	}
}
