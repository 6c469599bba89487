// Package validate checks the GameMetrics deployment artifacts offline.
//
// It renders every kustomization under knative/ and eventing/ and passes each
// Knative Service, PingSource, Broker and Trigger through the same
// SetDefaults and Validate code the Knative admission webhooks run
// (knative.dev/serving and knative.dev/eventing). KafkaSource, KafkaSink and
// Strimzi KafkaTopic have no Go module that resolves here, so they are
// decoded strictly into hand-written structs mirroring the upstream CRDs and
// checked with rules mirroring the upstream validation. On top of that come
// the GameMetrics rules: restricted security contexts, visibility, IRSA,
// network policies, and sinks that resolve to resources that exist.
//
// It also parses every Terraform file under terraform/ with hcl/v2 and
// enforces the infrastructure rules (typed and described variables,
// encryption, public-access blocks, Multi-AZ in production, no secret
// literals, identical module sets per environment), and runs
// `terraform fmt -check`.
//
// This is a separate Go module so that the function binaries never link the
// Kubernetes and Knative libraries.
package validate
