package validate

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
)

// Namespace is where every GameMetrics resource lives.
const Namespace = "gamemetrics"

// Function is one GameMetrics function as the deployment must see it: this
// table is the contract between the application and the manifests.
type Function struct {
	Name string
	// Public functions are reachable from outside the cluster; the others
	// carry networking.knative.dev/visibility: cluster-local.
	Public bool
	// S3 functions get an IRSA role (ServiceAccount annotation).
	S3 bool
	// Egress lists the TCP ports the function may open (besides DNS), and
	// must open: its NetworkPolicies allow exactly these.
	Egress []int32
}

// Functions returns the six functions served by the one image.
func Functions() []Function {
	stores := []int32{5432, 6379}
	return []Function{
		{Name: "ingest", Public: true, Egress: []int32{5432, 6379, 9092, 9094, 9096}},
		{Name: "process", Egress: stores},
		{Name: "recommend", Egress: stores},
		{Name: "notify", Egress: []int32{443, 5432}}, // receivers over https; no Redis
		{Name: "retain", S3: true, Egress: []int32{443, 5432, 6379}},
		{Name: "report", Public: true, S3: true, Egress: []int32{443, 5432, 6379}},
	}
}

// Secrets the manifests may read, with their keys. They are created out of
// band from AWS Secrets Manager (knative/README.md).
var allowedSecretKeys = map[string][]string{
	"gamemetrics-postgres": {"DATABASE_URL"},
	"gamemetrics-redis":    {"REDIS_URL"},
	"gamemetrics-kafka":    {"protocol", "sasl.mechanism", "user", "password", "ca.crt"},
}

// Topics that every deployed environment must declare.
var requiredTopics = []string{"gamemetrics.events", "gamemetrics.events.rejected", "gamemetrics.events.dlq"}

// placeholders that knative/deploy.sh substitutes; nothing else may look
// like a shell variable in a rendered manifest.
var placeholderRE = regexp.MustCompile(`\$\{[^}]*\}`)

var allowedPlaceholders = []string{"${AWS_ACCOUNT_ID}", "${MSK_BOOTSTRAP_BROKERS}"}

// Environment is the rendered knative/ and eventing/ of one environment.
type Environment struct {
	// Name is "base" for knative/base + eventing/base, else the overlay name.
	Name     string
	Knative  []Document
	Eventing []Document
}

// Deployed reports whether the environment is a real (overlay) environment.
func (e Environment) Deployed() bool { return e.Name != "base" }

// index holds the decoded objects of an environment by kind and name.
type index struct {
	services        map[string]*servingv1.Service
	serviceDocs     map[string]Document
	serviceAccounts map[string]*corev1.ServiceAccount
	saDocs          map[string]Document
	configMaps      map[string]bool
	policies        []*networkingv1.NetworkPolicy
	kafkaSinks      map[string]*KafkaSink
	brokers         map[string]bool
	topics          map[string]*KafkaTopic
}

// CheckEnvironment checks every document of an environment on its own and
// then the rules that span documents: namespace, visibility, IRSA, network
// policies, secrets, and that every sink resolves.
func CheckEnvironment(ctx context.Context, env Environment) []Problem {
	var ps []Problem
	all := append(slices.Clone(env.Knative), env.Eventing...)
	for _, d := range all {
		ps = append(ps, CheckDocument(ctx, d)...)
		ps = append(ps, placeholderProblems(d)...)
		if d.Kind != "Namespace" && d.Namespace != Namespace {
			ps = append(ps, d.problem("metadata.namespace", "must be %q, got %q", Namespace, d.Namespace))
		}
	}

	ix := buildIndex(all)
	ps = append(ps, namespaceProblems(env)...)
	ps = append(ps, serviceProblems(env, ix)...)
	ps = append(ps, eventingProblems(env, ix)...)
	return ps
}

