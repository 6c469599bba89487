package validate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestEveryEnvironmentPassesTheKnativeValidationAndTheProjectRules(t *testing.T) {
	for _, env := range Environments {
		t.Run(env, func(t *testing.T) {
			e := loadEnvironment(t, env)
			if len(e.Knative) == 0 || len(e.Eventing) == 0 {
				t.Fatalf("empty render: %d knative, %d eventing documents", len(e.Knative), len(e.Eventing))
			}
			assertNoProblems(t, CheckEnvironment(context.Background(), e))
		})
	}
}

func TestEveryEnvironmentRendersTheSameResources(t *testing.T) {
	ids := func(docs []Document) []string {
		var out []string
		for _, d := range docs {
			out = append(out, d.GVK()+" "+d.Name)
		}
		slices.Sort(out)
		return out
	}
	base := loadEnvironment(t, "base")
	for _, env := range Environments[1:] {
		e := loadEnvironment(t, env)
		if got, want := ids(e.Knative), ids(base.Knative); !slices.Equal(got, want) {
			t.Errorf("knative/overlays/%s renders %v, knative/base renders %v: overlays must only patch", env, got, want)
		}
	}
}

func TestFuncYAMLDescribesTheBundle(t *testing.T) {
	assertNoProblems(t, CheckFuncYAML(filepath.Join(repoRoot, "func.yaml")))
}

func TestFuncYAMLCheckCatchesALocalValue(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "func.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	planted := strings.Replace(string(data), "value: '{{ env:DATABASE_URL }}'", "value: postgres://gamemetrics@localhost:5432/gamemetrics?sslmode=disable", 1)
	path := filepath.Join(t.TempDir(), "func.yaml")
	if err := os.WriteFile(path, []byte(planted), 0o644); err != nil {
		t.Fatal(err)
	}
	assertOnlyProblem(t, CheckFuncYAML(path), "run.envs.DATABASE_URL: literal value")
}

// Each fixture in testdata/manifests plants one mistake; the same
// CheckDocument that validates the real renders must catch it.
func TestDocumentChecksCatchPlantedMistakes(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"service-min-above-max.yaml", "max-scale=10 is less than min-scale=20"},
		{"service-bad-metric.yaml", "autoscaling.knative.dev/metric: invalid value: latency"},
		{"service-unknown-field.yaml", `unknown field "containerConcurency"`},
		{"service-timeout-too-long.yaml", "timeoutSeconds: expected 0 <= 3600 <= 600"},
		{"service-reserved-env.yaml", `"PORT" is a reserved environment variable`},
		{"service-privilege-escalation.yaml", "allowPrivilegeEscalation: must be false"},
		{"service-wrong-probe.yaml", "livenessProbe.httpGet.path: must be /health/liveness"},
		{"service-secret-literal.yaml", "KAFKA_SASL_PASSWORD holds a secret"},
		{"kafkasource-ordering-under-delivery.yaml", "unknown field spec.delivery.ordering"},
		{"kafkasource-missing-bootstrap.yaml", "spec.bootstrapServers is required"},
		{"kafkasource-missing-topics.yaml", "spec.topics is required"},
		{"kafkasource-bad-backoff-delay.yaml", `spec.delivery.backoffDelay: ISO-8601 duration "500ms"`},
		{"kafkasource-bad-backoff-policy.yaml", `spec.delivery.backoffPolicy "fibonacci"`},
		{"kafkasource-bad-offset.yaml", `spec.initialOffset "oldest"`},
		{"kafkasource-bad-ordering.yaml", `spec.ordering "random"`},
		{"kafkasource-v1beta1.yaml", "use sources.knative.dev/v1"},
		{"kafkasource-empty-sink.yaml", "spec.sink: ref or uri is required"},
		{"kafkasink-bad-content-mode.yaml", `spec.contentMode "avro"`},
		{"kafkatopic-insync-above-replicas.yaml", "min.insync.replicas: 3 exceeds replicas 2"},
		{"kafkauser-no-acls.yaml", "every user carries simple ACLs"},
		{"kafka-no-authorization.yaml", "spec.kafka.authorization: must be simple"},
		{"externalsecret-other-store.yaml", "must be ClusterSecretStore aws-secrets-manager"},
		{"job-root.yaml", "allowPrivilegeEscalation: must be false"},
		{"pingsource-no-timezone.yaml", "spec.timezone: must be explicit"},
		{"pingsource-bad-timezone.yaml", "unknown time zone Mars/Olympus_Mons"},
		{"pingsource-every.yaml", "unsupported descriptor @every"},
		{"pingsource-data-not-json.yaml", "spec.data: invalid value"},
		{"networkpolicy-unknown-field.yaml", `unknown field "egres"`},
		{"secret.yaml", "Secrets must not be committed"},
		{"unknown-kind.yaml", `unexpected resource "serving.knative.dev/v1beta1 Service"`},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".yaml"), func(t *testing.T) {
			assertOnlyProblem(t, checkFixture(t, tt.file), tt.want)
		})
	}
}

