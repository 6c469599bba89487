package validate

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"

	"github.com/gamemetrics/gamemetrics/shared/eventing"
	"github.com/gamemetrics/gamemetrics/shared/kafka"
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
	// Egress lists the TCP ports the function may open (besides DNS), and
	// must open: its NetworkPolicies allow exactly these.
	Egress []int32
	// Produces lists the topics the function writes itself (its KafkaUser
	// kafka-<name> must be allowed to); a function that produces reads its
	// Kafka credentials from kafka-<name>-credentials.
	Produces []string
}

// Functions returns the six functions served by the one image.
func Functions() []Function {
	stores := []int32{5432, 6379}
	web := []int32{443, 5432, 6379}
	fs := []Function{
		{Name: "ingest", Public: true, Egress: []int32{5432, 6379, 9092}, Produces: []string{kafka.TopicEvents, kafka.TopicRejected}},
		{Name: "process", Egress: stores},
		{Name: "recommend", Egress: []int32{443, 5432, 9092}, Produces: []string{kafka.TopicRecommendations}},
		{Name: "notify", Egress: web},
		{Name: "retain", Egress: web},
		{Name: "report", Public: true, Egress: web},
	}
	// Every function exports its traces over OTLP/HTTP to Alloy in
	// namespace monitoring (monitoring/helm/alloy.yaml).
	for i := range fs {
		fs[i].Egress = append(slices.Clone(fs[i].Egress), 4318)
	}
	return fs
}

// Secrets the manifests may read, with their keys. External Secrets creates
// each of them from AWS Secrets Manager (knative/base/externalsecrets.yaml);
// a function reads only its own Kafka credentials, and only the migration
// Job reads the master user's.
var allowedSecretKeys = map[string][]string{
	"gamemetrics-postgres":        {"DATABASE_URL", "PGUSER", "PGPASSWORD"},
	"gamemetrics-postgres-master": {"DATABASE_URL"},
	"gamemetrics-redis":           {"REDIS_URL"},
}

var kafkaCredentialKeys = []string{"user", "password", "protocol", "sasl.mechanism"}

// secretKeyAllowed reports whether key of secret may be read at all.
func secretKeyAllowed(secret, key string) bool {
	if keys, ok := allowedSecretKeys[secret]; ok {
		return slices.Contains(keys, key)
	}
	return strings.HasPrefix(secret, "kafka-") && strings.HasSuffix(secret, "-credentials") && slices.Contains(kafkaCredentialKeys, key)
}

// Topics that every deployed environment must declare: the platform's.
var requiredTopics = kafka.Topics()

// placeholders that knative/deploy.sh substitutes; nothing else may look
// like a shell variable in a rendered manifest (DeployPlaceholders checks
// that deploy.sh substitutes exactly these).
var placeholderRE = regexp.MustCompile(`\$\{[^}]*\}`)

// AllowedPlaceholders are the variables knative/deploy.sh fills in.
var AllowedPlaceholders = []string{"AWS_ACCOUNT_ID", "CLUSTER_NAME", "DOMAIN", "ACM_CERTIFICATE_ARN", "KARPENTER_NODE_ROLE", "KARPENTER_QUEUE", "RDS_MASTER_SECRET_ARN"}

// rdsCABundle is the ConfigMap deploy.sh step 2 (or the GitOps bootstrap)
// creates from the downloaded RDS CA bundle; it is not in any render.
const rdsCABundle = "rds-ca-bundle"

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
	kafkaSinks      map[string]*eventing.KafkaSink
	brokers         map[string]bool
	topics          map[string]*KafkaTopic
	kafkas          map[string]bool
	users           map[string]*KafkaUser
	userDocs        map[string]Document
	secrets         map[string]bool // targets of ExternalSecrets
}

