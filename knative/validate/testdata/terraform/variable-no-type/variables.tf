# Planted mistake: a variable without a type.
variable "instance_class" {
  description = "DB instance class."
  default     = "db.t4g.medium"
}
