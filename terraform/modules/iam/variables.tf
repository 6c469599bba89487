variable "name_prefix" {
  type        = string
  description = "Prefix of the role names, e.g. gamemetrics-dev; roles are <name_prefix>-retain and <name_prefix>-report, the ARNs annotated on the ServiceAccounts in knative/overlays/<env>."
}

variable "namespace" {
  type        = string
  description = "Kubernetes namespace of the function ServiceAccounts."
  default     = "gamemetrics"
}

variable "oidc_provider_arn" {
  type        = string
  description = "ARN of the EKS cluster IAM OIDC provider (module eks)."
}

variable "oidc_provider_url" {
  type        = string
  description = "Issuer URL of the OIDC provider without https:// (module eks)."
}

variable "bucket_arn" {
  type        = string
  description = "ARN of the archive bucket (module s3)."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting the archive bucket (module s3)."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
