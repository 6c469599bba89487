package validate

import (
	"context"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
)

// The eventing-kafka-broker module is not served by the Go proxy, so the
// KafkaSource and KafkaSink types below mirror the upstream CRDs
// (control-plane/pkg/apis/sources/v1beta1/kafka_types.go and
// eventing/v1alpha1/kafka_sink_types.go). Decoding is strict: a field the CRD
// does not have, or a field in the wrong place (delivery.ordering), fails.
// Delivery and sink reuse the real Knative duck types and their Validate.

// KafkaSource mirrors sources.knative.dev/v1beta1 (and v1) KafkaSource.
type KafkaSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              KafkaSourceSpec `json:"spec"`
}

// KafkaSourceSpec mirrors the upstream spec; ordering is a spec field.
type KafkaSourceSpec struct {
	Consumers        *int32                       `json:"consumers,omitempty"`
	BootstrapServers []string                     `json:"bootstrapServers,omitempty"`
	Net              KafkaNetSpec                 `json:"net,omitempty"`
	Topics           []string                     `json:"topics,omitempty"`
	ConsumerGroup    string                       `json:"consumerGroup,omitempty"`
	InitialOffset    string                       `json:"initialOffset,omitempty"`
	Delivery         *eventingduckv1.DeliverySpec `json:"delivery,omitempty"`
	Ordering         *string                      `json:"ordering,omitempty"`

	duckv1.SourceSpec `json:",inline"`
}

// KafkaNetSpec mirrors the SASL and TLS settings of the Kafka bindings.
type KafkaNetSpec struct {
	SASL KafkaSASLSpec `json:"sasl,omitempty"`
	TLS  KafkaTLSSpec  `json:"tls,omitempty"`
}

// KafkaSASLSpec mirrors net.sasl.
type KafkaSASLSpec struct {
	Enable   bool                  `json:"enable,omitempty"`
	User     SecretValueFromSource `json:"user,omitempty"`
	Password SecretValueFromSource `json:"password,omitempty"`
	Type     SecretValueFromSource `json:"type,omitempty"`
}

// KafkaTLSSpec mirrors net.tls.
type KafkaTLSSpec struct {
	Enable bool                  `json:"enable,omitempty"`
	Cert   SecretValueFromSource `json:"cert,omitempty"`
	Key    SecretValueFromSource `json:"key,omitempty"`
	CACert SecretValueFromSource `json:"caCert,omitempty"`
}

// SecretValueFromSource is a value read from a Secret key.
type SecretValueFromSource struct {
	SecretKeyRef *corev1.SecretKeySelector `json:"secretKeyRef,omitempty"`
}

// Upstream defaults and enumerations.
const (
	offsetEarliest = "earliest"
	offsetLatest   = "latest"
	orderOrdered   = "ordered"
	orderUnordered = "unordered"
)

// SetDefaults applies the upstream defaults (consumers 1, initialOffset
// latest, ordering ordered, sink namespace = source namespace).
func (ks *KafkaSource) SetDefaults(ctx context.Context) {
	ctx = apis.WithinParent(ctx, ks.ObjectMeta)
	if ks.Spec.Consumers == nil {
		one := int32(1)
		ks.Spec.Consumers = &one
	}
	if ks.Spec.InitialOffset == "" {
		ks.Spec.InitialOffset = offsetLatest
	}
	if ks.Spec.Ordering == nil {
		o := orderOrdered
		ks.Spec.Ordering = &o
	}
	ks.Spec.Sink.SetDefaults(ctx)
	if ks.Spec.Delivery != nil {
		ks.Spec.Delivery.SetDefaults(ctx)
	}
}

// Validate mirrors the upstream KafkaSource validation.
func (ks *KafkaSource) Validate(ctx context.Context) *apis.FieldError {
	ctx = apis.WithinParent(ctx, ks.ObjectMeta)
	s := ks.Spec
	var errs *apis.FieldError
	if len(s.Topics) == 0 {
		errs = errs.Also(apis.ErrMissingField("topics"))
	}
	for i, t := range s.Topics {
		if t == "" {
			errs = errs.Also(apis.ErrInvalidArrayValue(t, "topics", i))
		}
	}
	if len(s.BootstrapServers) == 0 {
		errs = errs.Also(apis.ErrMissingField("bootstrapServers"))
	}
	for i, b := range s.BootstrapServers {
		if b == "" {
			errs = errs.Also(apis.ErrInvalidArrayValue(b, "bootstrapServers", i))
		}
	}
	switch s.InitialOffset {
	case offsetEarliest, offsetLatest:
	default:
		errs = errs.Also(apis.ErrInvalidValue(s.InitialOffset, "initialOffset"))
	}
	if s.Ordering != nil {
		switch *s.Ordering {
		case orderOrdered, orderUnordered:
		default:
			errs = errs.Also(apis.ErrInvalidValue(*s.Ordering, "ordering"))
		}
	}
	if s.Consumers != nil && *s.Consumers < 1 {
		errs = errs.Also(apis.ErrInvalidValue(*s.Consumers, "consumers"))
	}
	errs = errs.Also(s.SourceSpec.Validate(ctx))
	errs = errs.Also(s.Delivery.Validate(ctx).ViaField("delivery"))
	errs = errs.Also(s.Net.validate().ViaField("net"))
	return errs.ViaField("spec")
}

