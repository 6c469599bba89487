output "secret_arns" {
  description = "Secrets Manager secret ARN per Kafka user."
  value       = { for user, s in aws_secretsmanager_secret.user : user => s.arn }
}

output "secret_names" {
  description = "Secrets Manager secret name per Kafka user (remoteRef.key of the ExternalSecrets)."
  value       = { for user, s in aws_secretsmanager_secret.user : user => s.name }
}
