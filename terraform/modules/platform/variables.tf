variable "environment" {
  type        = string
  description = "Environment name (dev, staging or production); resources are named gamemetrics-<environment>."

  validation {
    condition     = contains(["dev", "staging", "production"], var.environment)
    error_message = "environment must be dev, staging or production (the kustomize overlays that exist)."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR block of the VPC (inside 10.0.0.0/8, see module vpc)."
}

variable "azs" {
  type        = list(string)
  description = "Availability zones of the environment."
}

variable "private_subnet_cidrs" {
  type        = list(string)
  description = "Private subnet CIDRs, one per availability zone."
}

variable "public_subnet_cidrs" {
  type        = list(string)
  description = "Public subnet CIDRs, one per availability zone."
}

variable "single_nat_gateway" {
  type        = bool
  description = "One NAT gateway for all zones (cheaper) instead of one per zone."
}

variable "kubernetes_version" {
  type        = string
  description = "EKS Kubernetes minor version; at least the DefaultKubernetesMinVersion of the knative.dev/pkg pinned in knative/validate/go.mod (TestKubernetesVersionSupportsTheKnativeRelease)."
}

variable "eks_public_access_cidrs" {
  type        = list(string)
  description = "CIDR blocks allowed to reach the public Kubernetes API endpoint; empty disables the public endpoint."
  default     = []
}

variable "system_node_instance_types" {
  type        = list(string)
  description = "Instance types of the system node group (Karpenter, operators, CoreDNS)."
  default     = ["m6i.large"]
}

variable "system_node_min_size" {
  type        = number
  description = "Minimum (and initial) size of the system node group."
  default     = 2
}

variable "system_node_max_size" {
  type        = number
  description = "Maximum size of the system node group."
  default     = 3
}

variable "rds_instance_class" {
  type        = string
  description = "DB instance class of PostgreSQL."
}

variable "rds_multi_az" {
  type        = bool
  description = "Run PostgreSQL with a synchronous standby in a second zone; production must (checked by knative/validate)."
}

variable "rds_backup_retention_period" {
  type        = number
  description = "Days of PostgreSQL point-in-time recovery."
}

variable "deletion_protection" {
  type        = bool
  description = "Protect PostgreSQL from deletion (and take a final snapshot)."
}

variable "redis_node_type" {
  type        = string
  description = "ElastiCache node type."
}

variable "redis_num_cache_clusters" {
  type        = number
  description = "Redis nodes (above 1: failover and Multi-AZ)."
}

variable "zone_name" {
  type        = string
  description = "Existing public Route 53 zone that holds the domain (prerequisite)."
}

variable "domain" {
  type        = string
  description = "Domain of the public functions: ingest.<domain>, report.<domain>."
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy delete a non-empty archive bucket and image repositories (dev only)."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource."
  default     = {}
}
