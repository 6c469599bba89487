package validate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gamemetrics/gamemetrics/shared/eventing"
)

// KafkaSource and KafkaSink have no Go module that resolves here; they are
// parsed and validated by shared/eventing, the same code the local eventing
// runtime loads them with, so the two can never disagree about what a valid
// manifest is.

// parseKafkaCRD runs one KafkaSource or KafkaSink document through
// eventing.ParseManifests, one problem per error it reports.
func parseKafkaCRD(d Document) (*eventing.Manifests, []Problem) {
	m, err := eventing.ParseManifests(d.Source, d.Raw)
	if err == nil {
		return m, nil
	}
	var ps []Problem
	var joined interface{ Unwrap() []error }
	errs := []error{err}
	if errors.As(err, &joined) {
		errs = joined.Unwrap()
	}
	for _, e := range errs {
		ps = append(ps, d.problem("", "%v", e))
	}
	return nil, ps
}

func checkKafkaSource(d Document) (*eventing.KafkaSource, []Problem) {
	m, ps := parseKafkaCRD(d)
	if m == nil || len(m.KafkaSources) != 1 {
		return nil, ps
	}
	ks := &m.KafkaSources[0]
	if ks.Spec.Delivery == nil || ks.Spec.Delivery.DeadLetterSink == nil {
		ps = append(ps, d.problem("spec.delivery.deadLetterSink", "required: without one, a record that keeps failing is committed and lost"))
	}
	return ks, ps
}

func checkKafkaSink(d Document) (*eventing.KafkaSink, []Problem) {
	m, ps := parseKafkaCRD(d)
	if m == nil || len(m.KafkaSinks) != 1 {
		return nil, ps
	}
	return &m.KafkaSinks[0], ps
}

// secretRef returns the Secret name and key of a KafkaSource SASL value.
func secretRef(v *eventing.SecretValue) (name, key string, ok bool) {
	if v == nil || v.SecretKeyRef == nil {
		return "", "", false
	}
	return v.SecretKeyRef.Name, v.SecretKeyRef.Key, true
}

// The Strimzi CRDs have no Go module here either; these structs mirror the
// parts of kafka.strimzi.io/v1beta2 that GameMetrics uses, decoded strictly
// (a field GameMetrics does not use is a mistake until a struct field says
// otherwise).

// KafkaTopic mirrors Strimzi KafkaTopic.
type KafkaTopic struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		TopicName  string            `json:"topicName,omitempty"`
		Partitions int32             `json:"partitions"`
		Replicas   int32             `json:"replicas"`
		Config     map[string]string `json:"config,omitempty"`
	} `json:"spec"`
}

// Topic is the Kafka topic name (spec.topicName, else metadata.name).
func (kt *KafkaTopic) Topic() string {
	if kt.Spec.TopicName != "" {
		return kt.Spec.TopicName
	}
	return kt.Name
}

func checkKafkaTopic(d Document) (*KafkaTopic, []Problem) {
	kt, ps := decodeStrict[KafkaTopic](d)
	if kt == nil {
		return nil, ps
	}
	if kt.Labels["strimzi.io/cluster"] == "" {
		ps = append(ps, d.problem("metadata.labels", "missing strimzi.io/cluster: the Topic Operator ignores the topic"))
	}
	if kt.Spec.Partitions < 1 {
		ps = append(ps, d.problem("spec.partitions", "must be at least 1, got %d", kt.Spec.Partitions))
	}
	if kt.Spec.Replicas < 1 {
		ps = append(ps, d.problem("spec.replicas", "must be at least 1, got %d", kt.Spec.Replicas))
	}
	for _, k := range []string{"retention.ms", "min.insync.replicas"} {
		v, ok := kt.Spec.Config[k]
		if !ok {
			ps = append(ps, d.problem("spec.config", "missing %s", k))
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 && k == "min.insync.replicas" || n < -1 {
			ps = append(ps, d.problem("spec.config."+k, "invalid value %q", v))
		}
		if k == "min.insync.replicas" && err == nil && n > int64(kt.Spec.Replicas) {
			ps = append(ps, d.problem("spec.config."+k, "%d exceeds replicas %d: producers with acks=all would always fail", n, kt.Spec.Replicas))
		}
	}
	return kt, ps
}

// Kafka mirrors the Strimzi Kafka resource as GameMetrics configures it.
type Kafka struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Kafka struct {
			Version   string `json:"version"`
			Listeners []struct {
				Name           string `json:"name"`
				Port           int32  `json:"port"`
				Type           string `json:"type"`
				TLS            bool   `json:"tls"`
				Authentication *struct {
					Type string `json:"type"`
				} `json:"authentication,omitempty"`
			} `json:"listeners"`
			Authorization *struct {
				Type string `json:"type"`
			} `json:"authorization,omitempty"`
			Rack *struct {
				TopologyKey string `json:"topologyKey"`
			} `json:"rack,omitempty"`
			Config map[string]any `json:"config,omitempty"`
		} `json:"kafka"`
		EntityOperator *struct {
			TopicOperator *struct{} `json:"topicOperator,omitempty"`
			UserOperator  *struct{} `json:"userOperator,omitempty"`
		} `json:"entityOperator,omitempty"`
	} `json:"spec"`
}

