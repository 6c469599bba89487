// Package validate checks GameMetrics' Chaos Mesh experiments (chaos/mesh)
// offline, with the upstream API types: every manifest is decoded strictly
// (an unknown or misspelled field is an error, as the API server's
// structural schema would prune it silently), defaulted and validated the
// way Chaos Mesh's admission webhook does, and its pod selectors must
// target namespace gamemetrics and labels that the pods of knative/base
// really carry. It is a module of its own so that Chaos Mesh's
// dependencies stay out of the main module.
package validate

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Namespace is where GameMetrics runs and every experiment must aim.
const Namespace = "gamemetrics"

// Placeholders are the host names the network experiments may name as
// ${NAME}, substituted when the manifests are rendered for a cluster.
var Placeholders = []string{"RDS_ADDRESS", "REDIS_ADDRESS"}

// Experiment is one decoded manifest.
type Experiment struct {
	File string
	Kind string
	Name string
	// Selectors are the pod selectors the experiment uses, with where
	// they are in the manifest.
	Selectors map[string]v1alpha1.PodSelectorSpec
	// ExternalTargets are the hosts outside the cluster it affects.
	ExternalTargets []string
}

// Check validates the experiments in meshDir against the Knative Services
// in knativeBase and returns every problem found, each naming its file.
// An error means the directories could not be read at all.
func Check(meshDir, knativeBase string) ([]string, error) {
	pods, err := PodLabels(knativeBase)
	if err != nil {
		return nil, err
	}
	var problems []string
	exps, probs, err := Load(meshDir)
	if err != nil {
		return nil, err
	}
	problems = append(problems, probs...)
	for _, e := range exps {
		problems = append(problems, checkTargets(e, pods)...)
	}
	return problems, nil
}

// Load decodes every experiment listed by meshDir's kustomization.yaml,
// and reports files the list misses or names in vain.
func Load(meshDir string) ([]Experiment, []string, error) {
	var problems []string
	raw, err := os.ReadFile(filepath.Join(meshDir, "kustomization.yaml"))
	if err != nil {
		return nil, nil, err
	}
	var k struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Namespace  string `json:"namespace"`
		Labels     []struct {
			Pairs            map[string]string `json:"pairs"`
			IncludeSelectors bool              `json:"includeSelectors"`
			IncludeTemplates bool              `json:"includeTemplates"`
		} `json:"labels"`
		Resources []string `json:"resources"`
	}
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		return nil, nil, fmt.Errorf("kustomization.yaml: %w", err)
	}
	if k.Namespace != Namespace {
		problems = append(problems, fmt.Sprintf("kustomization.yaml: namespace %q, want %q", k.Namespace, Namespace))
	}
	for _, l := range k.Labels {
		if l.IncludeSelectors {
			problems = append(problems, "kustomization.yaml: labels with includeSelectors would add them to the experiments' pod selectors, which then match no pod")
		}
	}
	files, err := filepath.Glob(filepath.Join(meshDir, "*.yaml"))
	if err != nil {
		return nil, nil, err
	}
	var present []string
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" {
			present = append(present, base)
		}
	}
	for _, f := range present {
		if !slices.Contains(k.Resources, f) {
			problems = append(problems, fmt.Sprintf("%s: not listed in kustomization.yaml resources, so `kubectl apply -k` never applies it", f))
		}
	}
	var exps []Experiment
	for _, r := range k.Resources {
		if !slices.Contains(present, r) {
			problems = append(problems, fmt.Sprintf("kustomization.yaml: resource %s is not a file of %s", r, meshDir))
			continue
		}
		data, err := os.ReadFile(filepath.Join(meshDir, r))
		if err != nil {
			return nil, nil, err
		}
		for i, doc := range documents(data) {
			name := r
			if i > 0 {
				name = fmt.Sprintf("%s (document %d)", r, i+1)
			}
			e, err := Decode(doc)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			e.File = name
			exps = append(exps, e)
		}
	}
	return exps, problems, nil
}

