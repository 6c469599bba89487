variable "zone_name" {
  type        = string
  description = "Public Route 53 hosted zone the domain lies in, e.g. play.example.com (a prerequisite: created and delegated outside this configuration)."
}

variable "domain" {
  type        = string
  description = "Domain of the environment's public functions, e.g. dev.play.example.com; Knative serves ingest.<domain> and report.<domain>."

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", var.domain))
    error_message = "domain must be a lower-case DNS name."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
