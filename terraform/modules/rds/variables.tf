variable "identifier" {
  type        = string
  description = "Identifier of the DB instance, e.g. gamemetrics-dev."
}

variable "engine_version" {
  type        = string
  description = "PostgreSQL engine version; GameMetrics targets PostgreSQL 15 (a major version like \"15\" lets RDS pick the current minor)."
  default     = "15"

  validation {
    condition     = can(regex("^15(\\.[0-9]+)?$", var.engine_version))
    error_message = "GameMetrics runs on PostgreSQL 15."
  }
}

variable "instance_class" {
  type        = string
  description = "DB instance class."
  default     = "db.t4g.medium"
}

variable "allocated_storage" {
  type        = number
  description = "Initial storage, in GiB."
  default     = 50
}

variable "max_allocated_storage" {
  type        = number
  description = "Upper bound for storage autoscaling, in GiB."
  default     = 200
}

variable "multi_az" {
  type        = bool
  description = "Run a synchronous standby in a second availability zone. Must be true in production."
  default     = false
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the instance (and take a final snapshot when it is deleted)."
  default     = true
}

variable "backup_retention_period" {
  type        = number
  description = "Days of automated backups (point-in-time recovery window)."
  default     = 7
}

variable "database_name" {
  type        = string
  description = "Name of the database created in the instance."
  default     = "gamemetrics"
}

variable "master_username" {
  type        = string
  description = "Master user name. Its password is generated and rotated by RDS in Secrets Manager (manage_master_user_password)."
  default     = "gamemetrics"
}

variable "allowed_extensions" {
  type        = list(string)
  description = "Extensions that may be created (rds.allowed_extensions). hll is required by the GameMetrics schema (distinct-player counts)."
  default     = ["hll", "pg_stat_statements", "pgcrypto"]

  validation {
    condition     = contains(var.allowed_extensions, "hll")
    error_message = "The hll extension must be allowed."
  }
}

variable "shared_preload_libraries" {
  type        = list(string)
  description = "Libraries loaded at server start (shared_preload_libraries; changing it needs a reboot)."
  default     = ["pg_stat_statements"]
}

variable "app_username" {
  type        = string
  description = "PostgreSQL role the functions connect as (never the master user). Its password lives in the Secrets Manager secret <identifier>/postgres/app."
  default     = "gamemetrics_app"
}

variable "ca_cert_identifier" {
  type        = string
  description = "RDS certificate authority of the server certificate; clients verify it with the RDS CA bundle (sslmode=verify-full&sslrootcert=...)."
  default     = "rds-ca-rsa2048-g1"
}

variable "rotation_days" {
  type        = number
  description = "Days between rotations of the application role's password (0 disables rotation)."
  default     = 30
}

variable "rotation_application_version" {
  type        = string
  description = "Version of the AWS Serverless Application Repository application SecretsManagerRDSPostgreSQLRotationMultiUser."
  default     = "1.1.367"
}

variable "vpc_id" {
  type        = string
  description = "ID of the VPC."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnet IDs of the DB subnet group (at least two zones)."
}

variable "allowed_security_group_ids" {
  type        = list(string)
  description = "Security groups allowed to connect on 5432: the EKS cluster security group."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
