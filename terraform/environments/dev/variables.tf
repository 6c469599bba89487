variable "aws_region" {
  type        = string
  description = "AWS region of the dev environment. Must match S3_REGION in knative/overlays/dev."
  default     = "eu-west-1"
}

variable "azs" {
  type        = list(string)
  description = "Availability zones used by the dev environment."
  default     = ["eu-west-1a", "eu-west-1b"]
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR block of the dev VPC."
  default     = "10.10.0.0/16"
}

variable "private_subnet_cidrs" {
  type        = list(string)
  description = "Private subnet CIDRs, one per availability zone."
  default     = ["10.10.0.0/19", "10.10.32.0/19"]
}

variable "public_subnet_cidrs" {
  type        = list(string)
  description = "Public subnet CIDRs, one per availability zone."
  default     = ["10.10.128.0/22", "10.10.132.0/22"]
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
