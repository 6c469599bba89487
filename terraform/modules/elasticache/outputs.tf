output "primary_endpoint_address" {
  description = "Host name of the primary endpoint."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "port" {
  description = "Port of the Redis endpoint (TLS)."
  value       = aws_elasticache_replication_group.this.port
}

output "url_secret_arn" {
  description = "ARN of the Secrets Manager secret holding REDIS_URL (rediss:// with the AUTH token), source of the Kubernetes Secret gamemetrics-redis."
  value       = aws_secretsmanager_secret.redis.arn
}

output "security_group_id" {
  description = "Security group of the cache nodes."
  value       = aws_security_group.this.id
}

output "url_secret_name" {
  description = "Name of the Secrets Manager secret holding REDIS_URL."
  value       = aws_secretsmanager_secret.redis.name
}

output "kms_key_arn" {
  description = "ARN of the KMS key encrypting the cache and its secrets (External Secrets needs kms:Decrypt on it)."
  value       = aws_kms_key.this.arn
}