// CheckEnvironment checks every document of an environment on its own and
// then the rules that span documents: namespace, visibility, IRSA, network
// policies, secrets and where they come from, Kafka users and their ACLs,
// and that every sink resolves.
func CheckEnvironment(ctx context.Context, env Environment) []Problem {
	var ps []Problem
	all := append(slices.Clone(env.Knative), env.Eventing...)
	for _, d := range all {
		ps = append(ps, CheckDocument(ctx, d)...)
		ps = append(ps, placeholderProblems(d, AllowedPlaceholders)...)
		if d.Kind != "Namespace" && d.Namespace != Namespace {
			ps = append(ps, d.problem("metadata.namespace", "must be %q, got %q", Namespace, d.Namespace))
		}
	}

	ix := buildIndex(all)
	ps = append(ps, namespaceProblems(env)...)
	ps = append(ps, serviceProblems(env, ix)...)
	ps = append(ps, jobProblems(env, ix)...)
	ps = append(ps, kafkaProblems(env, ix)...)
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
		kafkaSinks:      map[string]*eventing.KafkaSink{},
		brokers:         map[string]bool{},
		topics:          map[string]*KafkaTopic{},
		kafkas:          map[string]bool{},
		users:           map[string]*KafkaUser{},
		userDocs:        map[string]Document{},
		secrets:         map[string]bool{},
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
			if ks, _ := checkKafkaSink(d); ks != nil {
				ix.kafkaSinks[ks.Metadata.Name] = ks
			}
		case "eventing.knative.dev/v1 Broker":
			ix.brokers[d.Name] = true
		case "kafka.strimzi.io/v1beta2 KafkaTopic":
			if kt, _ := decodeStrict[KafkaTopic](d); kt != nil {
				ix.topics[kt.Topic()] = kt
			}
		case "kafka.strimzi.io/v1beta2 Kafka":
			ix.kafkas[d.Name] = true
		case "kafka.strimzi.io/v1beta2 KafkaUser":
			if u, _ := decodeStrict[KafkaUser](d); u != nil {
				ix.users[u.Name] = u
				ix.userDocs[u.Name] = d
			}
		case "external-secrets.io/v1 ExternalSecret":
			if es, _ := decodeStrict[ExternalSecret](d); es != nil {
				ix.secrets[es.Spec.Target.Name] = true
			}
		}
	}
	return ix
}

