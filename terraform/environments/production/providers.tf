provider "aws" {
  region = var.aws_region

  default_tags {
    tags = local.tags
  }
}

# Installs Knative into the cluster created by module.eks (see the module
# README for the first apply).
provider "kubectl" {
  host                   = module.eks.cluster_endpoint
  cluster_ca_certificate = base64decode(module.eks.cluster_certificate_authority_data)
  load_config_file       = false

  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", var.aws_region]
  }
}
