output "aws_account_id" {
  description = "AWS account ID (AWS_ACCOUNT_ID in knative/deploy.sh)."
  value       = data.aws_caller_identity.current.account_id
}

output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name ...; CLUSTER_NAME in knative/deploy.sh)."
  value       = module.eks.cluster_name
}

output "kubernetes_version" {
  description = "Kubernetes version of the control plane."
  value       = module.eks.kubernetes_version
}

output "repository_urls" {
  description = "ECR repository per image (gamemetrics, gamemetrics-cli)."
  value       = module.ecr.repository_urls
}

output "domain" {
  description = "Domain of the public functions (DOMAIN in knative/deploy.sh)."
  value       = module.dns.domain
}

output "certificate_arn" {
  description = "Wildcard certificate of the load balancer (ACM_CERTIFICATE_ARN in knative/deploy.sh)."
  value       = module.dns.certificate_arn
}

output "hosted_zone_id" {
  description = "Route 53 zone ExternalDNS writes to (HOSTED_ZONE_ID in knative/deploy.sh)."
  value       = module.dns.hosted_zone_id
}

output "karpenter_node_role" {
  description = "IAM role of the nodes Karpenter starts (KARPENTER_NODE_ROLE in knative/deploy.sh)."
  value       = module.karpenter.node_role_name
}

output "karpenter_interruption_queue" {
  description = "SQS queue of interruption events (KARPENTER_QUEUE in knative/deploy.sh)."
  value       = module.karpenter.interruption_queue_name
}

output "karpenter_controller_role_arn" {
  description = "IRSA role of the Karpenter controller."
  value       = module.karpenter.controller_role_arn
}

output "rds_address" {
  description = "PostgreSQL host name."
  value       = module.rds.address
}

output "rds_app_secret_name" {
  description = "Secrets Manager secret of the application role (ExternalSecret gamemetrics-postgres)."
  value       = module.rds.app_secret_name
}

output "rds_master_user_secret_arn" {
  description = "RDS-managed secret of the master user (ExternalSecret gamemetrics-postgres-master, read by the migration Job only)."
  value       = module.rds.master_user_secret_arn
}

output "redis_url_secret_name" {
  description = "Secrets Manager secret holding REDIS_URL (ExternalSecret gamemetrics-redis)."
  value       = module.elasticache.url_secret_name
}

output "kafka_user_secret_names" {
  description = "Secrets Manager secret per Kafka user (ExternalSecrets kafka-<user>)."
  value       = module.kafka_users.secret_names
}

output "archive_bucket" {
  description = "Archive bucket name (S3_BUCKET)."
  value       = module.s3.bucket_id
}

output "irsa_role_arns" {
  description = "IRSA role ARNs of the functions and cluster components."
  value       = module.iam.role_arns
}