func buildIndex(docs []Document) *index {
	ix := &index{
		services:        map[string]*servingv1.Service{},
		serviceDocs:     map[string]Document{},
		serviceAccounts: map[string]*corev1.ServiceAccount{},
		saDocs:          map[string]Document{},
		configMaps:      map[string]bool{},
		kafkaSinks:      map[string]*KafkaSink{},
		brokers:         map[string]bool{},
		topics:          map[string]*KafkaTopic{},
	}
	for _, d := range docs {
		// Decoding problems were reported by CheckDocument; skip here.
		switch d.GVK() {
		case "serving.knative.dev/v1 Service":
			if s, _ := decodeStrict[servingv1.Service](d); s != nil {
				ix.services[s.Name] = s
				ix.serviceDocs[s.Name] = d
			}
		case "v1 ServiceAccount":
			if sa, _ := decodeStrict[corev1.ServiceAccount](d); sa != nil {
				ix.serviceAccounts[sa.Name] = sa
				ix.saDocs[sa.Name] = d
			}
		case "v1 ConfigMap":
			ix.configMaps[d.Name] = true
		case "networking.k8s.io/v1 NetworkPolicy":
			if np, _ := decodeStrict[networkingv1.NetworkPolicy](d); np != nil {
				ix.policies = append(ix.policies, np)
			}
		case "eventing.knative.dev/v1alpha1 KafkaSink":
			if ks, _ := decodeStrict[KafkaSink](d); ks != nil {
				ix.kafkaSinks[ks.Name] = ks
			}
		case "eventing.knative.dev/v1 Broker":
			ix.brokers[d.Name] = true
		case "kafka.strimzi.io/v1beta2 KafkaTopic":
			if kt, _ := decodeStrict[KafkaTopic](d); kt != nil {
				ix.topics[kt.Topic()] = kt
			}
		}
	}
	return ix
}

func placeholderProblems(d Document) []Problem {
	var ps []Problem
	for _, m := range placeholderRE.FindAllString(string(d.Raw), -1) {
		if !slices.Contains(allowedPlaceholders, m) {
			ps = append(ps, d.problem("", "unknown placeholder %s: knative/deploy.sh only substitutes %v", m, allowedPlaceholders))
		}
	}
	return ps
}

func namespaceProblems(env Environment) []Problem {
	var ns []Document
	for _, d := range env.Knative {
		if d.Kind == "Namespace" {
			ns = append(ns, d)
		}
	}
	for _, d := range env.Eventing {
		if d.Kind == "Namespace" {
			return []Problem{d.problem("", "the namespace belongs to knative/, not eventing/")}
		}
	}
	if len(ns) != 1 || ns[0].Name != Namespace {
		return []Problem{problemf("knative/"+env.Name, "Namespace/"+Namespace, "", "want exactly one Namespace %q in the render, got %d", Namespace, len(ns))}
	}
	var ps []Problem
	for _, mode := range []string{"enforce", "audit", "warn"} {
		key := "pod-security.kubernetes.io/" + mode
		if got := ns[0].Labels[key]; got != "restricted" {
			ps = append(ps, ns[0].problem("metadata.labels."+key, "must be \"restricted\", got %q", got))
		}
	}
	return ps
}

var roleARNRE = regexp.MustCompile(`^arn:aws:iam::(\$\{AWS_ACCOUNT_ID\}|[0-9]{12}):role/(.+)$`)

