variable "cluster_name" {
  type        = string
  description = "Name of the EKS cluster; also the value of the karpenter.sh/discovery tags."
}

variable "cluster_security_group_id" {
  type        = string
  description = "Cluster security group (module eks) that Karpenter attaches to the nodes it starts."
}

variable "oidc_provider_arn" {
  type        = string
  description = "ARN of the EKS cluster IAM OIDC provider (module eks)."
}

variable "oidc_provider_url" {
  type        = string
  description = "Issuer URL of the OIDC provider without https:// (module eks)."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