func TestBaselineFixturesAreClean(t *testing.T) {
	for _, file := range []string{"service-good.yaml", "kafkasource-good.yaml", "pingsource-good.yaml"} {
		t.Run(strings.TrimSuffix(file, ".yaml"), func(t *testing.T) {
			assertNoProblems(t, checkFixture(t, file))
		})
	}
}

func checkFixture(t *testing.T, file string) []Problem {
	t.Helper()
	docs, err := LoadFile(filepath.Join("testdata", "manifests", file))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("%s: want one document, got %d", file, len(docs))
	}
	return CheckDocument(context.Background(), docs[0])
}

// mutation edits one rendered document of an environment.
type mutation struct {
	eventing bool   // edit the eventing/ render, else knative/
	ref      string // Kind/name of the document to edit
	old, new string // text replaced once
}

func (m mutation) apply(t *testing.T, e Environment) Environment {
	t.Helper()
	docs := slices.Clone(e.Knative)
	if m.eventing {
		docs = slices.Clone(e.Eventing)
	}
	found := false
	for i, d := range docs {
		if d.Ref() != m.ref {
			continue
		}
		found = true
		raw := string(d.Raw)
		if !strings.Contains(raw, m.old) {
			t.Fatalf("%s in %s does not contain %q; update the test", m.ref, d.Source, m.old)
		}
		edited, err := Split(d.Source, []byte(strings.Replace(raw, m.old, m.new, 1)))
		if err != nil || len(edited) != 1 {
			t.Fatalf("re-split %s: %v", m.ref, err)
		}
		docs[i] = edited[0]
	}
	if !found {
		t.Fatalf("no %s in the render", m.ref)
	}
	if m.eventing {
		e.Eventing = docs
	} else {
		e.Knative = docs
	}
	return e
}