// documents splits a YAML stream, dropping empty documents.
func documents(data []byte) [][]byte {
	var out [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			out = append(out, []byte(d))
		}
	}
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// Decode reads one manifest strictly into its Chaos Mesh type, applies the
// webhook's defaults and runs its validation.
func Decode(doc []byte) (Experiment, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return Experiment{}, err
	}
	if tm.APIVersion != v1alpha1.SchemeGroupVersion.String() {
		return Experiment{}, fmt.Errorf("apiVersion %q, want %q", tm.APIVersion, v1alpha1.SchemeGroupVersion.String())
	}
	ctx := context.Background()
	e := Experiment{Kind: tm.Kind, Selectors: map[string]v1alpha1.PodSelectorSpec{}}
	var meta metav1.ObjectMeta
	var verr error
	switch tm.Kind {
	case v1alpha1.KindPodChaos:
		var o v1alpha1.PodChaos
		if err := strict(doc, &o); err != nil {
			return e, err
		}
		o.Default(ctx, &o)
		_, verr = o.Validate()
		meta = o.ObjectMeta
		e.addPod("spec", &o.Spec)
	case v1alpha1.KindNetworkChaos:
		var o v1alpha1.NetworkChaos
		if err := strict(doc, &o); err != nil {
			return e, err
		}
		o.Default(ctx, &o)
		_, verr = o.Validate()
		meta = o.ObjectMeta
		e.addNetwork("spec", &o.Spec)
	case v1alpha1.KindSchedule:
		var o v1alpha1.Schedule
		if err := strict(doc, &o); err != nil {
			return e, err
		}
		o.Default(ctx, &o)
		_, verr = o.Validate(&o)
		meta = o.ObjectMeta
		switch o.Spec.Type {
		case v1alpha1.ScheduleTypePodChaos:
			if o.Spec.PodChaos == nil {
				return e, fmt.Errorf("Schedule of type PodChaos has no spec.podChaos")
			}
			e.addPod("spec.podChaos", o.Spec.PodChaos)
		case v1alpha1.ScheduleTypeNetworkChaos:
			if o.Spec.NetworkChaos == nil {
				return e, fmt.Errorf("Schedule of type NetworkChaos has no spec.networkChaos")
			}
			e.addNetwork("spec.networkChaos", o.Spec.NetworkChaos)
		default:
			return e, fmt.Errorf("Schedule of type %q: this validator knows PodChaos and NetworkChaos; teach it the new kind", o.Spec.Type)
		}
	default:
		return e, fmt.Errorf("kind %q: this validator knows PodChaos, NetworkChaos and Schedule; teach it the new kind", tm.Kind)
	}
	e.Name = meta.Name
	if verr != nil {
		return e, fmt.Errorf("%s %s rejected by Chaos Mesh validation: %w", e.Kind, e.Name, verr)
	}
	if meta.Name == "" {
		return e, fmt.Errorf("%s has no metadata.name", e.Kind)
	}
	if meta.Namespace != "" && meta.Namespace != Namespace {
		return e, fmt.Errorf("%s %s: metadata.namespace %q, want %q (or none: the kustomization sets it)", e.Kind, e.Name, meta.Namespace, Namespace)
	}
	return e, nil
}

// strict decodes YAML into v, rejecting fields v does not have.
func strict(doc []byte, v any) error {
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		return fmt.Errorf("strict decode: %w", err)
	}
	return nil
}

func (e *Experiment) addPod(path string, s *v1alpha1.PodChaosSpec) {
	e.Selectors[path+".selector"] = s.Selector
}

func (e *Experiment) addNetwork(path string, s *v1alpha1.NetworkChaosSpec) {
	e.Selectors[path+".selector"] = s.Selector
	if s.Target != nil {
		e.Selectors[path+".target.selector"] = s.Target.Selector
	}
	e.ExternalTargets = append(e.ExternalTargets, s.ExternalTargets...)
}