func serviceProblems(env Environment, ix *index) []Problem {
	var ps []Problem
	source := "knative/" + env.Name
	want := map[string]Function{}
	for _, f := range Functions() {
		want[f.Name] = f
		if _, ok := ix.services[f.Name]; !ok {
			ps = append(ps, problemf(source, "Service/"+f.Name, "", "missing: every function needs a Knative Service"))
		}
	}
	for _, name := range sortedKeys(ix.services) {
		s, d := ix.services[name], ix.serviceDocs[name]
		f, ok := want[name]
		if !ok {
			ps = append(ps, d.problem("metadata.name", "not a GameMetrics function (want one of ingest, process, recommend, notify, retain, report)"))
			continue
		}
		local := s.Labels["networking.knative.dev/visibility"] == "cluster-local"
		switch {
		case f.Public && local:
			ps = append(ps, d.problem("metadata.labels", "%s must be reachable from outside the cluster: remove networking.knative.dev/visibility", name))
		case !f.Public && !local:
			ps = append(ps, d.problem("metadata.labels", "only ingest and report may be public: set networking.knative.dev/visibility: cluster-local"))
		}

		spec := s.Spec.Template.Spec
		if env.Name == "production" && name == "ingest" {
			if n, err := strconv.Atoi(s.Spec.Template.Annotations["autoscaling.knative.dev/min-scale"]); err != nil || n < 1 {
				ps = append(ps, d.problem("spec.template.metadata.annotations.autoscaling.knative.dev/min-scale", "ingest is the public write path and must stay warm in production (>= 1)"))
			}
		}
		ps = append(ps, serviceAccountProblems(env, ix, d, f, spec.ServiceAccountName)...)
		for i, c := range spec.Containers {
			field := fmt.Sprintf("spec.template.spec.containers[%d]", i)
			if c.Image != "gamemetrics" {
				ps = append(ps, d.problem(field+".image", "must be the placeholder \"gamemetrics\" (knative/deploy.sh pins the digest), got %q", c.Image))
			}
			for j, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil && !ix.configMaps[ef.ConfigMapRef.Name] {
					ps = append(ps, d.problem(fmt.Sprintf("%s.envFrom[%d].configMapRef", field, j), "ConfigMap %q is not in the render", ef.ConfigMapRef.Name))
				}
				if ef.SecretRef != nil {
					ps = append(ps, d.problem(fmt.Sprintf("%s.envFrom[%d].secretRef", field, j), "read secrets key by key with secretKeyRef"))
				}
			}
			for j, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				if keys, ok := allowedSecretKeys[ref.Name]; !ok || !slices.Contains(keys, ref.Key) {
					ps = append(ps, d.problem(fmt.Sprintf("%s.env[%d].valueFrom.secretKeyRef", field, j), "secret %s key %s is not one of the documented secrets %v", ref.Name, ref.Key, allowedSecretKeys))
				}
			}
		}
		ps = append(ps, networkPolicyProblems(d, ix, f, s)...)
	}
	return ps
}

func serviceAccountProblems(env Environment, ix *index, d Document, f Function, name string) []Problem {
	sa, ok := ix.serviceAccounts[name]
	if !ok {
		return []Problem{d.problem("spec.template.spec.serviceAccountName", "ServiceAccount %q is not in the render", name)}
	}
	sad := ix.saDocs[name]
	arn, annotated := sa.Annotations["eks.amazonaws.com/role-arn"]
	switch {
	case f.S3 && !annotated:
		return []Problem{sad.problem("metadata.annotations", "%s uses S3 and needs an IRSA eks.amazonaws.com/role-arn annotation", f.Name)}
	case !f.S3 && annotated:
		return []Problem{sad.problem("metadata.annotations.eks.amazonaws.com/role-arn", "%s does not use AWS APIs and must not get an IAM role", f.Name)}
	case !f.S3:
		return nil
	}
	m := roleARNRE.FindStringSubmatch(arn)
	if m == nil {
		return []Problem{sad.problem("metadata.annotations.eks.amazonaws.com/role-arn", "not an IAM role ARN: %q", arn)}
	}
	if wantRole := "gamemetrics-" + env.Name + "-" + f.Name; env.Deployed() && m[2] != wantRole {
		return []Problem{sad.problem("metadata.annotations.eks.amazonaws.com/role-arn", "role must be %s (terraform/modules/iam naming), got %s", wantRole, m[2])}
	}
	return nil
}

