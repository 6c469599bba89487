variable "aws_region" {
  type        = string
  description = "AWS region of the production environment. Must match S3_REGION in knative/overlays/production."
  default     = "eu-west-1"
}

variable "eks_public_access_cidrs" {
  type        = list(string)
  description = "CIDR blocks allowed to reach the public Kubernetes API endpoint (operators, CI runners). Empty disables the public endpoint."
  default     = []
}

variable "zone_name" {
  type        = string
  description = "Existing public Route 53 hosted zone, e.g. play.example.com."
}

variable "domain" {
  type        = string
  description = "Domain of the public functions in production, e.g. production.play.example.com."
}
