# Knative Serving (Kourier networking), Knative Eventing and eventing-kafka
# (KafkaSource + KafkaSink data planes), installed from the release
# manifests of one pinned Knative version. Each multi-document release file
# is split into documents and applied server-side, in dependency order.
#
# The kubectl provider is configured by the calling environment from this
# module's cluster outputs (see terraform/environments/*/providers.tf).

locals {
  knative_tag = "knative-v${var.knative_version}"

  # Applied in this order; each step depends on the previous one.
  knative_manifests = var.install_knative ? {
    "1-serving-crds"  = "https://github.com/knative/serving/releases/download/${local.knative_tag}/serving-crds.yaml"
    "2-serving-core"  = "https://github.com/knative/serving/releases/download/${local.knative_tag}/serving-core.yaml"
    "3-kourier"       = "https://github.com/knative/net-kourier/releases/download/${local.knative_tag}/kourier.yaml"
    "4-eventing-crds" = "https://github.com/knative/eventing/releases/download/${local.knative_tag}/eventing-crds.yaml"
    "5-eventing-core" = "https://github.com/knative/eventing/releases/download/${local.knative_tag}/eventing-core.yaml"
    "6-kafka-control" = "https://github.com/knative-extensions/eventing-kafka-broker/releases/download/${local.knative_tag}/eventing-kafka-controller.yaml"
    "7-kafka-source"  = "https://github.com/knative-extensions/eventing-kafka-broker/releases/download/${local.knative_tag}/eventing-kafka-source.yaml"
    "8-kafka-sink"    = "https://github.com/knative-extensions/eventing-kafka-broker/releases/download/${local.knative_tag}/eventing-kafka-sink.yaml"
  } : {}
}

data "http" "knative" {
  for_each = local.knative_manifests

  url = each.value

  lifecycle {
    postcondition {
      condition     = self.status_code == 200
      error_message = "Could not download ${each.value}; check knative_version."
    }
  }
}

data "kubectl_file_documents" "knative" {
  for_each = data.http.knative

  content = each.value.response_body
}

resource "kubectl_manifest" "serving_crds" {
  for_each = try(data.kubectl_file_documents.knative["1-serving-crds"].manifests, {})

  yaml_body         = each.value
  server_side_apply = true
  wait              = true

  depends_on = [aws_eks_node_group.default]
}

resource "kubectl_manifest" "serving_core" {
  for_each = try(data.kubectl_file_documents.knative["2-serving-core"].manifests, {})

  yaml_body         = each.value
  server_side_apply = true

  depends_on = [kubectl_manifest.serving_crds]
}

resource "kubectl_manifest" "kourier" {
  for_each = try(data.kubectl_file_documents.knative["3-kourier"].manifests, {})

  yaml_body         = each.value
  server_side_apply = true

  depends_on = [kubectl_manifest.serving_core]
}

resource "kubectl_manifest" "eventing_crds" {
  for_each = try(data.kubectl_file_documents.knative["4-eventing-crds"].manifests, {})

  yaml_body         = each.value
  server_side_apply = true
  wait              = true

  depends_on = [aws_eks_node_group.default]
}

resource "kubectl_manifest" "eventing_core" {
  for_each = try(data.kubectl_file_documents.knative["5-eventing-core"].manifests, {})

  yaml_body         = each.value
  server_side_apply = true

  depends_on = [kubectl_manifest.eventing_crds]
}

resource "kubectl_manifest" "kafka_controller" {
  for_each = try(data.kubectl_file_documents.knative["6-kafka-control"].manifests, {})

  yaml_body         = each.value
  server_side_apply = true

  depends_on = [kubectl_manifest.eventing_core]
}

resource "kubectl_manifest" "kafka_source" {
  for_each = try(data.kubectl_file_documents.knative["7-kafka-source"].manifests, {})

  yaml_body         = each.value
  server_side_apply = true

  depends_on = [kubectl_manifest.kafka_controller]
}

resource "kubectl_manifest" "kafka_sink" {
  for_each = try(data.kubectl_file_documents.knative["8-kafka-sink"].manifests, {})

  yaml_body         = each.value
  server_side_apply = true

  depends_on = [kubectl_manifest.kafka_controller]
}

# Serving settings GameMetrics relies on: Kourier as the ingress and
# restricted pod security defaults (the gamemetrics namespace enforces the
# "restricted" Pod Security Standard). Server-side apply with forced
# ownership of just these keys.
resource "kubectl_manifest" "config_network" {
  count = var.install_knative ? 1 : 0

  yaml_body = yamlencode({
    apiVersion = "v1"
    kind       = "ConfigMap"
    metadata   = { name = "config-network", namespace = "knative-serving" }
    data       = { "ingress-class" = "kourier.ingress.networking.knative.dev" }
  })
  server_side_apply = true
  force_conflicts   = true

  depends_on = [kubectl_manifest.kourier]
}

resource "kubectl_manifest" "config_features" {
  count = var.install_knative ? 1 : 0

  yaml_body = yamlencode({
    apiVersion = "v1"
    kind       = "ConfigMap"
    metadata   = { name = "config-features", namespace = "knative-serving" }
    data       = { "secure-pod-defaults" = "enabled" }
  })
  server_side_apply = true
  force_conflicts   = true

  depends_on = [kubectl_manifest.serving_core]
}