func placeholderProblems(d Document, allowed []string) []Problem {
	var ps []Problem
	for _, m := range placeholderRE.FindAllString(string(d.Raw), -1) {
		if !slices.Contains(allowed, strings.TrimSuffix(strings.TrimPrefix(m, "${"), "}")) {
			ps = append(ps, d.problem("", "unknown placeholder %s: knative/deploy.sh only substitutes %v", m, allowed))
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

// secretRefProblems checks one secretKeyRef: a documented key, of a Secret
// an ExternalSecret of the render creates.
func secretRefProblems(d Document, ix *index, field, name, key string) []Problem {
	if !secretKeyAllowed(name, key) {
		return []Problem{d.problem(field, "secret %s key %s is not one of the documented secrets (%v, kafka-<user>-credentials %v)", name, key, allowedSecretKeys, kafkaCredentialKeys)}
	}
	if !ix.secrets[name] {
		return []Problem{d.problem(field, "Secret %s is not created by any ExternalSecret in the render: the pod would never start", name)}
	}
	return nil
}

// volumeProblems: every ConfigMap a pod mounts is in the render, or the RDS
// CA bundle deploy.sh creates.
func volumeProblems(d Document, ix *index, field string, vols []corev1.Volume) []Problem {
	var ps []Problem
	for i, v := range vols {
		if v.ConfigMap != nil && !ix.configMaps[v.ConfigMap.Name] && v.ConfigMap.Name != rdsCABundle {
			ps = append(ps, d.problem(fmt.Sprintf("%s.volumes[%d]", field, i), "ConfigMap %q is neither in the render nor created by deploy.sh", v.ConfigMap.Name))
		}
		if v.Secret != nil {
			ps = append(ps, d.problem(fmt.Sprintf("%s.volumes[%d]", field, i), "mount no Secret volumes: read secrets key by key with secretKeyRef"))
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
		ps = append(ps, serviceAccountProblems(ix, d, f, spec.ServiceAccountName)...)
		ps = append(ps, volumeProblems(d, ix, "spec.template.spec", spec.Volumes)...)
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
			ps = append(ps, kafkaClientProblems(env, ix, d, f, c)...)
			for j, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				at := fmt.Sprintf("%s.env[%d].valueFrom.secretKeyRef", field, j)
				ps = append(ps, secretRefProblems(d, ix, at, ref.Name, ref.Key)...)
				switch {
				case ref.Name == "gamemetrics-postgres-master":
					ps = append(ps, d.problem(at, "functions connect as the application role (gamemetrics-postgres), never as the master user"))
				case strings.HasPrefix(ref.Name, "kafka-") && ref.Name != "kafka-"+name+"-credentials":
					ps = append(ps, d.problem(at, "%s must use its own Kafka user kafka-%s, not %s", name, name, strings.TrimSuffix(ref.Name, "-credentials")))
				}
			}
			if url := envValue(c.Env, "DATABASE_URL"); url != "" {
				ps = append(ps, d.problem(field+".env", "DATABASE_URL must come from the Secret gamemetrics-postgres"))
			}
			mounted := false
			for _, m := range c.VolumeMounts {
				mounted = mounted || m.MountPath == "/etc/gamemetrics/rds-ca"
			}
			if !mounted {
				ps = append(ps, d.problem(field+".volumeMounts", "mount the ConfigMap %s at /etc/gamemetrics/rds-ca: DATABASE_URL verifies the server against it (sslrootcert)", rdsCABundle))
			}
		}
		ps = append(ps, networkPolicyProblems(d, ix, f, s)...)
	}
	return ps
}

// kafkaClientProblems: a function that produces reads its own Kafka user's
// credentials, and that user may write what the function produces.
func kafkaClientProblems(env Environment, ix *index, d Document, f Function, c corev1.Container) []Problem {
	if len(f.Produces) == 0 {
		return nil
	}
	var user string
	for _, e := range c.Env {
		if e.Name == "KAFKA_SASL_USERNAME" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			user = strings.TrimSuffix(e.ValueFrom.SecretKeyRef.Name, "-credentials")
		}
	}
	if user == "" {
		return []Problem{d.problem("spec.template.spec.containers", "%s produces to Kafka and needs KAFKA_SASL_USERNAME/PASSWORD from kafka-%s-credentials", f.Name, f.Name)}
	}
	u, ok := ix.users[user]
	if !ok {
		return []Problem{d.problem("spec.template.spec.containers", "no KafkaUser %s in the render", user)}
	}
	var ps []Problem
	for _, t := range f.Produces {
		if !u.Allows("topic", t, "Write") {
			ps = append(ps, ix.userDocs[user].problem("spec.authorization.acls", "%s produces to %s but KafkaUser %s may not Write it", f.Name, t, user))
		}
	}
	return ps
}

func serviceAccountProblems(ix *index, d Document, f Function, name string) []Problem {
	sa, ok := ix.serviceAccounts[name]
	if !ok {
		return []Problem{d.problem("spec.template.spec.serviceAccountName", "ServiceAccount %q is not in the render", name)}
	}
	if name != "gamemetrics-"+f.Name {
		return []Problem{d.problem("spec.template.spec.serviceAccountName", "%s runs as gamemetrics-%s (its own IRSA role), got %s", f.Name, f.Name, name)}
	}
	sad := ix.saDocs[name]
	arn, annotated := sa.Annotations["eks.amazonaws.com/role-arn"]
	if !annotated {
		return []Problem{sad.problem("metadata.annotations", "%s needs its IRSA eks.amazonaws.com/role-arn annotation (terraform/modules/iam creates a role per function)", f.Name)}
	}
	m := roleARNRE.FindStringSubmatch(arn)
	if m == nil {
		return []Problem{sad.problem("metadata.annotations.eks.amazonaws.com/role-arn", "not an IAM role ARN: %q", arn)}
	}
	if wantRole := "${CLUSTER_NAME}-" + f.Name; m[2] != wantRole {
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

// jobProblems: the migration Job reads the documented secrets and mounts
// the CA bundle; its image is the CLI placeholder deploy.sh pins.
func jobProblems(env Environment, ix *index) []Problem {
	var ps []Problem
	jobs := 0
	for _, d := range env.Knative {
		if d.GVK() != "batch/v1 Job" {
			continue
		}
		jobs++
		j, _ := decodeStrict[batchv1.Job](d)
		if j == nil {
			continue
		}
		spec := j.Spec.Template.Spec
		ps = append(ps, volumeProblems(d, ix, "spec.template.spec", spec.Volumes)...)
		cli := false
		for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
			cli = cli || c.Image == "gamemetrics-cli"
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					ps = append(ps, secretRefProblems(d, ix, "spec.template.spec.containers["+c.Name+"].env."+e.Name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)...)
				}
			}
		}
		if !cli {
			ps = append(ps, d.problem("spec.template.spec.containers", "the migration runs `gamemetrics migrate` from the gamemetrics-cli image"))
		}
	}
	if jobs == 0 && env.Deployed() {
		ps = append(ps, problemf("knative/"+env.Name, "Job/gamemetrics-migrate", "", "missing: nothing would migrate the schema before the Services start"))
	}
	return ps
}

// kafkaProblems: every KafkaUser and KafkaTopic belongs to a Kafka of the
// render, every user's credentials come from an ExternalSecret, and every
// topic a user's ACLs name is declared (in a deployed environment).
func kafkaProblems(env Environment, ix *index) []Problem {
	var ps []Problem
	for _, name := range sortedKeys(ix.users) {
		u, d := ix.users[name], ix.userDocs[name]
		if c := u.Labels["strimzi.io/cluster"]; !ix.kafkas[c] {
			ps = append(ps, d.problem("metadata.labels.strimzi.io/cluster", "no Kafka %q in the render", c))
		}
		if !ix.secrets[name+"-credentials"] {
			ps = append(ps, d.problem("spec.authentication.password", "Secret %s-credentials is not created by any ExternalSecret", name))
		}
		if !env.Deployed() {
			continue
		}
		for _, a := range u.Spec.Authorization.ACLs {
			if a.Resource.Type == "topic" && a.Resource.PatternType != "prefix" {
				if _, ok := ix.topics[a.Resource.Name]; !ok {
					ps = append(ps, d.problem("spec.authorization.acls", "ACL on topic %q, which no KafkaTopic declares", a.Resource.Name))
				}
			}
		}
	}
	return ps
}

