package validate

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const (
	mesh        = "../mesh"
	knativeBase = "../../knative/base"
)

func TestTheMeshExperimentsPassStrictDecodingValidationAndTargetChecks(t *testing.T) {
	problems, err := Check(mesh, knativeBase)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	exps, _, err := Load(mesh)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range exps {
		kinds = append(kinds, e.Kind+"/"+e.Name)
	}
	for _, want := range []string{"PodChaos/process-pod-kill", "NetworkChaos/process-postgres-delay", "NetworkChaos/process-postgres-loss",
		"NetworkChaos/ingest-kafka-partition", "PodChaos/kafka-broker-pod-kill", "NetworkChaos/kafka-broker-partition", "NetworkChaos/redis-partition", "Schedule/process-pod-kill-weekly"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("chaos/mesh has no %s (it has %v)", want, kinds)
		}
	}
}

// Every experiment states its hypothesis, and every metric it tells the
// operator to watch is one the code really exports.
func TestEveryExperimentStatesAHypothesisAndWatchesRealMetrics(t *testing.T) {
	exported := exportedMetrics(t, "../..")
	files, _ := filepath.Glob(filepath.Join(mesh, "*.yaml"))
	mentioned := regexp.MustCompile(`gamemetrics_[a-z_]+`)
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.ToLower(string(data)), "hypothesis") {
			t.Errorf("%s states no hypothesis", f)
		}
		for _, m := range mentioned.FindAllString(string(data), -1) {
			if !exported[m] {
				t.Errorf("%s tells to watch %s, which no GameMetrics code exports", f, m)
			}
		}
	}
}

// exportedMetrics collects the names in `Name: "gamemetrics_..."` in the
// repository's Go sources.
func exportedMetrics(t *testing.T, root string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	re := regexp.MustCompile(`Name:\s+"(gamemetrics_[a-z_]+)"`)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "terraform") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatalf("found no gamemetrics_* metric in the Go sources under %s", root)
	}
	return names
}

// Planted mistakes in testdata prove the validator catches each kind.
func TestPlantedMistakesAreCaught(t *testing.T) {
	tests := []struct {
		dir  string
		want []string
	}{
		{"misspelled-field", []string{`postgres-delay.yaml: strict decode`, `unknown field "externalTarget"`}},
		{"unknown-label", []string{"namespaces [default], want [gamemetrics]", "map[app.kubernetes.io/name:proces] match the pods of no Knative Service"}},
		{"unlisted-file", []string{"forgotten.yaml: not listed in kustomization.yaml", "resource gone.yaml is not a file"}},
		{"invalid-duration", []string{"loss.yaml: NetworkChaos process-postgres-loss rejected by Chaos Mesh validation", "schedule.yaml: Schedule weekly rejected by Chaos Mesh validation"}},
		{"unknown-placeholder", []string{"${MSK_BROKR_2} is not one of the substituted host names", `"not a host" is neither`, "no function pod has app.kubernetes.io/name=injest"}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			problems, err := Check(filepath.Join("testdata", tt.dir), knativeBase)
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(problems, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("problems do not mention %q:\n%s", w, all)
				}
			}
		})
	}
}