// networkPolicyProblems checks that the function's pods are default-denied,
// reachable from the Knative data plane, and may open exactly the ports it
// needs.
func networkPolicyProblems(d Document, ix *index, f Function, s *servingv1.Service) []Problem {
	pod := labels.Set{"serving.knative.dev/service": s.Name}
	for k, v := range s.Spec.Template.Labels {
		pod[k] = v
	}
	var (
		ps                               []Problem
		denyIngress, denyEgress, ingress bool
		egress                           = map[int32]bool{}
	)
	for _, np := range ix.policies {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(pod) {
			continue
		}
		for _, t := range np.Spec.PolicyTypes {
			switch {
			case t == networkingv1.PolicyTypeIngress && len(np.Spec.Ingress) == 0:
				denyIngress = true
			case t == networkingv1.PolicyTypeEgress && len(np.Spec.Egress) == 0:
				denyEgress = true
			case t == networkingv1.PolicyTypeIngress:
				ingress = true
			}
		}
		for _, r := range np.Spec.Egress {
			if len(r.Ports) == 0 {
				ps = append(ps, d.problem("NetworkPolicy/"+np.Name, "egress rule without ports lets %s reach anything", f.Name))
			}
			for _, p := range r.Ports {
				if p.Port == nil {
					ps = append(ps, d.problem("NetworkPolicy/"+np.Name, "egress port range without a port lets %s reach anything", f.Name))
					continue
				}
				if port := int32(p.Port.IntValue()); port != 53 {
					egress[port] = true
				}
			}
		}
	}
	if !denyIngress || !denyEgress {
		ps = append(ps, d.problem("NetworkPolicy", "no default-deny policy (empty podSelector, Ingress and Egress, no rules) selects %s", f.Name))
	}
	if !ingress {
		ps = append(ps, d.problem("NetworkPolicy", "no policy admits the Knative data plane to %s", f.Name))
	}
	for _, p := range f.Egress {
		if !egress[p] {
			ps = append(ps, d.problem("NetworkPolicy", "%s needs egress to port %d but no policy allows it", f.Name, p))
		}
		delete(egress, p)
	}
	for _, p := range sortedKeys(egress) {
		ps = append(ps, d.problem("NetworkPolicy", "%s may open port %d, which it does not use", f.Name, p))
	}
	return ps
}

// sinkRef is one sink, dead letter sink or subscriber reference.
type sinkRef struct {
	doc   Document
	field string
	dest  *duckv1.Destination
}

func eventingProblems(env Environment, ix *index) []Problem {
	var (
		ps   []Problem
		refs []sinkRef
	)
	for _, d := range env.Eventing {
		switch d.Kind {
		case "KafkaSource":
			ks, _ := decodeStrict[KafkaSource](d)
			if ks == nil {
				continue
			}
			refs = append(refs, sinkRef{d, "spec.sink", &ks.Spec.Sink})
			if ks.Spec.Delivery != nil && ks.Spec.Delivery.DeadLetterSink != nil {
				refs = append(refs, sinkRef{d, "spec.delivery.deadLetterSink", ks.Spec.Delivery.DeadLetterSink})
			}
			ps = append(ps, kafkaSourceEnvProblems(env, ix, d, ks)...)
		case "KafkaSink":
			ks := ix.kafkaSinks[d.Name]
			if ks == nil {
				continue
			}
			if env.Deployed() {
				if ks.Spec.Auth == nil || ks.Spec.Auth.Secret == nil || ks.Spec.Auth.Secret.Ref == nil || ks.Spec.Auth.Secret.Ref.Name != "gamemetrics-kafka" {
					ps = append(ps, d.problem("spec.auth.secret.ref.name", "must be gamemetrics-kafka (SASL/SCRAM over TLS to MSK)"))
				}
				if _, ok := ix.topics[ks.Spec.Topic]; !ok {
					ps = append(ps, d.problem("spec.topic", "no KafkaTopic declares %q", ks.Spec.Topic))
				}
			}
		case "PingSource":
			p, _ := decodeStrict[sourcesv1.PingSource](d)
			if p != nil {
				refs = append(refs, sinkRef{d, "spec.sink", &p.Spec.Sink})
			}
		case "Trigger":
			t, _ := decodeStrict[eventingv1.Trigger](d)
			if t == nil {
				continue
			}
			refs = append(refs, sinkRef{d, "spec.subscriber", &t.Spec.Subscriber})
			if t.Spec.Delivery != nil && t.Spec.Delivery.DeadLetterSink != nil {
				refs = append(refs, sinkRef{d, "spec.delivery.deadLetterSink", t.Spec.Delivery.DeadLetterSink})
			}
			if !ix.brokers[t.Spec.Broker] {
				ps = append(ps, d.problem("spec.broker", "Broker %q does not exist in the eventing/ render", t.Spec.Broker))
			}
		}
	}
	if env.Deployed() {
		for _, t := range requiredTopics {
			if _, ok := ix.topics[t]; !ok {
				ps = append(ps, problemf("eventing/"+env.Name, "KafkaTopic", "spec.topicName", "no KafkaTopic declares %q", t))
			}
		}
	}
	for _, r := range refs {
		ps = append(ps, resolveProblems(ix, r)...)
	}
	return ps
}

