variable "cluster_name" {
  type        = string
  description = "Name of the EKS cluster, e.g. gamemetrics-dev."
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes minor version of the control plane and the managed node group."
  default     = "1.32"
}

variable "vpc_id" {
  type        = string
  description = "ID of the VPC the cluster runs in."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnet IDs for the control plane ENIs and the worker nodes."
}

variable "endpoint_public_access" {
  type        = bool
  description = "Expose the Kubernetes API endpoint publicly (restricted to public_access_cidrs). The private endpoint is always enabled."
  default     = true
}

variable "public_access_cidrs" {
  type        = list(string)
  description = "CIDR blocks allowed to reach the public Kubernetes API endpoint (operators and CI)."
  default     = []
}

variable "node_instance_types" {
  type        = list(string)
  description = "EC2 instance types of the managed node group."
  default     = ["m6i.large"]
}

variable "node_min_size" {
  type        = number
  description = "Minimum number of worker nodes."
  default     = 2
}

variable "node_max_size" {
  type        = number
  description = "Maximum number of worker nodes."
  default     = 6
}

variable "node_desired_size" {
  type        = number
  description = "Initial number of worker nodes (later changes are left to the cluster autoscaler)."
  default     = 2
}

variable "install_knative" {
  type        = bool
  description = "Install Knative Serving (with Kourier), Knative Eventing and eventing-kafka (KafkaSource, KafkaSink) into the cluster."
  default     = true
}

variable "knative_version" {
  type        = string
  description = "Knative release (without the knative-v prefix) for Serving, Kourier, Eventing and eventing-kafka-broker. Keep it in step with the knative.dev/serving and knative.dev/eventing module versions in knative/validate/go.mod (Knative 1.N = module v0.(N+27), so v0.50 = 1.23)."
  default     = "1.23.0"

  validation {
    condition     = can(regex("^1\\.[0-9]+\\.[0-9]+$", var.knative_version))
    error_message = "knative_version must look like 1.23.0."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
