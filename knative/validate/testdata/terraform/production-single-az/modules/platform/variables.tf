variable "environment" {
  type        = string
  description = "Environment name."
}

variable "kubernetes_version" {
  type        = string
  description = "EKS version."
}

variable "multi_az" {
  type        = bool
  description = "PostgreSQL standby."
}
