# Planted mistake: a secret variable with a literal default.
variable "redis_auth_token" {
  type        = string
  description = "AUTH token of Redis."
  sensitive   = true
  default     = "correct-horse-battery-staple"
}
