package validate

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	storagev1 "k8s.io/api/storage/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	"knative.dev/pkg/apis"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	"sigs.k8s.io/yaml"
)

// knativeObject is what every Knative API type implements: the admission
// webhook calls SetDefaults and then Validate on it.
type knativeObject interface {
	apis.Defaultable
	apis.Validatable
}

// CheckDocument validates one document on its own: strict decoding into the
// resource's Go type, the type's own defaulting and validation where it has
// one, and the GameMetrics rules that need no other document.
func CheckDocument(ctx context.Context, d Document) []Problem {
	switch d.GVK() {
	case "serving.knative.dev/v1 Service":
		_, ps := checkService(ctx, d)
		return ps
	case "sources.knative.dev/v1 PingSource":
		_, ps := checkPingSource(ctx, d)
		return ps
	case "eventing.knative.dev/v1 Broker":
		_, ps := decodeKnative[eventingv1.Broker](ctx, d, nil)
		return ps
	case "eventing.knative.dev/v1 Trigger":
		_, ps := decodeKnative[eventingv1.Trigger](ctx, d, nil)
		return ps
	case "sources.knative.dev/v1 KafkaSource":
		_, ps := checkKafkaSource(d)
		return ps
	case "sources.knative.dev/v1beta1 KafkaSource":
		return []Problem{d.problem("apiVersion", "use sources.knative.dev/v1: v1beta1 is the deprecated storage version")}
	case "eventing.knative.dev/v1alpha1 KafkaSink":
		_, ps := checkKafkaSink(d)
		return ps
	case "kafka.strimzi.io/v1beta2 KafkaTopic":
		_, ps := checkKafkaTopic(d)
		return ps
	case "kafka.strimzi.io/v1beta2 Kafka":
		_, ps := checkKafka(d)
		return ps
	case "kafka.strimzi.io/v1beta2 KafkaNodePool":
		_, ps := decodeStrict[KafkaNodePool](d)
		return ps
	case "kafka.strimzi.io/v1beta2 KafkaUser":
		_, ps := checkKafkaUser(d)
		return ps
	case "external-secrets.io/v1 ExternalSecret":
		_, ps := checkExternalSecret(d)
		return ps
	case "batch/v1 Job":
		_, ps := checkJob(d)
		return ps
	case "storage.k8s.io/v1 StorageClass":
		_, ps := decodeStrict[storagev1.StorageClass](d)
		return ps
	case "external-secrets.io/v1 ClusterSecretStore", "karpenter.sh/v1 NodePool", "karpenter.k8s.aws/v1 EC2NodeClass":
		return specProblems(d)
	case "argoproj.io/v1alpha1 Application":
		_, ps := checkApplication(d)
		return ps
	case "v1 Namespace":
		_, ps := decodeStrict[corev1.Namespace](d)
		return ps
	case "v1 ConfigMap":
		_, ps := checkConfigMap(d)
		return ps
	case "v1 ServiceAccount":
		_, ps := decodeStrict[corev1.ServiceAccount](d)
		return ps
	case "networking.k8s.io/v1 NetworkPolicy":
		_, ps := checkNetworkPolicy(d)
		return ps
	case "v1 Secret":
		return []Problem{d.problem("", "Secrets must not be committed; create them from AWS Secrets Manager as documented in knative/README.md")}
	default:
		return []Problem{d.problem("apiVersion", "unexpected resource %q: add a checker for it in knative/validate before deploying it", d.GVK())}
	}
}

// decodeStrict decodes a document into T, rejecting unknown fields.
func decodeStrict[T any](d Document) (*T, []Problem) {
	obj := new(T)
	if err := yaml.UnmarshalStrict(d.Raw, obj); err != nil {
		return nil, []Problem{d.problem("", "strict decode as %s: %v", d.GVK(), err)}
	}
	return obj, nil
}

// decodeKnative decodes strictly, runs pre (GameMetrics rules that must see
// the object as written, before defaulting), then SetDefaults within a
// create and Validate, keeping only error-level findings (Serving always
// warns about security contexts it would default).
func decodeKnative[T any, PT interface {
	*T
	knativeObject
}](ctx context.Context, d Document, pre func(PT) []Problem) (PT, []Problem) {
	obj, ps := decodeStrict[T](d)
	if obj == nil {
		return nil, ps
	}
	o := PT(obj)
	if pre != nil {
		ps = append(ps, pre(o)...)
	}
	ctx = apis.WithinCreate(ctx)
	o.SetDefaults(ctx)
	if fe := o.Validate(ctx).Filter(apis.ErrorLevel); fe != nil {
		ps = append(ps, fieldProblems(d, fe)...)
	}
	return o, ps
}

