# Planted mistake: a Kubernetes older than the pinned Knative supports.
module "platform" {
  source = "../../modules/platform"

  environment        = "production"
  kubernetes_version = "1.32"
  multi_az           = true
}
