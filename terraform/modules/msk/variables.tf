variable "name" {
  type        = string
  description = "Name of the MSK cluster, e.g. gamemetrics-dev."
}

variable "kafka_version" {
  type        = string
  description = "Apache Kafka version of the MSK cluster."
  default     = "3.7.x"
}

variable "broker_instance_type" {
  type        = string
  description = "Instance type of the MSK brokers."
  default     = "kafka.m7g.large"
}

variable "number_of_broker_nodes" {
  type        = number
  description = "Number of brokers; a multiple of the number of subnets (zones)."
  default     = 3
}

variable "broker_volume_size" {
  type        = number
  description = "EBS volume size per broker, in GiB."
  default     = 100
}

variable "vpc_id" {
  type        = string
  description = "ID of the VPC."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnet IDs, one per zone, for the brokers."
}

variable "client_security_group_ids" {
  type        = list(string)
  description = "Security groups allowed to reach the brokers on 9096 (SASL/SCRAM over TLS): the EKS cluster security group."
}

variable "default_replication_factor" {
  type        = number
  description = "default.replication.factor of the cluster configuration; the KafkaTopic resources in eventing/overlays set replicas explicitly."
  default     = 3
}

variable "min_insync_replicas" {
  type        = number
  description = "min.insync.replicas of the cluster configuration."
  default     = 2
}

variable "scram_username" {
  type        = string
  description = "SASL/SCRAM user name the functions, the KafkaSource and the KafkaSink authenticate with. Its password is generated and kept in Secrets Manager."
  default     = "gamemetrics"
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the broker logs in CloudWatch Logs, in days."
  default     = 30
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