// sinkRef is one sink, dead letter sink or subscriber reference.
type sinkRef struct {
	doc   Document
	field string
	dest  *duckv1.Destination
}

// destination converts the eventing parser's sink to Knative's type.
func destination(d *eventing.Destination) *duckv1.Destination {
	if d == nil {
		return &duckv1.Destination{}
	}
	out := &duckv1.Destination{}
	if d.Ref != nil {
		out.Ref = &duckv1.KReference{APIVersion: d.Ref.APIVersion, Kind: d.Ref.Kind, Name: d.Ref.Name, Namespace: d.Ref.Namespace}
	}
	if d.URI != "" {
		out.URI, _ = apis.ParseURL(d.URI)
	}
	return out
}

func eventingProblems(env Environment, ix *index) []Problem {
	var (
		ps   []Problem
		refs []sinkRef
	)
	for _, d := range env.Eventing {
		switch d.Kind {
		case "KafkaSource":
			ks, _ := checkKafkaSource(d)
			if ks == nil {
				continue
			}
			refs = append(refs, sinkRef{d, "spec.sink", destination(ks.Spec.Sink)})
			if ks.Spec.Delivery != nil && ks.Spec.Delivery.DeadLetterSink != nil {
				refs = append(refs, sinkRef{d, "spec.delivery.deadLetterSink", destination(ks.Spec.Delivery.DeadLetterSink)})
			}
			ps = append(ps, kafkaSourceEnvProblems(env, ix, d, ks)...)
		case "KafkaSink":
			ks := ix.kafkaSinks[d.Name]
			if ks == nil {
				continue
			}
			a := ks.Spec.Auth
			if a == nil || a.Secret == nil || a.Secret.Ref == nil {
				ps = append(ps, d.problem("spec.auth.secret.ref.name", "the KafkaSink must authenticate: a kafka-<user>-credentials Secret"))
				continue
			}
			ps = append(ps, userCanProblems(ix, d, "spec.auth.secret.ref.name", a.Secret.Ref.Name, "topic", ks.Spec.Topic, "Write")...)
			if env.Deployed() {
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

// userCanProblems: the Kafka user whose credentials Secret is named secret
// exists and may perform op on the resource.
func userCanProblems(ix *index, d Document, field, secret, resourceType, name, op string) []Problem {
	if !ix.secrets[secret] {
		return []Problem{d.problem(field, "Secret %s is not created by any ExternalSecret in the render", secret)}
	}
	user := strings.TrimSuffix(secret, "-credentials")
	u, ok := ix.users[user]
	if !ok {
		return []Problem{d.problem(field, "Secret %s names no KafkaUser %s in the render", secret, user)}
	}
	if !u.Allows(resourceType, name, op) {
		return []Problem{d.problem(field, "KafkaUser %s may not %s %s %s: add the ACL to knative/base/kafka.yaml", user, op, resourceType, name)}
	}
	return nil
}

func kafkaSourceEnvProblems(env Environment, ix *index, d Document, ks *eventing.KafkaSource) []Problem {
	var ps []Problem
	net := ks.Spec.Net
	if net == nil || net.SASL == nil || !net.SASL.Enable {
		return []Problem{d.problem("spec.net.sasl", "the Kafka listener requires SASL/SCRAM: set net.sasl.enable and the secretKeyRefs into kafka-<user>-credentials")}
	}
	var secret string
	for _, r := range []struct {
		field string
		ref   *eventing.SecretValue
	}{{"user", net.SASL.User}, {"password", net.SASL.Password}, {"type", net.SASL.Type}} {
		name, key, ok := secretRef(r.ref)
		if !ok {
			ps = append(ps, d.problem("spec.net.sasl."+r.field, "must be a secretKeyRef into kafka-<user>-credentials"))
			continue
		}
		ps = append(ps, secretRefProblems(d, ix, "spec.net.sasl."+r.field+".secretKeyRef", name, key)...)
		if secret != "" && name != secret {
			ps = append(ps, d.problem("spec.net.sasl."+r.field+".secretKeyRef", "user, password and type must come from one Secret, got %s and %s", secret, name))
		}
		secret = name
	}
	if secret != "" && ix.secrets[secret] {
		for _, t := range ks.Spec.Topics {
			ps = append(ps, userCanProblems(ix, d, "spec.net.sasl.user", secret, "topic", t, "Read")...)
		}
		ps = append(ps, userCanProblems(ix, d, "spec.net.sasl.user", secret, "group", ks.Spec.ConsumerGroup, "Read")...)
	}
	if env.Deployed() {
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
		return nil // URI sinks are validated by the parser.
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
