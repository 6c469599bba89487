variable "name" {
  type        = string
  description = "Name prefix for every VPC resource, e.g. gamemetrics-dev."
}

variable "cidr" {
  type        = string
  description = "IPv4 CIDR block of the VPC. Must lie in 10.0.0.0/8: the NetworkPolicies in knative/base only allow data-store egress to that range."

  validation {
    condition     = can(cidrhost(var.cidr, 0)) && startswith(var.cidr, "10.")
    error_message = "The VPC CIDR must be a valid block inside 10.0.0.0/8."
  }
}

variable "azs" {
  type        = list(string)
  description = "Availability zones to spread the subnets over (at least two, for EKS, RDS Multi-AZ and MSK)."

  validation {
    condition     = length(var.azs) >= 2
    error_message = "At least two availability zones are required."
  }
}

variable "private_subnet_cidrs" {
  type        = list(string)
  description = "One private subnet CIDR per availability zone (EKS nodes, RDS, ElastiCache, MSK)."
}

variable "public_subnet_cidrs" {
  type        = list(string)
  description = "One public subnet CIDR per availability zone (NAT gateways, public load balancer of the Knative ingress)."
}

variable "single_nat_gateway" {
  type        = bool
  description = "Use one NAT gateway for all private subnets (cheaper, not zone-redundant) instead of one per availability zone."
  default     = false
}

variable "cluster_name" {
  type        = string
  description = "Name of the EKS cluster using this VPC; used for the kubernetes.io/cluster subnet tags that load balancer discovery relies on."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
