variable "aws_region" {
  type        = string
  description = "AWS region of the production environment. Must match S3_REGION in knative/overlays/production."
  default     = "eu-west-1"
}

variable "azs" {
  type        = list(string)
  description = "Availability zones used by the production environment."
  default     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR block of the production VPC."
  default     = "10.30.0.0/16"
}

variable "private_subnet_cidrs" {
  type        = list(string)
  description = "Private subnet CIDRs, one per availability zone."
  default     = ["10.30.0.0/19", "10.30.32.0/19", "10.30.64.0/19"]
}

variable "public_subnet_cidrs" {
  type        = list(string)
  description = "Public subnet CIDRs, one per availability zone."
  default     = ["10.30.128.0/22", "10.30.132.0/22", "10.30.136.0/22"]
}

variable "eks_public_access_cidrs" {
  type        = list(string)
  description = "CIDR blocks allowed to reach the public Kubernetes API endpoint (operators, CI runners). Empty disables the public endpoint."
  default     = []
}

variable "knative_version" {
  type        = string
  description = "Knative release installed by module eks; keep in step with knative/validate/go.mod."
  default     = "1.23.0"
}