func (n KafkaNetSpec) validate() *apis.FieldError {
	var errs *apis.FieldError
	if n.SASL.Enable {
		errs = errs.Also(n.SASL.User.validate(true).ViaField("sasl", "user"))
		errs = errs.Also(n.SASL.Password.validate(true).ViaField("sasl", "password"))
		errs = errs.Also(n.SASL.Type.validate(false).ViaField("sasl", "type"))
	}
	if n.TLS.Enable {
		errs = errs.Also(n.TLS.Cert.validate(false).ViaField("tls", "cert"))
		errs = errs.Also(n.TLS.Key.validate(false).ViaField("tls", "key"))
		errs = errs.Also(n.TLS.CACert.validate(false).ViaField("tls", "caCert"))
	}
	return errs
}

func (v SecretValueFromSource) validate(required bool) *apis.FieldError {
	ref := v.SecretKeyRef
	if ref == nil {
		if required {
			return apis.ErrMissingField("secretKeyRef")
		}
		return nil
	}
	var errs *apis.FieldError
	if ref.Name == "" {
		errs = errs.Also(apis.ErrMissingField("secretKeyRef.name"))
	}
	if ref.Key == "" {
		errs = errs.Also(apis.ErrMissingField("secretKeyRef.key"))
	}
	return errs
}

func checkKafkaSource(ctx context.Context, d Document) (*KafkaSource, []Problem) {
	ks, ps := decodeStrict[KafkaSource](d)
	if ks == nil {
		return nil, ps
	}
	if ks.Spec.Delivery == nil || ks.Spec.Delivery.DeadLetterSink == nil {
		ps = append(ps, d.problem("spec.delivery.deadLetterSink", "required: without one, a record that keeps failing is committed and lost"))
	}
	ctx = apis.WithinCreate(ctx)
	ks.SetDefaults(ctx)
	if fe := ks.Validate(ctx); fe != nil {
		ps = append(ps, fieldProblems(d, fe)...)
	}
	return ks, ps
}

// KafkaSink mirrors eventing.knative.dev/v1alpha1 KafkaSink.
type KafkaSink struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              KafkaSinkSpec `json:"spec"`
}

// KafkaSinkSpec mirrors the upstream spec.
type KafkaSinkSpec struct {
	Topic             string         `json:"topic"`
	NumPartitions     *int32         `json:"numPartitions,omitempty"`
	ReplicationFactor *int16         `json:"replicationFactor,omitempty"`
	BootstrapServers  []string       `json:"bootstrapServers"`
	ContentMode       *string        `json:"contentMode,omitempty"`
	Auth              *KafkaSinkAuth `json:"auth,omitempty"`
}

// KafkaSinkAuth mirrors spec.auth.
type KafkaSinkAuth struct {
	Secret *KafkaSinkSecret `json:"secret,omitempty"`
}

// KafkaSinkSecret mirrors spec.auth.secret.
type KafkaSinkSecret struct {
	Ref *KafkaSinkSecretRef `json:"ref,omitempty"`
}

// KafkaSinkSecretRef names the Secret with protocol, sasl.mechanism, user,
// password (and optionally ca.crt, user.crt, user.key).
type KafkaSinkSecretRef struct {
	Name string `json:"name"`
}

// Validate mirrors the upstream KafkaSink validation.
func (ks *KafkaSink) Validate() *apis.FieldError {
	s := ks.Spec
	var errs *apis.FieldError
	if s.Topic == "" {
		errs = errs.Also(apis.ErrMissingField("topic"))
	}
	if len(s.BootstrapServers) == 0 {
		errs = errs.Also(apis.ErrMissingField("bootstrapServers"))
	}
	if s.NumPartitions != nil && *s.NumPartitions <= 0 {
		errs = errs.Also(apis.ErrInvalidValue(*s.NumPartitions, "numPartitions"))
	}
	if s.ReplicationFactor != nil && *s.ReplicationFactor <= 0 {
		errs = errs.Also(apis.ErrInvalidValue(*s.ReplicationFactor, "replicationFactor"))
	}
	if s.ContentMode != nil && *s.ContentMode != "binary" && *s.ContentMode != "structured" {
		errs = errs.Also(apis.ErrInvalidValue(*s.ContentMode, "contentMode"))
	}
	if s.Auth != nil && (s.Auth.Secret == nil || s.Auth.Secret.Ref == nil || s.Auth.Secret.Ref.Name == "") {
		errs = errs.Also(apis.ErrMissingField("auth.secret.ref.name"))
	}
	return errs.ViaField("spec")
}

func checkKafkaSink(d Document) (*KafkaSink, []Problem) {
	ks, ps := decodeStrict[KafkaSink](d)
	if ks == nil {
		return nil, ps
	}
	if fe := ks.Validate(); fe != nil {
		ps = append(ps, fieldProblems(d, fe)...)
	}
	return ks, ps
}

// KafkaTopic mirrors the parts of Strimzi kafka.strimzi.io/v1beta2 KafkaTopic
// that GameMetrics uses.
type KafkaTopic struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              KafkaTopicSpec `json:"spec"`
}

// KafkaTopicSpec mirrors the Strimzi spec.
type KafkaTopicSpec struct {
	TopicName  string            `json:"topicName,omitempty"`
	Partitions int32             `json:"partitions"`
	Replicas   int32             `json:"replicas"`
	Config     map[string]string `json:"config,omitempty"`
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
