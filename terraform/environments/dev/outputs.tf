output "aws_account_id" {
  description = "AWS account ID: AWS_ACCOUNT_ID for knative/deploy.sh."
  value       = data.aws_caller_identity.current.account_id
}

output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name ...)."
  value       = module.eks.cluster_name
}

output "msk_bootstrap_brokers_sasl_scram" {
  description = "MSK bootstrap brokers (SASL/SCRAM over TLS): MSK_BOOTSTRAP_BROKERS for knative/deploy.sh."
  value       = module.msk.bootstrap_brokers_sasl_scram
}

output "msk_scram_secret_arn" {
  description = "Secrets Manager secret with the Kafka SCRAM credentials (Kubernetes Secret gamemetrics-kafka)."
  value       = module.msk.scram_secret_arn
}

output "rds_address" {
  description = "PostgreSQL host name (DATABASE_URL)."
  value       = module.rds.address
}

output "rds_master_user_secret_arn" {
  description = "Secrets Manager secret with the PostgreSQL master credentials (Kubernetes Secret gamemetrics-postgres)."
  value       = module.rds.master_user_secret_arn
}

output "redis_url_secret_arn" {
  description = "Secrets Manager secret holding REDIS_URL (Kubernetes Secret gamemetrics-redis)."
  value       = module.elasticache.url_secret_arn
}

output "archive_bucket" {
  description = "Archive bucket name (S3_BUCKET)."
  value       = module.s3.bucket_id
}

output "irsa_role_arns" {
  description = "IRSA role ARNs of retain and report."
  value       = module.iam.role_arns
}
