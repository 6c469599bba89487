variable "name" {
  type        = string
  description = "Prefix of the secret names, e.g. gamemetrics-dev; secrets are <name>/kafka/<user>."
}

variable "users" {
  type        = list(string)
  description = "Kafka clients that get a user: the functions that use Kafka and the operator CLI (replay, status)."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key encrypting the secrets."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