var (
	placeholder = regexp.MustCompile(`^\$\{([A-Z0-9_]+)\}$`)
	hostname    = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// checkTargets checks an experiment's selectors and external targets.
func checkTargets(e Experiment, pods map[string]map[string]string) []string {
	var problems []string
	paths := make([]string, 0, len(e.Selectors))
	for p := range e.Selectors {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, path := range paths {
		for _, p := range checkSelector(e.Selectors[path], pods) {
			problems = append(problems, fmt.Sprintf("%s: %s %s: %s: %s", e.File, e.Kind, e.Name, path, p))
		}
	}
	for _, t := range e.ExternalTargets {
		if m := placeholder.FindStringSubmatch(t); m != nil {
			if !slices.Contains(Placeholders, m[1]) {
				problems = append(problems, fmt.Sprintf("%s: external target %s is not one of the substituted host names %v", e.File, t, Placeholders))
			}
			continue
		}
		if _, _, err := net.ParseCIDR(t); err == nil || net.ParseIP(t) != nil {
			continue
		}
		if !hostname.MatchString(t) {
			problems = append(problems, fmt.Sprintf("%s: external target %q is neither ${NAME}, an IP, a CIDR nor a host name", e.File, t))
		}
	}
	return problems
}

// checkSelector checks that s aims at namespace gamemetrics and at labels
// some function pod carries; pods maps each Knative Service to its pods'
// labels.
func checkSelector(s v1alpha1.PodSelectorSpec, pods map[string]map[string]string) []string {
	var problems []string
	if !slices.Equal(s.Namespaces, []string{Namespace}) {
		problems = append(problems, fmt.Sprintf("namespaces %v, want [%s]", s.Namespaces, Namespace))
	}
	if len(s.LabelSelectors) == 0 && len(s.ExpressionSelectors) == 0 {
		return append(problems, "no labelSelectors or expressionSelectors: it would hit every pod of the namespace")
	}
	if len(s.Pods) > 0 || len(s.Nodes) > 0 || len(s.NodeSelectors) > 0 {
		problems = append(problems, "pods, nodes and nodeSelectors name things that change with every revision; select by labels")
	}
	// The services whose pods match every labelSelector.
	var candidates []string
	for svc, labels := range pods {
		ok := true
		for k, v := range s.LabelSelectors {
			if labels[k] != v {
				ok = false
			}
		}
		if ok {
			candidates = append(candidates, svc)
		}
	}
	if len(candidates) == 0 {
		return append(problems, fmt.Sprintf("labelSelectors %v match the pods of no Knative Service in knative/base", s.LabelSelectors))
	}
	for _, r := range s.ExpressionSelectors {
		has := func(value string) bool {
			for _, svc := range candidates {
				if v, ok := pods[svc][r.Key]; ok && (value == "" || v == value) {
					return true
				}
			}
			return false
		}
		switch r.Operator {
		case metav1.LabelSelectorOpIn:
			for _, v := range r.Values {
				if !has(v) {
					problems = append(problems, fmt.Sprintf("expressionSelector %s In %v: no function pod has %s=%s", r.Key, r.Values, r.Key, v))
				}
			}
		case metav1.LabelSelectorOpNotIn, metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
			if !has("") {
				problems = append(problems, fmt.Sprintf("expressionSelector on %s: no function pod has that label", r.Key))
			}
		default:
			problems = append(problems, fmt.Sprintf("expressionSelector on %s: unknown operator %q", r.Key, r.Operator))
		}
	}
	return problems
}

// PodLabels reads the Knative Services (and the Strimzi Kafka cluster) of a
// kustomize base and returns, for each, the labels its pods carry: the
// revision template's labels and serving.knative.dev/service, which Knative
// adds to every pod; strimzi.io/cluster for the Kafka pods.
func PodLabels(knativeBase string) (map[string]map[string]string, error) {
	var files []string
	err := filepath.WalkDir(knativeBase, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".yaml") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, doc := range documents(data) {
			var svc struct {
				APIVersion string            `json:"apiVersion"`
				Kind       string            `json:"kind"`
				Metadata   metav1.ObjectMeta `json:"metadata"`
				Spec       struct {
					Template struct {
						Metadata metav1.ObjectMeta `json:"metadata"`
					} `json:"template"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(doc, &svc); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			// The Strimzi Kafka cluster's pods (brokers, entity operator)
			// carry strimzi.io/cluster: <name>, the target of the
			// experiments that cut a function off from Kafka.
			if svc.Kind == "Kafka" && strings.HasPrefix(svc.APIVersion, "kafka.strimzi.io/") {
				out["Kafka/"+svc.Metadata.Name] = map[string]string{"strimzi.io/cluster": svc.Metadata.Name, "strimzi.io/kind": "Kafka"}
				continue
			}
			if svc.Kind != "Service" || !strings.HasPrefix(svc.APIVersion, "serving.knative.dev/") {
				continue
			}
			labels := map[string]string{"serving.knative.dev/service": svc.Metadata.Name}
			for k, v := range svc.Spec.Template.Metadata.Labels {
				labels[k] = v
			}
			out[svc.Metadata.Name] = labels
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no Knative Service found under %s", knativeBase)
	}
	return out, nil
}