// The rules that span documents, shown to catch one planted mistake each
// in an otherwise correct production render.
func TestEnvironmentChecksCatchPlantedMistakes(t *testing.T) {
	tests := []struct {
		name string
		mut  mutation
		want string
	}{
		{
			name: "an internal function made public",
			mut:  mutation{ref: "Service/process", old: "networking.knative.dev/visibility: cluster-local", new: "app.kubernetes.io/visibility: public"},
			want: "only ingest and report may be public",
		},
		{
			name: "a public function made cluster-local",
			mut:  mutation{ref: "Service/report", old: "app.kubernetes.io/component: function", new: "networking.knative.dev/visibility: cluster-local"},
			want: "report must be reachable from outside the cluster",
		},
		{
			name: "a KafkaSource sink naming a Service that does not exist",
			mut:  mutation{eventing: true, ref: "KafkaSource/gamemetrics-events", old: "name: process", new: "name: processor"},
			want: `Service "processor" does not exist`,
		},
		{
			name: "a dead letter sink naming a KafkaSink that does not exist",
			mut:  mutation{eventing: true, ref: "KafkaSource/gamemetrics-events", old: "name: gamemetrics-events-dlq", new: "name: gamemetrics-dlq"},
			want: `KafkaSink "gamemetrics-dlq" does not exist`,
		},
		{
			name: "a PingSource sink naming a Service that does not exist",
			mut:  mutation{eventing: true, ref: "PingSource/report-weekly", old: "kind: Service\n      name: report", new: "kind: Service\n      name: reports"},
			want: `Service "reports" does not exist`,
		},
		{
			name: "the namespace only warning about pod security",
			mut:  mutation{ref: "Namespace/gamemetrics", old: "pod-security.kubernetes.io/enforce: restricted", new: "pod-security.kubernetes.io/enforce: baseline"},
			want: "pod-security.kubernetes.io/enforce: must be \"restricted\"",
		},
		{
			name: "a function given another function's IAM role",
			mut:  mutation{ref: "ServiceAccount/gamemetrics-retain", old: "${CLUSTER_NAME}-retain", new: "${CLUSTER_NAME}-report"},
			want: "role must be ${CLUSTER_NAME}-retain",
		},
		{
			name: "a function connecting as the master user",
			mut:  mutation{ref: "Service/report", old: "name: gamemetrics-postgres\n", new: "name: gamemetrics-postgres-master\n"},
			want: "never as the master user",
		},
		{
			name: "a function using another function's Kafka user",
			mut:  mutation{ref: "Service/recommend", old: "key: user\n              name: kafka-recommend-credentials", new: "key: user\n              name: kafka-ingest-credentials"},
			want: "kafka-ingest", // its own user rule, and kafka-ingest may not write recommendations
		},
		{
			name: "ingest's Kafka user unable to write the events topic",
			mut:  mutation{ref: "KafkaUser/kafka-ingest", old: "- Write\n      - Describe\n      resource:\n        name: gamemetrics.events\n", new: "- Describe\n      resource:\n        name: gamemetrics.events\n"},
			want: "KafkaUser kafka-ingest may not Write it",
		},
		{
			name: "the KafkaSource's user not allowed in its consumer group",
			mut:  mutation{ref: "KafkaUser/kafka-process", old: "name: gamemetrics-process\n", new: "name: gamemetrics-processor\n"},
			want: "KafkaUser kafka-process may not Read group gamemetrics-process",
		},
		{
			name: "a Secret no ExternalSecret creates",
			mut:  mutation{ref: "ExternalSecret/gamemetrics-redis", old: "target:\n    name: gamemetrics-redis", new: "target:\n    name: gamemetrics-cache"},
			want: "Secret gamemetrics-redis is not created by any ExternalSecret",
		},
		{
			name: "a Service without the RDS CA bundle",
			mut:  mutation{ref: "Service/process", old: "mountPath: /etc/gamemetrics/rds-ca", new: "mountPath: /etc/ssl/rds"},
			want: "mount the ConfigMap rds-ca-bundle",
		},
		{
			name: "ingest scaled to zero in production",
			mut:  mutation{ref: "Service/ingest", old: `autoscaling.knative.dev/min-scale: "2"`, new: `autoscaling.knative.dev/min-scale: "0"`},
			want: "must stay warm in production",
		},
		{
			name: "ingest unable to reach Kafka",
			mut:  mutation{ref: "NetworkPolicy/ingest-egress", old: "    - port: 9092\n      protocol: TCP\n", new: "    - port: 9093\n      protocol: TCP\n"},
			want: "ingest",
		},
		{
			name: "process allowed to reach the internet",
			mut:  mutation{ref: "NetworkPolicy/process-egress", old: "- port: 6379\n      protocol: TCP", new: "- port: 6379\n      protocol: TCP\n    - port: 443\n      protocol: TCP"},
			want: "process may open port 443, which it does not use",
		},
		{
			name: "the default deny policy gone",
			mut:  mutation{ref: "NetworkPolicy/default-deny-all", old: "- Egress", new: ""},
			want: "no default-deny policy",
		},
		{
			name: "a secret read from an undocumented Secret",
			mut:  mutation{ref: "Service/process", old: "name: gamemetrics-postgres", new: "name: postgres"},
			want: "secret postgres key DATABASE_URL is not one of the documented secrets",
		},
		{
			name: "an image other than the placeholder",
			mut:  mutation{ref: "Service/notify", old: "image: gamemetrics", new: "image: gamemetrics:latest"},
			want: `must be the placeholder "gamemetrics"`,
		},
		{
			name: "the KafkaSource talking to Kafka without SASL",
			mut:  mutation{eventing: true, ref: "KafkaSource/gamemetrics-events", old: "enable: true", new: "enable: false"},
			want: "the Kafka listener requires SASL/SCRAM",
		},
		{
			name: "more consumers than partitions",
			mut:  mutation{eventing: true, ref: "KafkaSource/gamemetrics-events", old: "consumers: 6", new: "consumers: 48"},
			want: "48 consumers for 24 partitions",
		},
		{
			name: "the dead letter topic not declared",
			mut:  mutation{eventing: true, ref: "KafkaTopic/gamemetrics-events-dlq", old: "topicName: gamemetrics.events.dlq", new: "topicName: gamemetrics.dead"},
			want: `"gamemetrics.events.dlq"`,
		},
		{
			name: "a placeholder deploy.sh does not substitute",
			mut:  mutation{ref: "ConfigMap/gamemetrics-config", old: "LOG_LEVEL: info", new: "LOG_LEVEL: ${LOG_LEVEL}"},
			want: "unknown placeholder ${LOG_LEVEL}",
		},
		{
			name: "a resource outside the gamemetrics namespace",
			mut:  mutation{eventing: true, ref: "PingSource/retain-daily", old: "namespace: gamemetrics", new: "namespace: default"},
			want: `must be "gamemetrics", got "default"`,
		},
	}
	prod := loadEnvironment(t, "production")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertOnlyProblem(t, CheckEnvironment(context.Background(), tt.mut.apply(t, prod)), tt.want)
		})
	}
}
