variable "name_prefix" {
  type        = string
  description = "Prefix of the role names, e.g. gamemetrics-dev; roles are <name_prefix>-<function>, the ARNs annotated on the ServiceAccounts in knative/overlays/<env>."
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

variable "secret_arns" {
  type        = list(string)
  description = "Secrets Manager secrets External Secrets may read: PostgreSQL (application role and master), Redis, the Kafka users."
}

variable "secret_kms_key_arns" {
  type        = list(string)
  description = "KMS keys encrypting secret_arns."
}

variable "hosted_zone_arn" {
  type        = string
  description = "ARN of the Route 53 zone ExternalDNS writes the ingest and report records to (module dns)."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
