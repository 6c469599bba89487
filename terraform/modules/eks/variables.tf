variable "cluster_name" {
  type        = string
  description = "Name of the EKS cluster, e.g. gamemetrics-dev."
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes minor version of the control plane and the system node group. Knative's controllers refuse to start below the DefaultKubernetesMinVersion of the knative.dev/pkg that knative/validate pins (a test compares them)."

  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.kubernetes_version))
    error_message = "kubernetes_version is a minor version such as 1.34."
  }
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
  description = "EC2 instance types of the system node group (Karpenter chooses the instance types of every other node)."
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
  description = "Initial number of system nodes (later changes are ignored, so a manual resize survives the next apply)."
  default     = 2
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
