variable "multi_az" {
  type        = bool
  description = "Standby in a second zone."
  default     = false
}