func checkKafka(d Document) (*Kafka, []Problem) {
	k, ps := decodeStrict[Kafka](d)
	if k == nil {
		return nil, ps
	}
	if k.Annotations["strimzi.io/kraft"] != "enabled" || k.Annotations["strimzi.io/node-pools"] != "enabled" {
		ps = append(ps, d.problem("metadata.annotations", "Strimzi runs Kafka in KRaft mode with node pools only: set strimzi.io/kraft and strimzi.io/node-pools to enabled"))
	}
	for i, l := range k.Spec.Kafka.Listeners {
		if l.Authentication == nil || l.Authentication.Type != "scram-sha-512" {
			ps = append(ps, d.problem(fmt.Sprintf("spec.kafka.listeners[%d].authentication", i), "every listener authenticates clients with scram-sha-512 (the KafkaUsers' credentials)"))
		}
	}
	if a := k.Spec.Kafka.Authorization; a == nil || a.Type != "simple" {
		ps = append(ps, d.problem("spec.kafka.authorization", "must be simple: without it the KafkaUsers' ACLs are not enforced"))
	}
	if v, _ := k.Spec.Kafka.Config["auto.create.topics.enable"].(string); v != "false" {
		ps = append(ps, d.problem("spec.kafka.config.auto.create.topics.enable", `must be "false": topics are the declared KafkaTopics only`))
	}
	if e := k.Spec.EntityOperator; e == nil || e.TopicOperator == nil || e.UserOperator == nil {
		ps = append(ps, d.problem("spec.entityOperator", "needs topicOperator and userOperator: they create the KafkaTopics and KafkaUsers"))
	}
	return k, ps
}

// KafkaNodePool mirrors Strimzi KafkaNodePool.
type KafkaNodePool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Replicas int32    `json:"replicas"`
		Roles    []string `json:"roles"`
		Storage  struct {
			Type        string `json:"type"`
			Size        string `json:"size"`
			Class       string `json:"class"`
			DeleteClaim bool   `json:"deleteClaim"`
		} `json:"storage"`
		Resources map[string]map[string]string `json:"resources,omitempty"`
	} `json:"spec"`
}

// KafkaUser mirrors Strimzi KafkaUser with SCRAM authentication and
// simple authorization.
type KafkaUser struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Authentication struct {
			Type     string `json:"type"`
			Password *struct {
				ValueFrom struct {
					SecretKeyRef struct {
						Name string `json:"name"`
						Key  string `json:"key"`
					} `json:"secretKeyRef"`
				} `json:"valueFrom"`
			} `json:"password,omitempty"`
		} `json:"authentication"`
		Authorization struct {
			Type string `json:"type"`
			ACLs []ACL  `json:"acls"`
		} `json:"authorization"`
	} `json:"spec"`
}

// ACL is one Strimzi simple-authorization rule.
type ACL struct {
	Resource struct {
		Type        string `json:"type"`
		Name        string `json:"name"`
		PatternType string `json:"patternType"`
	} `json:"resource"`
	Operations []string `json:"operations"`
}

// Allows reports whether the user may perform op on the topic or group.
func (u *KafkaUser) Allows(resourceType, name, op string) bool {
	for _, a := range u.Spec.Authorization.ACLs {
		if a.Resource.Type != resourceType {
			continue
		}
		match := a.Resource.Name == name
		if a.Resource.PatternType == "prefix" {
			match = strings.HasPrefix(name, a.Resource.Name)
		}
		if !match {
			continue
		}
		for _, o := range a.Operations {
			if o == op || o == "All" {
				return true
			}
		}
	}
	return false
}

func checkKafkaUser(d Document) (*KafkaUser, []Problem) {
	u, ps := decodeStrict[KafkaUser](d)
	if u == nil {
		return nil, ps
	}
	if u.Labels["strimzi.io/cluster"] == "" {
		ps = append(ps, d.problem("metadata.labels", "missing strimzi.io/cluster: the User Operator ignores the user"))
	}
	if u.Spec.Authentication.Type != "scram-sha-512" {
		ps = append(ps, d.problem("spec.authentication.type", "must be scram-sha-512 (the listener's mechanism)"))
	}
	if p := u.Spec.Authentication.Password; p == nil || p.ValueFrom.SecretKeyRef.Name != u.Name+"-credentials" || p.ValueFrom.SecretKeyRef.Key != "password" {
		ps = append(ps, d.problem("spec.authentication.password", "must come from secretKeyRef %s-credentials/password (External Secrets, terraform/modules/kafka-users)", u.Name))
	}
	if u.Spec.Authorization.Type != "simple" || len(u.Spec.Authorization.ACLs) == 0 {
		ps = append(ps, d.problem("spec.authorization", "every user carries simple ACLs: without them it may do nothing (or, with a superuser, everything)"))
	}
	for i, a := range u.Spec.Authorization.ACLs {
		if a.Resource.Type == "topic" && a.Resource.PatternType != "prefix" && a.Resource.Name == "*" {
			ps = append(ps, d.problem(fmt.Sprintf("spec.authorization.acls[%d]", i), "no wildcard topics: name the topics the client uses"))
		}
	}
	return u, ps
}
