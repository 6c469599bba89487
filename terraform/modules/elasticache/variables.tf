variable "name" {
  type        = string
  description = "Replication group ID, e.g. gamemetrics-dev."
}

variable "engine_version" {
  type        = string
  description = "Redis engine version."
  default     = "7.1"
}

variable "node_type" {
  type        = string
  description = "Cache node type."
  default     = "cache.t4g.small"
}

variable "num_cache_clusters" {
  type        = number
  description = "Number of nodes (1 primary + replicas). Above 1, automatic failover and Multi-AZ are enabled."
  default     = 2
}

variable "snapshot_retention_limit" {
  type        = number
  description = "Days of automatic snapshots (0 disables them)."
  default     = 3
}

variable "vpc_id" {
  type        = string
  description = "ID of the VPC."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnet IDs of the cache subnet group."
}

variable "allowed_security_group_ids" {
  type        = list(string)
  description = "Security groups allowed to connect on 6379: the EKS cluster security group."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