func kafkaSourceEnvProblems(env Environment, ix *index, d Document, ks *KafkaSource) []Problem {
	var ps []Problem
	if env.Deployed() {
		net := ks.Spec.Net
		if !net.SASL.Enable || !net.TLS.Enable {
			ps = append(ps, d.problem("spec.net", "MSK requires SASL (SCRAM-SHA-512) and TLS: set net.sasl.enable and net.tls.enable"))
		}
		for _, r := range []struct {
			field string
			ref   SecretValueFromSource
		}{{"user", net.SASL.User}, {"password", net.SASL.Password}, {"type", net.SASL.Type}} {
			field, ref := r.field, r.ref
			if ref.SecretKeyRef == nil {
				ps = append(ps, d.problem("spec.net.sasl."+field, "must be a secretKeyRef into gamemetrics-kafka"))
				continue
			}
			if keys := allowedSecretKeys[ref.SecretKeyRef.Name]; !slices.Contains(keys, ref.SecretKeyRef.Key) {
				ps = append(ps, d.problem("spec.net.sasl."+field+".secretKeyRef", "secret %s key %s is not documented", ref.SecretKeyRef.Name, ref.SecretKeyRef.Key))
			}
		}
		for _, t := range ks.Spec.Topics {
			kt, ok := ix.topics[t]
			if !ok {
				ps = append(ps, d.problem("spec.topics", "no KafkaTopic declares %q", t))
				continue
			}
			if c := ks.Spec.Consumers; c != nil && *c > kt.Spec.Partitions {
				ps = append(ps, d.problem("spec.consumers", "%d consumers for %d partitions of %s: the extra consumers idle", *c, kt.Spec.Partitions, t))
			}
		}
	}
	return ps
}

func resolveProblems(ix *index, r sinkRef) []Problem {
	ref := r.dest.Ref
	if ref == nil {
		return nil // URI sinks are validated by Destination.Validate.
	}
	if ref.Namespace != "" && ref.Namespace != Namespace {
		return []Problem{r.doc.problem(r.field+".ref.namespace", "sinks must be in %s, got %q", Namespace, ref.Namespace)}
	}
	var found bool
	switch ref.APIVersion + " " + ref.Kind {
	case "serving.knative.dev/v1 Service":
		_, found = ix.services[ref.Name]
	case "eventing.knative.dev/v1alpha1 KafkaSink":
		_, found = ix.kafkaSinks[ref.Name]
	case "eventing.knative.dev/v1 Broker":
		found = ix.brokers[ref.Name]
	default:
		return []Problem{r.doc.problem(r.field+".ref", "unsupported sink %s %s", ref.APIVersion, ref.Kind)}
	}
	if !found {
		return []Problem{r.doc.problem(r.field+".ref", "%s %q does not exist in the knative/ and eventing/ renders of this environment", ref.Kind, ref.Name)}
	}
	return nil
}

func sortedKeys[K interface{ ~string | ~int32 }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