// fieldProblems turns a Knative FieldError tree into one problem per error.
func fieldProblems(d Document, fe *apis.FieldError) []Problem {
	var ps []Problem
	for _, e := range fe.WrappedErrors() {
		msg := e.Message
		if e.Details != "" {
			msg += ": " + e.Details
		}
		ps = append(ps, d.problem(strings.Join(e.Paths, ", "), "%s", msg))
	}
	if len(ps) == 0 {
		ps = append(ps, d.problem("", "%v", fe))
	}
	return ps
}

// requiredAnnotations must be set explicitly on every revision template so
// that scaling is a reviewed decision, not a cluster default.
var requiredAnnotations = []string{
	"autoscaling.knative.dev/min-scale",
	"autoscaling.knative.dev/max-scale",
	"autoscaling.knative.dev/target",
	"autoscaling.knative.dev/metric",
}

func checkService(ctx context.Context, d Document) (*servingv1.Service, []Problem) {
	return decodeKnative(ctx, d, func(s *servingv1.Service) []Problem {
		var ps []Problem
		tmpl := s.Spec.Template
		for _, a := range requiredAnnotations {
			if _, ok := tmpl.Annotations[a]; !ok {
				ps = append(ps, d.problem("spec.template.metadata.annotations", "missing %s", a))
			}
		}
		if tmpl.Spec.ContainerConcurrency == nil {
			ps = append(ps, d.problem("spec.template.spec.containerConcurrency", "must be set explicitly"))
		}
		if tmpl.Spec.TimeoutSeconds == nil {
			ps = append(ps, d.problem("spec.template.spec.timeoutSeconds", "must be set explicitly"))
		}
		if tmpl.Spec.ServiceAccountName == "" {
			ps = append(ps, d.problem("spec.template.spec.serviceAccountName", "every function runs under its own ServiceAccount"))
		}
		if len(tmpl.Spec.Containers) != 1 {
			ps = append(ps, d.problem("spec.template.spec.containers", "want exactly one container, got %d", len(tmpl.Spec.Containers)))
		}
		for i, c := range tmpl.Spec.Containers {
			field := fmt.Sprintf("spec.template.spec.containers[%d]", i)
			ps = append(ps, restrictedProblems(d, field, tmpl.Spec.SecurityContext, c.SecurityContext)...)
			ps = append(ps, probeProblems(d, field+".readinessProbe", c.ReadinessProbe, "/health/readiness")...)
			ps = append(ps, probeProblems(d, field+".livenessProbe", c.LivenessProbe, "/health/liveness")...)
			if fn := envValue(c.Env, "FUNCTION"); fn != s.Name {
				ps = append(ps, d.problem(field+".env", "FUNCTION must be %q (the Service name), got %q", s.Name, fn))
			}
			for _, q := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[q]; !ok {
					ps = append(ps, d.problem(field+".resources.requests", "missing %s", q))
				}
				if _, ok := c.Resources.Limits[q]; !ok {
					ps = append(ps, d.problem(field+".resources.limits", "missing %s", q))
				}
			}
			for j, e := range c.Env {
				if e.Value != "" && looksSecret(e.Name) {
					ps = append(ps, d.problem(fmt.Sprintf("%s.env[%d]", field, j), "%s holds a secret and must come from a secretKeyRef, not a literal value", e.Name))
				}
			}
		}
		return ps
	})
}

