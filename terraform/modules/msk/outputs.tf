output "cluster_arn" {
  description = "ARN of the MSK cluster."
  value       = aws_msk_cluster.this.arn
}

output "bootstrap_brokers_sasl_scram" {
  description = "Comma-separated SASL/SCRAM (TLS, port 9096) bootstrap brokers: the value of MSK_BOOTSTRAP_BROKERS for knative/deploy.sh."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_scram
}

output "scram_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the SCRAM username and password (source of the Kubernetes Secret gamemetrics-kafka)."
  value       = aws_secretsmanager_secret.scram.arn
}

output "security_group_id" {
  description = "Security group of the brokers."
  value       = aws_security_group.this.id
}
