variable "bucket_name" {
  type        = string
  description = "Name of the bucket."
}

variable "multi_az" {
  type        = bool
  description = "Standby in a second zone."
  default     = false
}
