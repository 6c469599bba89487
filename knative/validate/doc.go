// Package validate checks the GameMetrics deployment artifacts offline.
//
// It renders every kustomization under knative/ and eventing/ and passes each
// Knative Service, PingSource, Broker and Trigger through the same
// SetDefaults and Validate code the Knative admission webhooks run
// (knative.dev/serving and knative.dev/eventing). KafkaSource and KafkaSink
// go through shared/eventing's parser, the one the local eventing runtime
// loads them with. Strimzi, External Secrets and ArgoCD resources have no Go
// module that resolves here; they are decoded strictly into structs that
// mirror the fields GameMetrics uses. On top of that come the GameMetrics
// rules: restricted security contexts, visibility, IRSA, network policies,
// where every secret comes from, Kafka users and their ACLs, sinks that
// resolve, the kinds a deploy applies, the order deploy.sh applies them in,
// and the ArgoCD app of apps.
//
// For Terraform it runs the tools (terraform init -backend=false and
// terraform validate offline against a provider mirror, tflint, terraform
// fmt) and adds only the rules no tool checks: no secret literals,
// encryption, thin environments, Multi-AZ in production, and a Kubernetes
// version the pinned Knative supports.
//
// This is a separate Go module so that the function binaries never link the
// Kubernetes and Knative libraries.
package validate