// restrictedProblems checks a container against the "restricted" Pod
// Security Standard (the pod-level context may supply runAsNonRoot and
// seccompProfile).
func restrictedProblems(d Document, field string, pod *corev1.PodSecurityContext, sc *corev1.SecurityContext) []Problem {
	field += ".securityContext"
	if sc == nil {
		return []Problem{d.problem(field, "missing; the gamemetrics namespace enforces Pod Security \"restricted\"")}
	}
	var ps []Problem
	nonRoot := sc.RunAsNonRoot != nil && *sc.RunAsNonRoot ||
		sc.RunAsNonRoot == nil && pod != nil && pod.RunAsNonRoot != nil && *pod.RunAsNonRoot
	if !nonRoot {
		ps = append(ps, d.problem(field+".runAsNonRoot", "must be true"))
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		ps = append(ps, d.problem(field+".allowPrivilegeEscalation", "must be false"))
	}
	if sc.Privileged != nil && *sc.Privileged {
		ps = append(ps, d.problem(field+".privileged", "must not be true"))
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		ps = append(ps, d.problem(field+".capabilities.drop", "must contain ALL"))
	}
	if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
		ps = append(ps, d.problem(field+".capabilities.add", "must be empty"))
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod != nil {
		seccomp = pod.SeccompProfile
	}
	if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
		ps = append(ps, d.problem(field+".seccompProfile.type", "must be RuntimeDefault (or Localhost)"))
	}
	return ps
}

func probeProblems(d Document, field string, p *corev1.Probe, path string) []Problem {
	if p == nil {
		return []Problem{d.problem(field, "missing; the image serves %s", path)}
	}
	if p.HTTPGet == nil || p.HTTPGet.Path != path {
		return []Problem{d.problem(field+".httpGet.path", "must be %s", path)}
	}
	return nil
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func checkPingSource(ctx context.Context, d Document) (*sourcesv1.PingSource, []Problem) {
	return decodeKnative(ctx, d, func(p *sourcesv1.PingSource) []Problem {
		var ps []Problem
		if p.Spec.Timezone == "" {
			ps = append(ps, d.problem("spec.timezone", "must be explicit (UTC); the default is the adapter's local time"))
		}
		if p.Spec.ContentType != "application/json" {
			ps = append(ps, d.problem("spec.contentType", "must be application/json, got %q", p.Spec.ContentType))
		}
		return ps
	})
}

func checkConfigMap(d Document) (*corev1.ConfigMap, []Problem) {
	cm, ps := decodeStrict[corev1.ConfigMap](d)
	if cm == nil {
		return nil, ps
	}
	for k := range cm.Data {
		if looksSecret(k) {
			ps = append(ps, d.problem("data."+k, "looks like a secret; keep it in a Secret and read it with secretKeyRef"))
		}
	}
	return cm, ps
}

func checkNetworkPolicy(d Document) (*networkingv1.NetworkPolicy, []Problem) {
	np, ps := decodeStrict[networkingv1.NetworkPolicy](d)
	if np == nil {
		return nil, ps
	}
	if len(np.Spec.PolicyTypes) == 0 {
		ps = append(ps, d.problem("spec.policyTypes", "must be explicit (Ingress and/or Egress)"))
	}
	for _, t := range np.Spec.PolicyTypes {
		if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
			ps = append(ps, d.problem("spec.policyTypes", "invalid policy type %q", t))
		}
	}
	check := func(field string, ports []networkingv1.NetworkPolicyPort) {
		for i, p := range ports {
			if p.Port != nil && p.Port.IntValue() == 0 && p.Port.StrVal == "" {
				ps = append(ps, d.problem(fmt.Sprintf("%s.ports[%d].port", field, i), "invalid port"))
			}
			if p.Protocol != nil && !slices.Contains([]corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}, *p.Protocol) {
				ps = append(ps, d.problem(fmt.Sprintf("%s.ports[%d].protocol", field, i), "invalid protocol %q", *p.Protocol))
			}
		}
	}
	for i, r := range np.Spec.Ingress {
		check(fmt.Sprintf("spec.ingress[%d]", i), r.Ports)
	}
	for i, r := range np.Spec.Egress {
		check(fmt.Sprintf("spec.egress[%d]", i), r.Ports)
	}
	return np, ps
}

// looksSecret reports whether a configuration key names a secret value.
func looksSecret(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"password", "secret", "token", "private_key", "access_key", "database_url", "redis_url"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// specProblems is the check for platform resources whose CRDs have no Go
// module here (ClusterSecretStore, Karpenter's NodePool and EC2NodeClass):
// they must at least have a spec. Their schemas are enforced by the
// operators' own admission when deploy.sh step 1d applies them.
func specProblems(d Document) []Problem {
	var obj struct {
		Spec map[string]any `json:"spec"`
	}
	if err := yaml.Unmarshal(d.Raw, &obj); err != nil {
		return []Problem{d.problem("", "decode: %v", err)}
	}
	if len(obj.Spec) == 0 {
		return []Problem{d.problem("spec", "missing")}
	}
	return nil
}
