package validate

import (
	"os"
	"regexp"

	"sigs.k8s.io/yaml"
)

// FuncYAML is the subset of the func CLI descriptor (specVersion 0.36.0)
// that GameMetrics uses; unknown fields are rejected.
type FuncYAML struct {
	SpecVersion string `json:"specVersion"`
	Name        string `json:"name"`
	Runtime     string `json:"runtime"`
	Registry    string `json:"registry,omitempty"`
	Image       string `json:"image,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Created     string `json:"created"`
	Invoke      string `json:"invoke,omitempty"`
	Build       struct {
		Builder   string    `json:"builder,omitempty"`
		BuildEnvs []funcEnv `json:"buildEnvs,omitempty"`
	} `json:"build"`
	Run struct {
		Envs         []funcEnv `json:"envs,omitempty"`
		StartTimeout string    `json:"startTimeout,omitempty"`
	} `json:"run"`
	Deploy struct {
		Namespace          string            `json:"namespace,omitempty"`
		Annotations        map[string]string `json:"annotations,omitempty"`
		Labels             []funcLabel       `json:"labels,omitempty"`
		ServiceAccountName string            `json:"serviceAccountName,omitempty"`
		HealthEndpoints    struct {
			Liveness  string `json:"liveness,omitempty"`
			Readiness string `json:"readiness,omitempty"`
		} `json:"healthEndpoints"`
	} `json:"deploy"`
}

type funcEnv struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type funcLabel struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

var (
	funcNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// funcRefRE is a func.yaml value reference: {{ env:X }}, {{ secret:s[:k] }}, {{ configMap:c[:k] }}.
	funcRefRE = regexp.MustCompile(`^\{\{ *(env|secret|configMap):[A-Za-z0-9_.:-]+ *\}\}$`)
	// userinfoRE matches a URL carrying user:password@.
	userinfoRE = regexp.MustCompile(`://[^/@]*:[^/@]*@`)
)

// CheckFuncYAML validates the root func.yaml.
func CheckFuncYAML(path string) []Problem {
	data, err := os.ReadFile(path)
	if err != nil {
		return []Problem{problemf(path, "", "", "%v", err)}
	}
	var f FuncYAML
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return []Problem{problemf(path, "", "", "strict decode: %v", err)}
	}
	var ps []Problem
	check := func(ok bool, field, format string, args ...any) {
		if !ok {
			ps = append(ps, problemf(path, "func.yaml", field, format, args...))
		}
	}
	check(f.SpecVersion == "0.36.0", "specVersion", "must be 0.36.0, got %q", f.SpecVersion)
	check(funcNameRE.MatchString(f.Name), "name", "invalid function name %q", f.Name)
	check(f.Runtime == "go", "runtime", "must be go, got %q", f.Runtime)
	check(f.Created != "", "created", "required")
	check(f.Invoke == "" || f.Invoke == "http" || f.Invoke == "cloudevent", "invoke", "must be http or cloudevent, got %q", f.Invoke)
	check(f.Build.Builder == "host", "build.builder", "must be host (the image is built without a container engine), got %q", f.Build.Builder)
	check(f.Deploy.HealthEndpoints.Liveness == "/health/liveness", "deploy.healthEndpoints.liveness", "must be /health/liveness")
	check(f.Deploy.HealthEndpoints.Readiness == "/health/readiness", "deploy.healthEndpoints.readiness", "must be /health/readiness")
	hasFunction := false
	for _, e := range f.Run.Envs {
		if e.Name == "FUNCTION" {
			hasFunction = true
		}
		check(!looksSecret(e.Name) || !userinfoRE.MatchString(e.Value), "run.envs."+e.Name, "contains a password; use {{ secret:name:key }} or {{ env:NAME }}")
		// A literal here ships with `func deploy` (a localhost DATABASE_URL,
		// LISTEN_ADDRESS=127.0.0.1): only references to the environment,
		// a Secret or a ConfigMap are allowed.
		check(funcRefRE.MatchString(e.Value), "run.envs."+e.Name, "literal value %q would ship with func deploy; use {{ env:%s }} (or {{ secret:... }}, {{ configMap:... }})", e.Value, e.Name)
	}
	check(hasFunction, "run.envs", "must set FUNCTION for `func run`")
	return ps
}
