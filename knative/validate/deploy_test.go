package validate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// deploy.sh in DRY_RUN mode renders what it would apply: every image must
// be pinned to the digest and every placeholder filled in.
func TestDeployScriptPinsTheDigestAndFillsEveryPlaceholder(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("deploy.sh tests need bash on PATH")
	}
	const (
		repo    = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/gamemetrics"
		digest  = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		brokers = "b-1.gamemetrics.abc123.c2.kafka.eu-west-1.amazonaws.com:9096,b-2.gamemetrics.abc123.c2.kafka.eu-west-1.amazonaws.com:9096"
	)
	for _, env := range []string{"dev", "staging", "production"} {
		t.Run(env, func(t *testing.T) {
			cmd := exec.Command("bash", filepath.Join(repoRoot, "knative", "deploy.sh"), env, repo+"@"+digest)
			cmd.Env = append(os.Environ(), "DRY_RUN=1", "AWS_ACCOUNT_ID=123456789012", "MSK_BOOTSTRAP_BROKERS="+brokers)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("deploy.sh %s: %v\n%s", env, err, stderr.String())
			}
			docs, err := Split("deploy.sh "+env, out)
			if err != nil {
				t.Fatal(err)
			}
			services := 0
			for _, d := range docs {
				if d.Kind == "Service" {
					services++
				}
			}
			if services != len(Functions()) {
				t.Errorf("rendered %d Services, want %d", services, len(Functions()))
			}
			text := string(out)
			if got, want := strings.Count(text, "image: "+repo+"@"+digest), len(Functions()); got != want {
				t.Errorf("%d images pinned to the digest, want %d", got, want)
			}
			if strings.Contains(text, "${") {
				t.Errorf("placeholders left in the output")
			}
			for _, want := range []string{
				"role/gamemetrics-" + env + "-retain",
				"role/gamemetrics-" + env + "-report",
				"S3_BUCKET: gamemetrics-" + env + "-archive-123456789012",
				"KAFKA_BROKERS: " + brokers,
				"- " + brokers,
			} {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q", want)
				}
			}
		})
	}
}

func TestDeployScriptRejectsAnUnpinnedImage(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("deploy.sh tests need bash on PATH")
	}
	cmd := exec.Command("bash", filepath.Join(repoRoot, "knative", "deploy.sh"), "dev", "registry.example.com/gamemetrics:latest")
	cmd.Env = append(os.Environ(), "DRY_RUN=1", "AWS_ACCOUNT_ID=123456789012", "MSK_BOOTSTRAP_BROKERS=b-1:9096")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("deploy.sh accepted a tag instead of a digest:\n%s", out)
	}
	if !strings.Contains(string(out), "IMAGE_DIGEST must be REPO@sha256") {
		t.Errorf("unclear error: %s", out)
	}
}
