output "address" {
  description = "Host name of the PostgreSQL endpoint."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "Port of the PostgreSQL endpoint."
  value       = aws_db_instance.this.port
}

output "database_name" {
  description = "Name of the application database."
  value       = aws_db_instance.this.db_name
}

output "master_user_secret_arn" {
  description = "ARN of the RDS-managed Secrets Manager secret with the master credentials; only the migration Job's db-roles step reads it (Kubernetes Secret gamemetrics-postgres-master)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "security_group_id" {
  description = "Security group of the instance."
  value       = aws_security_group.this.id
}

output "app_secret_arn" {
  description = "ARN of the Secrets Manager secret of the application role (source of DATABASE_URL in the Kubernetes Secret gamemetrics-postgres)."
  value       = aws_secretsmanager_secret.app.arn
}

output "app_secret_name" {
  description = "Name of the Secrets Manager secret of the application role."
  value       = aws_secretsmanager_secret.app.name
}

output "kms_key_arn" {
  description = "ARN of the KMS key encrypting the database and its secrets (External Secrets needs kms:Decrypt on it)."
  value       = aws_kms_key.this.arn
}
