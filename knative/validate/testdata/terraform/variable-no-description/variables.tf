# Planted mistake: a variable without a description.
variable "instance_class" {
  type    = string
  default = "db.t4g.medium"
}
