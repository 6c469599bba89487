variable "bucket_name" {
  type        = string
  description = "Globally unique name of the archive bucket, e.g. gamemetrics-dev-archive-<account id>. Must match S3_BUCKET in knative/overlays/<env>."
}

variable "raw_transition_days" {
  type        = number
  description = "Days after which objects under raw/ move to STANDARD_IA."
  default     = 30
}

variable "raw_archive_days" {
  type        = number
  description = "Days after which objects under raw/ move to GLACIER_IR (the colder class for archived events)."
  default     = 90
}

variable "reports_transition_days" {
  type        = number
  description = "Days after which objects under reports/ move to STANDARD_IA."
  default     = 60
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days after which non-current object versions (overwritten or deleted by retain) are removed."
  default     = 30
}

variable "force_destroy" {
  type        = bool
  description = "Allow terraform destroy to delete a non-empty bucket (dev only)."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
