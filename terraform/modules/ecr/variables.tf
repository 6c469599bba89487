variable "name" {
  type        = string
  description = "Prefix of the repository names, e.g. gamemetrics-dev; repositories are <name>/<repository>."
}

variable "repositories" {
  type        = list(string)
  description = "Repositories to create."
  default     = ["gamemetrics", "gamemetrics-cli"]
}

variable "keep_images" {
  type        = number
  description = "Images kept per repository; older ones expire (a rollback further back needs a rebuild)."
  default     = 50
}

variable "force_delete" {
  type        = bool
  description = "Allow terraform destroy to delete repositories that still hold images (dev only)."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
